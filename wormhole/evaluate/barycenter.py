"""A model's barycenter (decoded mean embedding) against ott-jax's free-support barycenter.

The reference is the entropic Wasserstein-2 barycenter with free support of Cuturi and
Doucet (2014), computed by :class:`ott.solvers.linear.continuous_barycenter.
FreeWassersteinBarycenter`: ``m`` uniformly weighted points moved by barycentric
projections of the Sinkhorn plans to every input cloud until the objective settles.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wormhole.data.inputs import as_point_clouds
from wormhole.data.padding import fill_with_first, power_of_two_at_least
from wormhole.evaluate.ground_truth import (
    ANNEAL_ITERATIONS,
    annealed_epsilon,
    ground_truth_distances,
)

# Clouds are padded to a multiple of this many points (few compiled shapes, little waste).
_POINT_BUCKET = 8

__all__ = ["BarycenterComparison", "barycenter_objectives", "compare_barycenter",
           "free_support_barycenter"]


class BarycenterComparison(NamedTuple):
    """A class barycenter by the model and by ott-jax, in the user's coordinate units.

    Attributes:
      model: ``[m, d]`` decoded mean embedding of the clouds.
      reference: ``[m, d]`` ott-jax free-support W2 barycenter of the same clouds.
      s2_model_reference: S2 between the two, in the model's target units (the OT cost on
        normalised coordinates over the cost scale, at the run's epsilon).
      s2_members_reference: mean S2 from the input clouds to the reference, for scale: a
        model barycenter well below it sits closer to the reference than a typical member.
      s2_members_model: mean S2 from the input clouds to the model's barycenter (the
        barycenter objective, which the reference minimises in W2).
      reference_converged: whether ott's outer loop and every inner Sinkhorn converged.
      num_clouds: how many clouds were averaged.
    """

    model: np.ndarray
    reference: np.ndarray
    s2_model_reference: float
    s2_members_reference: float
    s2_members_model: float
    reference_converged: bool
    num_clouds: int

    def figures(self) -> dict:
        """The scalar fields, for a JSON report."""
        return {k: (bool(v) if isinstance(v, bool | np.bool_) else
                    int(v) if isinstance(v, int) else float(v))
                for k, v in self._asdict().items() if k not in ("model", "reference")}


def free_support_barycenter(clouds, weights=None, num_points: int = 64,
                            epsilon: float = 1e-3, max_iterations: int = 100,
                            threshold: float = 1e-5, sinkhorn_threshold: float = 1e-4,
                            sinkhorn_iterations: int = 5000, seed: int = 0
                            ) -> tuple[np.ndarray, bool]:
    """ott-jax's free-support W2 barycenter (uniform coefficients) of weighted clouds.

    Args:
      clouds: ``N`` clouds ``[n_i, d]``, a padded ``[N, n, d]`` array with ``weights``,
        or :class:`~wormhole.data.PointClouds`.
      weights: per-point weights (default uniform).
      num_points: support size ``m`` of the barycenter (uniform weights).
      epsilon: entropic regularisation of the inner OT problems, in the squared units of
        the coordinates. Each support point moves to the plan-weighted mean of the inputs
        near it, over a radius of about ``sqrt(epsilon)``: a larger epsilon draws the points
        onto thin curves (strokes look sharper, yet the W2 objective is higher); a smaller
        one is closer to the unregularised barycenter, which for varied inputs is a filled
        shape, and slower (``benchmarks/barycenter_reference.py`` measures both).
      max_iterations, threshold: outer loop cap and relative change of the objective at
        which it stops.
      sinkhorn_threshold, sinkhorn_iterations: inner Sinkhorn settings (each inner solve
        anneals epsilon from 100x its target, as the ground truth does).
      seed: picks the initial support among the input points.

    Returns:
      ``(points [m, d], converged)``.
    """
    data = as_point_clouds(clouds, weights)
    if num_points < 1:
        raise ValueError(f"num_points must be at least 1, got {num_points}.")
    if num_points > int(np.sum(data.weights > 0)):
        raise ValueError(f"num_points ({num_points}) exceeds the {int(np.sum(data.weights > 0))}"
                         f" input points the initial support is drawn from.")
    dense = np.asarray(data.points)  # gathered or memory-mapped clouds, made dense here
    masses = data.weights / data.weights.sum(axis=1, keepdims=True)
    # Padded (copies of the first cloud, with barycenter weight zero) to a power of two of
    # clouds up to 8, a multiple of 4 above, and to whole buckets of points (zero mass):
    # classes of other sizes reuse the program, for at most a few extra solves.
    count = power_of_two_at_least(len(data)) if len(data) <= 8 else 4 * math.ceil(len(data) / 4)
    length = _POINT_BUCKET * math.ceil(dense.shape[1] / _POINT_BUCKET)
    rows = fill_with_first(np.arange(len(data)), count)
    points = np.zeros((count, length, dense.shape[-1]))
    mass = np.zeros((count, length))
    points[:, :dense.shape[1]] = dense[rows]
    mass[:, :dense.shape[1]] = masses[rows]
    coefficients = np.where(np.arange(count) < len(data), 1.0 / len(data), 0.0)
    solve = _barycenter_solver(float(epsilon), float(threshold), int(max_iterations),
                               float(sinkhorn_threshold), int(sinkhorn_iterations))
    with jax.enable_x64(True):
        initial = _initial_support(dense, masses, num_points, seed)
        support, converged = solve(points, mass, coefficients, initial)
        return np.asarray(support, np.float32), bool(converged)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _initial_support(points, masses, num_points: int, seed: int):
    """``num_points`` distinct input points drawn by mass, as ott-jax's solver draws them
    from the unpadded clouds, so the solver's padding leaves the draw unchanged."""
    flat = jnp.asarray(points, jnp.float64).reshape(-1, points.shape[-1])
    index = jax.random.choice(jax.random.key(seed), flat.shape[0], (num_points,),
                              replace=False, p=jnp.asarray(masses, jnp.float64).ravel())
    return flat[index]


@functools.lru_cache(maxsize=8)
def _barycenter_solver(epsilon: float, threshold: float, max_iterations: int,
                       sinkhorn_threshold: float, sinkhorn_iterations: int):
    """``(points [N, n, d], masses [N, n], coefficients [N], initial [m, d]) -> (support,
    converged)``: ott-jax's free-support barycenter, jitted once per setting."""
    from ott.geometry import costs
    from ott.problems.linear import barycenter_problem
    from ott.solvers.linear import continuous_barycenter, sinkhorn

    inner = sinkhorn.Sinkhorn(threshold=sinkhorn_threshold, max_iterations=sinkhorn_iterations,
                              min_iterations=ANNEAL_ITERATIONS)
    solver = continuous_barycenter.FreeWassersteinBarycenter(
        inner, threshold=threshold, max_iterations=max_iterations)

    def solve(points, masses, coefficients, initial):
        # Padding rows carry zero mass, so they receive none in any plan.
        problem = barycenter_problem.FreeBarycenterProblem(
            points, masses, weights=coefficients, cost_fn=costs.SqEuclidean(),
            epsilon=annealed_epsilon(epsilon))
        out = solver(problem, initial.shape[0], x_init=initial)
        flags = out.linear_convergence
        inner_converged = jnp.all(jnp.where(flags != -1, flags != 0, True))
        return out.x, inner_converged & (out.num_iters < max_iterations)

    return jax.jit(solve)


def compare_barycenter(model, clouds, weights=None, epsilon: float = 1e-3,
                       num_points: int | None = None, seed: int = 0,
                       **solver_kwargs) -> BarycenterComparison:
    """The model's barycenter of ``clouds`` next to ott-jax's, with S2 distances.

    Both barycenters are computed in the model's normalised coordinates (the reference
    with ``epsilon`` there) and returned in the user's units. S2 values use the run's
    cost scale and ``ot.epsilon`` (see :class:`BarycenterComparison`).

    Args:
      model: a loaded :class:`~wormhole.inference.Wormhole` with a decoder.
      clouds, weights: the clouds to average, in the user's units.
      epsilon: regularisation of the reference barycenter (normalised squared units).
      num_points: reference support size (default: the decoder's cloud size).
      solver_kwargs: more :func:`free_support_barycenter` settings.
    """
    normalized = model.prepare(clouds, weights)
    bary_model = model.barycenter(clouds, weights)
    size = num_points or bary_model.shape[0]
    reference, converged = free_support_barycenter(normalized, num_points=size,
                                                   epsilon=epsilon, seed=seed,
                                                   **solver_kwargs)
    norm = model.normalization
    model_normalized = norm.apply(bary_model)
    settings = {"epsilon": model.config.ot.epsilon, "cost_scale": model.cost_scale}
    (s2,) = ground_truth_distances([model_normalized], None, [reference], None, kind="S2",
                                   method="sinkhorn", progress=False, **settings)
    members_reference, members_model = barycenter_objectives(
        normalized, [reference, model_normalized], **settings)
    return BarycenterComparison(bary_model, norm.invert(reference).astype(np.float32),
                                float(s2), members_reference, members_model, converged,
                                len(normalized))


def barycenter_objectives(clouds, supports, epsilon: float, cost_scale: float = 1.0,
                          weights=None) -> list[float]:
    """The barycenter objective of each candidate: its mean S2 to the clouds.

    Args:
      clouds, weights: the clouds averaged (any form
        :func:`~wormhole.data.inputs.as_point_clouds` takes).
      supports: candidate barycenters ``[m, d]``, uniform weights, same coordinates.
      epsilon, cost_scale: S2's regularisation, and the divisor of its values (a run's
        ``ot.epsilon`` and cost scale give the units :class:`BarycenterComparison` reports).
    """
    points, masses = as_point_clouds(clouds, weights).to_list()
    count = len(points)
    candidates = [np.asarray(s, np.float32) for s in supports]
    values = ground_truth_distances(
        [c for c in candidates for _ in range(count)], None, points * len(candidates),
        masses * len(candidates), kind="S2", method="sinkhorn", epsilon=epsilon,
        cost_scale=cost_scale, progress=False)
    return [float(np.mean(values[i * count:(i + 1) * count])) for i in range(len(candidates))]
