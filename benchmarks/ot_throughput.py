"""Throughput of in-batch OT distances: ``wormhole.ot`` against three fixed-iteration solves a pair.

    python benchmarks/ot_throughput.py --mnist-dir /path/to/mnist   # full grid, < 20 min on 2 cores
    python benchmarks/ot_throughput.py --quick                      # small grid, 2 repeats

Training needs the distance between every pair of clouds of a batch. ``pairwise_distances``
solves the ``B (B - 1) / 2`` cross terms and, for a debiased kind, the ``B`` self terms once per
cloud (with symmetric updates for the linear kinds), every solve stopping on a threshold; on CPU
its default batching runs the solves one after another, each cropped to its clouds' size
bucket (``OTSpec.batching``). The straightforward approach, the published Wasserstein Wormhole
package's, solves ``OT(x, y)``, ``OT(x, x)`` and ``OT(y, y)`` independently for every pair with
a fixed iteration count, vmapped; it is written below on ott-jax directly. Both are jitted, in
lse mode, with the same epsilon and the same fixed cost scale.

Measured:
  1. S2 on synthetic 2-D Gaussian-mixture clouds of ``n`` points, batches of ``B`` clouds.
  2. GS (debiased Gromov-Wasserstein) on a smaller grid; the straightforward side runs three GW
     solves per pair with fixed outer (linearisation) and inner (Sinkhorn) iteration counts.
  3. The headline: S2 at ``B = 16`` on MNIST digit clouds (pixels above half the maximum
     intensity, ~105 points, coordinates in [0, 1]), batches drawn by the trainer's
     ``sample_batch``: ours on the trainer's padding (cropped to the batch's largest cloud rounded
     up to 32), the straightforward side on the published package's (every cloud padded to the
     data set's largest). Also ours at a tight threshold (to compare at matched accuracy), on
     the global padding, and with ``vmap`` batching (the lock-step mode used on GPUs).

Timing: every method is compiled ahead of time (compile time recorded apart); then ``--repeats``
rounds each run every method once, in a rotated order, so all methods see the same machine
load; pairs per second from the median run. Every ratio comes from one such interleaved run.

A fixed-iteration solve does the same work whatever its data, so in the two grids the
straightforward side is timed on all pairs of the first ``--baseline-clouds`` clouds (every
batch starts with the same clouds; default 16, the smallest S2 batch) and that pairs/s is used
for every batch size: an extrapolation for larger batches, which the full grid checks once
against all pairs of a batch of 32 (n = 64). In the headline it runs on whole batches.

Accuracy: relative error ``|value - reference| / |reference|`` against plain ott-jax solves run
to threshold 1e-6 (no momentum, no symmetric updates; each problem stops on its own), on the
pairs of the first ``--baseline-clouds`` clouds in the grids and on all pairs in the headline.

Results go to ``benchmarks/results/ot_throughput.{md,json}`` (``--quick``: ``ot_throughput.quick``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from ott.geometry import pointcloud  # noqa: E402
from ott.problems.quadratic import quadratic_problem  # noqa: E402
from ott.solvers import linear  # noqa: E402
from ott.solvers.linear import sinkhorn  # noqa: E402
from ott.solvers.quadratic import gromov_wasserstein  # noqa: E402
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
from wormhole.trainer import sample_batch  # noqa: E402

TARGET_RATIO = 4.0
REFERENCE_THRESHOLD = 1e-6
REFERENCE_ITERATIONS = 5000
REFERENCE_OUTER_ITERATIONS = 200


@dataclass(frozen=True)
class Grid:
    """What to measure: batch sizes and cloud sizes of each part, repeats, headline batches."""

    s2_sizes: tuple[int, ...] = (16, 32, 64)
    s2_points: tuple[int, ...] = (64, 128, 256)
    gs_sizes: tuple[int, ...] = (8, 16)
    gs_points: tuple[int, ...] = (32, 64)
    headline_size: int = 16
    headline_batches: int = 1
    repeats: int = 3
    check_scaling: bool = True


QUICK = Grid(s2_sizes=(8, 16), s2_points=(64,), gs_sizes=(4, 8), gs_points=(32,),
             headline_batches=1, repeats=2, check_scaling=False)


# --------------------------------------------------------------------------- the two approaches


def ours(spec: OTSpec) -> Callable:
    """``(points [B, n, d], weights [B, n]) -> (values [P], hit_cap [S])`` by ``wormhole.ot``."""

    @jax.jit
    def distances(points, weights):
        out = pairwise_distances(points, weights, spec, validate=False)
        return out.values, out.hit_cap

    return distances


def _fixed_linear(x, a, y, b, spec: OTSpec, iterations: int, outer: int):
    geom = pointcloud.PointCloud(x, y, epsilon=spec.epsilon, scale_cost=spec.cost_scale)
    out = linear.solve(geom, a=a, b=b, lse_mode=spec.lse_mode, min_iterations=iterations,
                       max_iterations=iterations)
    return out.reg_ot_cost


def _fixed_gw(x, a, y, b, spec: OTSpec, iterations: int, outer: int):
    problem = quadratic_problem.QuadraticProblem(
        pointcloud.PointCloud(x, x, scale_cost=spec.cost_scale),
        pointcloud.PointCloud(y, y, scale_cost=spec.cost_scale), a=a, b=b)
    inner = sinkhorn.Sinkhorn(lse_mode=spec.lse_mode, min_iterations=iterations,
                              max_iterations=iterations)
    solver = gromov_wasserstein.GromovWasserstein(inner, epsilon=spec.epsilon,
                                                  min_iterations=outer, max_iterations=outer)
    return solver(problem).reg_gw_cost


def straightforward(spec: OTSpec, iterations: int, outer: int = 0) -> Callable:
    """``(points, weights, first [P], second [P]) -> values [P]``, three solves per pair.

    ``OT(x, y) - (OT(x, x) + OT(y, y)) / 2`` with every solve independent and run for exactly
    ``iterations`` Sinkhorn iterations (GW: ``outer`` linearisations of ``iterations`` each).
    """
    solve = _fixed_gw if spec.quadratic else _fixed_linear

    def divergence(x, a, y, b):
        a, b = a / jnp.sum(a), b / jnp.sum(b)
        xy = solve(x, a, y, b, spec, iterations, outer)
        return xy - 0.5 * (solve(x, a, x, a, spec, iterations, outer)
                           + solve(y, b, y, b, spec, iterations, outer))

    @jax.jit
    def distances(points, weights, first, second):
        return jax.vmap(divergence)(points[first], weights[first], points[second],
                                    weights[second])

    return distances


def reference(points, weights, spec: OTSpec, batch_size: int = 8) -> tuple[np.ndarray, float]:
    """Tight ``[P]`` divergences of all pairs ``i < j`` and the fraction of solves converged.

    Plain ott-jax solves to threshold 1e-6: cross terms once per pair and self terms once per
    cloud, with ott's default alternating updates. ``lax.map`` over small batches lets each
    problem stop on its own threshold rather than wait for the slowest of many vmapped lanes.
    """
    a = weights / jnp.sum(weights, axis=1, keepdims=True)
    inner = dict(lse_mode=True, threshold=REFERENCE_THRESHOLD,
                 max_iterations=REFERENCE_ITERATIONS)

    def solve(args):
        x, a, y, b = args
        if not spec.quadratic:
            geom = pointcloud.PointCloud(x, y, epsilon=spec.epsilon, scale_cost=spec.cost_scale)
            out = linear.solve(geom, a=a, b=b, **inner)
            return out.reg_ot_cost, out.converged
        problem = quadratic_problem.QuadraticProblem(
            pointcloud.PointCloud(x, x, scale_cost=spec.cost_scale),
            pointcloud.PointCloud(y, y, scale_cost=spec.cost_scale), a=a, b=b)
        solver = gromov_wasserstein.GromovWasserstein(
            sinkhorn.Sinkhorn(**inner), epsilon=spec.epsilon, threshold=REFERENCE_THRESHOLD,
            max_iterations=REFERENCE_OUTER_ITERATIONS)
        out = solver(problem)
        return out.reg_gw_cost, out.converged

    first, second = np.triu_indices(points.shape[0], 1)

    @jax.jit
    def divergences(x, a):
        cross, cross_ok = jax.lax.map(solve, (x[first], a[first], x[second], a[second]),
                                      batch_size=batch_size)
        own, own_ok = jax.lax.map(solve, (x, a, x, a), batch_size=batch_size)
        converged = jnp.mean(jnp.concatenate([cross_ok, own_ok]).astype(jnp.float32))
        return cross - 0.5 * (own[first] + own[second]), converged

    values, converged = divergences(points, a)
    return np.asarray(values), float(converged)


def within(values, size: int, inner: int):
    """The values of the pairs among the first ``inner`` clouds, of a batch of ``size``."""
    first, second = np.triu_indices(size, 1)
    return np.asarray(values)[second < inner]


# --------------------------------------------------------------------------- data


def synthetic(count: int, points: int, seed: int):
    """Gaussian-mixture clouds (3 components) of ``points`` 2-D points, scaled to [0, 1]^2."""
    data = DataConfig(name="synthetic", seed=seed, test_fraction=0.0,
                      options={"family": "mixtures", "num_clouds": count, "points": points})
    clouds = load_dataset(data).train
    return jnp.asarray(clouds.points), jnp.asarray(clouds.weights)


def digit_clouds(mnist_dir: str | None, seed: int):
    """MNIST training clouds as the ``mnist`` config prepares them, or scikit-learn digits."""
    try:
        data = DataConfig(name="mnist", path=mnist_dir, seed=seed,
                          options={"threshold": 0.5, "download": False})
        return load_dataset(data).train, "MNIST (IDX files; pixels > 127 of 255, ~105 points)"
    except FileNotFoundError as err:
        print(f"MNIST is unavailable; falling back to scikit-learn digits.\n{err}",
              file=sys.stderr)
    data = DataConfig(name="digits", seed=seed, options={"threshold": 0.5})
    return (load_dataset(data).train,
            "FALLBACK, NOT MNIST: scikit-learn 8x8 digits (~20 points each)")


# --------------------------------------------------------------------------- the three parts


def _pairs(size: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    return tuple(jnp.asarray(i) for i in np.triu_indices(size, 1))


def _ours_row(prefix: str, pairs: int, timing: dict, output, size: int, inner: int,
              truth: np.ndarray, base_rate: float) -> dict:
    values, hit = output
    rate = pairs / timing["median_s"]
    return {f"{prefix}pairs_per_s": rate, f"{prefix}ratio": rate / base_rate,
            f"{prefix}hit_cap": float(np.mean(hit)),
            f"{prefix}error": relative_error(within(values, size, inner), truth),
            f"{prefix}timing": timing}


def linear_grid(grid: Grid, spec: OTSpec, args, bar) -> list[dict]:
    """S2 on synthetic clouds, every ``B x n``; ratios and errors per cell."""
    rows = []
    inner = min(args.baseline_clouds, *grid.s2_sizes)
    first, second = _pairs(inner)
    for n in grid.s2_points:
        points, weights = synthetic(max(grid.s2_sizes), n, args.seed)
        cell = spec.replace(cost_scale=estimate_cost_scale(points, weights, "S2"))
        bar.set_description(f"S2 n={n}: reference")
        truth, converged = reference(points[:inner], weights[:inner], cell)
        ours_fn = ours(cell)
        base_fn = straightforward(cell, cell.max_iterations)
        calls = {"straightforward": (base_fn, [(points, weights, first, second)])}
        for size in grid.s2_sizes:
            calls[f"ours B={size}"] = (ours_fn, [(points[:size], weights[:size])])
        check_size = min([size for size in grid.s2_sizes if size > inner], default=0)
        check = grid.check_scaling and n == min(grid.s2_points) and check_size
        if check:
            calls["straightforward, all pairs"] = (
                base_fn, [(points[:check_size], weights[:check_size], *_pairs(check_size))])
        bar.set_description(f"S2 n={n}: timing")
        timings, outputs = interleaved(calls, grid.repeats, bar)
        base = timings["straightforward"]
        base_rate = len(first) / base["median_s"]
        base_error = relative_error(outputs["straightforward"][0], truth)
        for size in grid.s2_sizes:
            pairs = size * (size - 1) // 2
            rows.append({"B": size, "n": n, "pairs": pairs, "cost_scale": cell.cost_scale,
                         "checked_clouds": inner, "checked_pairs": len(first),
                         "reference_converged": converged,
                         "straightforward_pairs_per_s": base_rate,
                         "straightforward_error": base_error, "straightforward_timing": base,
                         **_ours_row("ours_", pairs, timings[f"ours B={size}"],
                                     outputs[f"ours B={size}"][0], size, inner, truth,
                                     base_rate)})
        if check:
            timing = timings["straightforward, all pairs"]
            all_pairs = check_size * (check_size - 1) // 2
            rows[-1]["scaling_check"] = {
                "B": check_size, "n": n, "pairs": all_pairs,
                "pairs_per_s": all_pairs / timing["median_s"], "chunk_pairs": len(first),
                "chunk_pairs_per_s": base_rate, "timing": timing}
    return rows


def quadratic_grid(grid: Grid, spec: OTSpec, args, bar) -> list[dict]:
    """GS on synthetic clouds: ours at the default and a tight threshold, against fixed GW."""
    rows = []
    inner = min(args.baseline_clouds, *grid.gs_sizes)
    first, second = _pairs(inner)
    for n in grid.gs_points:
        points, weights = synthetic(max(grid.gs_sizes), n, args.seed + 1)
        cell = spec.replace(cost_scale=estimate_cost_scale(points, weights, "GS"))
        bar.set_description(f"GS n={n}: reference")
        truth, converged = reference(points[:inner], weights[:inner], cell)
        methods = {"ours_": ours(cell),
                   "ours_tight_": ours(cell.replace(threshold=args.tight_threshold,
                                                    outer_threshold=args.tight_threshold))}
        base_fn = straightforward(cell, cell.max_iterations, cell.outer_iterations)
        calls = {"straightforward": (base_fn, [(points, weights, first, second)])}
        for size in grid.gs_sizes:
            for prefix, fn in methods.items():
                calls[f"{prefix}B={size}"] = (fn, [(points[:size], weights[:size])])
        bar.set_description(f"GS n={n}: timing")
        timings, outputs = interleaved(calls, grid.repeats, bar)
        base = timings["straightforward"]
        base_rate = len(first) / base["median_s"]
        for size in grid.gs_sizes:
            pairs = size * (size - 1) // 2
            row = {"B": size, "n": n, "pairs": pairs, "cost_scale": cell.cost_scale,
                   "checked_clouds": inner, "checked_pairs": len(first),
                   "reference_converged": converged,
                   "straightforward_pairs_per_s": base_rate,
                   "straightforward_error": relative_error(outputs["straightforward"][0], truth),
                   "straightforward_timing": base}
            for prefix in methods:
                row.update(_ours_row(prefix, pairs, timings[f"{prefix}B={size}"],
                                     outputs[f"{prefix}B={size}"][0], size, inner, truth,
                                     base_rate))
            rows.append(row)
    return rows


def headline(grid: Grid, spec: OTSpec, args, bar) -> dict:
    """S2 at B=16 on digit clouds: our engine on the trainer's batches against the published way."""
    clouds, source = digit_clouds(args.mnist_dir, args.seed)
    spec = spec.replace(cost_scale=estimate_cost_scale(clouds.points, clouds.weights, "S2"))
    size, steps = grid.headline_size, range(grid.headline_batches)
    cropped = [tuple(jax.device_put(sample_batch(clouds, step, size, args.seed,
                                                 bucket=args.bucket)))
               for step in steps]
    padded = [tuple(jax.device_put(sample_batch(clouds, step, size, args.seed)))
              for step in steps]
    first, second = _pairs(size)
    pairs = len(first)
    methods = {  # name: (spec, batches, padding)
        "ours": (spec, cropped, "trainer"),
        "ours, tight": (spec.replace(threshold=args.tight_threshold), cropped, "trainer"),
        "ours, global padding": (spec, padded, "global"),
        "ours, vmap batching": (spec.replace(batching="vmap"), cropped, "trainer"),
    }
    bar.set_description("headline: reference")
    truths, converged = zip(*[reference(points, weights, spec) for points, weights in cropped],
                            strict=True)
    # Our solves stop on a threshold, so their time depends on the batch: every batch is
    # timed in every round. The straightforward solves do the same work whatever the data,
    # so each round times one batch, in turn.
    base_fn = straightforward(spec, spec.max_iterations)
    calls = {"straightforward": (base_fn, [(p, w, first, second) for p, w in padded])}
    for name, (method_spec, batches, _) in methods.items():
        fn = ours(method_spec)
        for k, batch in enumerate(batches):
            calls[f"{name} #{k}"] = (fn, [batch])
    bar.set_description("headline: timing")
    timings, outputs = interleaved(calls, grid.repeats, bar)

    base = timings["straightforward"]
    base_rate = pairs / base["median_s"]
    covered = sorted(outputs["straightforward"])
    rows = [{"method": "straightforward", "padding": f"global ({clouds.length})",
             "batching": "vmap", "threshold": None,
             "iterations": f"{spec.max_iterations} fixed", "pairs_per_s": base_rate,
             "ratio": 1.0, "hit_cap": None, "batches_checked": len(covered),
             "error": relative_error(
                 np.concatenate([outputs["straightforward"][k] for k in covered]),
                 np.concatenate([truths[k] for k in covered])),
             "timing": base}]
    for name, (method_spec, batches, padding) in methods.items():
        keys = [f"{name} #{k}" for k in range(len(batches))]
        seconds = sum(timings[key]["median_s"] for key in keys)
        values = np.concatenate([np.asarray(outputs[key][0][0]) for key in keys])
        hit = np.concatenate([np.asarray(outputs[key][0][1]) for key in keys])
        lengths = ", ".join(sorted({str(b[0].shape[1]) for b in batches}, key=int))
        rows.append({
            "method": name,
            "padding": f"cropped to {lengths}" if padding == "trainer"
            else f"global ({clouds.length})",
            "batching": "sequential" if method_spec.sequential else "vmap",
            "threshold": method_spec.threshold, "iterations": f"<= {spec.max_iterations}",
            "pairs_per_s": pairs * len(batches) / seconds,
            "ratio": pairs * len(batches) / seconds / base_rate,
            "hit_cap": float(np.mean(hit)), "batches_checked": len(batches),
            "error": relative_error(values, np.concatenate(truths)),
            "timing": [timings[key] for key in keys]})
    crops = [sample_batch(clouds, step, size, args.seed, bucket=args.bucket).points.shape[1]
             for step in range(1000)]
    lengths, counts = np.unique(crops, return_counts=True)
    return {"source": source, "clouds": len(clouds), "mean_points": float(clouds.sizes.mean()),
            "max_points": int(clouds.length), "B": size, "batches": len(cropped),
            "pairs_per_batch": pairs, "cost_scale": spec.cost_scale, "bucket": args.bucket,
            "reference_converged": float(np.mean(converged)),
            "length_bucket": spec.length_bucket,
            "crop_lengths_over_1000_batches": dict(zip(lengths.tolist(), counts.tolist(),
                                                       strict=True)),
            "rows": rows}


# --------------------------------------------------------------------------- report


def _error(e: dict | None) -> str:
    return "-" if e is None else f"{e['max']:.1e} / {e['median']:.1e}"


def _rate(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _checked(rows: list[dict]) -> str:
    converged = min(r["reference_converged"] for r in rows)
    return (f"Straightforward pairs/s measured on the {rows[0]['checked_pairs']} pairs of the "
            f"first {rows[0]['checked_clouds']} clouds, which every batch starts with; errors "
            f"on those pairs (reference solves converged: at least {converged:.0%}).")


TITLE = "OT throughput: `wormhole.ot` against three fixed-iteration solves per pair"


def report(result: dict) -> list[str]:
    s = result["settings"]
    engine = ("sequential (`lax.map`: each solve stops on its own threshold and is cropped to "
              f"its clouds' size bucket, length_bucket {s['length_bucket']})" if s["sequential"]
              else "vmap (solves in lock-step)")
    lines = [
        "Ratios come from interleaved runs, so all methods saw the same load.", "",
        f"Settings: epsilon {s['epsilon']} on a fixed cost scale (the data set's largest "
        f"ground cost), lse mode. Ours: `pairwise_distances` with its default batching on this "
        f"backend, {engine}; threshold {s['threshold']} (tight variant "
        f"{s['tight_threshold']}), at most {s['max_iterations']} Sinkhorn iterations (GW: at "
        f"most {s['outer_iterations']} outer iterations, stopping when the cost changes by "
        f"less than {s['outer_threshold']} relative). Straightforward: three solves per "
        f"pair, vmapped, exactly {s['max_iterations']} Sinkhorn iterations each (GW: exactly "
        f"{s['outer_iterations']} outer iterations of {s['max_iterations']}). Pairs/s from the "
        f"median of {s['repeats']} interleaved runs after compilation; ratio = "
        f"ours / straightforward pairs/s. Errors: max / median of |value - reference| / "
        f"|reference|, reference = plain ott-jax solves to threshold {REFERENCE_THRESHOLD:g}. "
        f"Hit cap: fraction of our solves stopped by the iteration cap.",
    ]
    h = result.get("headline")
    if h:
        best = next(r for r in h["rows"] if r["method"] == "ours")
        verdict = "reached" if best["ratio"] >= TARGET_RATIO else "NOT reached"
        crops = ", ".join(f"{k}: {n}" for k, n in h["crop_lengths_over_1000_batches"].items())
        lines += [
            "", f"## Headline: S2 at B={h['B']} on {h['source']}", "",
            f"{h['clouds']} training clouds, {h['mean_points']:.1f} points on average, at most "
            f"{h['max_points']}; {h['batches']} batches drawn by the trainer's `sample_batch` "
            f"({h['pairs_per_batch']} pairs each); cost scale {h['cost_scale']:.4g}. Ours runs "
            f"on the trainer's padding (each batch cropped to its largest cloud rounded up to "
            f"{h['bucket']}) and is timed on every batch in every round; the straightforward "
            f"approach runs on the published package's padding (every cloud padded to the data "
            f"set's largest) and, doing the same work whatever the data, is timed on one batch "
            f"per round, in turn. Errors over all pairs of the batches checked (reference "
            f"solves converged: {h['reference_converged']:.0%}).", "",
            *markdown_table(
                ["method", "padding", "batching", "threshold", "Sinkhorn iterations", "pairs/s",
                 "ratio", "hit cap", "error max / median", "batches"],
                [[r["method"], r["padding"], r["batching"], r["threshold"] or "-",
                  r["iterations"], _rate(r["pairs_per_s"]), f"{r['ratio']:.1f}x",
                  "-" if r["hit_cap"] is None else format(r["hit_cap"], ".3f"),
                  _error(r["error"]), r["batches_checked"]] for r in h["rows"]]),
            "", f"Target {TARGET_RATIO:g}x for ours (default settings): {verdict} "
                f"({best['ratio']:.1f}x).",
            f"Trainer crop lengths over 1,000 batches (length: batches): {crops}."]
    if result.get("s2"):
        lines += ["", "## S2 on synthetic 2-D Gaussian-mixture clouds", "",
                  _checked(result["s2"]), "",
                  *markdown_table(
                      ["B", "n", "pairs", "ours pairs/s", "straightforward pairs/s", "ratio",
                       "ours hit cap", "ours error max / median",
                       "straightforward error max / median"],
                      [[r["B"], r["n"], r["pairs"], _rate(r["ours_pairs_per_s"]),
                        _rate(r["straightforward_pairs_per_s"]), f"{r['ours_ratio']:.1f}x",
                        f"{r['ours_hit_cap']:.3f}", _error(r["ours_error"]),
                        _error(r["straightforward_error"])] for r in result["s2"]])]
        for c in [r["scaling_check"] for r in result["s2"] if "scaling_check" in r]:
            lines += ["", f"Check of the straightforward timing on a subset: on all "
                          f"{c['pairs']} pairs of B={c['B']} (n={c['n']}) it ran at "
                          f"{_rate(c['pairs_per_s'])} pairs/s, against "
                          f"{_rate(c['chunk_pairs_per_s'])} on the {c['chunk_pairs']} pairs "
                          f"used above."]
    if result.get("gs"):
        lines += ["", "## GS (debiased Gromov-Wasserstein) on synthetic 2-D clouds", "",
                  "Ours solves the cross terms and one GW self term per cloud (ott-jax has no "
                  f"symmetric GW solver); tight: threshold {s['tight_threshold']} for the outer "
                  "and inner loops. " + _checked(result["gs"]) + " GW is not convex: a "
                  "solver may stop at another stationary point than the reference, and the "
                  "smallest divergences (about 1e-5 of the scaled cost) inflate relative "
                  "errors, so compare our errors with the straightforward column.", "",
                  *markdown_table(
                      ["B", "n", "pairs", "ours pairs/s", "ratio", "error max / median",
                       "tight pairs/s", "tight ratio", "tight error max / median",
                       "straightforward pairs/s", "straightforward error max / median"],
                      [[r["B"], r["n"], r["pairs"], _rate(r["ours_pairs_per_s"]),
                        f"{r['ours_ratio']:.1f}x", _error(r["ours_error"]),
                        _rate(r["ours_tight_pairs_per_s"]), f"{r['ours_tight_ratio']:.1f}x",
                        _error(r["ours_tight_error"]), _rate(r["straightforward_pairs_per_s"]),
                        _error(r["straightforward_error"])] for r in result["gs"]])]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small grid, 2 repeats, 1 headline batch (a few minutes)")
    parser.add_argument("--parts", default="headline,s2,gs",
                        help="comma-separated parts to run: headline, s2, gs")
    parser.add_argument("--repeats", type=int, help="interleaved timing rounds (full: 3)")
    parser.add_argument("--s2-sizes", type=int, nargs="+", help="S2 batch sizes B")
    parser.add_argument("--s2-points", type=int, nargs="+", help="S2 points per cloud n")
    parser.add_argument("--gs-sizes", type=int, nargs="+", help="GS batch sizes B")
    parser.add_argument("--gs-points", type=int, nargs="+", help="GS points per cloud n")
    parser.add_argument("--headline-batches", type=int, help="trainer batches in the headline")
    parser.add_argument("--mnist-dir", default=None,
                        help="directory of the MNIST IDX files (default: the loader's search "
                             "order, $WORMHOLE_DATA/mnist first); never downloads")
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--threshold", type=float, default=1e-3)
    parser.add_argument("--tight-threshold", type=float, default=1e-5,
                        help="threshold of our 'tight' variant, for accuracy-matched ratios")
    parser.add_argument("--max-iterations", type=int, default=200,
                        help="our Sinkhorn cap and the straightforward fixed count")
    parser.add_argument("--outer-iterations", type=int, default=20,
                        help="our GW outer cap and the straightforward fixed outer count")
    parser.add_argument("--outer-threshold", type=float, default=OTSpec.outer_threshold,
                        help="our GW outer stopping threshold (relative cost change)")
    parser.add_argument("--baseline-clouds", type=int, default=16,
                        help="grids: time the straightforward approach, and check accuracy, on "
                             "the pairs of this many clouds")
    parser.add_argument("--bucket", type=int, default=32,
                        help="the trainer's padding multiple (train.length_bucket)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None,
                        help="result path without suffix (default benchmarks/results/"
                             "ot_throughput, or ot_throughput.quick with --quick)")
    args = parser.parse_args(argv)

    grid = QUICK if args.quick else Grid()
    changes = {key: (tuple(value) if isinstance(value, list) else value)
               for key in ("repeats", "s2_sizes", "s2_points", "gs_sizes", "gs_points",
                           "headline_batches")
               if (value := getattr(args, key)) is not None}
    grid = replace(grid, **changes)
    out = args.out or RESULTS / ("ot_throughput.quick" if args.quick else "ot_throughput")
    parts = {p.strip() for p in args.parts.split(",")}
    unknown = parts - {"headline", "s2", "gs"}
    if unknown:
        parser.error(f"--parts: unknown {sorted(unknown)}; use headline, s2, gs.")
    spec = OTSpec(kind="S2", epsilon=args.epsilon, threshold=args.threshold,
                  max_iterations=args.max_iterations, outer_iterations=args.outer_iterations,
                  outer_threshold=args.outer_threshold)

    # Progress counts compilations and timed runs: 1 + `repeats` for each call.
    def calls_per_group(count: int) -> int:
        return count * (grid.repeats + 1)

    total = 0
    if "headline" in parts:
        total += calls_per_group(1 + 4 * grid.headline_batches)
    if "s2" in parts:
        total += sum(calls_per_group(1 + len(grid.s2_sizes)) for n in grid.s2_points)
        total += calls_per_group(grid.check_scaling and any(
            size > min(args.baseline_clouds, *grid.s2_sizes) for size in grid.s2_sizes))
    if "gs" in parts:
        total += len(grid.gs_points) * calls_per_group(1 + 2 * len(grid.gs_sizes))

    run = Run.start(__file__, argv, watch=("wormhole/ot",))
    result = {"settings": {"epsilon": args.epsilon, "threshold": args.threshold,
                           "sequential": spec.sequential, "length_bucket": spec.length_bucket,
                           "baseline_clouds": args.baseline_clouds,
                           "tight_threshold": args.tight_threshold,
                           "max_iterations": args.max_iterations,
                           "outer_iterations": args.outer_iterations,
                           "outer_threshold": args.outer_threshold,
                           "repeats": grid.repeats, "seed": args.seed,
                           "grid": asdict(grid)}}
    with tqdm(total=total, unit="call") as bar:
        if "headline" in parts:
            result["headline"] = headline(grid, spec, args, bar)
        if "s2" in parts:
            result["s2"] = linear_grid(grid, spec, args, bar)
        if "gs" in parts:
            result["gs"] = quadratic_grid(grid, spec.replace(kind="GS"), args, bar)
    result = {**run.finish(), **result}
    print(write_result(out, result, TITLE, report(result)))


if __name__ == "__main__":
    main()
