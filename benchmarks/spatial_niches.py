"""Spatial niches of a synthetic tissue: building, training, agreement with exact OT, memory.

    python benchmarks/spatial_niches.py --published-python /tmp/wwvenv/bin/python
    python benchmarks/spatial_niches.py --cells 10000 --skip-published --steps 50  # smoke

For each size the tissue of ``wormhole.data.loaders.tissue`` (250 features, several slides,
regions of known niche compositions) is built and its niches taken as the AnnData loader
takes them: each cell's ``k`` = 11 nearest other cells of its own slide (``include_self:
false``, the published ``SpatialWormhole``'s niche, so both sides train on the same
clouds). Measured, each size in a fresh process so that peak memory is its own:

- niche building: the loader's time from an AnnData in memory (k-NN per slide and the
  gathered clouds), and the published package's object construction (its niche indices,
  cost scale and iteration count);
- steps/s: our trainer (``train_and_evaluate``, the training clock of its metrics after the
  first logging window, which holds the compilation) and the published ``train`` (a
  second call after a 3-step one that compiles);
- held-out Pearson between embedding distances and exact W2 (POT's network simplex on the
  raw features) over random pairs of held-out niches;
- niche-type 1-NN accuracy: held-out niches (by their centre cell's region type) against a
  sample of training niches in embedding space;
- peak resident memory of the process (``ru_maxrss``) after building and after training,
  beside the size of a dense ``[cells, k, features]`` float32 array.

The published package trains on every niche (its ``train`` samples from all cells), so its
"held-out" niches were seen in training; ours never saw them. It pins its own jax and flax
and runs in its own virtual environment (``--published-python``, default
``$WORMHOLE_PUBLISHED_PYTHON``) through ``benchmarks/_published_spatial_worker.py``.

Writes benchmarks/results/spatial_niches.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import numpy as np  # noqa: E402

from benchmarks._harness import (  # noqa: E402
    RESULTS,
    Run,
    format_seconds,
    markdown_table,
    write_result,
)
from benchmarks._published import interpreter_problem  # noqa: E402
from wormhole.config import config_from_dict  # noqa: E402
from wormhole.data import prepare_dataset, select_splits  # noqa: E402
from wormhole.data.loaders.anndata import anndata_clouds  # noqa: E402
from wormhole.data.loaders.tissue import synthetic_tissue  # noqa: E402
from wormhole.evaluate import (  # noqa: E402
    distinct_random_pairs,
    ground_truth_distances,
    nearest_neighbor_accuracy,
)
from wormhole.inference import from_meta  # noqa: E402
from wormhole.trainer import train_and_evaluate  # noqa: E402

WORKER = Path(__file__).resolve().parent / "_published_spatial_worker.py"
K, FEATURES = 11, 250


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _tissue(cells: int, seed: int):
    return synthetic_tissue(num_cells=cells, num_samples=4, num_features=FEATURES,
                            num_cell_types=12, num_niche_types=6, regions_per_sample=16,
                            noise=0.5, seed=seed)


def _config(args, workdir: Path):
    return config_from_dict({
        "name": "spatial_niches",
        "data": {"name": "anndata", "path": "in-memory", "test_fraction": 0.1,
                 "seed": args.seed},
        "model": {"emb_dim": args.emb_dim, "width": args.emb_dim, "num_layers": 2,
                  "num_heads": 4, "mlp_dim": 4 * args.emb_dim},
        "ot": {"kind": "S2", "epsilon": args.epsilon, "max_iterations": args.iterations},
        "loss": {"reconstruction": 0.0},
        "train": {"steps": args.steps, "batch_size": args.batch_size,
                  "learning_rate": args.learning_rate, "warmup_steps": 50,
                  "log_every": 50, "eval_every": args.steps, "seed": args.seed,
                  "workdir": str(workdir)},
        "checkpoint": {"enabled": False},
        "eval": {"num_pairs": 200}})


def _scores(emb_test, emb_ref, test, ref_labels, first, second, exact, distance) -> dict:
    predicted = distance(emb_test[first], emb_test[second])
    queries = slice(0, min(len(test), 5000))
    return {"pearson": float(np.corrcoef(predicted, exact)[0, 1]),
            "knn_accuracy": nearest_neighbor_accuracy(emb_test[queries], test.labels[queries],
                                                      emb_ref, ref_labels)}


def _mse(a, b):
    return np.mean((np.asarray(a) - np.asarray(b)) ** 2, axis=1)


def measure(args) -> dict:
    """One size, in this process: ours, then (optionally) the published package."""
    cells = args.one
    start = time.perf_counter()
    adata = _tissue(cells, args.seed)
    out = {"cells": cells, "generate_s": time.perf_counter() - start,
           "dense_niches_gib": cells * K * FEATURES * 4 / 2**30,
           "peak_after_tissue_gib": _peak_gib()}
    start = time.perf_counter()
    clouds = anndata_clouds(adata, sample_key="sample", label_key="niche_type", k=K,
                            include_self=False)
    out["build_s"] = time.perf_counter() - start
    out["gathered_gib"] = (clouds.points.table.nbytes + clouds.points.index.nbytes
                           + clouds.weights.nbytes) / 2**30
    out["peak_after_build_gib"] = _peak_gib()
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(args, Path(tmp) / "run")
        start = time.perf_counter()
        dataset = prepare_dataset(clouds, config.data)
        out["prepare_s"] = time.perf_counter() - start
        start = time.perf_counter()
        result = train_and_evaluate(config, dataset, progress=False)
        out["train_wall_s"] = time.perf_counter() - start
    out["peak_after_train_gib"] = _peak_gib()
    windows = [r for r in result.history if "steps_per_s" in r][1:]
    out["steps_per_s"] = (50 * len(windows) / sum(50 / r["steps_per_s"] for r in windows)
                          if windows else float("nan"))
    model = from_meta(result.meta, result.state.params)

    # Held-out niches and a sample of training niches, in the tissue's own units.
    train, test = select_splits(clouds, config.data)
    rng = np.random.default_rng(args.seed)
    ref = np.sort(rng.choice(len(train), min(len(train), 20_000), replace=False))
    first, second = distinct_random_pairs(rng, len(test), args.pairs)
    start = time.perf_counter()
    emb_test = model.encode(test)
    emb_ref = model.encode(train.subset(ref))
    out["encode_per_s"] = (len(test) + len(ref)) / (time.perf_counter() - start)
    start = time.perf_counter()
    exact = ground_truth_distances(test.subset(first), None, test.subset(second), None,
                                   kind="W2", method="exact", progress=False)
    out["exact_s"] = time.perf_counter() - start
    out["ours"] = _scores(emb_test, emb_ref, test, train.labels[ref], first, second, exact,
                          model.embedding_distances)
    out["test_niches"], out["pairs"] = len(test), args.pairs
    print(json.dumps(out), file=sys.stderr)

    out["published"], out["published_reason"] = None, "skipped (--skip-published)"
    if not args.skip_published:
        problem = interpreter_problem(args.published_python)
        if problem:
            out["published_reason"] = problem
        else:
            cells_test, cells_ref = test.metadata["cell"], train.metadata["cell"][ref]
            theirs, reason = _published(args, adata, np.concatenate([cells_test, cells_ref]))
            out["published_reason"] = reason
            if theirs is not None:
                emb = theirs.pop("embeddings")
                theirs.update(_scores(emb[:len(test)], emb[len(test):], test,
                                      train.labels[ref], first, second, exact, _mse))
                out["published"] = theirs
    return out


def _published(args, adata, cells: np.ndarray) -> tuple[dict | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        data, settings = Path(tmp) / "tissue.h5ad", Path(tmp) / "settings.json"
        adata.write_h5ad(data)
        settings.write_text(json.dumps({
            "k": K, "steps": args.published_steps, "batch_size": args.batch_size,
            "learning_rate": args.learning_rate, "emb_dim": args.emb_dim, "num_heads": 4,
            "num_layers": 2, "mlp_dim": 4 * args.emb_dim, "eps": args.epsilon,
            "num_sinkhorn_iter": args.iterations, "sample_key": "sample", "seed": args.seed,
            "encode_cells": cells.tolist(), "out": str(Path(tmp) / "emb.npy")}))
        try:
            proc = subprocess.run([args.published_python, str(WORKER), str(data),
                                   str(settings)], stdout=subprocess.PIPE, text=True,
                                  timeout=args.published_timeout)
        except subprocess.TimeoutExpired:
            return None, f"the published worker ran past {args.published_timeout:g} s"
        if proc.returncode:
            return None, f"the published worker failed (exit {proc.returncode})"
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["embeddings"] = np.load(Path(tmp) / "emb.npy")
    return result, ""


def _row(size: dict, side: str) -> list:
    if side == "ours":
        s = size["ours"]
        return [f"{size['cells']:,}", "wormhole (ours)", f"{size['build_s']:.2f} s",
                f"{size['steps_per_s']:.2f}", f"{s['pearson']:.3f}", f"{s['knn_accuracy']:.3f}",
                f"{size['peak_after_build_gib']:.2f} / {size['peak_after_train_gib']:.2f} GiB"]
    p = size["published"]
    if p is None:
        return [f"{size['cells']:,}", "SpatialWormhole (published)",
                f"not run: {size['published_reason']}", "", "", "", ""]
    return [f"{size['cells']:,}", f"SpatialWormhole {p['version']} (published)",
            f"{p['build_s']:.2f} s", f"{p['steps_per_s']:.2f}", f"{p['pearson']:.3f}",
            f"{p['knn_accuracy']:.3f}", f"load {p['peak_rss_after_load_gib']:.2f} / "
            f"end {p['peak_rss_gib']:.2f} GiB"]


def report(result: dict) -> list[str]:
    s = result["settings"]
    rows = [row for size in result["sizes"] for row in
            (_row(size, "ours"), _row(size, "published"))]
    lines = [
        f"Synthetic tissue (`wormhole.data.loaders.tissue.synthetic_tissue`: 4 slides, 12 cell "
        f"types, 6 niche types over 16 Voronoi regions per slide, {FEATURES} features, noise "
        f"0.5); niches of k = {K} nearest other cells within each slide. Both trainers: S2, "
        f"epsilon {s['epsilon']}, at most {s['iterations']} Sinkhorn iterations, batch "
        f"{s['batch_size']}, learning rate {s['learning_rate']}, embedding {s['emb_dim']}, "
        f"2 layers, 4 heads, no decoder; ours {s['steps']} steps, published "
        f"{s['published_steps']} steps. Held-out: a random 10% of the niches (ours never "
        f"trained on them; the published package trains on all niches). Pearson against "
        f"exact W2 over {s['pairs']} random pairs of held-out niches; 1-NN accuracy of up "
        f"to 5,000 held-out niches against 20,000 training niches, by the centre cell's "
        f"niche type (6 types).",
        "",
        *markdown_table(["cells", "trainer", "niche building", "steps/s",
                         "held-out Pearson vs exact W2", "niche-type 1-NN accuracy",
                         "peak memory (after building / after training)"], rows),
        "",
        "Memory: a dense `[cells, k, features]` float32 array of the niches would take "
        + ", ".join(f"{z['dense_niches_gib']:.2f} GiB at {z['cells']:,} cells"
                    for z in result["sizes"])
        + "; the gathered niches (feature table, index, weights) take "
        + ", ".join(f"{z['gathered_gib']:.3f} GiB" for z in result["sizes"])
        + ". Peak resident memory is of the whole process, the synthetic AnnData included "
        "(after generating the tissue: "
        + ", ".join(f"{z['peak_after_tissue_gib']:.2f} GiB" for z in result["sizes"]) + ").",
        "",
        "Other times (ours): " + "; ".join(
            f"{z['cells']:,} cells: tissue generated in {format_seconds(z['generate_s'])}, "
            f"normalisation and split {format_seconds(z['prepare_s'])}, training wall time "
            f"{format_seconds(z['train_wall_s'])} (with compilation and held-out "
            f"evaluation), encoding {z['encode_per_s']:,.0f} niches/s, exact W2 of "
            f"{z['pairs']} pairs {format_seconds(z['exact_s'])}"
            for z in result["sizes"]) + ".",
    ]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, nargs="+", default=[10_000, 250_000])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--published-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--emb-dim", type=int, default=64)
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--published-python",
                        default=os.environ.get("WORMHOLE_PUBLISHED_PYTHON", ""))
    parser.add_argument("--skip-published", action="store_true")
    parser.add_argument("--published-timeout", type=float, default=1800)
    parser.add_argument("--out", default=str(RESULTS / "spatial_niches"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one size, JSON to stdout
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args)))
        return 0
    run = Run.start(__file__, argv)
    sizes = []
    forwarded = [a for a in (sys.argv[1:] if argv is None else argv)]
    for cells in args.cells:
        print(f"== {cells:,} cells ==", file=sys.stderr)
        proc = subprocess.run([sys.executable, __file__, *forwarded, "--one", str(cells)],
                              stdout=subprocess.PIPE, text=True, check=True)
        sizes.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    settings = {k: getattr(args, k) for k in ("steps", "published_steps", "batch_size",
                                              "learning_rate", "emb_dim", "epsilon",
                                              "iterations", "pairs", "seed")}
    result = {**run.finish(), "settings": settings, "sizes": sizes}
    print(write_result(Path(args.out), result, "Spatial niches: AnnData niches at scale",
                       report(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
