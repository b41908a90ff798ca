"""Tight lower bounds of W2^2 from feasible dual potentials: the second filter of certified
search.

Any potentials with ``f_i + g_j <= C_ij`` give ``<a, f> + <b, g> <= OT(a, b)`` (weak
Kantorovich duality). A few Sinkhorn iterations (ott-jax) give potentials close to optimal;
two c-transforms (``f = g^c``, then ``g = f^c``) make them feasible exactly and can only raise
the value. Many candidates are bounded in one vmapped call, far cheaper per pair than the
network simplex, and much tighter than the frame bounds of :mod:`.bounds`, so only clouds
that could still be among the ``k`` nearest reach the exact solver.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import costs, pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import sinkhorn

__all__ = ["ITERATIONS", "RELATIVE_EPSILON", "dual_lower_bounds"]

RELATIVE_EPSILON = 0.05  # entropic epsilon, as a share of each pair's mean cost
ITERATIONS = 3  # Sinkhorn iterations: more tighten the bound but cost more than they save
_BATCH = 64  # candidates per compiled call (padded with copies)


def _c_transform(cost: jnp.ndarray, g: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """``f_i = min_{j: b_j > 0} (C_ij - g_j)``: the best ``f`` feasible with ``g``."""
    return jnp.min(jnp.where(b[None, :] > 0, cost - g[None, :], jnp.inf), axis=1)


def _pair_bound(x, a, y, b, relative_epsilon: float, iterations: int):
    geom = pointcloud.PointCloud(x, y, cost_fn=costs.SqEuclidean(), epsilon=relative_epsilon,
                                 relative_epsilon="mean")
    solver = sinkhorn.Sinkhorn(max_iterations=iterations, min_iterations=iterations,
                               inner_iterations=iterations, implicit_diff=None)
    out = solver(linear_problem.LinearProblem(geom, a, b))
    cost = geom.cost_matrix
    f = _c_transform(cost, jnp.where(b > 0, out.g, 0.0), b)
    g = _c_transform(cost.T, f, a)
    return (jnp.sum(jnp.where(a > 0, a * f, 0.0)) + jnp.sum(jnp.where(b > 0, b * g, 0.0)))


@functools.partial(jax.jit, static_argnames=("relative_epsilon", "iterations"))
def _batch_bounds(x, a, ys, bs, relative_epsilon: float, iterations: int):
    return jax.vmap(lambda y, b: _pair_bound(x, a, y, b, relative_epsilon, iterations))(ys, bs)


def dual_lower_bounds(x: np.ndarray, a: np.ndarray, ys: np.ndarray, bs: np.ndarray,
                      relative_epsilon: float = RELATIVE_EPSILON,
                      iterations: int = ITERATIONS) -> np.ndarray:
    """``[m]`` lower bounds of W2^2 (squared Euclidean cost) from one cloud to ``m`` others.

    Args:
      x, a: the query, ``[n, d]`` points and ``[n]`` weights (zero for padding).
      ys, bs: ``[m, n2, d]`` padded candidate clouds and ``[m, n2]`` weights.
      relative_epsilon, iterations: the Sinkhorn run that proposes the potentials.
    """
    a = np.asarray(a, np.float32) / np.sum(a)
    bs = np.asarray(bs, np.float32)
    bs = bs / bs.sum(axis=1, keepdims=True)
    out = np.empty(len(ys), np.float64)
    for start in range(0, len(ys), _BATCH):
        y, b = ys[start:start + _BATCH], bs[start:start + _BATCH]
        size = len(y)
        if size < _BATCH:
            y = np.concatenate([y, np.repeat(y[-1:], _BATCH - size, 0)])
            b = np.concatenate([b, np.repeat(b[-1:], _BATCH - size, 0)])
        values = _batch_bounds(jnp.asarray(x, jnp.float32), jnp.asarray(a), jnp.asarray(y),
                               jnp.asarray(b), relative_epsilon, iterations)
        out[start:start + size] = np.asarray(values)[:size]
    return out
