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
from ott.geometry import costs, geometry, pointcloud
from ott.problems.linear import linear_problem
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


def _relation_factors(points: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``(U, V)`` with ``U @ V.T`` the intra-space matrix of ``kind`` (squared distances for
    egw, of the centred points, or inner products for eigw), ``points: [n, d]`` -> two
    ``[n, r]`` factors, ``r = d + 2`` or ``d``: the GW objective then costs ``O(n m r)``, not
    ``O(n m (n + m))``, and no ``n x n`` matrix is formed."""
    points = np.asarray(points, np.float64)
    if kind == "egw":
        points = points - points.mean(axis=0)  # distances are translation invariant
        sq = np.sum(points**2, axis=1, keepdims=True)
        ones = np.ones_like(sq)
        return np.hstack([sq, ones, -2.0 * points]), np.hstack([ones, sq, points])
    if kind == "eigw":
        return points, points
    raise ValueError(f"Unknown GW kind {kind!r}; choose 'egw' or 'eigw'.")


def gw_objective(matrix: np.ndarray, x, y, epsilon: float, kind: str = "egw") -> float:
    """``sum (C1_ik - C2_jl)^2 P_ij P_kl + eps KL(P | a b^T)`` for a coupling ``P: [n, m]`` of
    uniform ``x: [n, dx]`` and ``y: [m, dy]``; ``C`` are squared distances (egw) or inner
    products (eigw)."""
    p = np.asarray(matrix, np.float64)
    (u1, v1), (u2, v2) = _relation_factors(x, kind), _relation_factors(y, kind)
    a, b = p.sum(axis=1), p.sum(axis=0)

    def squared_term(u, v, w):  # w^T (C o C) w for C = U V^T
        return np.sum((u.T @ (w[:, None] * u)) * (v.T @ (w[:, None] * v)))

    cross = np.sum((v1.T @ p @ u2) * (u1.T @ p @ v2))  # sum_ij (C1 P C2)_ij P_ij
    gw = squared_term(u1, v1, a) + squared_term(u2, v2, b) - 2.0 * cross
    return float(gw + epsilon * _kl_to_product(p))


def entropic_gw(x, y, epsilon: float, kind: str = "egw", *, threshold: float = 1e-6,
                max_iterations: int = 200, init_matrix: np.ndarray | None = None
                ) -> DiscreteSolution:
    """Entropic GW between the empirical measures of ``x: [n, dx]`` and ``y: [m, dy]`` by
    ott-jax (a local solver: it returns a stationary coupling, the global one when the
    problem is well regularised).

    ``init_matrix``: ``A: [dx, dy]`` to start from, i.e. the first linearisation is the cost
    ``c_A`` of :func:`wormhole.neural_ot.gw.gw_pair_cost` (on centred points for egw), which
    is the GW linearisation at any coupling with cross moment ``2 A`` up to terms in ``i`` or
    ``j`` alone; ``None`` starts from ott-jax's default (the product coupling). GW has local
    minima, so a reference can be taken as the best of several starts.
    """
    if kind not in ("egw", "eigw"):
        raise ValueError(f"Unknown GW kind {kind!r}; choose 'egw' or 'eigw'.")
    cost_fn = costs.SqEuclidean() if kind == "egw" else costs.NegDotProduct()
    solver = gromov_wasserstein.GromovWasserstein(
        # One Sinkhorn update per loop step and no implicit differentiation: the same
        # answer, a much smaller program to compile.
        sinkhorn.Sinkhorn(threshold=10 * threshold, max_iterations=5000, inner_iterations=1,
                          implicit_diff=None),
        epsilon=epsilon / 2.0, threshold=threshold, max_iterations=max_iterations)

    def first_linearisation(x, y, matrix):
        from wormhole.neural_ot.gw import gw_pair_cost

        if kind == "egw":
            x, y = x - x.mean(axis=0), y - y.mean(axis=0)
        # ott-jax's linearised cost is half of c_A (see the module docstring on eps / 2).
        geom = geometry.Geometry(cost_matrix=0.5 * gw_pair_cost(kind, matrix, x, y),
                                 epsilon=epsilon / 2.0)
        n, m = x.shape[0], y.shape[0]
        return linear_problem.LinearProblem(geom, jnp.full(n, 1.0 / n), jnp.full(m, 1.0 / m))

    @jax.jit
    def solve(x, y, matrix):
        # NegDotProduct gives -<x, x'>: the sign cancels in (C1 - C2)^2.
        problem = quadratic_problem.QuadraticProblem(
            pointcloud.PointCloud(x, cost_fn=cost_fn), pointcloud.PointCloud(y, cost_fn=cost_fn))
        init = None if matrix is None else first_linearisation(x, y, matrix)
        return solver(problem, init=init)

    matrix = None if init_matrix is None else jnp.asarray(init_matrix, jnp.float32)
    out = solve(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), matrix)
    coupling = np.asarray(out.matrix, np.float64)
    return DiscreteSolution(gw_objective(coupling, x, y, epsilon, kind), coupling,
                            bool(out.converged))
