"""All-pairs OT distance matrix of N clouds: through embeddings vs pairwise OT.

    python benchmarks/all_pairs.py --checkpoint runs/digits --num-clouds 1000
    python benchmarks/all_pairs.py --checkpoint runs/mnist --split all --num-clouds 10000

Time. The embedding path is timed in full: encode N clouds, then the N x N matrix of
embedding distances (a second run; the first compiles). Pairwise Sinkhorn for all
N (N - 1) / 2 pairs is far too slow to run, so it is timed on all pairs of B random clouds
with the run's training settings (the targets the model learned), as an all-pairs job would
solve them (self terms of a debiased kind once per cloud; compiled before timing), and
extrapolated linearly in the number of pairs. Exact OT (POT's network simplex on the kind's
unregularised counterpart from ``wormhole.ot.kinds``, e.g. W2 for S2, with the run's ground
cost) is timed per pair on uniformly random pairs of the matrix and extrapolated the same way.

Agreement. The embedding matrix is compared with Sinkhorn (training settings) and exact OT
on uniformly random pairs of distinct clouds, drawn apart from each population: the whole
matrix, pairs of held-out clouds (the model never trained on either) and pairs of training
clouds. Which clouds are held out is known when they come from the run's own data set:
``--split all`` is its training and held-out splits together.

Writes benchmarks/results/all_pairs.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._harness import (  # noqa: E402
    RESULTS,
    Run,
    format_seconds,
    markdown_table,
    write_result,
)
from wormhole.config import ConfigError  # noqa: E402
from wormhole.data import PointClouds  # noqa: E402
from wormhole.evaluate import (  # noqa: E402
    agreement,
    distinct_random_pairs,
    ground_truth_distances,
)
from wormhole.evaluate.splits import SPLITS, input_clouds, run_split  # noqa: E402
from wormhole.inference import load  # noqa: E402
from wormhole.ot import OTSpec, get_kind, paired_distances, pairwise_distances  # noqa: E402

MATRIX, HELD_OUT, TRAINING = "whole matrix", "held-out clouds", "training clouds"


def clouds_and_membership(model, path: str | None, split: str) -> tuple[PointClouds, np.ndarray]:
    """The clouds to embed, and for each whether it was held out of training.

    Membership is ``True`` (held out), ``False`` (trained on), or unknown for a user file
    (an empty array). ``all`` is the run's training split followed by its held-out split.
    """
    if path is not None:
        return input_clouds(model.config, path), np.zeros(0, bool)
    if split != "all":
        clouds = run_split(model.config, split)
        return clouds, np.full(len(clouds), split == "test")
    train = run_split(model.config, "train")
    try:
        test = run_split(model.config, "test")
    except ValueError:  # the run has no held-out split
        return train, np.zeros(len(train), bool)
    (xs, ws), (xt, wt) = train.to_list(), test.to_list()
    labels = None
    if train.labels is not None and test.labels is not None:
        labels = np.concatenate([train.labels, test.labels])
    clouds = PointClouds.from_list(xs + xt, ws + wt, labels=labels,
                                   label_names=train.label_names)
    return clouds, np.concatenate([np.zeros(len(train), bool), np.ones(len(test), bool)])


def populations(held_out: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The clouds each agreement sample draws its pairs from."""
    groups = {MATRIX: np.arange(n)}
    if held_out.size and held_out.any() and not held_out.all():
        for name, members in ((HELD_OUT, np.flatnonzero(held_out)),
                              (TRAINING, np.flatnonzero(~held_out))):
            if len(members) >= 2:
                groups[name] = members
    return groups


def time_sinkhorn(spec: OTSpec, data: PointClouds) -> tuple[float, float]:
    """Seconds for all pairs of ``data`` as training computes them, and compile seconds.

    One :func:`~wormhole.ot.pairwise_distances` call: the ``B (B - 1) / 2`` cross terms and,
    for debiased kinds, the self terms once per cloud, as an all-pairs job would. Timed on a
    second call.
    """
    solve = jax.jit(lambda x, a: pairwise_distances(x, a, spec).values)
    start = time.perf_counter()
    jax.block_until_ready(solve(data.points, data.weights))  # compile (and a first run)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(solve(data.points, data.weights))
    return time.perf_counter() - start, compile_s


def sinkhorn_pairs(spec: OTSpec, data: PointClouds, first, second) -> tuple[np.ndarray, float]:
    """Training-setting OT of the pairs ``(first[k], second[k])``, and the hit-cap fraction."""
    solve = jax.jit(lambda x, a, y, b: tuple(paired_distances(x, a, y, b, spec)[:2]))
    values, hit = solve(data.points[first], data.weights[first], data.points[second],
                        data.weights[second])
    return np.asarray(values), float(np.mean(hit))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", help=".npz file or directory of .npy clouds")
    source.add_argument("--split", choices=SPLITS, default=None,
                        help="a split of the run's data set (default: all)")
    parser.add_argument("--num-clouds", type=int, default=1000, help="N (up to 10,000)")
    parser.add_argument("--sinkhorn-clouds", type=int, default=48,
                        help="B random clouds whose B (B - 1) / 2 pairs are timed with "
                             "Sinkhorn and extrapolated")
    parser.add_argument("--agreement-pairs", type=int, default=1000,
                        help="uniformly random pairs per population compared with Sinkhorn")
    parser.add_argument("--exact-pairs", type=int, default=500,
                        help="of those, pairs per population solved with exact OT; the "
                             "whole-matrix ones are timed (0 skips exact OT)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(RESULTS / "all_pairs.md"))
    parser.add_argument("--note", default="",
                        help="text for the report, e.g. how the run was trained")
    args = parser.parse_args(argv)
    run = Run.start(__file__, argv)
    try:
        model = load(args.checkpoint)
        clouds, held_out = clouds_and_membership(model, args.input, args.split or "all")
        if args.num_clouds > len(clouds):
            raise ValueError(f"--num-clouds {args.num_clouds} but only {len(clouds)} clouds "
                             f"are available; use --split all or a larger data set.")
        if args.num_clouds < 2 or args.sinkhorn_clouds < 2 or args.agreement_pairs < 2:
            raise ValueError("--num-clouds, --sinkhorn-clouds and --agreement-pairs must be "
                             "at least 2.")
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    rng = np.random.default_rng(args.seed)
    n = args.num_clouds
    keep = np.sort(rng.choice(len(clouds), n, replace=False))
    clouds = clouds.subset(keep)
    held_out = held_out[keep] if held_out.size else held_out
    total_pairs = n * (n - 1) // 2

    # Embedding path, in full, timed on a second run: the first compiles the encoder for each
    # padded length, as Sinkhorn's compile is left out below.
    for _ in range(2):
        start = time.perf_counter()
        embeddings = model.encode(clouds)
        encode_s = time.perf_counter() - start
        start = time.perf_counter()
        matrix = model.embedding_distance_matrix(embeddings)
        matrix_s = time.perf_counter() - start
    embedding_s = encode_s + matrix_s

    spec = OTSpec.from_config(model.config.ot, cost_scale=model.cost_scale)
    data = model.prepare(clouds)
    subset = np.sort(rng.choice(n, min(args.sinkhorn_clouds, n), replace=False))
    sinkhorn_s, compile_s = time_sinkhorn(spec, data.subset(subset))
    timed_pairs = len(subset) * (len(subset) - 1) // 2
    per_pair = sinkhorn_s / timed_pairs

    kind = get_kind(model.kind)
    exact_kind = kind.exact if args.exact_pairs else None

    def exact(first, second) -> np.ndarray:
        return ground_truth_distances(data.subset(first), None, data.subset(second), None,
                                      kind=exact_kind, method="exact", cost=model.config.ot.cost,
                                      cost_scale=model.cost_scale, progress=False)

    if exact_kind:
        exact(np.arange(1), np.arange(1, 2))  # imports and first-call set-up

    samples, exact_timing = {}, None
    for name, members in populations(held_out, n).items():
        first, second = (members[k] for k in
                         distinct_random_pairs(rng, len(members), args.agreement_pairs))
        predicted = matrix[first, second]
        values, hit = sinkhorn_pairs(spec, data, first, second)
        sample = {"clouds": len(members), "pairs": len(first),
                  "mean_points": float(clouds.sizes[np.concatenate([first, second])].mean()),
                  "sinkhorn_hit_cap": hit, "vs_sinkhorn": agreement(predicted, values).as_dict()}
        if exact_kind:
            count = min(args.exact_pairs, len(first))
            start = time.perf_counter()
            truth = exact(first[:count], second[:count])
            if name == MATRIX:
                exact_timing = {"timed_pairs": count,
                                "per_pair_s": (time.perf_counter() - start) / count,
                                "mean_points": float(clouds.sizes[np.concatenate(
                                    [first[:count], second[:count]])].mean())}
            sample["vs_exact"] = agreement(predicted[:count], truth).as_dict()
        samples[name] = sample

    result = {
        **run.finish(),
        "run": {"path": str(model.workdir), "step": model.step, "kind": model.kind,
                "epsilon": model.config.ot.epsilon, "emb_dim": model.config.model.emb_dim,
                "encoder": model.config.model.encoder},
        "note": args.note, "num_clouds": n, "total_pairs": total_pairs,
        "held_out_clouds": int(held_out.sum()) if held_out.size else None,
        "mean_points": float(clouds.sizes.mean()),
        "embedding": {"encode_s": encode_s, "matrix_s": matrix_s, "total_s": embedding_s},
        "sinkhorn": {"timed_clouds": len(subset), "timed_pairs": timed_pairs,
                     "mean_points": float(clouds.sizes[subset].mean()),
                     "timed_s": sinkhorn_s, "compile_s": compile_s, "per_pair_s": per_pair,
                     "extrapolated_total_s": per_pair * total_pairs,
                     "threshold": spec.threshold, "max_iterations": spec.max_iterations},
        "speedup_vs_sinkhorn": per_pair * total_pairs / embedding_s,
        "agreement": samples,
    }
    if exact_timing:
        exact_timing["extrapolated_total_s"] = exact_timing["per_pair_s"] * total_pairs
        result["exact"] = {"kind": exact_kind, **exact_timing}
        result["speedup_vs_exact"] = exact_timing["extrapolated_total_s"] / embedding_s
    print(write_result(Path(args.output), result,
                       "All-pairs distance matrix: embeddings vs pairwise OT", report(result)))
    return 0


def report(r: dict) -> list[str]:
    emb, sk, run = r["embedding"], r["sinkhorn"], r["run"]
    membership = ("" if r["held_out_clouds"] is None else
                  f" ({r['held_out_clouds']} held out of training, "
                  f"{r['num_clouds'] - r['held_out_clouds']} trained on)")
    lines = [
        f"Run: `{run['path']}` step {run['step']}, {run['encoder']}, {run['kind']} (epsilon "
        f"{run['epsilon']}), emb_dim {run['emb_dim']}.", "",
        *([r["note"], ""] if r.get("note") else []),
        f"N = {r['num_clouds']} clouds{membership}, mean {r['mean_points']:.0f} points; "
        f"{r['total_pairs']:,} pairs.", "",
        *markdown_table(["path", "how measured", "time for all pairs"], [
            ["embeddings", f"encode {format_seconds(emb['encode_s'])} + N x N matrix "
             f"{format_seconds(emb['matrix_s'])}, timed in full", format_seconds(emb["total_s"])],
            [f"Sinkhorn ({run['kind']}, training settings: threshold {sk['threshold']}, at "
             f"most {sk['max_iterations']} iterations)",
             f"all {sk['timed_pairs']} pairs of {sk['timed_clouds']} random clouds (mean "
             f"{sk['mean_points']:.0f} points) timed ({format_seconds(sk['per_pair_s'])} per "
             f"pair, after "
             f"{format_seconds(sk['compile_s'])} compiling), **extrapolated**",
             format_seconds(sk["extrapolated_total_s"])],
            *([[f"exact {r['exact']['kind']} (POT network simplex)",
                f"{r['exact']['timed_pairs']} uniformly random pairs (mean "
                f"{r['exact']['mean_points']:.0f} points) timed "
                f"({format_seconds(r['exact']['per_pair_s'])} per pair), **extrapolated**",
                format_seconds(r["exact"]["extrapolated_total_s"])]] if "exact" in r else []),
        ]), "",
        f"Speed-up of the embedding path: **{r['speedup_vs_sinkhorn']:.0f}x** over Sinkhorn"
        + (f", **{r['speedup_vs_exact']:.0f}x** over exact OT." if "exact" in r else "."), "",
        "Agreement of the embedding matrix with OT (target units) on uniformly random pairs "
        "of distinct clouds, drawn apart from each population:", "",
    ]
    rows = []
    for name, s in r["agreement"].items():
        against = [(f"Sinkhorn {run['kind']}", s["vs_sinkhorn"])]
        if "vs_exact" in s:
            against.append((f"exact {r['exact']['kind']}", s["vs_exact"]))
        for label, a in against:
            rows.append([f"{name} ({s['clouds']} clouds)", a["num_pairs"],
                         f"{s['mean_points']:.1f}", label, f"{a['pearson']:.4f}",
                         f"{a['spearman']:.4f}", f"{a['mean_relative_error']:.3f}"])
    lines += markdown_table(["pairs drawn from", "pairs", "mean points", "against", "Pearson",
                             "Spearman", "mean relative error"], rows)
    lines += ["", "Sinkhorn and exact totals are per-pair times on random samples multiplied by "
              "the number of pairs (not run in full); the embedding path ran in full. Held-out "
              "pairs are the model's generalisation; training pairs include clouds it was fit "
              "to. Sinkhorn solves of the agreement pairs that hit the iteration cap: "
              + ", ".join(f"{name} {s['sinkhorn_hit_cap']:.1%}"
                          for name, s in r["agreement"].items()) + "."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
