"""Siamese DeepSets Wasserstein embeddings (Sehanobish et al., 2020), claim by claim.

    python benchmarks/deepsets_paper.py                  # the full run (~20 min on 2 CPU cores)
    python benchmarks/deepsets_paper.py --quick --output /tmp/dsp   # the smoke test's run

The paper embeds samples of 1-D distributions in the plane with a DeepSets network (phi:
50-100-36, sum pooling, rho: 30-30-10, output 2, ELU) whose Euclidean distances are trained
to match Sinkhorn distances, with translation and scaling regularisers. Here the same network
is trained through ``wormhole.fit`` (``model.encoder: deepsets`` with ``phi_sizes`` /
``rho_sizes``, ``loss.translation`` / ``loss.scaling``) on ``--clouds-per-family`` samples of
``--points`` points from each of the seven 1-D families of
:mod:`wormhole.data.loaders.synthetic` (parameters drawn at random; the test clouds are new
draws, so new parameter values). Then, for W1 and for W2:

1. Pearson between embedding and exact distances on random pairs of training clouds and of
   test clouds (unseen parameter values);
2. measures never seen in training: Dirac masses and scaled binomials, among themselves and
   against the test clouds;
3. translation: for ``(X, Y)`` and a shift ``t``, how far ``H(X+t), H(Y+t), H(Y), H(X)`` are
   from a parallelogram (the defect ``|(H(X+t) - H(X)) - (H(Y+t) - H(Y))|`` over the side
   length), and for a 2-D model (2-D normals, W2 by Sinkhorn) a normal moved around a circle:
   the winding number of its embedding's path around the unmoved embedding;
4. scaling: ``|H(aX) - H(aY)| / (|a| |H(X) - H(Y)|)`` for a range of ``a``;
5. what the coordinates learn: Pearson r of each embedding coordinate with each measure's
   exact mean and standard deviation;
6. continuity: ``|H(N(0, 1/n)) - H(delta_0)|`` as ``n`` grows, against the exact distance;
7. barycenters: the embedding midpoint of two measures against the embedding of their W2
   barycenter (ott-jax free support, checked against the exact 1-D barycenter, the average of
   quantile functions);
8. sample size: held-out Pearson and its spread over seeds when each cloud has fewer points.

Deviations from the paper, all stated in the report: the targets are exact W1 / W2 by sorting
(``ot.solver: sorting``), the epsilon -> 0 limit of the paper's Sinkhorn distances
(``--solver sinkhorn --epsilon E`` trains on Sinkhorn values instead); the W2 model matches the
mean squared embedding difference to W2^2 (``embedding_distance: mse``), so its Euclidean
distance is proportional to W2 and all W2 figures compare Euclidean distance with W2.

Writes benchmarks/results/deepsets_paper.{md,json} and its PNG figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import (  # noqa: E402
    Run,
    format_seconds,
    markdown_table,
    scratch_dir,
    write_result,
)

RESULTS = Path(__file__).resolve().parent / "results" / "deepsets_paper"
PAPER_NETWORK = {"model.encoder": "deepsets", "model.emb_dim": 2,
                 "model.phi_sizes": [50, 100, 36], "model.rho_sizes": [30, 30, 10],
                 "model.pooling": "sum", "model.decoder_layers": 0,
                 "loss.reconstruction": 0.0, "loss.translation": 0.1, "loss.scaling": 0.1,
                 "data.normalize": "none"}
BARYCENTER_PAIRS = {  # (name, sampler) twice: three pairs inside the training families' ranges
    "N(-0.8, 0.2) & N(0.8, 0.6)": (lambda r, n: r.normal(-0.8, 0.2, n),
                                   lambda r, n: r.normal(0.8, 0.6, n)),
    "U[-1, 0] & N(0.5, 0.3)": (lambda r, n: r.uniform(-1, 0, n),
                               lambda r, n: r.normal(0.5, 0.3, n)),
    "Beta(2, 5) & Gamma(3, 0.3)": (lambda r, n: r.beta(2, 5, n),
                                   lambda r, n: r.gamma(3, 0.3, n)),
}


# --------------------------------------------------------------------------- exact distances


def exact_w(x: np.ndarray, y: np.ndarray, p: int) -> float:
    """W_p between two equal-size uniform 1-D samples: the sorted samples matched in order."""
    gap = np.abs(np.sort(x.ravel()) - np.sort(y.ravel()))
    return float(np.mean(gap ** p) ** (1.0 / p))


def _pearson(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, float), np.asarray(b, float))[0, 1])


def _norm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


def _pairs(count: int, num: int, rng) -> tuple[np.ndarray, np.ndarray]:
    i = rng.integers(count, size=num)
    j = (i + rng.integers(1, count, size=num)) % count
    return i, j


# --------------------------------------------------------------------------- training


def one_d_clouds(per_family: int, points: int, seed: int):
    from wormhole.data.loaders.synthetic import FAMILIES_1D, load_synthetic

    clouds = load_synthetic(seed=seed, family="1d", num_clouds=per_family * len(FAMILIES_1D),
                            points=points)
    return clouds


def train_model(p: int, train, test, args, workdir: Path, seed: int = 0, dim: int = 1):
    """A paper-shaped DeepSets model for W_p (``dim`` 1: sorting or Sinkhorn; 2: Sinkhorn)."""
    import wormhole

    kind = f"W{p}"
    overrides = {**PAPER_NETWORK, "ot.kind": kind,
                 "model.embedding_distance": "euclidean" if p == 1 else "mse",
                 "train.steps": args.steps, "train.batch_size": args.batch_size,
                 "train.learning_rate": args.learning_rate, "train.seed": seed,
                 "train.eval_every": args.steps, "train.log_every": max(args.steps // 10, 1),
                 "checkpoint.every": args.steps, "eval.num_pairs": 100,
                 # Raw units, as in the paper: epsilon is then the paper's 1 / lambda.
                 "ot.cost_scale": 1.0}
    if dim == 1 and args.solver == "sorting":
        overrides["ot.solver"] = "sorting"
    else:
        overrides.update({"ot.solver": "sinkhorn", "ot.epsilon": args.epsilon})
    return wormhole.fit(train, test_clouds=test, config="deepsets_1d.yaml",
                        overrides=overrides, workdir=workdir, progress=False)


def _as_list(clouds) -> list[np.ndarray]:
    return [np.asarray(clouds.cloud(i)[0]) for i in range(len(clouds))]


# --------------------------------------------------------------------------- the claims


def fidelity(model, train, test, p: int, num_pairs: int, rng) -> dict:
    """Claim 1: Pearson of embedding distance against exact W_p, training and test pairs."""
    out = {}
    for name, clouds in (("train", train), ("test", test)):
        samples = _as_list(clouds)
        emb = model.encode(samples)
        i, j = _pairs(len(samples), num_pairs, rng)
        predicted = _norm(emb[i], emb[j])
        truth = np.array([exact_w(samples[a], samples[b], p) for a, b in zip(i, j, strict=True)])
        out[name] = {"pearson": _pearson(predicted, truth), "predicted": predicted.tolist(),
                     "exact": truth.tolist()}
    return out


def unseen_measures(model, test, p: int, points: int, rng) -> dict:
    """Claim 2: Dirac masses and binomials (never seen in training)."""
    diracs = {f"delta_{c:.2f}": np.full((points, 1), c) for c in np.linspace(-1.0, 2.0, 10)}
    binomials = {f"Bin(10, {q:.1f})/10": rng.binomial(10, q, (points, 1)) / 10.0
                 for q in np.linspace(0.1, 0.9, 9)}
    samples = _as_list(test)[:60]
    out = {}
    for name, group in (("dirac", diracs), ("binomial", binomials)):
        clouds = list(group.values())
        emb = model.encode(clouds)
        i, j = np.triu_indices(len(clouds), 1)
        within = (_norm(emb[i], emb[j]),
                  [exact_w(clouds[a], clouds[b], p) for a, b in zip(i, j, strict=True)])
        other = model.encode(samples)
        a, b = np.meshgrid(np.arange(len(clouds)), np.arange(len(samples)), indexing="ij")
        a, b = a.ravel(), b.ravel()
        cross = (_norm(emb[a], other[b]),
                 [exact_w(clouds[x], samples[y], p) for x, y in zip(a, b, strict=True)])
        out[name] = {"within_pearson": _pearson(*within), "vs_test_pearson": _pearson(*cross),
                     "count": len(clouds), "embeddings": emb.tolist(),
                     "names": list(group)}
    return out


def _embedded_pairs(model, clouds, num_pairs: int, rng):
    """The clouds as arrays, ``num_pairs`` random pairs ``(i, j)`` and their embeddings."""
    samples = _as_list(clouds)
    i, j = _pairs(len(samples), num_pairs, rng)
    return samples, i, j, model.encode(samples)


def translation_1d(model, test, shifts, num_pairs: int, rng) -> dict:
    """Claim 3 (1-D): parallelogram defects and distance changes under a common shift."""
    samples, i, j, base = _embedded_pairs(model, test, num_pairs, rng)
    rows = []
    for t in shifts:
        moved = model.encode([s + t for s in samples])
        side_x, side_y = moved[i] - base[i], moved[j] - base[j]
        scale = 0.5 * (np.linalg.norm(side_x, axis=1) + np.linalg.norm(side_y, axis=1))
        defect = np.linalg.norm(side_x - side_y, axis=1) / np.maximum(scale, 1e-12)
        change = np.abs(_norm(moved[i], moved[j]) - _norm(base[i], base[j])) / \
            np.maximum(_norm(base[i], base[j]), 1e-12)
        rows.append({"shift": float(t), "median_defect": float(np.median(defect)),
                     "median_distance_change": float(np.median(change))})
    return {"rows": rows}


def winding_number(path: np.ndarray, centre: np.ndarray) -> float:
    """How many times a closed 2-D ``path [T, 2]`` winds around ``centre``."""
    angles = np.unwrap(np.arctan2(*(path - centre).T[::-1]))
    closed = np.append(angles, angles[0] + 2 * np.pi * np.round((angles[-1] - angles[0]) /
                                                                 (2 * np.pi)))
    return float((closed[-1] - closed[0]) / (2 * np.pi))


def circle_2d(model, radius: float, points: int, steps: int, rng) -> dict:
    """Claim 3 (2-D): a normal moved around a circle traces a loop around its embedding."""
    cloud = rng.normal(size=(points, 2)) @ np.array([[0.4, 0.0], [0.1, 0.25]])
    theta = np.linspace(0, 2 * np.pi, steps, endpoint=False)
    moves = radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    path = model.encode([cloud + m for m in moves])
    centre = model.encode([cloud])[0]
    radii = np.linalg.norm(path - centre, axis=1)
    return {"winding_number": winding_number(path, centre),
            "radius_cv": float(np.std(radii) / np.mean(radii)),
            "path": path.tolist(), "centre": centre.tolist(), "radius": radius}


def scaling(model, test, factors, num_pairs: int, rng) -> dict:
    """Claim 4: |H(aX) - H(aY)| against |a| |H(X) - H(Y)|."""
    samples, i, j, base = _embedded_pairs(model, test, num_pairs, rng)
    rows = []
    for a in factors:
        scaled = model.encode([s * a for s in samples])
        ratio = _norm(scaled[i], scaled[j]) / (abs(a) * _norm(base[i], base[j]))
        rows.append({"a": float(a), "median_ratio": float(np.median(ratio)),
                     "q10": float(np.quantile(ratio, 0.1)),
                     "q90": float(np.quantile(ratio, 0.9))})
    return {"rows": rows}


def coordinates(model, test) -> dict:
    """Claim 5: Pearson r of each embedding coordinate with the exact mean and std."""
    emb = model.encode(_as_list(test))
    mean = np.asarray(test.metadata["mean"])[:, 0]
    std = np.sqrt(np.asarray(test.metadata["cov"])[:, 0, 0])
    table = {name: [_pearson(emb[:, k], value) for k in range(emb.shape[1])]
             for name, value in (("mean", mean), ("std", std))}
    return {"r": table, "best_abs_r": {k: float(np.max(np.abs(v))) for k, v in table.items()}}


def continuity(model, p: int, points: int, ns, rng) -> dict:
    """Claim 6: N(0, 1/n) approaches delta_0 in the embedding as it does in W_p."""
    dirac = model.encode([np.zeros((points, 1))])[0]
    z = rng.normal(size=(points, 1))
    rows = []
    for n in ns:
        cloud = z / np.sqrt(n)
        rows.append({"n": int(n),
                     "embedding": float(np.linalg.norm(model.encode([cloud])[0] - dirac)),
                     "exact": exact_w(cloud, np.zeros((points, 1)), p)})
    first = rows[0]
    for row in rows:
        row["embedding_relative"] = row["embedding"] / max(first["embedding"], 1e-12)
        row["exact_relative"] = row["exact"] / first["exact"]
    return {"rows": rows}


def barycenters(model, points: int, rng, num_points: int) -> dict:
    """Claim 7: embedding midpoint against the embedding of the W2 barycenter."""
    from wormhole.evaluate.barycenter import free_support_barycenter

    rows = []
    for name, (draw_x, draw_y) in BARYCENTER_PAIRS.items():
        x, y = draw_x(rng, points)[:, None], draw_y(rng, points)[:, None]
        exact = 0.5 * (np.sort(x, axis=0) + np.sort(y, axis=0))
        support, converged = free_support_barycenter([x, y], num_points=num_points,
                                                     epsilon=1e-3)
        emb = model.encode([x, y, exact, np.asarray(support)])
        mid = 0.5 * (emb[0] + emb[1])
        side = float(np.linalg.norm(emb[0] - emb[1]))
        quantiles = np.quantile(exact, (np.arange(num_points) + 0.5) / num_points)
        rows.append({
            "pair": name, "side": side,
            "midpoint_to_exact": float(np.linalg.norm(mid - emb[2])) / side,
            "midpoint_to_ott": float(np.linalg.norm(mid - emb[3])) / side,
            "ott_vs_exact_w2": exact_w(np.sort(np.asarray(support).ravel()), quantiles, 2),
            "ott_converged": bool(converged), "embeddings": emb.tolist()})
    return {"rows": rows}


# --------------------------------------------------------------------------- figures


def plot(result: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, axes = plt.subplots(2, 4, figsize=(18, 8.5))
    for row, p in enumerate(("W1", "W2")):
        part = result["kinds"][p]
        ax = axes[row, 0]
        emb = np.asarray(part["test_embeddings"])
        labels = np.asarray(part["test_labels"])
        for k, family in enumerate(result["families"]):
            ax.scatter(*emb[labels == k].T, s=8, label=family)
        for group, marker in (("dirac", "x"), ("binomial", "^")):
            ax.scatter(*np.asarray(part["unseen"][group]["embeddings"]).T, marker=marker,
                       c="k", s=30, label=group)
        ax.set_title(f"{p}: test embeddings by family")
        ax.legend(fontsize=6, ncol=2)
        ax = axes[row, 1]
        fit = part["fidelity"]["test"]
        ax.scatter(fit["exact"], fit["predicted"], s=6)
        ax.set_xlabel(f"exact {p}")
        ax.set_ylabel("embedding distance")
        ax.set_title(f"{p}: test pairs, Pearson {fit['pearson']:.3f}")
        ax = axes[row, 2]
        rows = part["scaling"]["rows"]
        a = [r["a"] for r in rows]
        ax.plot(a, [r["median_ratio"] for r in rows], "o-", label="median")
        ax.fill_between(a, [r["q10"] for r in rows], [r["q90"] for r in rows], alpha=0.3,
                        label="10-90%")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("a")
        ax.set_title(f"{p}: |H(aX)-H(aY)| / (|a| |H(X)-H(Y)|)")
        ax.legend(fontsize=7)
        ax = axes[row, 3]
        rows = part["continuity"]["rows"]
        ax.loglog([r["n"] for r in rows], [r["embedding_relative"] for r in rows], "o-",
                  label="embedding")
        ax.loglog([r["n"] for r in rows], [r["exact_relative"] for r in rows], "k--",
                  label=f"exact {p}")
        ax.set_xlabel("n")
        ax.set_title(f"{p}: distance of N(0, 1/n) to delta_0 (relative to n=1)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out.with_name(out.name + ".claims.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    names.append(path.name)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    if "circle" in result:
        circle = result["circle"]
        path_emb = np.asarray(circle["path"])
        ax = axes[0]
        ax.plot(*np.vstack([path_emb, path_emb[:1]]).T, "o-", ms=3)
        ax.plot(*circle["centre"], "r*", ms=12, label="unmoved")
        ax.set_title(f"2-D normal moved around a circle: winding {circle['winding_number']:.2f}")
        ax.legend(fontsize=7)
    ax = axes[1]
    for p, marker in (("W1", "o"), ("W2", "s")):
        for k, row in enumerate(result["kinds"][p]["barycenters"]["rows"]):
            emb = np.asarray(row["embeddings"])
            ax.plot(*emb[:2].T, "-", color=f"C{k}", lw=0.8)
            ax.plot(*(0.5 * (emb[0] + emb[1])), marker, color=f"C{k}", mfc="none", ms=9)
            ax.plot(*emb[2], marker, color=f"C{k}", label=f"{p}: {row['pair']}")
    ax.set_title("midpoint (hollow) vs barycenter's embedding (filled)")
    ax.legend(fontsize=6)
    ax = axes[2]
    sizes = result.get("sample_size", {}).get("rows", [])
    if sizes:
        ax.errorbar([r["points"] for r in sizes], [r["pearson_mean"] for r in sizes],
                    yerr=[r["pearson_spread"] for r in sizes], fmt="o-", capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("points per cloud")
        ax.set_ylabel("test Pearson vs exact W1")
        ax.set_title("sample size (bars: min-max over seeds)")
    fig.tight_layout()
    path = out.with_name(out.name + ".geometry.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    names.append(path.name)
    return names


# --------------------------------------------------------------------------- report


def report(result: dict) -> list[str]:
    s = result["settings"]
    lines = [
        f"Paper network (phi 50-100-36, sum pooling, rho 30-30-10, 2-D output, ELU), trained "
        f"with `wormhole.fit` for {s['steps']} steps (batch {s['batch_size']}, learning rate "
        f"{s['learning_rate']}, translation and scaling regularisers 0.1) on "
        f"{s['clouds_per_family']} samples x 7 families of {s['points']} points; test: "
        f"{s['clouds_per_family'] // 2} new samples per family (new parameter values). "
        f"Targets: {s['target']}. Exact distances by sorting. W2 models match the mean squared "
        f"embedding difference to W2^2, so their Euclidean distance is proportional to W2; "
        f"W2 rows compare Euclidean distance with W2.", "",
        "## The claims", ""]
    rows = []
    for p in ("W1", "W2"):
        k = result["kinds"][p]
        rows.append([p, f"{k['fidelity']['train']['pearson']:.3f}",
                     f"{k['fidelity']['test']['pearson']:.3f}",
                     f"{k['unseen']['dirac']['within_pearson']:.3f} / "
                     f"{k['unseen']['dirac']['vs_test_pearson']:.3f}",
                     f"{k['unseen']['binomial']['within_pearson']:.3f} / "
                     f"{k['unseen']['binomial']['vs_test_pearson']:.3f}",
                     f"{k['coordinates']['best_abs_r']['mean']:.3f}",
                     f"{k['coordinates']['best_abs_r']['std']:.3f}",
                     format_seconds(k["train_s"])])
    lines += markdown_table(["kind", "Pearson train pairs", "Pearson test pairs",
                             "Dirac: within / vs test", "binomial: within / vs test",
                             "best abs r coord vs mean", "best abs r coord vs std",
                             "training"], rows)
    lines += ["", "Paper: high correlation on training families and unseen parameters, W2 "
              "slightly weaker than W1; generalisation to Diracs and binomials; coordinates "
              "that track mean and standard deviation.", "", "### Translation", ""]
    rows = []
    for p in ("W1", "W2"):
        for r in result["kinds"][p]["translation"]["rows"]:
            rows.append([p, r["shift"], f"{r['median_defect']:.3f}",
                         f"{r['median_distance_change']:.3f}"])
    lines += markdown_table(["kind", "shift t", "median parallelogram defect",
                             "median relative change of |H(X+t)-H(Y+t)|"], rows)
    if "circle" in result:
        c = result["circle"]
        lines += ["", f"2-D model (2-D normals, W2 by Sinkhorn at epsilon {s['epsilon']}, "
                  f"held-out Pearson {c['pearson']:.3f} against exact W2 by POT): a normal "
                  f"moved around a circle of radius {c['radius']} winds "
                  f"**{c['winding_number']:.2f}** times around its unmoved embedding (paper: a "
                  f"closed loop around it); the loop's radius varies by "
                  f"{100 * c['radius_cv']:.0f}% (coefficient of variation; every move has the "
                  f"same W2)."]
    lines += ["", "### Scaling law", ""]
    header = ["kind"] + [f"a = {r['a']:g}" for r in result["kinds"]["W1"]["scaling"]["rows"]]
    rows = [[p] + [f"{r['median_ratio']:.3f}" for r in result["kinds"][p]["scaling"]["rows"]]
            for p in ("W1", "W2")]
    lines += markdown_table(header, rows)
    lines += ["", "Median of |H(aX) - H(aY)| / (|a| |H(X) - H(Y)|) over test pairs (1 = the "
              "law holds); training saw a in [0.5, 1.5].", "", "### Continuity", ""]
    header = ["kind"] + [f"n = {r['n']}" for r in result["kinds"]["W1"]["continuity"]["rows"]]
    rows = []
    for p in ("W1", "W2"):
        cont = result["kinds"][p]["continuity"]["rows"]
        rows.append([f"{p} embedding"] + [f"{r['embedding_relative']:.3f}" for r in cont])
        rows.append([f"{p} exact"] + [f"{r['exact_relative']:.3f}" for r in cont])
    lines += markdown_table(header, rows)
    lines += ["", "Distance of N(0, 1/n) to delta_0 relative to n = 1.", "", "### Barycenters",
              ""]
    rows = []
    for p in ("W1", "W2"):
        for r in result["kinds"][p]["barycenters"]["rows"]:
            rows.append([p, r["pair"], f"{r['midpoint_to_exact']:.3f}",
                         f"{r['midpoint_to_ott']:.3f}", f"{r['ott_vs_exact_w2']:.4f}"])
    lines += markdown_table(["kind", "pair", "|midpoint - H(exact barycenter)| / side",
                             "same for ott-jax's barycenter",
                             "W2(ott-jax barycenter, exact)"], rows)
    lines += ["", "Side: |H(X) - H(Y)|. The exact 1-D W2 barycenter averages the quantile "
              "functions."]
    if result.get("sample_size"):
        lines += ["", "### Sample size", ""]
        rows = [[r["points"], f"{r['pearson_mean']:.3f}", f"{r['pearson_spread']:.3f}",
                 ", ".join(f"{v:.3f}" for v in r["pearsons"])]
                for r in result["sample_size"]["rows"]]
        lines += markdown_table(["points per cloud", "test Pearson (mean over seeds)",
                                 "max - min", "each seed"], rows)
        lines += ["", "W1 models; the paper: 500 points good, below 100 unstable."]
    lines += ["", *[f"![{name}]({name})" for name in result.get("figures", [])]]
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clouds-per-family", type=int, default=100)
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--solver", choices=("sorting", "sinkhorn"), default="sorting")
    parser.add_argument("--epsilon", type=float, default=0.1,
                        help="Sinkhorn epsilon (the paper's lambda = 10 is epsilon 0.1); used "
                             "by the 2-D model and by --solver sinkhorn")
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--circle-clouds", type=int, default=300)
    parser.add_argument("--circle-points", type=int, default=200)
    parser.add_argument("--circle-steps", type=int, default=600)
    parser.add_argument("--sample-sizes", type=int, nargs="*", default=[20, 50, 500])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="a tiny run for the smoke test (nothing written unless --output)")
    parser.add_argument("--output", default=None)
    parser.add_argument("--keep-runs", default=None,
                        help="train the runs in this directory and keep them (default: a "
                             "temporary one)")
    args = parser.parse_args(argv)
    if args.quick:
        args.clouds_per_family, args.points, args.steps, args.pairs = 8, 60, 30, 40
        args.circle_clouds, args.circle_points, args.circle_steps = 24, 30, 10
        args.sample_sizes, args.seeds, args.batch_size = [20, 60], 1, 16
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick and args.output is None:
        print("--quick writes nothing without --output", file=sys.stderr)
    run = Run.start(__file__, argv)
    from wormhole.data.loaders.synthetic import FAMILIES_1D

    rng = np.random.default_rng(0)
    train = one_d_clouds(args.clouds_per_family, args.points, seed=0)
    test = one_d_clouds(args.clouds_per_family // 2, args.points, seed=1)
    kinds = {}
    with scratch_dir("deepsets_paper_", args.keep_runs) as scratch:
        total = 2 + 1 + max(len(args.sample_sizes) * args.seeds - 1, 0)
        bar = tqdm(total=total, desc="deepsets models", dynamic_ncols=True)
        import time

        for p in (1, 2):
            start = time.perf_counter()
            model = train_model(p, train, test, args, scratch / f"W{p}")
            train_s = time.perf_counter() - start
            bar.update(1)
            kinds[f"W{p}"] = {
                "train_s": train_s,
                "fidelity": fidelity(model, train, test, p, args.pairs, rng),
                "unseen": unseen_measures(model, test, p, args.points, rng),
                "translation": translation_1d(model, test, (-0.5, 0.25, 0.5), args.pairs, rng),
                "scaling": scaling(model, test, (0.25, 0.5, 0.75, 1.5, 2.0, 3.0), args.pairs, rng),
                "coordinates": coordinates(model, test),
                "continuity": continuity(model, p, args.points, (1, 3, 10, 30, 100, 1000), rng),
                # As many barycenter points as the clouds have: sum pooling sees the set size.
                "barycenters": barycenters(model, args.points, rng, args.points),
                "test_embeddings": model.encode(_as_list(test)).tolist(),
                "test_labels": np.asarray(test.labels).tolist(),
            }
            if p == 1:
                main_w1 = kinds["W1"]["fidelity"]["test"]["pearson"]
        result = {"settings": {**{k: getattr(args, k) for k in (
            "clouds_per_family", "points", "steps", "batch_size", "learning_rate", "solver",
            "epsilon", "pairs", "circle_clouds", "circle_points", "circle_steps",
            "sample_sizes", "seeds", "quick")},
            "target": ("exact W1 / W2 by sorting" if args.solver == "sorting" else
                       f"Sinkhorn (entropic W1 / W2 at epsilon {args.epsilon}, raw units)")},
            "families": list(FAMILIES_1D), "kinds": kinds}

        # The 2-D model: 2-D normals, W2 by Sinkhorn (no sorting in 2-D).
        from wormhole.data.loaders.synthetic import load_synthetic
        from wormhole.evaluate.ground_truth import ground_truth_distances

        normals = load_synthetic(seed=2, family="gaussians", dim=2, num_clouds=args.circle_clouds,
                                 points=args.circle_points, scale=(0.1, 0.5))
        held = load_synthetic(seed=3, family="gaussians", dim=2,
                              num_clouds=max(args.circle_clouds // 5, 4),
                              points=args.circle_points, scale=(0.1, 0.5))
        circle_args = argparse.Namespace(**{**vars(args), "steps": args.circle_steps})
        model2 = train_model(2, normals, held, circle_args, scratch / "W2_2d", dim=2)
        bar.update(1)
        held_list = _as_list(held)
        i, j = _pairs(len(held_list), min(args.pairs, 200), rng)
        emb = model2.encode(held_list)
        exact = ground_truth_distances([held_list[a] for a in i], None, [held_list[b] for b in j],
                                       None, kind="W2", progress=False)
        result["circle"] = {**circle_2d(model2, 0.5, args.circle_points, 36, rng),
                            "pearson": _pearson(_norm(emb[i], emb[j]), np.sqrt(exact))}

        # Sample size: W1 models on fewer points per cloud, several seeds.
        rows = []
        for points in args.sample_sizes:
            pearsons = []
            for seed in range(args.seeds):
                if points == args.points and seed == 0:
                    pearsons.append(main_w1)
                    continue
                tr = one_d_clouds(args.clouds_per_family, points, seed=0)
                te = one_d_clouds(args.clouds_per_family // 2, points, seed=1)
                model = train_model(1, tr, te, args, scratch / f"W1_{points}_{seed}", seed=seed)
                pearsons.append(fidelity(model, tr, te, 1, args.pairs, rng)["test"]["pearson"])
                bar.update(1)
            rows.append({"points": points, "pearsons": pearsons,
                         "pearson_mean": float(np.mean(pearsons)),
                         "pearson_spread": float(np.max(pearsons) - np.min(pearsons))})
        result["sample_size"] = {"rows": rows}
        bar.close()

        out = Path(args.output) if args.output else RESULTS
        if args.quick and args.output is None:
            print(report({**run.finish(), **result})[0])
            return 0
        out.parent.mkdir(parents=True, exist_ok=True)
        result["figures"] = plot(result, out)
        result = {**run.finish(), **result}
        print(write_result(out, result, "Siamese DeepSets Wasserstein embeddings, claim by claim",
                           report(result)))
        return 0


if __name__ == "__main__":
    sys.exit(main())
