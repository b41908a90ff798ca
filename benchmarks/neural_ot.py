"""Neural entropic OT against the Gaussian closed form and ott-jax Sinkhorn (dense and online).

    python benchmarks/neural_ot.py                                  # default run
    python benchmarks/neural_ot.py --dims 2 4 8 16 32 64 --sizes 1000 10000 100000 1000000 \\
        --sinkhorn-sizes 1000 2000 4000 8000 16000 32000 --memory-budget-gib 8   # bigger

Three parts, all between random Gaussians (covariance eigenvalues in [0.5, 2], random
rotations and means), whose entropic OT has a closed form (Janati et al. 2020), the trusted
reference:

1. Relative error by dimension, the network trained on fresh draws at every step (the
   population problem), with ``eps = ratio * d`` for each of ``--epsilon-ratios`` (default
   d / 4, d / 16 and d / 32: the same regularisation relative to the cost, which grows like
   d). Each row gives the estimate, its standard error (evaluation samples and the
   c-transform's reference sample), the uncorrected plug-in value, the median effective
   sample size (ESS) of the reference, and whether the estimator calls itself reliable
   (ESS >= ``RELIABLE_ESS``). ott-jax Sinkhorn on ``--dims-sinkhorn-n`` points per side is
   shown beside it: its error is the plug-in bias of the empirical problem.
2. Accuracy against sample size in dimension ``--scale-dim`` (eps = d / 16): every method sees
   one fixed sample of n points per side, so its error includes the sample's own error.
3. Time and peak memory at each of those sizes, each run in its own process so its peak
   resident memory is its own. Two Sinkhorns: the dense ott-jax point cloud (n x n matrices;
   run while the memory predicted from the previous size stays under
   ``--memory-budget-gib``) and the online one, ``PointCloud(batch_size=...)``, which
   recomputes the costs in blocks at every iteration (O(n) memory, O(n^2 d) time per
   iteration; run while the time predicted from the previous size stays under
   ``--online-time-budget-s``). The neural estimator's memory is the data plus
   O(batch^2 + chunk^2).

Results go to ``benchmarks/results/neural_ot.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
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
            "train": NeuralTrainConfig(steps=args.steps, batch_size=args.batch_size,
                                       reference_batch_size=args.reference_batch_size),
            "evaluation": NeuralEvalConfig(eval_size=args.eval_size,
                                           reference_size=args.reference_size)}


# --------------------------------------------------------------------------- one measured run


def worker(args) -> dict:
    """One method on one fixed sample of ``args.n`` points per side; prints a JSON line."""
    from wormhole.neural_ot import entropic_ot_gaussians, neural_eot, sinkhorn_eot

    mu, nu = _gaussians(args.dim, args.seed)
    x, y = _draw(mu, args.n, 2 * args.seed), _draw(nu, args.n, 2 * args.seed + 1)
    baseline = _current_rss_gib()
    start = time.perf_counter()
    extra = {}
    if args.worker == "neural":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the row records reliability itself
            result = neural_eot(x, y, args.epsilon, **_neural_settings(args))
        cost, converged = result.cost, True
        extra = {"stderr": result.stderr, "reference_ess": result.reference_ess,
                 "reliable": result.reliable, "exact_reference": args.n <= args.reference_size}
    else:
        online = args.online_batch if args.worker == "online" else None
        solution = sinkhorn_eot(x, y, args.epsilon, threshold=1e-3,
                                max_iterations=args.sinkhorn_iterations, batch_size=online)
        cost, converged = solution.cost, solution.converged
    seconds = time.perf_counter() - start
    truth = entropic_ot_gaussians(mu, nu, args.epsilon)
    return {"method": args.worker, "n": args.n, "dim": args.dim, "epsilon": args.epsilon,
            "cost": cost, "closed_form": truth, "relative_error": abs(cost - truth) / truth,
            "converged": converged, "seconds": seconds, "peak_gib": _peak_rss_gib(),
            "baseline_gib": baseline, **extra}


def run_worker(method: str, n: int, dim: int, epsilon: float, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, "--n", str(n),
           "--dim", str(dim), "--epsilon", str(epsilon), "--seed", str(args.seed),
           "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--width", str(args.width), "--eval-size", str(args.eval_size),
           "--reference-size", str(args.reference_size),
           "--sinkhorn-iterations", str(args.sinkhorn_iterations),
           "--online-batch", str(args.online_batch)]
    if args.reference_batch_size is not None:
        cmd += ["--reference-batch-size", str(args.reference_batch_size)]
    return worker_result(cmd, {"method": method, "n": n, "dim": dim, "epsilon": epsilon})


def worker_result(cmd: list[str], identity: dict) -> dict:
    """Run a worker process whose last stdout line is its JSON result; a worker that fails
    gives ``identity`` with ``failed`` (its exit status and the tail of its stderr)."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        return {**identity, "failed": f"exit {done.returncode}: {' | '.join(tail)}"}
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
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the row records reliability itself
                result = neural_eot(mu.sample, nu.sample, eps, **_neural_settings(args))
            seconds = time.perf_counter() - start
            kx, ky = jax.random.split(jax.random.PRNGKey(args.seed + 1))
            n = args.dims_sinkhorn_n
            sink = sinkhorn_eot(mu.sample(kx, n), nu.sample(ky, n), eps, threshold=1e-3,
                                max_iterations=args.sinkhorn_iterations)
            rows.append({"dim": dim, "regime": regime, "epsilon": eps, "closed_form": truth,
                         "neural": result.cost, "neural_stderr": result.stderr,
                         "neural_relative_error": abs(result.cost - truth) / truth,
                         "neural_z": (result.cost - truth) / result.stderr,
                         "neural_plug_in": result.plug_in,
                         "neural_reference_stderr": result.reference_stderr,
                         "neural_reference_ess": result.reference_ess,
                         "neural_reliable": result.reliable,
                         "neural_seconds": seconds, "sinkhorn_n": n, "sinkhorn": sink.cost,
                         "sinkhorn_converged": sink.converged,
                         "sinkhorn_relative_error": abs(sink.cost - truth) / truth})
            r = rows[-1]
            print(f"d={dim:3d} eps={eps:6.3g}: neural {r['neural_relative_error']:.2%} "
                  f"(z {r['neural_z']:+.1f}, ESS {r['neural_reference_ess']:.1f}), "
                  f"Sinkhorn(n={n}) {r['sinkhorn_relative_error']:.2%}", flush=True)
    return rows


def _predicted_memory(last: dict, n: int) -> float:
    """Dense Sinkhorn: the memory above the baseline grows like n^2."""
    return last["baseline_gib"] + (last["peak_gib"] - last["baseline_gib"]) * (n / last["n"]) ** 2


def _predicted_seconds(last: dict, n: int) -> float:
    """Online Sinkhorn: each iteration recomputes all n^2 costs (an overestimate at small n,
    where compilation dominates)."""
    return last["seconds"] * (n / last["n"]) ** 2


def _grow(method: str, sizes, dim: int, eps: float, args, over_budget) -> list[dict]:
    """Run ``method`` at increasing sizes; stop at a failure, or before a size that
    ``over_budget(last_row, n)`` (a reason, or None) predicts to be too large."""
    rows, last = [], None
    for n in sizes:
        reason = None if last is None else over_budget(last, n)
        if reason:
            rows.append({"method": method, "n": n, "dim": dim, "epsilon": eps,
                         "skipped": reason})
            print(_describe(rows[-1]), flush=True)
            break
        rows.append(run_worker(method, n, dim, eps, args))
        print(_describe(rows[-1]), flush=True)
        if "failed" in rows[-1]:
            break
        last = rows[-1]
    return rows


def by_size(args) -> list[dict]:
    dim, eps = args.scale_dim, args.scale_epsilon_ratio * args.scale_dim
    rows = _grow("neural", args.sizes, dim, eps, args, lambda last, n: None)

    # Stop before a budget rather than letting the machine swap or the process be killed.
    def memory(last, n):
        predicted = _predicted_memory(last, n)
        return (f"predicted peak {predicted:.1f} GiB > budget {args.memory_budget_gib:g} GiB"
                if predicted > args.memory_budget_gib else None)

    def seconds(last, n):
        predicted = _predicted_seconds(last, n)
        return (f"predicted {predicted:.0f} s > budget {args.online_time_budget_s:g} s"
                if predicted > args.online_time_budget_s else None)

    rows += _grow("sinkhorn", args.sinkhorn_sizes, dim, eps, args, memory)
    rows += _grow("online", args.online_sizes, dim, eps, args, seconds)
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


_METHOD_NAMES = {"neural": "neural", "sinkhorn": "Sinkhorn, dense",
                 "online": "Sinkhorn, online"}


def _size_cell(row: dict) -> str:
    if "skipped" in row:
        return f"not run: {row['skipped']} | | | |"
    if "failed" in row:
        return f"failed: {row['failed']} | | | |"
    notes = [] if row["converged"] else ["hit the iteration cap"]
    if row["method"] == "neural":
        notes.append(f"+- {row['stderr']:.2g}; " + (
            "c-transform exact (the whole sample)" if row["exact_reference"] else
            f"ESS {row['reference_ess']:.0f}" + ("" if row["reliable"] else ", unreliable")))
    return (f"{row['relative_error']:.2%} | {row['seconds']:.1f} | {row['peak_gib']:.2f} | "
            f"{row['baseline_gib']:.2f} | {'; '.join(notes)}")


def _dimension_line(r: dict) -> str:
    sinkhorn = f"{r['sinkhorn_relative_error']:.2%}" + (
        "" if r["sinkhorn_converged"] else " (not converged)")
    plug_in = (r["neural_plug_in"] - r["closed_form"]) / r["closed_form"]
    signed = (r["neural"] - r["closed_form"]) / r["closed_form"]
    return (f"| {r['dim']} | {r['epsilon']:g} ({r['regime']}) | {r['closed_form']:.4g} | "
            f"{r['neural']:.4g} +- {r['neural_stderr']:.2g} | {signed:+.2%} | "
            f"{r['neural_z']:+.1f} | {plug_in:+.2%} | {r['neural_reference_ess']:.1f} | "
            f"{'yes' if r['neural_reliable'] else '**no**'} | {r['neural_seconds']:.0f} | "
            f"{sinkhorn} |")


def write_report(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = ["# Neural entropic OT: accuracy, reliability and scale", ""]
    if report["by_dimension"]:
        lines += _dimension_section(report["by_dimension"], report["reliable_ess"])
    if report["by_size"]:
        lines += _size_section(report["by_size"])
    out.with_suffix(".md").write_text("\n".join(lines))


def _run_header(part: dict) -> list[str]:
    from benchmarks._harness import provenance_lines

    if "date" in part:  # the harness's provenance (command, date, commit, machine, load)
        return [*provenance_lines(part), ""]
    # A part measured before this script recorded its date and commit.
    return [f"Command: `{part['command']}`", "",
            f"Machine: {part['machine']}. Load average at start / end: {part['load']} (the "
            f"machine was shared; times are wall-clock). {part['minutes']:.1f} min. (Measured "
            "before this script recorded its date and commit.)", ""]


def _neural_description(s: dict) -> str:
    batch_x = s["reference_batch_size"] or s["batch_size"]
    return (f"Neural estimator: one hidden layer of width {s['width']}, {s['steps']} Adam steps, "
            f"batch {s['batch_size']} points of nu and {batch_x} of mu per step. Final estimate: "
            f"the semi-dual on {s['eval_size']:,} fresh points per side, the c-transform against "
            f"a fresh reference sample of {s['reference_size']:,} points of mu in 20 blocks; the "
            "leave-one-block-out jackknife corrects the upward bias of the c-transform's finite "
            "sample and gives the reference's share of the standard error (s.e.). Reference: the "
            "closed form of entropic OT between the two Gaussians (regulariser "
            "eps KL(pi | mu x nu)).")


def _dimension_section(part: dict, reliable_ess: float) -> list[str]:
    s, rows = part["settings"], part["rows"]
    lines = [
        "## Relative error by dimension (population problem, fresh draws every step)",
        "",
        *_run_header(part),
        _neural_description(s),
        "",
        f"Sinkhorn: ott-jax on {s['dims_sinkhorn_n']} points per side, threshold 1e-3. "
        "z = (estimate - closed form) / s.e. Plug-in: the estimate without the jackknife. "
        "ESS: median effective sample size of the reference sample in the c-transform; "
        f"reliable: ESS >= {reliable_ess:g} (below it the estimator warns that it "
        "is likely biased upward by more than its s.e.).",
        "",
        "| d | eps | closed form | neural (+- s.e.) | neural error | z | plug-in error | ESS "
        "| reliable | neural s | Sinkhorn error |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_dimension_line(r) for r in rows]
    if rows:
        flagged = [r for r in rows if not r["neural_reliable"]]
        missed = [r for r in rows if r["neural_reliable"] and abs(r["neural_z"]) > 3]
        lines += ["", "Where the estimator stops being reliable:", ""]
        lines += [f"- d = {r['dim']}, eps = {r['epsilon']:g} ({r['regime']}): flagged "
                  f"(ESS {r['neural_reference_ess']:.1f}); error "
                  f"{(r['neural'] - r['closed_form']) / r['closed_form']:+.2%}, "
                  f"z {r['neural_z']:+.1f}." for r in flagged]
        lines += [f"- d = {r['dim']}, eps = {r['epsilon']:g} ({r['regime']}): not flagged "
                  f"(ESS {r['neural_reference_ess']:.1f}) but {r['neural_z']:+.1f} s.e. from "
                  "the closed form (training error: the semi-dual of a learned potential is "
                  "below OT_eps)." for r in missed]
        if not flagged and not missed:
            lines.append("- every row is reliable and within 3 s.e. of the closed form.")
    return [*lines, ""]


def _size_section(part: dict) -> list[str]:
    s, rows = part["settings"], part["rows"]
    dim = s["scale_dim"]
    lines = [
        f"## Accuracy, time and peak memory by sample size (d = {dim}, "
        f"eps = {s['scale_epsilon_ratio'] * dim:g})",
        "",
        *_run_header(part),
        _neural_description(s),
        "",
        "Each row is its own process. Peak = peak resident memory of that process; "
        "baseline = its resident memory after drawing the two samples, before solving "
        "(Python, JAX and the data). Time excludes drawing the samples and includes "
        "compilation. Every method sees the same fixed sample of n points per side, so its "
        "error against the population closed form includes that sample's own error. "
        f"Sinkhorn: threshold 1e-3, at most {s['sinkhorn_iterations']} iterations; dense "
        "holds the n x n cost matrix; online is ott-jax's `PointCloud(batch_size="
        f"{s['online_batch']})`, recomputing the costs block by block at every iteration.",
        "",
        "| method | n per side | rel. error | s | peak GiB | baseline GiB | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {_METHOD_NAMES[r['method']]} | {r['n']:,} | {_size_cell(r)} |")
    lines += ["", "## Largest sample size handled", ""]
    for method in ("sinkhorn", "online", "neural"):
        ran = [r for r in rows if r["method"] == method and "cost" in r]
        if ran:
            top = max(ran, key=lambda r: r["n"])
            lines.append(f"- {_METHOD_NAMES[method]}: n = {top['n']:,} per side in d = {dim}: "
                         f"{top['seconds']:.1f} s, peak {top['peak_gib']:.2f} GiB, "
                         f"rel. error {top['relative_error']:.2%}.")
    stopped = [r for r in rows if "cost" not in r]
    for r in stopped:
        lines.append(f"- {_METHOD_NAMES[r['method']]} at n = {r['n']:,}: "
                     + (r.get("skipped") or r.get("failed")) + ".")
    dense = {r["n"]: r for r in rows if r["method"] == "sinkhorn" and "cost" in r}
    for r in rows:
        if r["method"] == "online" and "cost" in r and r["n"] in dense:
            d = dense[r["n"]]
            lines.append(f"- At n = {r['n']:,} the online Sinkhorn takes "
                         f"{r['seconds'] / d['seconds']:.1f}x the dense one's time and "
                         f"{r['peak_gib'] - r['baseline_gib']:.2f} GiB above its baseline "
                         f"against {d['peak_gib'] - d['baseline_gib']:.2f} GiB (values "
                         f"{r['cost']:.6g} and {d['cost']:.6g}).")
    lines += ["", "Only the sizes listed were run: the table does not say how any method "
              "fares beyond them. Sinkhorn's memory limit is the dense geometry's; the online "
              "geometry removes it, and what then grows is its time, n^2 d per iteration. The "
              "neural estimator's time is set by its steps, batch and evaluation sizes; it "
              "reads the n points only through mini-batches (and its reference and evaluation "
              "samples)."]
    return [*lines, ""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64])
    parser.add_argument("--epsilon-ratios", type=float, nargs="+",
                        default=[0.25, 0.0625, 0.03125],
                        help="by dimension: eps = ratio * d for each ratio")
    parser.add_argument("--dims-sinkhorn-n", type=int, default=4000)
    parser.add_argument("--scale-dim", type=int, default=64)
    parser.add_argument("--scale-epsilon-ratio", type=float, default=0.0625,
                        help="by sample size: eps = ratio * scale-dim")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000],
                        help="neural estimator sample sizes per side")
    parser.add_argument("--sinkhorn-sizes", type=int, nargs="+",
                        default=[1000, 4000, 8000, 16000, 32000],
                        help="dense Sinkhorn sample sizes per side")
    parser.add_argument("--memory-budget-gib", type=float, default=6.0,
                        help="skip dense Sinkhorn sizes predicted to need more than this")
    parser.add_argument("--online-sizes", type=int, nargs="+", default=[1000, 4000, 16000],
                        help="online (O(n) memory) Sinkhorn sample sizes per side")
    parser.add_argument("--online-time-budget-s", type=float, default=400.0,
                        help="skip online Sinkhorn sizes predicted to take longer than this")
    parser.add_argument("--online-batch", type=int, default=1024,
                        help="online Sinkhorn: points per block of recomputed costs")
    parser.add_argument("--sinkhorn-iterations", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--reference-batch-size", type=int, default=None,
                        help="neural: points of mu per step in the mini-batch c-transform "
                             "(default: the batch size)")
    parser.add_argument("--eval-size", type=int, default=10000)
    parser.add_argument("--reference-size", type=int, default=100000,
                        help="neural: points of mu in the final c-transform (20 blocks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part", choices=("all", "dims", "sizes"), default="all",
                        help="run one part only, keeping the other from the existing results")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="result path without suffix (.md and .json are written)")
    parser.add_argument("--worker", choices=("neural", "sinkhorn", "online"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dim", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--epsilon", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    sys.path.insert(0, str(HERE.parent))
    from benchmarks._harness import Run
    from wormhole.neural_ot.eot import RELIABLE_ESS

    json_path = args.out.with_suffix(".json")
    report = {"by_dimension": None, "by_size": None}
    if args.part != "all" and json_path.is_file():
        # Keep the part not re-run (results in an older layout, without per-part runs, are
        # dropped).
        kept = json.loads(json_path.read_text())
        report.update({k: v for k, v in kept.items()
                       if k in report and isinstance(v, dict) and "rows" in v})
    report["reliable_ess"] = RELIABLE_ESS
    settings = {k: v for k, v in vars(args).items()
                if k not in ("worker", "n", "dim", "epsilon", "out", "part")}
    for part, key, run in (("dims", "by_dimension", by_dimension), ("sizes", "by_size", by_size)):
        if args.part not in ("all", part):
            continue
        provenance = Run.start(__file__, argv)
        rows = run(args)
        report[key] = {**provenance.finish(), "settings": settings, "rows": rows}
    write_report(report, args.out)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
