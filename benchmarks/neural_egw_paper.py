"""Wang and Goldfeld (2024), neural entropic OT and Gromov-Wasserstein, claim by claim.

    python benchmarks/neural_egw_paper.py --mnist-dir DIR              # the full run (~25 min)
    python benchmarks/neural_egw_paper.py --quick --mnist-dir DIR --output /tmp/negw  # smoke

"Neural Entropic Optimal Transport and Gromov-Wasserstein Alignment" (arXiv 2312.07397)
replaces the Sinkhorn step by a neural potential trained on mini-batches
(:mod:`wormhole.neural_ot`). Its experiments, each reproduced here at the scale of a 2-core CPU
(every reduction is listed in the report):

1. Figure 2 (a), (b): relative error of neural EGW over dimensions and sample sizes, for
   ``mu = nu = Unif([-1/sqrt(d), 1/sqrt(d)]^d)`` (quadratic EGW; no closed form, so the
   reference is the best converged ott-jax entropic GW over several starts on a larger
   sample, two independent samples giving its spread) and for centred Gaussians with random
   covariances (inner-product EGW, against its closed form
   :func:`~wormhole.neural_ot.gaussian.entropic_igw_gaussians`); neural EOT against the
   Gaussian closed form in the same sweep. Every estimate is on one fixed sample of ``n``
   points per side, so its error includes the sample's.
2. Figure 2 (c): the learned alignment plan of two 1-D Gaussians against the true (Gaussian)
   EIGW plan: densities, conditional means, total variation.
3. Figure 3: EIGW on MNIST (test split, 784-vectors in [0, 1]): the orthogonal-invariance gap
   ``|IGW(mu, mu) - IGW(U#mu, V#mu)|`` for random orthogonal ``U, V``, and the matrix of
   EIGW between digit classes.
4. The rate ``k^-1/2 + n^-1/2``: error against the network width ``k`` (population problem)
   and against the sample size ``n`` (large ``k``), log-log with the reference slope.
5. Scale: the sample size at which ott-jax runs out of the time or memory budget on this
   machine while the neural estimator still runs, for EOT (dense and online Sinkhorn, through
   ``benchmarks/neural_ot.py``'s workers) and for EGW (ott-jax's GromovWasserstein holds
   ``n x n`` matrices), each size in its own process.

Writes ``benchmarks/results/neural_egw_paper.{md,json}`` and PNG figures beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks import neural_ot as eot_scale  # noqa: E402
from benchmarks._harness import Run, format_seconds, markdown_table, write_result  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "neural_egw_paper"
TITLE = "Neural entropic OT and GW (Wang and Goldfeld 2024), claim by claim"
PROBLEMS = {"egw_uniform": "EGW, mu = nu uniform on the cube (ott-jax reference)",
            "eigw_gaussian": "EIGW, centred Gaussians (closed form)",
            "eot_gaussian": "EOT, Gaussians (closed form)"}


# --------------------------------------------------------------------------- data


def uniform_cube(n: int, dim: int, seed: int) -> np.ndarray:
    """``[n, d]`` draws of ``Unif([-1/sqrt(d), 1/sqrt(d)]^d)`` (E||x||^2 = 1/3 in every d)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (n, dim)).astype(np.float32) / np.float32(np.sqrt(dim))


def cube_epsilon(dim: int, ratio: float) -> float:
    """EGW's epsilon for the cube: ``ratio`` times ``16 l^2``, ``l = 1 / (3 d)`` the variance
    of a coordinate. Below ``16 l^2`` an axis is aligned by the optimal plan (the Gaussian
    analogue of the threshold ``4 l m > eps`` of :func:`entropic_igw_gaussians`, with the
    quadratic cost's weight 4x the inner product's); above it the plan is independent and
    EGW is its coupling-free part, so a fixed epsilon would make every d above 2 trivial."""
    return ratio * 16.0 / (3.0 * dim) ** 2


def centred_gaussians(dim: int, seed: int):
    from wormhole.neural_ot import random_gaussian

    return (random_gaussian(dim, 2 * seed, mean_scale=0.0),
            random_gaussian(dim, 2 * seed + 1, mean_scale=0.0))


def draw(gaussian, n: int, seed: int) -> np.ndarray:
    return eot_scale._draw(gaussian, n, seed)


def random_orthogonal(dim: int, seed: int) -> np.ndarray:
    """A Haar-random ``[d, d]`` orthogonal matrix."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def mnist_test_split(directory: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST test split: images ``[10000, 784]`` in [0, 1] and labels ``[10000]``, read
    with :func:`wormhole.data.loaders.idx.read_idx` from ``directory`` (default:
    ``$WORMHOLE_DATA/mnist``, then the loader's cache)."""
    from wormhole.data.loaders.idx import cache_dir, read_idx

    candidates = ([Path(directory)] if directory else
                  [Path(os.environ.get("WORMHOLE_DATA", "/nonexistent")) / "mnist",
                   cache_dir("mnist")])
    for folder in candidates:
        for suffix in (".gz", ""):
            images = folder / f"t10k-images-idx3-ubyte{suffix}"
            labels = folder / f"t10k-labels-idx1-ubyte{suffix}"
            if images.is_file() and labels.is_file():
                x = read_idx(images).reshape(-1, 784).astype(np.float32) / 255.0
                return x, read_idx(labels).astype(np.int64)
    raise FileNotFoundError(
        f"MNIST test split (t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) not "
        f"found in {', '.join(map(str, candidates))}; pass --mnist-dir DIR.")


# --------------------------------------------------------------------------- estimators


def settings(args, width: int | None = None, steps: int | None = None,
             batch: int | None = None) -> dict:
    from wormhole.neural_ot import NetworkConfig, NeuralEvalConfig, NeuralTrainConfig

    return {"network": NetworkConfig(width=width or args.width),
            "train": NeuralTrainConfig(steps=steps or args.steps,
                                       batch_size=batch or args.batch_size),
            "evaluation": NeuralEvalConfig(eval_size=args.eval_size,
                                           reference_size=args.reference_size)}


def neural(kind: str, x, y, epsilon: float, **kwargs) -> dict:
    """One neural estimate (``kind`` 'eot', 'egw' or 'eigw') with its time."""
    from wormhole.neural_ot import neural_egw, neural_eot

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows record reliability themselves
        result = (neural_eot(x, y, epsilon, **kwargs) if kind == "eot" else
                  neural_egw(x, y, epsilon, kind, **kwargs))
    row = {"value": result.cost, "stderr": result.stderr, "reliable": result.reliable,
           "seconds": time.perf_counter() - start, "result": result}
    if kind != "eot":
        row["moment_term"] = result.moment_term
    return row


def _public(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "result"}


def cube_reference(dim: int, epsilon: float, n: int, seeds: tuple[int, ...],
                   all_starts: bool) -> dict:
    """EGW of the cube by ott-jax on ``n`` points per side, for each pair of samples the best
    converged solve. The start is ``A = l I / 2``: the axes matched, as ``mu = nu`` allows
    (without entropy the identity coupling is optimal, GW = 0). ``all_starts`` also tries
    ott-jax's default start and the neural estimator's principal-axes start (slow to
    converge in higher d), to check that they find nothing lower."""
    import jax.numpy as jnp

    from wormhole.neural_ot import entropic_gw
    from wormhole.neural_ot.gw import _initial_matrix

    solves = []
    for seed in seeds:
        x, y = uniform_cube(n, dim, 1000 + 2 * seed), uniform_cube(n, dim, 1001 + 2 * seed)
        starts = {"identity": np.eye(dim) / (6.0 * dim)}
        if all_starts:
            starts["default"] = None
            starts["principal axes"] = np.asarray(_initial_matrix(
                jnp.asarray(x - x.mean(0)), jnp.asarray(y - y.mean(0))))
        for name, init in starts.items():
            start = time.perf_counter()
            solution = entropic_gw(x, y, epsilon, "egw", init_matrix=init)
            solves.append({"seed": seed, "start": name, "value": solution.cost,
                           "converged": solution.converged,
                           "seconds": time.perf_counter() - start})
    best = []
    for seed in seeds:
        ok = [s["value"] for s in solves if s["seed"] == seed and s["converged"]]
        best.append(min(ok) if ok else min(s["value"] for s in solves if s["seed"] == seed))
    return {"dim": dim, "epsilon": epsilon, "n": n, "solves": solves, "best": best,
            "value": float(np.mean(best)), "spread": float(np.ptp(best)) if len(best) > 1 else 0.0}


# --------------------------------------------------------------------------- 1. Figure 2 (a, b)


def sweep(args) -> dict:
    from wormhole.neural_ot import entropic_igw_gaussians, entropic_ot_gaussians

    references = {}
    for dim in args.dims:
        eps = cube_epsilon(dim, args.cube_ratio)
        references[dim] = cube_reference(dim, eps, args.reference_n,
                                         tuple(range(args.reference_seeds)),
                                         all_starts=dim == min(args.dims))
        r = references[dim]
        print(f"cube d={dim}: ott-jax reference {r['value']:.5g} (spread {r['spread']:.2g})",
              flush=True)
    rows = []
    for dim in args.dims:
        mu, nu = centred_gaussians(dim, args.seed)
        mu_eot, nu_eot = eot_scale._gaussians(dim, args.seed)  # the same, with means
        truths = {"egw_uniform": references[dim]["value"],
                  "eigw_gaussian": entropic_igw_gaussians(mu, nu, args.eigw_epsilon),
                  "eot_gaussian": entropic_ot_gaussians(mu_eot, nu_eot, args.eot_ratio * dim)}
        for n in args.sizes:
            samples = {
                "egw_uniform": ("egw", uniform_cube(n, dim, 10 * n + 1),
                                uniform_cube(n, dim, 10 * n + 2),
                                cube_epsilon(dim, args.cube_ratio)),
                "eigw_gaussian": ("eigw", draw(mu, n, 10 * n + 3), draw(nu, n, 10 * n + 4),
                                  args.eigw_epsilon),
                "eot_gaussian": ("eot", draw(mu_eot, n, 10 * n + 5), draw(nu_eot, n, 10 * n + 6),
                                 args.eot_ratio * dim)}
            for problem, (kind, x, y, eps) in samples.items():
                est = neural(kind, x, y, eps, **settings(args))
                truth = truths[problem]
                row = {"problem": problem, "dim": dim, "n": n, "epsilon": eps,
                       "reference": truth, **_public(est),
                       "relative_error": abs(est["value"] - truth) / abs(truth),
                       "signed_error": (est["value"] - truth) / abs(truth)}
                if kind != "eot":
                    # How much of the value the alignment carries: 0 = independent coupling.
                    row["coupling_share"] = 1.0 - truth / _independent_value(kind, x, y)
                rows.append(row)
                print(f"{problem:14s} d={dim} n={n:6d}: {row['value']:.5g} vs {truth:.5g} "
                      f"({row['signed_error']:+.2%}, {row['seconds']:.0f} s)", flush=True)
    return {"references": list(references.values()), "rows": rows}


def _independent_value(kind: str, x: np.ndarray, y: np.ndarray) -> float:
    """The GW cost of the independent coupling (A = 0, no entropy), from the moments."""
    from wormhole.neural_ot.gw import moment_term

    if kind == "eigw":
        return moment_term(kind, x, y)
    x, y = x - x.mean(0), y - y.mean(0)
    return moment_term(kind, x, y) - 4.0 * float(np.mean(np.sum(x**2, 1)) *
                                                 np.mean(np.sum(y**2, 1)))


# --------------------------------------------------------------------------- 2. Figure 2 (c)


def plan_1d(args) -> dict:
    """The learned EIGW plan of N(0, var_x) and N(0, var_y) against the true one: a Gaussian
    coupling with covariance ``c``, ``c^2 = var_x var_y - eps / 4`` (the sign is free, since
    y -> -y keeps GW; the network's is used)."""
    import jax

    from wormhole.neural_ot import Gaussian, entropic_igw_gaussians

    var_x, var_y, eps = 1.0, 2.0, args.eigw_epsilon
    mu = Gaussian(np.zeros(1), np.array([[var_x]]))
    nu = Gaussian(np.zeros(1), np.array([[var_y]]))
    est = neural("eigw", mu.sample, nu.sample, eps, **settings(args))
    plan, matrix = est["result"].plan, est["result"].matrix
    cross = float(np.sign(matrix[0, 0]) or 1.0) * np.sqrt(var_x * var_y - eps / 4.0)

    def true_density(a, b):
        return _gaussian_pair_density(a[:, 0], b[:, 0], var_x, var_y, cross)

    x = np.asarray(mu.sample(jax.random.PRNGKey(1), 2000))
    y = np.asarray(nu.sample(jax.random.PRNGKey(2), 2000))
    # TV(learned, true) = E_{mu x nu} |d learned - d true| / 2, Monte Carlo on 2000 x 2000.
    tv = 0.5 * np.mean(np.abs(np.asarray(plan(x, y), np.float64) - true_density(x, y)))
    grid_x = np.linspace(-2.5, 2.5, 121)[:, None] * np.sqrt(var_x)
    grid_y = np.linspace(-2.5, 2.5, 121)[:, None] * np.sqrt(var_y)
    shown = np.linspace(-2.0, 2.0, 41)[:, None] * np.sqrt(var_x)
    candidates = np.asarray(nu.sample(jax.random.PRNGKey(3), 20000))
    return {"variances": [var_x, var_y], "epsilon": eps,
            "closed_form": entropic_igw_gaussians(mu, nu, eps), **_public(est),
            "cross_moment": float(2 * matrix[0, 0]), "true_cross": cross,
            "total_variation": float(tv),
            "grid_x": grid_x[:, 0].tolist(), "grid_y": grid_y[:, 0].tolist(),
            "learned_grid": np.asarray(plan(grid_x, grid_y)).tolist(),
            "true_grid": true_density(grid_x, grid_y).tolist(),
            "shown_x": shown[:, 0].tolist(),
            "learned_mean": np.asarray(plan.barycentric_projection(shown, candidates))[:, 0]
            .tolist(),
            "true_mean": (cross / var_x * shown[:, 0]).tolist()}


def _gaussian_pair_density(x: np.ndarray, y: np.ndarray, var_x: float, var_y: float,
                           c: float) -> np.ndarray:
    """``dpi / d(mu x nu)`` of the Gaussian coupling with variances var_x, var_y and
    covariance c; ``x: [n]``, ``y: [k]`` -> ``[n, k]``."""
    det = var_x * var_y - c**2
    xx, yy = x[:, None], y[None, :]
    quad = (var_y * xx**2 - 2 * c * xx * yy + var_x * yy**2) / det
    return np.sqrt(var_x * var_y / det) * np.exp(-0.5 * quad + 0.5 * xx**2 / var_x
                                                  + 0.5 * yy**2 / var_y)


# --------------------------------------------------------------------------- 3. Figure 3 (MNIST)


def mnist(args) -> dict:
    images, labels = mnist_test_split(args.mnist_dir)
    rng = np.random.default_rng(args.seed)
    kwargs = settings(args, width=args.mnist_width, steps=args.mnist_steps,
                      batch=args.mnist_batch)
    invariance_kwargs = settings(args, width=args.mnist_width, steps=args.invariance_steps,
                                 batch=args.mnist_batch)
    eps = args.mnist_epsilon

    base = images[rng.choice(len(images), args.invariance_n, replace=False)]
    invariance = []
    for seed in range(args.invariance_seeds):  # the estimator's own spread: another seed
        kw = {**invariance_kwargs, "train": replace(invariance_kwargs["train"], seed=seed)}
        invariance.append({"transform": "none", "seed": seed,
                           **_public(neural("eigw", base, base, eps, **kw))})
    for draw_index in range(args.rotations):
        u = random_orthogonal(784, 2 * draw_index + 11)
        v = random_orthogonal(784, 2 * draw_index + 12)
        invariance.append({"transform": f"U{draw_index}, V{draw_index}", "seed": 0,
                           **_public(neural("eigw", base @ u.T, base @ v.T, eps,
                                            **invariance_kwargs))})
    reference = invariance[0]["value"]
    for row in invariance:
        row["gap"] = abs(row["value"] - reference)
        row["relative_gap"] = row["gap"] / abs(reference)
        row["gap_to_moments"] = row["gap"] / row["moment_term"]
    print("MNIST invariance: " + ", ".join(f"{r['transform']} (seed {r['seed']}) "
                                           f"{r['value']:.5g}" for r in invariance), flush=True)

    classes = list(range(args.classes))
    halves = {}
    for c in classes:
        members = rng.permutation(np.flatnonzero(labels == c))
        halves[c] = (images[members[:args.class_n]], images[members[args.class_n:2 * args.class_n]])
    matrix = np.zeros((len(classes), len(classes)))
    seconds = []
    for i in classes:
        for j in classes[i:]:
            x, y = (halves[i][0], halves[i][1]) if i == j else (halves[i][0], halves[j][0])
            est = neural("eigw", x, y, eps, **kwargs)
            matrix[i, j] = matrix[j, i] = est["value"]
            seconds.append(est["seconds"])
        print(f"MNIST class {i}: " + " ".join(f"{v:.4g}" for v in matrix[i, i:]), flush=True)
    off = matrix + np.diag(np.full(len(classes), np.inf))
    diagonal_smallest = [bool(matrix[c, c] < off[c].min()) for c in classes]
    # EIGW >= 0 (a GW cost plus a KL): a negative estimate is a failed one.
    negative = [[int(i), int(j)] for i, j in zip(*np.nonzero(np.triu(matrix) < 0), strict=True)]
    # 0 <= EIGW(mu_n, mu_n) <= eps log n: the identity coupling has GW cost 0, KL log n.
    return {"epsilon": eps, "invariance_n": args.invariance_n, "invariance": invariance,
            "self_upper_bound": float(eps * np.log(args.invariance_n)),
            "invariance_steps": args.invariance_steps, "class_steps": args.mnist_steps,
            "class_n": args.class_n, "classes": classes, "matrix": matrix.tolist(),
            "diagonal_smallest": diagonal_smallest, "negative": negative,
            "class_seconds": float(np.sum(seconds)),
            "nearest_other": [int(np.argmin(off[c])) for c in classes]}


# --------------------------------------------------------------------------- 4. the rate


def rate(args) -> dict:
    """Error of neural EIGW between two centred Gaussians against width k (fresh draws at
    every step: the population problem) and against sample size n (width ``args.width``),
    averaged over seeds; the fitted log-log slopes."""
    from wormhole.neural_ot import entropic_igw_gaussians

    dim, eps = args.rate_dim, args.eigw_epsilon
    mu, nu = centred_gaussians(dim, args.seed + 1)
    truth = entropic_igw_gaussians(mu, nu, eps)

    def run(x, y, width: int, seed: int) -> dict:
        kw = settings(args, width=width)
        kw["train"] = replace(kw["train"], seed=seed)
        est = neural("eigw", x, y, eps, **kw)
        return {**_public(est), "relative_error": abs(est["value"] - truth) / truth}

    widths, sizes = [], []
    for k in args.rate_widths:
        runs = [run(mu.sample, nu.sample, k, s) for s in range(args.rate_seeds)]
        widths.append({"k": k, "runs": runs,
                       "mean_error": float(np.mean([r["relative_error"] for r in runs]))})
        print(f"rate k={k:4d}: mean rel. error {widths[-1]['mean_error']:.3%}", flush=True)
    for n in args.rate_sizes:
        runs = [run(draw(mu, n, 7 * n + s), draw(nu, n, 7 * n + s + 100), args.width, s)
                for s in range(args.rate_seeds)]
        sizes.append({"n": n, "runs": runs,
                      "mean_error": float(np.mean([r["relative_error"] for r in runs]))})
        print(f"rate n={n:6d}: mean rel. error {sizes[-1]['mean_error']:.3%}", flush=True)
    return {"dim": dim, "epsilon": eps, "closed_form": truth, "widths": widths, "sizes": sizes,
            "slope_k": _slope([r["k"] for r in widths], [r["mean_error"] for r in widths]),
            "slope_k_without_smallest": _slope([r["k"] for r in widths[1:]],
                                               [r["mean_error"] for r in widths[1:]]),
            "slope_n": _slope([r["n"] for r in sizes], [r["mean_error"] for r in sizes])}


def _slope(xs, ys) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(xs), np.log(np.maximum(ys, 1e-12)), 1)[0])


# --------------------------------------------------------------------------- 5. scale


def egw_worker(args) -> dict:
    """One EGW solve of ``args.n`` cube points per side in its own process; a JSON line."""
    x = uniform_cube(args.n, args.dim, 2 * args.seed)
    y = uniform_cube(args.n, args.dim, 2 * args.seed + 1)
    baseline = eot_scale._current_rss_gib()
    start = time.perf_counter()
    if args.worker == "egw-neural":
        est = neural("egw", x, y, args.epsilon, **settings(args))
        cost, converged, extra = est["value"], True, {"stderr": est["stderr"]}
    else:
        from wormhole.neural_ot import entropic_gw

        solution = entropic_gw(x, y, args.epsilon, "egw", init_matrix=np.eye(args.dim)
                               / (6.0 * args.dim))
        cost, converged, extra = solution.cost, solution.converged, {}
    return {"method": args.worker, "n": args.n, "dim": args.dim, "epsilon": args.epsilon,
            "cost": cost, "converged": converged, "seconds": time.perf_counter() - start,
            "peak_gib": eot_scale._peak_rss_gib(), "baseline_gib": baseline, **extra}


def _run_egw_worker(method: str, n: int, dim: int, eps: float, args) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, "--n", str(n),
           "--dim", str(dim), "--epsilon", repr(eps), "--seed", str(args.seed),
           "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--width", str(args.width), "--eval-size", str(args.eval_size),
           "--reference-size", str(args.reference_size)]
    return eot_scale.worker_result(cmd, {"method": method, "n": n, "dim": dim,
                                         "epsilon": eps})


def _budgets(args):
    """Reasons (or None) to stop before size n, predicted from the last size run."""

    def dense(last, n):
        memory = eot_scale._predicted_memory(last, n)
        seconds = eot_scale._predicted_seconds(last, n)
        over = []
        if seconds > args.time_budget_s:
            over.append(f"predicted {seconds:.0f} s > budget {args.time_budget_s:g} s")
        if memory > args.memory_budget_gib:
            over.append(f"predicted peak {memory:.1f} GiB > budget "
                        f"{args.memory_budget_gib:g} GiB")
        if not over:
            return None
        if len(over) == 1:  # say how far the other resource was from its budget
            over.append(f"predicted peak {memory:.1f} GiB" if seconds > args.time_budget_s
                        else f"predicted {seconds:.0f} s")
        return "; ".join(over)

    def online(last, n):
        seconds = eot_scale._predicted_seconds(last, n)
        return (f"predicted {seconds:.0f} s > budget {args.time_budget_s:g} s"
                if seconds > args.time_budget_s else None)

    return dense, online


def scale(args) -> dict:
    dense, online = _budgets(args)
    eot_dim = args.scale_dim
    eot_eps = args.eot_ratio * eot_dim
    # benchmarks/neural_ot.py's workers (Gaussians, closed-form errors), with our settings.
    worker_args = argparse.Namespace(
        seed=args.seed, steps=args.steps, batch_size=args.batch_size, width=args.width,
        eval_size=args.eval_size, reference_size=args.reference_size,
        sinkhorn_iterations=args.sinkhorn_iterations, online_batch=args.online_batch,
        reference_batch_size=None)
    eot_rows = eot_scale._grow("neural", args.neural_sizes, eot_dim, eot_eps, worker_args,
                               lambda last, n: None)
    eot_rows += eot_scale._grow("sinkhorn", args.sinkhorn_sizes, eot_dim, eot_eps, worker_args,
                                dense)
    eot_rows += eot_scale._grow("online", args.online_sizes, eot_dim, eot_eps, worker_args,
                                online)
    egw_dim = args.scale_egw_dim
    egw_eps = cube_epsilon(egw_dim, args.cube_ratio)
    egw_rows = []
    for method, sizes, budget in (("egw-neural", args.neural_sizes, lambda last, n: None),
                                  ("egw-ott", args.gw_sizes, dense)):
        last = None
        for n in sizes:
            reason = None if last is None else budget(last, n)
            if reason:
                egw_rows.append({"method": method, "n": n, "dim": egw_dim, "epsilon": egw_eps,
                                 "skipped": reason})
                break
            egw_rows.append(_run_egw_worker(method, n, egw_dim, egw_eps, args))
            print(f"{method:10s} n={n:>8d}: {_scale_cell(egw_rows[-1])}", flush=True)
            if "failed" in egw_rows[-1]:
                break
            last = egw_rows[-1]
    return {"eot": {"dim": eot_dim, "epsilon": eot_eps, "rows": eot_rows},
            "egw": {"dim": egw_dim, "epsilon": egw_eps, "rows": egw_rows},
            "time_budget_s": args.time_budget_s, "memory_budget_gib": args.memory_budget_gib}


def _compare_with_cube_reference(part: dict, references: list[dict]) -> None:
    """Give the EGW scale rows the relative error against the sweep's cube reference of the
    same dimension and epsilon, when there is one."""
    for ref in references:
        if ref["dim"] == part["dim"] and np.isclose(ref["epsilon"], part["epsilon"]):
            part["reference"] = ref["value"]
            for row in part["rows"]:
                if "cost" in row:
                    row["relative_error"] = abs(row["cost"] - ref["value"]) / ref["value"]


def _scale_notes(sc: dict) -> list[str]:
    """Runs that went over the time budget although predicted under it, and what the next
    doubling of the largest dense solve would need (its memory above baseline grows as n^2)."""
    notes = []
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2.0**30
    for part in ("eot", "egw"):
        rows = sc[part]["rows"]
        for r in rows:
            if "cost" in r and r["seconds"] > sc["time_budget_s"]:
                notes.append(f"- {part.upper()}, {_METHODS[r['method']]} at n = {r['n']:,} took "
                             f"{r['seconds']:.0f} s, over the {sc['time_budget_s']:g} s budget: "
                             "the n^2 prediction from the previous size was too low.")
        for method in ("sinkhorn", "egw-ott"):
            ran = [r for r in rows if r["method"] == method and "cost" in r]
            stopped = [r for r in rows if r["method"] == method and "cost" not in r]
            if ran and not stopped:  # every listed size ran: say what the next would need
                top = max(ran, key=lambda r: r["n"])
                need = top["baseline_gib"] + 4 * (top["peak_gib"] - top["baseline_gib"])
                notes.append(f"- {part.upper()}, {_METHODS[method]}: at 2 x {top['n']:,} points "
                             f"per side the n^2 growth predicts a peak of {need:.0f} GiB "
                             f"(this machine: {ram:.0f} GiB of memory) and "
                             f"{4 * top['seconds']:.0f} s.")
    return notes


def _scale_cell(row: dict) -> str:
    if "skipped" in row:
        return f"not run: {row['skipped']}"
    if "failed" in row:
        return f"failed: {row['failed']}"
    return (f"value {row['cost']:.5g}, {row['seconds']:.1f} s, peak {row['peak_gib']:.2f} GiB"
            + ("" if row["converged"] else " (not converged)"))


# --------------------------------------------------------------------------- figures


def plot(result: dict, out: Path) -> list[str]:
    """The PNG figures, written as ``out.<name>.png``; their file names."""
    from matplotlib.figure import Figure

    names = []

    def save(fig, name):
        path = out.with_name(f"{out.name}.{name}.png")
        fig.savefig(path, dpi=90, bbox_inches="tight")
        names.append(path.name)

    if "sweep" in result:
        rows = result["sweep"]["rows"]
        fig = Figure(figsize=(13, 3.8))
        for i, problem in enumerate(PROBLEMS):
            ax = fig.add_subplot(1, 3, i + 1)
            for dim in sorted({r["dim"] for r in rows}):
                mine = [r for r in rows if r["problem"] == problem and r["dim"] == dim]
                ax.plot([r["n"] for r in mine], [100 * r["relative_error"] for r in mine],
                        "o-", label=f"d = {dim}")
            ax.set_xscale("log")
            ax.set_xlabel("n (samples per side)")
            ax.set_ylabel("relative error (%)")
            ax.set_title(PROBLEMS[problem], fontsize=9)
            ax.legend(fontsize=8)
        fig.suptitle("Figure 2 (a, b): neural estimates against trusted references")
        save(fig, "fig2ab")
    if "plan" in result:
        p = result["plan"]
        fig = Figure(figsize=(13, 3.8))
        gx, gy = np.asarray(p["grid_x"]), np.asarray(p["grid_y"])
        # The joint density: dpi / d(mu x nu) times the two marginal densities.
        marginals = np.outer(np.exp(-0.5 * gx**2 / p["variances"][0]),
                             np.exp(-0.5 * gy**2 / p["variances"][1]))
        marginals /= 2 * np.pi * np.sqrt(p["variances"][0] * p["variances"][1])
        joint = {key: np.asarray(p[key]) * marginals for key in ("learned_grid", "true_grid")}
        top = float(joint["true_grid"].max())
        for i, (key, title) in enumerate((("learned_grid", "learned (neural)"),
                                          ("true_grid", "true (closed form)"))):
            ax = fig.add_subplot(1, 3, i + 1)
            ax.imshow(joint[key], extent=[gy[0], gy[-1], gx[0], gx[-1]], origin="lower",
                      vmin=0, vmax=top, cmap="magma", aspect="auto")
            ax.set_title(f"plan density pi(x, y), {title}", fontsize=9)
            ax.set_xlabel("y")
            ax.set_ylabel("x")
        ax = fig.add_subplot(1, 3, 3)
        ax.plot(p["shown_x"], p["learned_mean"], ".-", color="#d62728", label="learned")
        ax.plot(p["shown_x"], p["true_mean"], "--", color="#2ca02c", label="true")
        ax.set_xlabel("x")
        ax.set_ylabel("E[y | x]")
        ax.legend(fontsize=8)
        fig.suptitle(f"Figure 2 (c): EIGW plan, N(0, {p['variances'][0]:g}) to "
                     f"N(0, {p['variances'][1]:g}), eps = {p['epsilon']:g}; TV "
                     f"{p['total_variation']:.3f}")
        save(fig, "fig2c_plan")
    if "mnist" in result:
        mn = result["mnist"]
        fig = Figure(figsize=(12, 4.6))
        ax = fig.add_subplot(1, 2, 1)
        inv = mn["invariance"]
        ax.bar(range(len(inv)), [r["value"] for r in inv],
               yerr=[r["stderr"] for r in inv], color=["#1f77b4" if r["transform"] == "none"
                                                       else "#ff7f0e" for r in inv])
        ax.set_xticks(range(len(inv)))
        ax.set_xticklabels([("mu, mu" if r["transform"] == "none" else r["transform"])
                            + f"\nseed {r['seed']}" for r in inv], fontsize=7)
        ax.set_ylabel("neural EIGW (+- s.e.)")
        ax.set_title("orthogonal invariance: IGW(mu, mu) vs IGW(U#mu, V#mu)", fontsize=9)
        ax = fig.add_subplot(1, 2, 2)
        image = ax.imshow(np.asarray(mn["matrix"]), cmap="viridis")
        ax.set_xticks(range(len(mn["classes"])))
        ax.set_yticks(range(len(mn["classes"])))
        ax.set_xlabel("digit")
        ax.set_ylabel("digit")
        ax.set_title(f"EIGW between digit classes ({mn['class_n']} images each)", fontsize=9)
        fig.colorbar(image, ax=ax)
        fig.suptitle("Figure 3: EIGW on MNIST (784-vectors in [0, 1])")
        save(fig, "fig3_mnist")
    if "rate" in result:
        r = result["rate"]
        fig = Figure(figsize=(10, 3.8))
        for i, (key, var) in enumerate((("widths", "k"), ("sizes", "n"))):
            ax = fig.add_subplot(1, 2, i + 1)
            xs = np.array([row[var] for row in r[key]], float)
            ys = np.array([row["mean_error"] for row in r[key]])
            for row in r[key]:
                ax.plot([row[var]] * len(row["runs"]),
                        [run["relative_error"] for run in row["runs"]], ".", color="0.6")
            ax.plot(xs, ys, "o-", color="#d62728",
                    label=f"neural (fitted slope {r['slope_' + var]:.2f})")
            ax.plot(xs, ys[0] * (xs / xs[0]) ** -0.5, "--", color="k", label="slope -1/2")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("width k" if var == "k" else "samples per side n")
            ax.set_ylabel("relative error")
            ax.legend(fontsize=8)
        fig.suptitle(f"Rate k^-1/2 + n^-1/2: neural EIGW, centred Gaussians, d = {r['dim']}")
        save(fig, "rate")
    if "scale" in result:
        fig = Figure(figsize=(10, 3.8))
        for i, part in enumerate(("eot", "egw")):
            ax = fig.add_subplot(1, 2, i + 1)
            rows = result["scale"][part]["rows"]
            for method in dict.fromkeys(r["method"] for r in rows):
                ran = [r for r in rows if r["method"] == method and "cost" in r]
                if ran:
                    ax.plot([r["n"] for r in ran], [r["seconds"] for r in ran], "o-",
                            label=_METHODS.get(method, method))
                for r in rows:
                    if r["method"] == method and "cost" not in r:
                        ax.axvline(r["n"], ls=":", color="0.5")
            ax.axhline(result["scale"]["time_budget_s"], ls="--", color="k", label="time budget")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("n per side")
            ax.set_ylabel("seconds")
            ax.set_title(f"{part.upper()}, d = {result['scale'][part]['dim']} (dotted: not run)",
                         fontsize=9)
            ax.legend(fontsize=8)
        save(fig, "scale")
    return names


_METHODS = {"neural": "neural EOT", "sinkhorn": "Sinkhorn, dense",
            "online": "Sinkhorn, online", "egw-neural": "neural EGW",
            "egw-ott": "ott-jax GW, dense"}


# --------------------------------------------------------------------------- report


def report(result: dict) -> list[str]:
    s = result["settings"]
    lines = []
    if result.get("report_rendered_by"):
        lines += [f"(The numbers and figures are those of the run above; this text was "
                  f"re-rendered from its JSON by `{result['report_rendered_by']}`.)", ""]
    lines += ["## The claims", ""]
    lines += markdown_table(["paper's claim", "here"], claims(result))
    lines += ["", "## What was scaled down", "", *scaled_down(s), ""]
    if "sweep" in result:
        lines += sweep_section(result["sweep"], s)
    if "plan" in result:
        p = result["plan"]
        lines += ["## Figure 2 (c): the alignment plan in 1-D", "",
                  f"Neural EIGW between N(0, {p['variances'][0]:g}) and "
                  f"N(0, {p['variances'][1]:g}) at eps = {p['epsilon']:g} (fresh draws every "
                  f"step): {p['value']:.5g} +- {p['stderr']:.2g} against the closed form "
                  f"{p['closed_form']:.5g} "
                  f"({(p['value'] - p['closed_form']) / p['closed_form']:+.2%}). "
                  f"The true plan is Gaussian with cross-covariance c, c^2 = l m - eps / 4 = "
                  f"{p['true_cross'] ** 2:.4g} (its sign is free: y -> -y leaves GW unchanged, "
                  f"and the one the network chose is shown); the learned plan's cross moment "
                  f"2A = {p['cross_moment']:.4f} against c = {p['true_cross']:.4f}. Total "
                  f"variation between the learned and the true plan (Monte Carlo over "
                  f"2,000 x 2,000 pairs of mu x nu): **{p['total_variation']:.3f}**.", "",
                  f"![plan]({result['figures_by_name'].get('fig2c_plan', '')})", ""]
    if "mnist" in result:
        lines += mnist_section(result["mnist"], result)
    if "rate" in result:
        lines += rate_section(result["rate"], result)
    if "scale" in result:
        lines += scale_section(result["scale"], result, s)
    return lines


def _trend_in_n(rows) -> str:
    """Which dimensions' errors fall from the smallest to the largest n."""
    falls, grows = [], []
    for dim in sorted({r["dim"] for r in rows}):
        mine = sorted((r for r in rows if r["dim"] == dim), key=lambda r: r["n"])
        errors = [r["relative_error"] for r in mine]
        (falls if errors[-1] < errors[0] else grows).append(
            f"{dim} ({errors[0]:.1%} -> {errors[-1]:.1%})")
    text = f"falls with n for d = {', '.join(falls)}" if falls else ""
    if grows:
        text += ("; " if text else "") + f"**does not fall** with n for d = {', '.join(grows)}"
    return text


def _negative_entries(mn: dict) -> list[list[int]]:
    """``(i, j)``, ``i <= j``, of the class matrix's negative (so failed) estimates."""
    if "negative" in mn:
        return mn["negative"]
    matrix = np.asarray(mn["matrix"])
    return [[int(i), int(j)] for i, j in zip(*np.nonzero(np.triu(matrix) < 0), strict=True)]


def _share(rows, problem):
    return [r for r in rows if r["problem"] == problem]


def claims(result: dict) -> list[list[str]]:
    out = []
    if "sweep" in result:
        rows = result["sweep"]["rows"]
        for problem, text in (
                ("egw_uniform", "Fig. 2 (a): neural EGW is accurate for mu = nu uniform on "
                                "[-1/sqrt d, 1/sqrt d]^d, and improves with n"),
                ("eigw_gaussian", "Fig. 2 (b): the same for Gaussians with random covariances"),
                ("eot_gaussian", "neural EOT against the Gaussian closed form")):
            mine = _share(rows, problem)
            top = max(r["n"] for r in mine)
            at_top = [r for r in mine if r["n"] == top]
            out.append([text, f"relative error at n = {top:,}: "
                              f"{min(r['relative_error'] for r in at_top):.1%} to "
                              f"{max(r['relative_error'] for r in at_top):.1%} over d = "
                              f"{', '.join(str(r['dim']) for r in at_top)}; over all n: median "
                              f"{np.median([r['relative_error'] for r in mine]):.1%}, max "
                              f"{max(r['relative_error'] for r in mine):.1%}; "
                              + _trend_in_n(mine)])
    if "plan" in result:
        p = result["plan"]
        out.append(["Fig. 2 (c): the learned alignment plan matches the true one",
                    f"1-D Gaussians: TV(learned, true) = {p['total_variation']:.3f}; cross "
                    f"moment {p['cross_moment']:.3f} vs {p['true_cross']:.3f}"])
    if "mnist" in result:
        mn = result["mnist"]
        rotated = [r for r in mn["invariance"] if r["transform"] != "none"]
        seed = [r for r in mn["invariance"] if r["transform"] == "none"][1:]
        seed_gaps = ", ".join(f"{r['relative_gap']:.1%}" for r in seed)
        base = mn["invariance"][0]
        out.append(["MNIST: IGW(mu, mu) = IGW(U#mu, V#mu) for orthogonal U, V",
                    f"gap {min(r['relative_gap'] for r in rotated):.1%} to "
                    f"{max(r['relative_gap'] for r in rotated):.1%} of the value "
                    f"({min(r['gap_to_moments'] for r in rotated):.2%} to "
                    f"{max(r['gap_to_moments'] for r in rotated):.2%} of the cost's scale "
                    f"S1) over {len(rotated)} random (U, V); another network seed alone: "
                    f"{seed_gaps or 'not run'}. The (mu, mu) estimate {base['value']:.4g} "
                    f"against the truth in [0, eps log n] = [0, {mn['self_upper_bound']:.3g}]"])
        negative = _negative_entries(mn)
        valid = [c for c in mn["classes"] if not any(c in pair for pair in negative)]
        text = (f"{len(mn['classes'])} x {len(mn['classes'])} matrix; the same-class value is "
                f"its row's smallest for {sum(mn['diagonal_smallest'][c] for c in valid)} of "
                f"the {len(valid)} digits whose row has no failed entry")
        if negative:
            text += (f"; **{len(negative)} estimate(s) below 0, impossible for EIGW** "
                     f"(failed: {', '.join(f'({i}, {j})' for i, j in negative)})")
        out.append(["Fig. 3: EIGW between MNIST digit classes", text])
    if "rate" in result:
        r = result["rate"]
        later = _slope([w["k"] for w in r["widths"][1:]],
                       [w["mean_error"] for w in r["widths"][1:]])
        out.append(["error = O(k^-1/2 + n^-1/2) (an upper bound)",
                    f"fitted log-log slopes: {r['slope_k']:.2f} in k "
                    f"({r['widths'][0]['k']}-{r['widths'][-1]['k']}; "
                    f"{later:.2f} "
                    f"from k = {r['widths'][1]['k']}), {r['slope_n']:.2f} in n "
                    f"({r['sizes'][0]['n']:,}-{r['sizes'][-1]['n']:,})"])
    if "scale" in result:
        for part in ("eot", "egw"):
            out.append([f"{part.upper()}: the neural estimator runs at sample sizes where "
                        "Sinkhorn cannot", _scale_summary(result["scale"][part]["rows"])])
    return out


def _scale_summary(rows) -> str:
    bits = []
    for method in dict.fromkeys(r["method"] for r in rows):
        ran = [r for r in rows if r["method"] == method and "cost" in r]
        stopped = [r for r in rows if r["method"] == method and "cost" not in r]
        text = _METHODS.get(method, method)
        if ran:
            top = max(ran, key=lambda r: r["n"])
            text += f" ran n = {top['n']:,} ({top['seconds']:.0f} s, {top['peak_gib']:.1f} GiB)"
        if stopped:
            text += f", stopped at n = {stopped[0]['n']:,}"
        bits.append(text)
    return "; ".join(bits)


def scaled_down(s: dict) -> list[str]:
    return [
        "- The paper's own grids (dimensions, sample sizes, widths, steps; run on a GPU) are "
        "larger; its text was not at hand offline, so only our settings are stated here.",
        f"- Dimensions {s['dims']}; sample sizes {s['sizes']} per side; the cube's reference "
        f"from ott-jax on {s['reference_n']:,} points per side, {s['reference_seeds']} "
        "independent sample(s).",
        f"- Network: one hidden layer of width {s['width']}, {s['steps']} Adam steps (cosine "
        f"decay), batch {s['batch_size']} points per side; the final estimate on the whole "
        f"sample (up to {s['eval_size']:,} points; reference sample up to "
        f"{s['reference_size']:,}).",
        f"- MNIST: {s['invariance_n']} test images for the invariance check "
        f"({s['rotations']} random (U, V)); {s['class_n']} images per class and half-class "
        f"for the class matrix of {s['classes']} digits; width {s['mnist_width']}, "
        f"{s['invariance_steps']} steps (invariance) and {s['mnist_steps']} (classes), batch "
        f"{s['mnist_batch']}.",
        f"- Rate: widths {s['rate_widths']}, sizes {s['rate_sizes']}, {s['rate_seeds']} "
        f"seed(s) each, d = {s['rate_dim']}.",
        f"- Scale: time budget {s['time_budget_s']:g} s and memory budget "
        f"{s['memory_budget_gib']:g} GiB per solve (the machine has 2 cores); neural sizes "
        f"{s['neural_sizes']}; dense Sinkhorn {s['sinkhorn_sizes']}, online "
        f"{s['online_sizes']} (blocks of {s['online_batch']}), ott-jax GW {s['gw_sizes']}.",
    ]


def sweep_section(part: dict, s: dict) -> list[str]:
    lines = ["## Figure 2 (a, b): error over dimensions and sample sizes", "",
             f"eps: cube EGW {s['cube_ratio']:g} x 16 / (3 d)^2 (see `cube_epsilon`: the "
             f"alignment is active, unlike at a fixed eps), Gaussian EIGW {s['eigw_epsilon']:g}, "
             f"Gaussian EOT {s['eot_ratio']:g} d. Each row is one fixed sample of n points per "
             "side (so the error includes the sample's own); s.e. is the estimator's, over "
             "the population. Coupling share: 1 - value / (value of the independent "
             "coupling), how much of the cost the alignment carries.", "",
             "Cube references (ott-jax entropic GW from the matched axes, on independent "
             "pairs of samples; at the smallest d also from ott-jax's default start and "
             "from the principal axes, the best converged value kept):", ""]
    lines += markdown_table(
        ["d", "eps", "n", "solves (start: value)", "reference (mean of best)", "spread"],
        [[r["dim"], f"{r['epsilon']:.4g}", f"{r['n']:,}",
          "; ".join(f"{x['start']}: {x['value']:.5g}" + ("" if x["converged"] else " (not "
                                                         "converged)") for x in r["solves"]),
          f"{r['value']:.5g}", f"{r['spread'] / r['value']:.2%}"] for r in part["references"]])
    lines += [""]
    rows = []
    for r in part["rows"]:
        rows.append([r["problem"], r["dim"], f"{r['n']:,}", f"{r['epsilon']:.4g}",
                     f"{r['reference']:.5g}", f"{r['value']:.5g} +- {r['stderr']:.2g}",
                     f"{r['signed_error']:+.2%}",
                     f"{r['coupling_share']:.0%}" if "coupling_share" in r else "",
                     f"{r['seconds']:.0f}"])
    lines += markdown_table(["problem", "d", "n", "eps", "reference", "neural (+- s.e.)",
                             "error", "coupling share", "s"], rows)
    lines += ["", f"![fig2ab]({part.get('figure', '')})", ""]
    return lines


def mnist_section(mn: dict, result: dict) -> list[str]:
    lines = ["## Figure 3: EIGW on MNIST", "",
             f"eps = {mn['epsilon']:g}; {mn['invariance_steps']} steps for the invariance "
             f"runs, {mn['class_steps']} for the class matrix. Invariance: "
             f"{mn['invariance_n']} random test images, both sides the same sample (mu, mu), "
             "then each side rotated by its own Haar-random 784 x 784 orthogonal matrix; "
             "'seed 1' reruns (mu, mu) with another network seed, the estimator's own spread.", ""]
    lines += markdown_table(
        ["sides", "seed", "neural EIGW (+- s.e.)", "S1", "gap to (mu, mu) seed 0",
         "gap / S1", "s"],
        [[("mu, mu" if r["transform"] == "none" else f"U#mu, V#mu ({r['transform']})"),
          r["seed"], f"{r['value']:.5g} +- {r['stderr']:.2g}", f"{r['moment_term']:.5g}",
          f"{r['relative_gap']:.2%}", f"{r['gap_to_moments']:.3%}", f"{r['seconds']:.0f}"]
         for r in mn["invariance"]])
    lines += ["", "S1 = ||E xx^T||^2 + ||E yy^T||^2, the coupling-free part and the cost's scale "
              "(EIGW = S1 + 8 ||A||^2 + OT_A). For the same sample on both sides the true "
              "value of the empirical measures lies in [0, eps log n] = "
              f"[0, {mn['self_upper_bound']:.3g}] (the identity coupling costs 0 plus KL "
              "log n), so an estimate outside that range is off by at least its distance to it."]
    lines += ["", f"Class matrix: {mn['class_n']} images per class; off-diagonal (i, j) "
              f"between those of i and of j, diagonal (i, i) between two disjoint sets of "
              f"{mn['class_n']} images of i ({format_seconds(mn['class_seconds'])} in all).", ""]
    header = ["digit", *map(str, mn["classes"]), "nearest other"]
    lines += markdown_table(header, [[c, *(f"{v:.4g}" for v in mn["matrix"][c]),
                                      mn["nearest_other"][c]] for c in mn["classes"]])
    negative = _negative_entries(mn)
    if negative:
        lines += ["", f"**Failed estimates**: {', '.join(f'({i}, {j})' for i, j in negative)} "
                  "came out below 0, which EIGW (a GW cost plus a KL term) cannot be: the "
                  f"{mn['class_steps']}-step training did not converge there; those rows are "
                  "left out of the same-class-is-smallest count."]
    lines += ["", "EIGW is neither centred nor normalised: it grows with the second moments "
              "of both sides (S1), so values compare best within a row.", "",
              f"![fig3]({result['figures_by_name'].get('fig3_mnist', '')})", ""]
    return lines


def rate_section(r: dict, result: dict) -> list[str]:
    lines = ["## The rate k^-1/2 + n^-1/2", "",
             f"Neural EIGW between two centred Gaussians in d = {r['dim']} (eps = "
             f"{r['epsilon']:g}, closed form {r['closed_form']:.5g}). Width sweep: fresh draws "
             "at every step (no n term; the final estimate's Monte Carlo error remains). "
             "Sample sweep: one fixed sample of n points per side, the default width.", ""]
    lines += markdown_table(["k", "mean rel. error", "runs"],
                            [[w["k"], f"{w['mean_error']:.3%}",
                              ", ".join(f"{x['relative_error']:.3%}" for x in w["runs"])]
                             for w in r["widths"]])
    lines += [""]
    lines += markdown_table(["n", "mean rel. error", "runs"],
                            [[w["n"], f"{w['mean_error']:.3%}",
                              ", ".join(f"{x['relative_error']:.3%}" for x in w["runs"])]
                             for w in r["sizes"]])
    without = r.get("slope_k_without_smallest",
                    _slope([w["k"] for w in r["widths"][1:]],
                           [w["mean_error"] for w in r["widths"][1:]]))
    lines += ["", f"Fitted slopes: {r['slope_k']:.2f} in k ({without:.2f} without k = "
              f"{r['widths'][0]['k']}), {r['slope_n']:.2f} in n (the "
              "paper's bound: -1/2 each, up to log factors; an upper bound, so a steeper "
              "decay or a floor from optimisation and Monte Carlo error is compatible).", "",
              f"![rate]({result['figures_by_name'].get('rate', '')})", ""]
    return lines


def scale_section(sc: dict, result: dict, s: dict) -> list[str]:
    lines = ["## Scale: where ott-jax stops and the neural estimator still runs", "",
             f"Each row is its own process (peak = its peak resident memory, baseline = after "
             f"drawing the data). A size is not run when the time or memory predicted from the "
             f"previous size (n^2 growth) is over budget ({sc['time_budget_s']:g} s, "
             f"{sc['memory_budget_gib']:g} GiB). EOT: Gaussians in d = {sc['eot']['dim']}, "
             f"eps = {sc['eot']['epsilon']:g}, by `benchmarks/neural_ot.py`'s workers (errors "
             f"against the closed form; Sinkhorn threshold 1e-3, at most "
             f"{s['sinkhorn_iterations']} iterations). EGW: the cube in d = {sc['egw']['dim']}, "
             f"eps = {sc['egw']['epsilon']:.4g}; ott-jax's GromovWasserstein (dense n x n "
             "linearised costs, started from the matched axes) and neural EGW.", ""]
    rows = []
    for part in ("eot", "egw"):
        for r in sc[part]["rows"]:
            err = (f"{r['relative_error']:.2%}" if "relative_error" in r else "")
            rows.append([part.upper(), _METHODS.get(r["method"], r["method"]), f"{r['n']:,}",
                         _scale_cell(r), err])
    lines += markdown_table(["problem", "method", "n per side", "result", "rel. error"], rows)
    lines += ["", *_scale_notes(sc)]
    lines += ["", f"![scale]({result['figures_by_name'].get('scale', '')})", ""]
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--parts", nargs="+", default=["sweep", "plan", "mnist", "rate", "scale"],
        choices=["sweep", "plan", "mnist", "rate", "scale"])
    add("--mnist-dir", default=None, help="directory of the MNIST IDX files (test split)")
    add("--dims", type=int, nargs="+", default=[2, 4, 8])
    add("--sizes", type=int, nargs="+", default=[500, 2000, 8000])
    add("--reference-n", type=int, default=3000, help="cube: ott-jax points per side")
    add("--reference-seeds", type=int, default=2, help="cube: independent ott-jax samples")
    add("--cube-ratio", type=float, default=0.5, help="cube EGW: eps = ratio * 16 / (3 d)^2")
    add("--eigw-epsilon", type=float, default=1.0)
    add("--eot-ratio", type=float, default=0.25, help="EOT: eps = ratio * d")
    add("--width", type=int, default=256)
    add("--steps", type=int, default=2000)
    add("--batch-size", type=int, default=1024)
    add("--eval-size", type=int, default=10000)
    add("--reference-size", type=int, default=10000)
    add("--mnist-epsilon", type=float, default=1.0)
    add("--invariance-n", type=int, default=300)
    add("--rotations", type=int, default=3)
    add("--invariance-seeds", type=int, default=2)
    add("--invariance-steps", type=int, default=600)
    add("--classes", type=int, default=10)
    add("--class-n", type=int, default=150)
    add("--mnist-width", type=int, default=128)
    add("--mnist-steps", type=int, default=300)
    add("--mnist-batch", type=int, default=512)
    add("--rate-dim", type=int, default=4)
    add("--rate-widths", type=int, nargs="+", default=[2, 8, 32, 128])
    add("--rate-sizes", type=int, nargs="+", default=[125, 500, 2000, 8000])
    add("--rate-seeds", type=int, default=2)
    add("--scale-dim", type=int, default=16, help="EOT scale: dimension")
    add("--scale-egw-dim", type=int, default=4, help="EGW scale: dimension of the cube")
    add("--neural-sizes", type=int, nargs="+", default=[10000, 1000000])
    add("--sinkhorn-sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    add("--online-sizes", type=int, nargs="+", default=[2000, 8000, 32000])
    add("--gw-sizes", type=int, nargs="+", default=[1000, 4000, 16000])
    add("--online-batch", type=int, default=1024)
    add("--sinkhorn-iterations", type=int, default=2000)
    add("--time-budget-s", type=float, default=120.0)
    add("--memory-budget-gib", type=float, default=16.0)
    add("--seed", type=int, default=0)
    add("--quick", action="store_true",
        help="a tiny run for the smoke test (nothing written unless --output)")
    add("--output", default=None, help="result path without suffix")
    add("--report-from", type=Path, default=None,
        help="rewrite the report of an existing result JSON (its figures and numbers as run) "
             "with this script's report code, then stop")
    add("--worker", choices=("egw-neural", "egw-ott"), help=argparse.SUPPRESS)
    add("--n", type=int, help=argparse.SUPPRESS)
    add("--dim", type=int, help=argparse.SUPPRESS)
    add("--epsilon", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.dims, args.sizes, args.reference_n, args.reference_seeds = [2], [300], 400, 1
        args.width, args.steps, args.batch_size = 32, 100, 256
        args.eval_size = args.reference_size = 2000
        args.invariance_n, args.rotations, args.classes, args.class_n = 60, 1, 2, 40
        args.invariance_seeds, args.invariance_steps = 1, 30
        args.mnist_width, args.mnist_steps = 16, 30
        args.rate_widths, args.rate_sizes, args.rate_seeds = [4, 16], [200, 800], 1
        args.neural_sizes, args.sinkhorn_sizes, args.online_sizes = [2000], [1000], [500]
        args.gw_sizes, args.time_budget_s = [400], 60.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(egw_worker(args)))
        return 0
    if args.report_from:
        result = json.loads(args.report_from.read_text())
        result["report_rendered_by"] = ("python benchmarks/neural_egw_paper.py --report-from "
                                        f"{args.report_from}")
        print(write_result(args.report_from, result, TITLE, report(result)))
        return 0
    run = Run.start(__file__, argv)
    hidden = ("worker", "n", "dim", "epsilon", "output")
    result = {"settings": {k: v for k, v in vars(args).items() if k not in hidden}}
    parts = {"sweep": sweep, "plan": plan_1d, "mnist": mnist, "rate": rate, "scale": scale}
    for name in args.parts:
        start = time.perf_counter()
        result[name] = parts[name](args)
        print(f"-- {name}: {format_seconds(time.perf_counter() - start)}", flush=True)
    if "sweep" in result and "scale" in result:
        _compare_with_cube_reference(result["scale"]["egw"], result["sweep"]["references"])
    out = Path(args.output) if args.output else RESULTS
    if args.quick and args.output is None:
        print("--quick writes nothing without --output", file=sys.stderr)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    result["figures"] = plot(result, out)
    result["figures_by_name"] = {name.split(".")[-2]: name for name in result["figures"]}
    if "sweep" in result:
        result["sweep"]["figure"] = result["figures_by_name"].get("fig2ab", "")
    result = {**run.finish(), **result}
    print(write_result(out, result, TITLE, report(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
