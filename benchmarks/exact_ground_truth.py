"""Exact ground truth, one pair at a time against every usable CPU at once.

    python benchmarks/exact_ground_truth.py                    # 400 pairs of 354-point clouds
    python benchmarks/exact_ground_truth.py --points 247 --pairs 1000
    python benchmarks/exact_ground_truth.py --quick            # the smoke test's

Times :func:`wormhole.evaluate.ground_truth.ground_truth_distances` (exact W2^2, POT's network
simplex) with ``workers=1`` and with its default (one thread per usable CPU), side by side:
each of ``--repeats`` rounds runs both, alternating which goes first. The clouds are image-like:
``--points`` distinct pixels of a 28 x 28 grid with random intensities as weights (354 is
Fashion-MNIST's mean at ``configs/fashion_mnist.yaml``'s threshold). Both settings must return
the same values; the script fails otherwise.

Writes benchmarks/results/exact_ground_truth.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import Run, markdown_table, write_result  # noqa: E402
from wormhole.evaluate.ground_truth import ground_truth_distances, usable_cpus  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "exact_ground_truth"


def image_like_clouds(count: int, points: int, seed: int = 0):
    """``count`` clouds of ``points`` distinct 28 x 28 grid pixels, with positive weights."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(28), np.arange(28), indexing="ij"), -1)
    grid = grid.reshape(-1, 2).astype(np.float32)
    clouds = [grid[rng.choice(len(grid), points, replace=False)] for _ in range(count)]
    return clouds, [rng.uniform(0.1, 1.0, points) for _ in range(count)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--points", type=int, default=354)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="40 pairs of 60 points, 2 rounds")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.points, args.repeats = 40, 60, 2
    run = Run.start(__file__, argv)
    xs, wx = image_like_clouds(args.pairs, args.points, seed=0)
    ys, wy = image_like_clouds(args.pairs, args.points, seed=1)
    threads = usable_cpus()
    settings = {"one pair at a time (workers=1)": 1, f"default ({threads} threads)": None}
    seconds = {name: [] for name in settings}
    values = {}
    for r in range(args.repeats):
        names = list(settings)[r % 2:] + list(settings)[:r % 2]
        for name in names:
            start = time.perf_counter()
            values[name] = ground_truth_distances(xs, wx, ys, wy, kind="W2", method="exact",
                                                  workers=settings[name], progress=False)
            seconds[name].append(time.perf_counter() - start)
    first, second = (values[name] for name in settings)
    if not np.array_equal(first, second):
        raise SystemExit("threaded and one-at-a-time exact values differ: "
                         f"max gap {np.abs(first - second).max():.3g}")
    median = {name: float(np.median(s)) for name, s in seconds.items()}
    serial, threaded = (median[name] for name in settings)
    result = {**run.finish(), "pairs": args.pairs, "points": args.points,
              "repeats": args.repeats, "threads": threads, "seconds": seconds,
              "median_s": median, "speedup": serial / threaded}
    lines = [f"{args.pairs} pairs of {args.points}-point image-like clouds, exact W2^2 (POT), "
             f"median of {args.repeats} interleaved rounds; the two settings returned "
             f"identical values.", ""]
    lines += markdown_table(["setting", "median s", "ms per pair"],
                            [[name, f"{m:.2f}", f"{1000 * m / args.pairs:.1f}"]
                             for name, m in median.items()])
    lines += ["", f"Speed-up of the default: **{serial / threaded:.2f}x** on {threads} usable "
              f"CPUs."]
    out = Path(args.output) if args.output else RESULTS
    print(write_result(out, result, "Exact ground truth: threads against one pair at a time",
                       lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
