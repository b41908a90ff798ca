"""Neural entropic OT against the Gaussian closed form and ott-jax Sinkhorn.

    python benchmarks/neural_ot.py                                  # default run
    python benchmarks/neural_ot.py --dims 2 4 8 16 32 64 --sizes 1000 10000 100000 1000000 \\
        --sinkhorn-sizes 1000 2000 4000 8000 16000 32000 --memory-budget-gib 8   # bigger

Three parts, all between random Gaussians (covariance eigenvalues in [0.5, 2], random
rotations and means), whose entropic OT has a closed form (Janati et al. 2020), the trusted
reference:

1. Relative error by dimension, the network trained on fresh draws at every step (the
   population problem), with ``eps = ratio * d`` for each of ``--epsilon-ratios`` (default
   d / 4 and d / 16: the same regularisation relative to the cost, which grows like d; at a
   fixed eps such as 1 every sample-based estimate, Sinkhorn's included, is dominated by its
   statistical bias in high dimension). ott-jax Sinkhorn on ``--dims-sinkhorn-n`` points per
   side is shown beside it: its error is the plug-in bias of the empirical problem.
2. Accuracy against sample size in dimension ``--scale-dim`` (eps = d / 16): both methods see
   one fixed sample of n points per side, so their errors include the sample's own error.
3. Time and peak memory at each of those sizes, each run in its own process so its peak
   resident memory is its own. Sinkhorn (dense ott-jax point cloud, n x n matrices) runs while
   the memory predicted from the previous sizes stays under ``--memory-budget-gib``; the
   neural estimator's memory is the data plus O(batch^2 + chunk^2).

ott-jax's online (never-materialised) Sinkhorn mode, ``PointCloud(batch_size=...)``, fails with
the installed ott-jax 0.6.0 and JAX (``jax.interpreters.batching.is_vmappable`` is gone), so
the dense solver is the Sinkhorn that runs here. Results go to
``benchmarks/results/neural_ot.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "neural_ot"
GIB = 2.0**30


def _status_gib(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS: now, VmHWM: peak) in GiB. Not getrusage:
    its ru_maxrss survives exec, so a worker would inherit its parent's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / GIB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_rss_gib() -> float:
    return _status_gib("VmHWM")


def _current_rss_gib() -> float:
    return _status_gib("VmRSS")


def _draw(gaussian, n: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    """``[n, d]`` float32 draws, written chunk by chunk so the peak is the array itself."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(gaussian.cov).T.astype(np.float32)
    out = np.empty((n, gaussian.dim), np.float32)
    for start in range(0, n, chunk):
        z = rng.standard_normal((min(chunk, n - start), gaussian.dim), np.float32)
        out[start:start + len(z)] = z @ chol + gaussian.mean.astype(np.float32)
    return out


def _gaussians(dim: int, seed: int):
    from wormhole.neural_ot import random_gaussian

    return random_gaussian(dim, 2 * seed), random_gaussian(dim, 2 * seed + 1)


def _neural_settings(args) -> dict:
    from wormhole.neural_ot import NetworkConfig, NeuralEvalConfig, NeuralTrainConfig

    return {"network": NetworkConfig(width=args.width),
            "train": NeuralTrainConfig(steps=args.steps, batch_size=args.batch_size),
            "evaluation": NeuralEvalConfig(eval_size=args.eval_size,
                                     reference_size=args.eval_size)}


# --------------------------------------------------------------------------- one measured run


def worker(args) -> dict:
    """One method on one fixed sample of ``args.n`` points per side; prints a JSON line."""
    from wormhole.neural_ot import entropic_ot_gaussians, neural_eot, sinkhorn_eot

    mu, nu = _gaussians(args.dim, args.seed)
    x, y = _draw(mu, args.n, 2 * args.seed), _draw(nu, args.n, 2 * args.seed + 1)
    baseline = _current_rss_gib()
    start = time.perf_counter()
    if args.worker == "neural":
        result = neural_eot(x, y, args.epsilon, **_neural_settings(args))
        cost, converged = result.cost, True
    else:
        solution = sinkhorn_eot(x, y, args.epsilon, threshold=1e-3,
                                max_iterations=args.sinkhorn_iterations)
        cost, converged = solution.cost, solution.converged
    seconds = time.perf_counter() - start
    truth = entropic_ot_gaussians(mu, nu, args.epsilon)
    return {"method": args.worker, "n": args.n, "dim": args.dim, "epsilon": args.epsilon,
            "cost": cost, "closed_form": truth, "relative_error": abs(cost - truth) / truth,
            "converged": converged, "seconds": seconds, "peak_gib": _peak_rss_gib(),
            "baseline_gib": baseline}


def run_worker(method: str, n: int, dim: int, epsilon: float, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, "--n", str(n),
           "--dim", str(dim), "--epsilon", str(epsilon), "--seed", str(args.seed),
           "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--width", str(args.width), "--eval-size", str(args.eval_size),
           "--sinkhorn-iterations", str(args.sinkhorn_iterations)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"method": method, "n": n, "dim": dim, "epsilon": epsilon,
                "failed": f"exit {done.returncode}: {' | '.join(tail)}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- parts


def by_dimension(args) -> list[dict]:
    import jax

    from wormhole.neural_ot import entropic_ot_gaussians, neural_eot, sinkhorn_eot

    rows = []
    for dim in args.dims:
        mu, nu = _gaussians(dim, args.seed)
        for ratio in args.epsilon_ratios:
            regime, eps = f"{ratio:g} d", ratio * dim
            truth = entropic_ot_gaussians(mu, nu, eps)
            start = time.perf_counter()
            result = neural_eot(mu.sample, nu.sample, eps, **_neural_settings(args))
            seconds = time.perf_counter() - start
            kx, ky = jax.random.split(jax.random.PRNGKey(args.seed + 1))
            n = args.dims_sinkhorn_n
            sink = sinkhorn_eot(mu.sample(kx, n), nu.sample(ky, n), eps, threshold=1e-3,
                                max_iterations=args.sinkhorn_iterations)
            rows.append({"dim": dim, "regime": regime, "epsilon": eps, "closed_form": truth,
                         "neural": result.cost, "neural_stderr": result.stderr,
                         "neural_relative_error": abs(result.cost - truth) / truth,
                         "neural_seconds": seconds, "sinkhorn_n": n, "sinkhorn": sink.cost,
                         "sinkhorn_converged": sink.converged,
                         "sinkhorn_relative_error": abs(sink.cost - truth) / truth})
            print(f"d={dim:3d} eps={eps:6.2f}: neural {rows[-1]['neural_relative_error']:.2%}"
                  f", Sinkhorn(n={n}) {rows[-1]['sinkhorn_relative_error']:.2%}", flush=True)
    return rows


def by_size(args) -> list[dict]:
    dim, eps = args.scale_dim, args.scale_epsilon_ratio * args.scale_dim
    rows = []
    for n in args.sizes:
        rows.append(run_worker("neural", n, dim, eps, args))
        print(_describe(rows[-1]), flush=True)
    # Sinkhorn memory grows like n^2: predict each size from the last one measured, and stop
    # before the budget rather than letting the machine swap or the process be killed.
    last = None
    for n in args.sinkhorn_sizes:
        if last is not None:
            predicted = last["baseline_gib"] + (
                last["peak_gib"] - last["baseline_gib"]) * (n / last["n"]) ** 2
            if predicted > args.memory_budget_gib:
                rows.append({"method": "sinkhorn", "n": n, "dim": dim, "epsilon": eps,
                             "skipped": f"predicted peak {predicted:.1f} GiB > budget "
                                        f"{args.memory_budget_gib:g} GiB"})
                print(_describe(rows[-1]), flush=True)
                break
        rows.append(run_worker("sinkhorn", n, dim, eps, args))
        print(_describe(rows[-1]), flush=True)
        if "failed" in rows[-1]:
            break
        last = rows[-1]
    return rows


def _describe(row: dict) -> str:
    head = f"{row['method']:8s} n={row['n']:>8d}"
    if "skipped" in row:
        return f"{head}: skipped ({row['skipped']})"
    if "failed" in row:
        return f"{head}: failed ({row['failed']})"
    return (f"{head}: rel. error {row['relative_error']:.2%}, {row['seconds']:.1f} s, "
            f"peak {row['peak_gib']:.2f} GiB" + ("" if row["converged"] else " (not converged)"))


# --------------------------------------------------------------------------- report


def _size_cell(row: dict) -> str:
    if "skipped" in row:
        return f"not run: {row['skipped']}"
    if "failed" in row:
        return f"failed: {row['failed']}"
    note = "" if row["converged"] else " (hit the iteration cap)"
    return (f"{row['relative_error']:.2%} | {row['seconds']:.1f} | {row['peak_gib']:.2f} | "
            f"{row['baseline_gib']:.2f}{note}")


def write_report(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    s = report["settings"]
    lines = [
        "# Neural entropic OT: accuracy and scale",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']}. Load average at start / end: "
        f"{report['load_start']} / {report['load_end']} (the machine was shared; times are "
        f"wall-clock). Total {report['seconds'] / 60:.1f} min.",
        "",
        f"Neural estimator: one hidden layer of width {s['width']}, {s['steps']} Adam steps, "
        f"batch {s['batch_size']} per side, final estimate on {s['eval_size']} fresh points "
        "per side (the c-transform against as many). Reference: the closed form of entropic "
        "OT between the two Gaussians (regulariser eps KL(pi | mu x nu)).",
        "",
        "## Relative error by dimension (population problem, fresh draws every step)",
        "",
        f"Sinkhorn: ott-jax on {s['dims_sinkhorn_n']} points per side, threshold 1e-3.",
        "",
        "| d | eps | closed form | neural (+- s.e.) | neural rel. error | neural s "
        "| Sinkhorn rel. error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["by_dimension"]:
        lines.append(f"| {r['dim']} | {r['epsilon']:g} ({r['regime']}) | "
                     f"{r['closed_form']:.4g} | {r['neural']:.4g} +- {r['neural_stderr']:.2g}"
                     f" | {r['neural_relative_error']:.2%} | {r['neural_seconds']:.0f} | "
                     f"{r['sinkhorn_relative_error']:.2%}"
                     + ("" if r["sinkhorn_converged"] else " (not converged)") + " |")
    dim = s["scale_dim"]
    lines += [
        "",
        f"## Accuracy, time and peak memory by sample size (d = {dim}, "
        f"eps = {s['scale_epsilon_ratio'] * dim:g})",
        "",
        "Each row is its own process. Peak = peak resident memory of that process; "
        "baseline = its resident memory after drawing the two samples, before solving "
        "(Python, JAX and the data). Time excludes drawing the samples and includes "
        "compilation.",
        "",
        "| method | n per side | rel. error | s | peak GiB | baseline GiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["by_size"]:
        lines.append(f"| {r['method']} | {r['n']:,} | {_size_cell(r)} |")
    lines += ["", "## Largest sample size handled", ""]
    for method in ("sinkhorn", "neural"):
        ran = [r for r in report["by_size"] if r["method"] == method and "cost" in r]
        if ran:
            top = max(ran, key=lambda r: r["n"])
            lines.append(f"- {method}: n = {top['n']:,} per side in d = {dim}: "
                         f"{top['seconds']:.1f} s, peak {top['peak_gib']:.2f} GiB, "
                         f"rel. error {top['relative_error']:.2%}.")
    stopped = [r for r in report["by_size"] if r["method"] == "sinkhorn" and "cost" not in r]
    for r in stopped:
        lines.append(f"- sinkhorn at n = {r['n']:,}: "
                     + (r.get("skipped") or r.get("failed")) + ".")
    lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    parser.add_argument("--epsilon-ratios", type=float, nargs="+", default=[0.25, 0.0625],
                        help="by dimension: eps = ratio * d for each ratio")
    parser.add_argument("--dims-sinkhorn-n", type=int, default=4000)
    parser.add_argument("--scale-dim", type=int, default=64)
    parser.add_argument("--scale-epsilon-ratio", type=float, default=0.0625,
                        help="by sample size: eps = ratio * scale-dim")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000],
                        help="neural estimator sample sizes per side")
    parser.add_argument("--sinkhorn-sizes", type=int, nargs="+",
                        default=[1000, 4000, 8000, 16000, 32000])
    parser.add_argument("--memory-budget-gib", type=float, default=6.0,
                        help="skip Sinkhorn sizes predicted to need more than this")
    parser.add_argument("--sinkhorn-iterations", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--eval-size", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-dims", action="store_true", help="only the sample-size part")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="result path without suffix (.md and .json are written)")
    parser.add_argument("--worker", choices=("neural", "sinkhorn"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--epsilon", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    import jax
    import ott

    start = time.perf_counter()
    load_start = " ".join(f"{v:.1f}" for v in os.getloadavg())
    report = {
        "command": "python " + " ".join(shlex.quote(a) for a in
                                        ["benchmarks/neural_ot.py", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                   f"{jax.default_backend()} backend, jax {jax.__version__}, "
                   f"ott-jax {ott.__version__}",
        "load_start": load_start,
        "settings": {k: v for k, v in vars(args).items()
                     if k not in ("worker", "n", "dim", "epsilon", "out")},
    }
    report["by_dimension"] = [] if args.skip_dims else by_dimension(args)
    report["by_size"] = by_size(args)
    report["load_end"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
    report["seconds"] = time.perf_counter() - start
    write_report(report, args.out)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
