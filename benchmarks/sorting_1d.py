"""Exact 1-D OT by sorting against entropic Sinkhorn, for all in-batch pairs of 1-D clouds.

    python benchmarks/sorting_1d.py            # B = 32, n in {100, 1000}, 3 repeats

For 1-D clouds ``ot.solver: sorting`` computes exact W1 (or W2) from the clouds' quantile
functions (ott-jax's univariate solver): ``O(n log n)`` per pair and no iterations. Before it,
the ``deepsets_1d`` config approximated W1 by entropic Sinkhorn at epsilon 0.001 (at most 500
iterations). Both run through ``pairwise_distances`` on the same batches of the synthetic 1-D
families (the Siamese DeepSets experiments' data), jitted, timed side by side by
the harness's ``interleaved``; errors are relative to exact W1 from SciPy's
``wasserstein_distance`` (an independent implementation), on every pair.

Results go to ``benchmarks/results/sorting_1d.{md,json}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import jax  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks._harness import (  # noqa: E402
    RESULTS,
    Run,
    interleaved,
    markdown_table,
    relative_error,
    write_result,
)
from wormhole.config import DataConfig  # noqa: E402
from wormhole.data import load_dataset  # noqa: E402
from wormhole.ot import OTSpec, estimate_cost_scale, pairwise_distances  # noqa: E402


def one_d_clouds(count: int, points: int, seed: int):
    data = DataConfig(name="synthetic", seed=seed, test_fraction=0.0, normalize="none",
                      options={"family": "1d", "num_clouds": count, "points": points,
                               "dim": 1})
    clouds = load_dataset(data).train
    return np.asarray(clouds.points), np.asarray(clouds.weights)


def exact_w1(points, weights) -> np.ndarray:
    """W1 of every pair ``i < j`` by SciPy, in the data's units."""
    first, second = np.triu_indices(len(points), 1)
    return np.array([stats.wasserstein_distance(points[i, :, 0], points[j, :, 0],
                                                weights[i], weights[j])
                     for i, j in zip(first, second, strict=True)])


def measure(size: int, n: int, repeats: int, seed: int, bar) -> dict:
    points, weights = one_d_clouds(size, n, seed)
    scale = estimate_cost_scale(points, weights, "W1")
    specs = {"sorting": OTSpec(kind="W1", solver="sorting", cost_scale=scale),
             "sinkhorn eps 0.001": OTSpec(kind="W1", epsilon=1e-3, max_iterations=500,
                                          cost_scale=scale)}
    calls = {}
    for name, spec in specs.items():
        fn = jax.jit(lambda p, w, spec=spec: tuple(
            pairwise_distances(p, w, spec, validate=False)[:2]))
        calls[name] = (fn, [(points, weights)])
    bar.set_description(f"B={size} n={n}")
    timings, outputs = interleaved(calls, repeats, bar)
    truth = exact_w1(points, weights) / scale
    pairs = size * (size - 1) // 2
    row = {"B": size, "n": n, "pairs": pairs, "cost_scale": scale}
    for name in specs:
        values, hit = outputs[name][0]
        row[name] = {"pairs_per_s": pairs / timings[name]["median_s"],
                     "error": relative_error(values, truth),
                     "hit_cap": float(np.mean(hit)), "timing": timings[name]}
    row["ratio"] = row["sorting"]["pairs_per_s"] / row["sinkhorn eps 0.001"]["pairs_per_s"]
    return row


TITLE = "Exact 1-D OT by sorting against entropic Sinkhorn"


def report(result: dict) -> list[str]:
    rows = []
    for r in result["rows"]:
        s, k = r["sorting"], r["sinkhorn eps 0.001"]
        rows.append([r["B"], r["n"], r["pairs"], f"{s['pairs_per_s']:.0f}",
                     f"{s['error']['max']:.1e} / {s['error']['median']:.1e}",
                     f"{k['pairs_per_s']:.3g}",
                     f"{k['error']['max']:.1e} / {k['error']['median']:.1e}",
                     f"{k['hit_cap']:.2f}", f"{r['ratio']:.0f}x"])
    return ["All in-batch pairs of 1-D clouds from the synthetic 1-D families, W1 on a fixed "
            "cost scale. Pairs/s from the median of interleaved runs after compilation; "
            "errors: max / median of |value - exact| / exact over every pair, exact W1 from "
            "SciPy's `wasserstein_distance`.", "",
            *markdown_table(["B", "n", "pairs", "sorting pairs/s", "sorting error max / median",
                             "Sinkhorn (eps 0.001, <= 500 it.) pairs/s",
                             "Sinkhorn error max / median", "Sinkhorn hit cap", "ratio"], rows)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32], help="batch sizes B")
    parser.add_argument("--points", type=int, nargs="+", default=[100, 1000],
                        help="points per cloud n")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "sorting_1d")
    args = parser.parse_args(argv)
    run = Run.start(__file__, argv)
    rows = []
    cells = [(size, n) for n in args.points for size in args.sizes]
    with tqdm(total=len(cells) * 2 * (args.repeats + 1), unit="call") as bar:
        for size, n in cells:
            rows.append(measure(size, n, args.repeats, args.seed, bar))
    result = {**run.finish(), "rows": rows}
    print(write_result(args.out, result, TITLE, report(result)))


if __name__ == "__main__":
    main()
