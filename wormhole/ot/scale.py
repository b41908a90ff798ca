"""The fixed cost scale of a data set: one number, computed once and stored with the model."""

from __future__ import annotations

import numpy as np

from wormhole.ot.spec import OTSpec

__all__ = ["estimate_cost_scale"]


def _largest_costs(spec: OTSpec):
    """A jitted ``(x [P, n, d], a [P, n], y, b) -> [P]`` largest cost between real points."""
    import jax
    import jax.numpy as jnp
    from ott.geometry import costs

    cost_fn = spec.cost_fn
    matrix = cost_fn.all_pairs if isinstance(cost_fn, costs.CostFn) else cost_fn

    def largest(x, a, y, b):
        real = (a[:, None] > 0) & (b[None, :] > 0)
        return jnp.max(jnp.where(real, matrix(x, y), -jnp.inf))

    return jax.jit(jax.vmap(largest))


def estimate_cost_scale(points, weights, kind: str = "S2", cost=None, num_pairs: int = 256,
                        seed: int = 0, chunk: int = 32) -> float:
    """The largest ground cost over a seeded sample of cloud pairs.

    For the linear kinds, costs between points of two different clouds; for GW kinds, the
    intra-cloud costs. Dividing by it puts costs in about ``[0, 1]``, so one ``epsilon``
    suits data sets of any extent. Only points with positive weight count.
    """
    spec = OTSpec(kind=kind, cost=cost)
    # Indexed, not converted: gathered clouds (wormhole.data.gathered) build only the pairs.
    points = points if hasattr(points, "shape") else np.asarray(points)
    weights = np.asarray(weights)
    count = len(points)
    rng = np.random.default_rng((seed, 11))
    first = rng.integers(0, count, num_pairs)
    second = first if spec.quadratic or count == 1 else \
        (first + rng.integers(1, count, num_pairs)) % count
    solve = _largest_costs(spec)
    largest = max(
        float(np.max(solve(points[first[s:s + chunk]], weights[first[s:s + chunk]],
                           points[second[s:s + chunk]], weights[second[s:s + chunk]])))
        for s in range(0, num_pairs, chunk))
    if not np.isfinite(largest) or largest <= 0:
        raise ValueError(f"Cannot scale the {kind} cost: the sampled clouds give a largest "
                         f"cost of {largest}. Are all clouds a single repeated point? Set "
                         f"ot.cost_scale explicitly.")
    return largest
