"""One OT problem between two padded weighted clouds, solved by ott-jax.

Each function takes single clouds ``x [n, d]``, ``a [n]`` (zero weight marks padding) and
returns ``(value, hit_cap)``; the batched entry points vmap them over pairs and clouds.
"""

from __future__ import annotations

import jax.numpy as jnp
from ott.geometry import costs, geometry, pointcloud
from ott.problems.linear import linear_problem
from ott.problems.quadratic import quadratic_problem
from ott.solvers import linear
from ott.solvers.linear import acceleration, implicit_differentiation, sinkhorn, univariate
from ott.solvers.quadratic import gromov_wasserstein

from wormhole.ot.spec import OTSpec

__all__ = ["linear_geometry", "solve_gw", "solve_linear", "solve_linear_self", "solve_sorted"]


def linear_geometry(x: jnp.ndarray, y: jnp.ndarray, spec: OTSpec) -> geometry.Geometry:
    """Ground-cost geometry between ``x`` and ``y``, divided by the spec's fixed scale."""
    cost_fn = spec.cost_fn
    if isinstance(cost_fn, costs.CostFn):
        return pointcloud.PointCloud(x, y, cost_fn=cost_fn, epsilon=spec.epsilon,
                                     scale_cost=spec.cost_scale)
    return geometry.Geometry(cost_matrix=cost_fn(x, y) / spec.cost_scale, epsilon=spec.epsilon)


def _sinkhorn_kwargs(spec: OTSpec, symmetric: bool) -> dict:
    implicit = None
    if spec.differentiation == "implicit":
        implicit = implicit_differentiation.ImplicitDiff(symmetric=symmetric)
    kwargs = dict(threshold=spec.threshold, max_iterations=spec.max_iterations,
                  lse_mode=spec.lse_mode, implicit_diff=implicit)
    if symmetric:
        # OT(x, x) has a = b and one potential: averaging parallel updates (momentum 1/2,
        # Feydy et al. 2019, eq. 25) converges in far fewer iterations than alternating ones.
        kwargs.update(parallel_dual_updates=True,
                      momentum=acceleration.Momentum(start=0, value=0.5))
    return kwargs


def _normalised(a: jnp.ndarray) -> jnp.ndarray:
    return a / jnp.sum(a)


def _hit_cap(out) -> jnp.ndarray:
    return jnp.logical_not(out.converged)


def solve_linear(x, a, y, b, spec: OTSpec):
    """Entropic OT cost ``OT_eps(a, b)`` (ott's ``reg_ot_cost``) and whether it hit the cap."""
    out = linear.solve(linear_geometry(x, y, spec), a=_normalised(a), b=_normalised(b),
                       **_sinkhorn_kwargs(spec, symmetric=False))
    return out.reg_ot_cost, _hit_cap(out)


def solve_linear_self(x, a, spec: OTSpec):
    """``OT_eps(a, a)`` with symmetric updates: the self term of a Sinkhorn divergence."""
    a = _normalised(a)
    out = linear.solve(linear_geometry(x, x, spec), a=a, b=a,
                       **_sinkhorn_kwargs(spec, symmetric=True))
    return out.reg_ot_cost, _hit_cap(out)


def _intra_geometry(x: jnp.ndarray, spec: OTSpec) -> pointcloud.PointCloud:
    return pointcloud.PointCloud(x, x, cost_fn=spec.cost_fn, scale_cost=spec.cost_scale)


def solve_gw(x, a, y, b, spec: OTSpec):
    """Entropic Gromov-Wasserstein cost between the intra-cloud costs of ``x`` and ``y``.

    The squared loss ``sum (Cx_ik - Cy_jl)^2 P_ij P_kl`` plus the entropic term (ott's
    ``reg_gw_cost``; Peyre et al. 2016). Invariant to rigid motions of either cloud.
    """
    problem = quadratic_problem.QuadraticProblem(_intra_geometry(x, spec),
                                                 _intra_geometry(y, spec),
                                                 a=_normalised(a), b=_normalised(b))
    inner = sinkhorn.Sinkhorn(**_sinkhorn_kwargs(spec, symmetric=False))
    solver = gromov_wasserstein.GromovWasserstein(
        linear_solver=inner, epsilon=spec.epsilon, threshold=spec.outer_threshold,
        max_iterations=spec.outer_iterations, store_inner_errors=False)
    out = solver(problem)
    return out.reg_gw_cost, _hit_cap(out)


def _padding_on_largest(x: jnp.ndarray, a: jnp.ndarray) -> jnp.ndarray:
    largest = jnp.max(jnp.where(a[:, None] > 0, x, -jnp.inf), axis=0)
    return jnp.where(a[:, None] > 0, x, largest)


def solve_sorted(x, a, y, b, spec: OTSpec):
    """Exact OT cost between 1-D clouds from their quantile functions; never hits a cap.

    Zero weights add no mass to either cumulative distribution. Padding points are moved
    onto the cloud's largest real point: where the two cumulative sums differ by rounding,
    the solver may read the largest sorted value, and it must be a real one.
    """
    if x.shape[-1] != 1 or y.shape[-1] != 1:
        raise ValueError(f"The sorting solver (ot.solver) needs 1-D clouds; got points of "
                         f"dimension {x.shape[-1]} and {y.shape[-1]}.")
    x, y = _padding_on_largest(x, a), _padding_on_largest(y, b)
    # The univariate solver reads the geometry's cost function, not its scaled cost matrix.
    geom = pointcloud.PointCloud(x, y, cost_fn=spec.cost_fn)
    problem = linear_problem.LinearProblem(geom, a=_normalised(a), b=_normalised(b))
    cost = univariate.quantile_solver(problem).ot_costs[0] / spec.cost_scale
    return cost, jnp.zeros((), bool)
