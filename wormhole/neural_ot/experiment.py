"""One neural OT / GW experiment from a :class:`NeuralOTConfig`: data, estimate, references,
plot. ``scripts/neural_ot.py`` is a thin wrapper over :func:`run_experiment`.

References: the closed forms for Gaussians (EOT, and EIGW between centred Gaussians) and, when
``eval.sinkhorn_size`` is set, ott-jax on that many points per side (Sinkhorn for EOT, entropic
GW otherwise). When the data are a finite sample no larger than ``sinkhorn_size``, ott-jax
solves exactly the problem the network was trained on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from matplotlib.figure import Figure

from wormhole.neural_ot.config import ConfigError, NeuralOTConfig, check_config
from wormhole.neural_ot.eot import EOTResult, neural_eot
from wormhole.neural_ot.gaussian import (
    Gaussian,
    entropic_igw_gaussians,
    entropic_ot_gaussians,
    gaussian_conditional_mean,
    gaussian_plan_log_density,
    random_gaussian,
)
from wormhole.neural_ot.gw import EGWResult, neural_egw
from wormhole.neural_ot.reference import DiscreteSolution, entropic_gw, sinkhorn_eot
from wormhole.ot.costs import resolve_cost

__all__ = ["Problem", "make_problem", "plot_plan", "run_experiment"]

_MODEL, _REFERENCE = "#d62728", "#2ca02c"


class Problem(NamedTuple):
    """The two distributions of an experiment.

    Attributes:
      x, y: arrays ``[n, dx]``, ``[m, dy]`` (finite samples) or samplers.
      mu, nu: the Gaussians behind them (``None`` for file data).
    """

    x: Any
    y: Any
    mu: Gaussian | None
    nu: Gaussian | None

    def draw(self, side: str, key: jax.Array, num: int) -> np.ndarray:
        """``num`` points of one side: a random subset of a finite sample, or fresh draws."""
        source = self.x if side == "x" else self.y
        if callable(source):
            return np.asarray(source(key, num))
        source = np.asarray(source)
        if len(source) <= num:
            return source
        return source[np.asarray(jax.random.choice(key, len(source), (num,), replace=False))]


def _load_npz(path: str) -> tuple[np.ndarray, np.ndarray]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"data.path: no file at '{path}'.")
    with np.load(path, allow_pickle=False) as archive:
        missing = [k for k in ("x", "y") if k not in archive.files]
        if missing:
            raise ConfigError(f"data.path: '{path}' has arrays {archive.files}; it needs 'x' "
                              f"[n, dx] and 'y' [m, dy] (missing {missing}).")
        x, y = np.asarray(archive["x"], np.float32), np.asarray(archive["y"], np.float32)
    for name, arr in (("x", x), ("y", y)):
        if arr.ndim != 2 or len(arr) < 2:
            raise ConfigError(f"data.path: array '{name}' in '{path}' must be [n, d] with "
                              f"n >= 2, got shape {arr.shape}.")
    return x, y


def make_problem(config: NeuralOTConfig) -> Problem:
    """The distributions named by ``config.data`` (Gaussians for 'eigw' are centred, so the
    closed form applies)."""
    data = config.data
    if data.source == "npz":
        x, y = _load_npz(data.path)
        return Problem(x, y, None, None)
    scale = 0.0 if config.problem.kind == "eigw" else data.mean_scale
    eigs = (data.eig_min, data.eig_max)
    mu = random_gaussian(data.dim, 2 * data.seed, mean_scale=scale, eig_range=eigs)
    nu = random_gaussian(data.dim_y or data.dim, 2 * data.seed + 1, mean_scale=scale,
                         eig_range=eigs)
    if data.num_samples is None:
        return Problem(mu.sample, nu.sample, mu, nu)
    kx, ky = jax.random.split(jax.random.PRNGKey(data.seed))
    return Problem(np.asarray(mu.sample(kx, data.num_samples)),
                   np.asarray(nu.sample(ky, data.num_samples)), mu, nu)


def _closed_form(config: NeuralOTConfig, problem: Problem) -> float | None:
    kind, eps = config.problem.kind, config.problem.epsilon
    if problem.mu is None:
        return None
    if kind == "eot" and config.problem.cost == "sqeuclidean":
        return entropic_ot_gaussians(problem.mu, problem.nu, eps)
    if kind == "eigw":
        return entropic_igw_gaussians(problem.mu, problem.nu, eps)
    return None


def _discrete(config: NeuralOTConfig, xs: np.ndarray, ys: np.ndarray) -> DiscreteSolution:
    kind, eps = config.problem.kind, config.problem.epsilon
    if kind == "eot":
        return sinkhorn_eot(xs, ys, eps, resolve_cost(config.problem.cost))
    return entropic_gw(xs, ys, eps, kind)


def _relative(value: float, reference: float | None) -> float | None:
    if reference is None or reference == 0:
        return None
    return abs(value - reference) / abs(reference)


def _marginal_errors(result, problem: Problem, key: jax.Array, num: int) -> dict:
    """Mean absolute deviation from 1 of the plan's two marginal densities on fresh samples."""
    kx, ky = jax.random.split(key)
    rows, cols = result.plan.marginals(problem.draw("x", kx, num), problem.draw("y", ky, num))
    return {"mu": float(np.mean(np.abs(np.asarray(rows) - 1.0))),
            "nu": float(np.mean(np.abs(np.asarray(cols) - 1.0)))}


def run_experiment(config: NeuralOTConfig, workdir: str | Path | None = None, *,
                   progress: bool = True) -> tuple[dict, EOTResult | EGWResult]:
    """Train, evaluate and compare; with ``workdir``, also write the plan plot there.

    Returns ``(summary, result)``: ``summary`` is JSON-serialisable (estimate, references,
    relative errors, marginal check, timings, training history).
    """
    check_config(config)
    problem = make_problem(config)
    kind, eps = config.problem.kind, config.problem.epsilon
    settings = {"network": config.network, "train": config.train, "evaluation": config.eval,
                "progress": progress}
    start = time.perf_counter()
    if kind == "eot":
        result = neural_eot(problem.x, problem.y, eps, config.problem.cost, **settings)
    else:
        result = neural_egw(problem.x, problem.y, eps, kind, **settings)
    seconds = time.perf_counter() - start
    summary: dict[str, Any] = {
        "name": config.name, "kind": kind, "epsilon": eps, "estimate": result.cost,
        "stderr": result.stderr, "reference_ess": result.reference_ess,
        "reliable": result.reliable, "seconds": seconds,
        "history": {k: np.asarray(v).tolist() for k, v in result.history.items()},
    }
    if kind == "eot":
        summary.update(plug_in=result.plug_in, reference_stderr=result.reference_stderr)
    else:
        summary.update(matrix=np.asarray(result.matrix).tolist(),
                       moment_term=result.moment_term, inner_ot=result.ot_cost)
    key = jax.random.PRNGKey(config.data.seed + 101)
    summary["marginal_error"] = _marginal_errors(result, problem, key, 4000)
    closed = _closed_form(config, problem)
    summary["closed_form"] = closed
    summary["closed_form_relative_error"] = _relative(result.cost, closed)
    discrete = None
    if config.eval.sinkhorn_size is not None:
        kx, ky = jax.random.split(jax.random.fold_in(key, 1))
        xs = problem.draw("x", kx, config.eval.sinkhorn_size)
        ys = problem.draw("y", ky, config.eval.sinkhorn_size)
        start = time.perf_counter()
        discrete = (xs, ys, _discrete(config, xs, ys))
        summary["ott"] = {"points": len(xs), "cost": discrete[2].cost,
                          "converged": discrete[2].converged,
                          "seconds": time.perf_counter() - start,
                          "relative_error": _relative(result.cost, discrete[2].cost)}
    if workdir is not None and config.eval.plot:
        summary["plot"] = str(plot_plan(result, problem, discrete,
                                        Path(workdir) / "plan.png", key=key))
    return summary, result


def _sorted_points(points: np.ndarray) -> np.ndarray:
    return np.argsort(points[:, 0], kind="stable")


def plot_plan(result: EOTResult | EGWResult, problem: Problem, discrete, path: str | Path, *,
              key: jax.Array, num: int = 300) -> Path:
    """PNG comparing the learned plan with the reference one.

    Left and middle: the density ``dpi / d(mu (x) nu)`` on a sample sorted by first
    coordinate, learned and reference (closed form for Gaussian EOT; ott-jax's coupling
    times ``n m`` otherwise). Right, in 1-D or 2-D: the barycentric projection ``E[y | x]``,
    learned and reference. A GW plan is defined up to the isometries of each side, so for GW
    the learned plan may be a mirror image of the reference one at the same cost.
    """
    kx, ky, kc = jax.random.split(key, 3)
    gaussian_eot = isinstance(result, EOTResult) and problem.mu is not None
    if discrete is not None and not gaussian_eot:
        xs, ys, solution = discrete
        reference, ref_name = solution.density(), f"ott-jax, n = {len(xs)}"
    elif gaussian_eot:
        xs, ys = problem.draw("x", kx, num), problem.draw("y", ky, num)
        reference = np.exp(gaussian_plan_log_density(xs, ys, problem.mu, problem.nu,
                                                     result.epsilon))
        ref_name = "closed form"
    else:
        xs, ys = problem.draw("x", kx, num), problem.draw("y", ky, num)
        reference, ref_name = None, None
    ix, iy = _sorted_points(xs), _sorted_points(ys)
    learned = np.asarray(result.plan(xs[ix], ys[iy]))
    dx, dy = xs.shape[1], ys.shape[1]
    projection = dx == dy and dx <= 2
    panels = 1 + (reference is not None) + projection
    fig = Figure(figsize=(4.2 * panels, 4.0))
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    top = np.quantile(learned if reference is None else reference, 0.995)
    images = [(learned, "learned (neural)")]
    if reference is not None:
        images.append((reference[np.ix_(ix, iy)], f"reference ({ref_name})"))
    for ax, (image, title) in zip(axes, images, strict=False):
        ax.imshow(image, vmin=0.0, vmax=top, cmap="magma", aspect="auto",
                  interpolation="nearest")
        ax.set_title(f"dpi/d(mu x nu), {title}", fontsize=9)
        ax.set_xlabel("y, sorted by first coordinate")
        ax.set_ylabel("x, sorted by first coordinate")
    if projection:
        ax = axes[len(images)]
        candidates = problem.draw("y", kc, 20000)
        shown = xs[ix][:: max(1, len(xs) // 60)]
        bary = np.asarray(result.plan.barycentric_projection(shown, candidates))
        if gaussian_eot:
            ref_bary = gaussian_conditional_mean(shown, problem.mu, problem.nu, result.epsilon)
        elif discrete is not None:
            weights = solution.matrix[ix][:: max(1, len(xs) // 60)]
            ref_bary = (weights @ ys) / weights.sum(axis=1, keepdims=True)
        else:
            ref_bary = None
        _draw_projection(ax, shown, bary, ref_bary)
    kind = "EOT" if isinstance(result, EOTResult) else result.kind.upper()
    fig.suptitle(f"neural {kind}, eps = {result.epsilon:g}: estimate {result.cost:.5g}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def _draw_projection(ax, x: np.ndarray, learned: np.ndarray, reference) -> None:
    if x.shape[1] == 1:
        ax.plot(x[:, 0], learned[:, 0], ".-", color=_MODEL, label="learned")
        if reference is not None:
            ax.plot(x[:, 0], reference[:, 0], ".--", color=_REFERENCE, label="reference")
        ax.set_xlabel("x")
        ax.set_ylabel("E[y | x]")
    else:
        ax.scatter(x[:, 0], x[:, 1], s=8, c="k", label="x")
        for target, color, name in ((learned, _MODEL, "learned"),
                                    (reference, _REFERENCE, "reference")):
            if target is None:
                continue
            ax.quiver(x[:, 0], x[:, 1], target[:, 0] - x[:, 0], target[:, 1] - x[:, 1],
                      angles="xy", scale_units="xy", scale=1.0, color=color, width=0.004,
                      label=f"E[y | x], {name}")
        ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=8)
    ax.set_title("barycentric projection", fontsize=9)
