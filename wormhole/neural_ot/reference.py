"""Discrete references from ott-jax: Sinkhorn for EOT and entropic GW, on small samples.

Both return the value in the convention of :mod:`wormhole.neural_ot` (regulariser
``eps * KL(pi | mu (x) nu)``), computed from the solver's coupling, so a neural estimate on the
same two samples can be compared directly.

ott-jax's Gromov-Wasserstein solver linearises ``GW(P) = sum (C1_ik - C2_jl)^2 P_ij P_kl`` with
the cost ``L(P)`` for which ``<L(P), P> = GW(P)``; since ``grad GW = 2 L``, its fixed points are
stationary points of ``GW(P) + 2 eps' KL(P | a b^T)``, where ``eps'`` is the ``epsilon`` it is
given (its ``reg_gw_cost`` adds ``eps' KL`` instead). :func:`entropic_gw` therefore runs it at
``eps' = eps / 2`` and reports ``GW(P) + eps KL(P | a b^T)`` for the coupling found.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import costs, pointcloud
from ott.problems.quadratic import quadratic_problem
from ott.solvers import linear
from ott.solvers.linear import sinkhorn
from ott.solvers.quadratic import gromov_wasserstein

__all__ = ["DiscreteSolution", "entropic_gw", "gw_objective", "sinkhorn_eot"]


class DiscreteSolution(NamedTuple):
    """A solved discrete problem on uniform weights.

    Attributes:
      cost: the regularised value, ``eps * KL(P | a b^T)`` included.
      matrix: the coupling ``P: [n, m]`` (sums to 1); ``None`` from an online solve.
      converged: whether the solver met its threshold.
    """

    cost: float
    matrix: np.ndarray | None
    converged: bool

    def density(self) -> np.ndarray:
        """``dP / d(a b^T)``: the coupling as a density against the product, ``[n, m]``."""
        n, m = self.matrix.shape
        return self.matrix * (n * m)


def _kl_to_product(matrix: np.ndarray) -> float:
    n, m = matrix.shape
    p = np.asarray(matrix, np.float64)
    p = p / p.sum()
    positive = p > 0
    return float(np.sum(p[positive] * np.log(p[positive] * n * m)))


def _restore_is_vmappable() -> None:
    """ott-jax 0.6.0's online geometry (``PointCloud(batch_size=...)``) looks up
    ``jax.interpreters.batching.is_vmappable``, which newer JAX no longer exports (it still
    defines it internally); put the name back so the online mode runs."""
    from jax._src.interpreters import batching as internal
    from jax.interpreters import batching

    if not hasattr(batching, "is_vmappable"):
        batching.is_vmappable = internal.is_vmappable


def sinkhorn_eot(x, y, epsilon: float, cost_fn: costs.CostFn | None = None, *,
                 threshold: float = 1e-6, max_iterations: int = 20000,
                 batch_size: int | None = None) -> DiscreteSolution:
    """``OT_eps`` between the empirical measures of ``x: [n, d]`` and ``y: [m, d]``.

    ``batch_size=None`` uses a dense geometry (the ``n x m`` cost matrix is held); an integer
    uses ott-jax's online geometry, which recomputes costs in blocks of that many points at
    every iteration (``O(n + m)`` memory, the same arithmetic per iteration), and then no
    coupling matrix is returned (``matrix`` is ``None``).
    """
    if batch_size is not None:
        _restore_is_vmappable()

    @jax.jit
    def solve(x, y):
        geom = pointcloud.PointCloud(x, y, cost_fn=cost_fn, epsilon=epsilon,
                                     batch_size=batch_size)
        out = linear.solve(geom, threshold=threshold, max_iterations=max_iterations)
        return out.reg_ot_cost, None if batch_size else out.matrix, out.converged

    cost, matrix, converged = solve(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    return DiscreteSolution(float(cost), None if matrix is None else np.asarray(matrix),
                            bool(converged))


def _relation(points: np.ndarray, kind: str) -> np.ndarray:
    """The intra-space matrix of ``kind``: squared distances (egw) or inner products (eigw)."""
    points = np.asarray(points, np.float64)
    if kind == "egw":
        sq = np.sum(points**2, axis=1)
        return sq[:, None] + sq[None, :] - 2.0 * points @ points.T
    if kind == "eigw":
        return points @ points.T
    raise ValueError(f"Unknown GW kind {kind!r}; choose 'egw' or 'eigw'.")


def gw_objective(matrix: np.ndarray, x, y, epsilon: float, kind: str = "egw") -> float:
    """``sum (C1_ik - C2_jl)^2 P_ij P_kl + eps KL(P | a b^T)`` for a coupling ``P: [n, m]`` of
    uniform ``x: [n, dx]`` and ``y: [m, dy]``; ``C`` are squared distances (egw) or inner
    products (eigw)."""
    p = np.asarray(matrix, np.float64)
    c1, c2 = _relation(x, kind), _relation(y, kind)
    a, b = p.sum(axis=1), p.sum(axis=0)
    gw = a @ (c1**2) @ a + b @ (c2**2) @ b - 2.0 * np.sum((c1 @ p @ c2) * p)
    return float(gw + epsilon * _kl_to_product(p))


def entropic_gw(x, y, epsilon: float, kind: str = "egw", *, threshold: float = 1e-6,
                max_iterations: int = 200) -> DiscreteSolution:
    """Entropic GW between the empirical measures of ``x: [n, dx]`` and ``y: [m, dy]`` by
    ott-jax (a local solver: it returns a stationary coupling, the global one when the
    problem is well regularised)."""
    if kind not in ("egw", "eigw"):
        raise ValueError(f"Unknown GW kind {kind!r}; choose 'egw' or 'eigw'.")
    cost_fn = costs.SqEuclidean() if kind == "egw" else costs.NegDotProduct()
    solver = gromov_wasserstein.GromovWasserstein(
        # One Sinkhorn update per loop step and no implicit differentiation: the same
        # answer, a much smaller program to compile.
        sinkhorn.Sinkhorn(threshold=10 * threshold, max_iterations=5000, inner_iterations=1,
                          implicit_diff=None),
        epsilon=epsilon / 2.0, threshold=threshold, max_iterations=max_iterations)

    @jax.jit
    def solve(x, y):
        # NegDotProduct gives -<x, x'>: the sign cancels in (C1 - C2)^2.
        return solver(quadratic_problem.QuadraticProblem(
            pointcloud.PointCloud(x, cost_fn=cost_fn), pointcloud.PointCloud(y, cost_fn=cost_fn)))

    out = solve(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    matrix = np.asarray(out.matrix, np.float64)
    return DiscreteSolution(gw_objective(matrix, x, y, epsilon, kind), matrix,
                            bool(out.converged))
