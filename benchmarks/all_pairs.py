"""All-pairs OT distance matrix of N clouds: through embeddings vs pairwise Sinkhorn.

    python benchmarks/all_pairs.py --checkpoint runs/digits --num-clouds 1000
    python benchmarks/all_pairs.py --checkpoint runs/mnist --split all --num-clouds 10000

The embedding path is timed in full: encode N clouds, then the N x N matrix of embedding
distances. Pairwise Sinkhorn for all N (N - 1) / 2 pairs is far too slow to run, so it is
timed on all pairs of a random subset of B clouds (the run's training settings, i.e. the
targets the model learned; self terms of debiased kinds once per cloud, as an all-pairs
job would; compiled before timing) and extrapolated linearly in the number of pairs; the
report says so. Exact OT (POT's network simplex, for W/S kinds with squared Euclidean
or Euclidean cost) is timed on fewer pairs the same way. Agreement of the two matrices is
measured on the timed pairs. Writes benchmarks/results/all_pairs.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import jax
import numpy as np

from wormhole.config import ConfigError
from wormhole.evaluate import agreement, ground_truth_distances
from wormhole.evaluate.splits import SPLITS, input_clouds
from wormhole.inference import load
from wormhole.ot import OTSpec, pairwise_distances

RESULTS = Path(__file__).resolve().parent / "results"
_EXACT_OF = {"S1": "W1", "S2": "W2", "W1": "W1", "W2": "W2"}


def time_sinkhorn(model, clouds) -> tuple[np.ndarray, float, float]:
    """The run's training OT between all pairs of ``clouds`` as training computes them.

    One :func:`~wormhole.ot.pairwise_distances` call: the ``B (B - 1) / 2`` cross terms and,
    for debiased kinds, the self terms once per cloud, as an all-pairs job would. Returns
    the values (``np.triu_indices`` order), seconds of a second call, and compile seconds.
    """
    spec = OTSpec.from_config(model.config.ot, cost_scale=model.cost_scale)
    solve = jax.jit(lambda x, a: pairwise_distances(x, a, spec).values)
    data = model.prepare(clouds)
    start = time.perf_counter()
    jax.block_until_ready(solve(data.points, data.weights))  # compile (and a first run)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    values = np.asarray(jax.block_until_ready(solve(data.points, data.weights)))
    return values, time.perf_counter() - start, compile_s


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
    parser.add_argument("--exact-pairs", type=int, default=200,
                        help="pairs timed with exact OT (0 skips)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(RESULTS / "all_pairs.md"))
    parser.add_argument("--note", default="",
                        help="text for the report, e.g. how the run was trained")
    args = parser.parse_args(argv)
    try:
        model = load(args.checkpoint)
        clouds = input_clouds(model.config, args.input, args.split or "all")
        if args.num_clouds > len(clouds):
            raise ValueError(f"--num-clouds {args.num_clouds} but only {len(clouds)} clouds "
                             f"are available; use --split all or a larger data set.")
        if args.num_clouds < 2 or args.sinkhorn_clouds < 2:
            raise ValueError("--num-clouds and --sinkhorn-clouds must be at least 2.")
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(args.seed)
    n = args.num_clouds
    clouds = clouds.subset(np.sort(rng.choice(len(clouds), n, replace=False)))
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

    # Sinkhorn on all pairs of a random subset of clouds, extrapolated per pair.
    subset = np.sort(rng.choice(n, min(args.sinkhorn_clouds, n), replace=False))
    values, sinkhorn_s, compile_s = time_sinkhorn(model, clouds.subset(subset))
    rows, cols = np.triu_indices(len(subset), 1)
    first, second = subset[rows], subset[cols]
    pairs = len(first)
    per_pair = sinkhorn_s / pairs
    predicted = matrix[first, second]
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(
            argv if argv is not None else sys.argv[1:])]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "jax_backend": jax.default_backend(),
                    "devices": [str(d) for d in jax.devices()],
                    "load_average": [load_before, os.getloadavg()[0]]},
        "run": {"path": str(model.workdir), "step": model.step, "kind": model.kind,
                "epsilon": model.config.ot.epsilon, "emb_dim": model.config.model.emb_dim,
                "encoder": model.config.model.encoder},
        "note": args.note, "num_clouds": n, "total_pairs": total_pairs,
        "mean_points": float(clouds.sizes.mean()),
        "embedding": {"encode_s": encode_s, "matrix_s": matrix_s,
                      "total_s": encode_s + matrix_s},
        "sinkhorn": {"timed_clouds": len(subset), "timed_pairs": pairs,
                     "timed_s": sinkhorn_s, "compile_s": compile_s,
                     "per_pair_s": per_pair, "extrapolated_total_s": per_pair * total_pairs,
                     "threshold": model.config.ot.threshold,
                     "max_iterations": model.config.ot.max_iterations},
        "agreement_vs_sinkhorn": agreement(predicted, values).as_dict(),
    }
    result["speedup_vs_sinkhorn"] = result["sinkhorn"]["extrapolated_total_s"] / \
        result["embedding"]["total_s"]
    exact_kind = _EXACT_OF.get(model.kind)
    if args.exact_pairs and exact_kind and model.config.ot.cost is None:
        count = min(args.exact_pairs, pairs)
        data = model.prepare(clouds)

        def solve(index):
            return ground_truth_distances(data.subset(first[index]), None,
                                          data.subset(second[index]), None, kind=exact_kind,
                                          method="exact", cost_scale=model.cost_scale,
                                          progress=False)

        solve(np.arange(1))  # imports and first-call set-up
        start = time.perf_counter()
        exact = solve(np.arange(count))
        exact_s = (time.perf_counter() - start) / count
        result["exact"] = {"kind": exact_kind, "timed_pairs": count, "per_pair_s": exact_s,
                           "extrapolated_total_s": exact_s * total_pairs}
        result["agreement_vs_exact"] = agreement(predicted[:count], exact).as_dict()
        result["speedup_vs_exact"] = exact_s * total_pairs / result["embedding"]["total_s"]

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    output.write_text(_markdown(result))
    print(_markdown(result))
    return 0


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.3g} s"


def _markdown(r: dict) -> str:
    emb, sk = r["embedding"], r["sinkhorn"]
    ag = r["agreement_vs_sinkhorn"]
    lines = [
        "# All-pairs distance matrix: embeddings vs pairwise OT",
        "",
        f"Command: `{r['command']}`",
        "",
        f"Machine: {r['machine']['cpus']} CPUs, JAX backend `{r['machine']['jax_backend']}` "
        f"({r['machine']['platform']}), 1-min load average "
        f"{r['machine']['load_average'][0]:.1f} at the start and "
        f"{r['machine']['load_average'][1]:.1f} at the end (other "
        f"processes share the CPUs, so times are indicative). Run: `{r['run']['path']}` "
        f"step {r['run']['step']}, "
        f"{r['run']['encoder']}, {r['run']['kind']} (epsilon {r['run']['epsilon']}), "
        f"emb_dim {r['run']['emb_dim']}.",
        "",
        *([r["note"], ""] if r.get("note") else []),
        f"N = {r['num_clouds']} clouds (mean {r['mean_points']:.0f} points), "
        f"{r['total_pairs']:,} pairs.",
        "",
        "| path | how measured | time for all pairs |",
        "|---|---|---|",
        f"| embeddings | encode {_seconds(emb['encode_s'])} + N x N matrix "
        f"{_seconds(emb['matrix_s'])}, timed in full | {_seconds(emb['total_s'])} |",
        f"| Sinkhorn ({r['run']['kind']}, training settings: threshold {sk['threshold']}, "
        f"at most {sk['max_iterations']} iterations) | all {sk['timed_pairs']} pairs of "
        f"{sk['timed_clouds']} random clouds timed "
        f"({_seconds(sk['per_pair_s'])} per pair, after "
        f"{_seconds(sk['compile_s'])} compiling), **extrapolated** | "
        f"{_seconds(sk['extrapolated_total_s'])} |",
    ]
    if "exact" in r:
        ex = r["exact"]
        lines.append(f"| exact {ex['kind']} (POT network simplex) | {ex['timed_pairs']} pairs "
                     f"timed ({_seconds(ex['per_pair_s'])} per pair), **extrapolated** | "
                     f"{_seconds(ex['extrapolated_total_s'])} |")
    lines += [
        "",
        f"Speed-up of the embedding path: **{r['speedup_vs_sinkhorn']:.0f}x** over Sinkhorn"
        + (f", **{r['speedup_vs_exact']:.0f}x** over exact OT." if "exact" in r else "."),
        "",
        "Agreement of the embedding matrix with OT on the timed pairs (target units):",
        "",
        "| against | pairs | Pearson | Spearman | mean relative error |",
        "|---|---|---|---|---|",
        f"| Sinkhorn {r['run']['kind']} | {ag['num_pairs']} | {ag['pearson']:.4f} | "
        f"{ag['spearman']:.4f} | {ag['mean_relative_error']:.3f} |",
    ]
    if "agreement_vs_exact" in r:
        ax = r["agreement_vs_exact"]
        lines.append(f"| exact {r['exact']['kind']} | {ax['num_pairs']} | {ax['pearson']:.4f} "
                     f"| {ax['spearman']:.4f} | {ax['mean_relative_error']:.3f} |")
    lines += ["", "Sinkhorn and exact totals are per-pair times on a random subset multiplied "
              "by the number of pairs (not run in full); the embedding path ran in full.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
