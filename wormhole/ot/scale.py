"""The fixed cost scale of a data set: one number, computed once and stored with the model."""

from __future__ import annotations

import numpy as np

from wormhole.ot.spec import OTSpec

__all__ = ["estimate_cost_scale"]


def _cost_matrix(spec: OTSpec, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from ott.geometry import costs, pointcloud

    cost_fn = spec.cost_fn
    if isinstance(cost_fn, costs.CostFn):
        return np.asarray(pointcloud.PointCloud(x, y, cost_fn=cost_fn).cost_matrix)
    return np.asarray(cost_fn(x, y))


def estimate_cost_scale(points, weights, kind: str = "S2", cost=None, num_pairs: int = 256,
                        seed: int = 0) -> float:
    """The largest ground cost over a seeded sample of cloud pairs.

    For the linear kinds, costs between points of two different clouds; for GW kinds, the
    intra-cloud costs. Dividing by it puts costs in about ``[0, 1]``, so one ``epsilon``
    suits data sets of any extent. Only points with positive weight count.
    """
    spec = OTSpec(kind=kind, cost=cost)
    points, weights = np.asarray(points), np.asarray(weights)
    count = len(points)
    rng = np.random.default_rng((seed, 11))
    first = rng.integers(0, count, num_pairs)
    second = first if spec.quadratic or count == 1 else \
        (first + rng.integers(1, count, num_pairs)) % count
    largest = 0.0
    for i, j in zip(first, second, strict=True):
        x, y = points[i][weights[i] > 0], points[j][weights[j] > 0]
        largest = max(largest, float(_cost_matrix(spec, x, y).max()))
    if not np.isfinite(largest) or largest <= 0:
        raise ValueError(f"Cannot scale the {kind} cost: the sampled clouds give a largest "
                         f"cost of {largest}. Are all clouds a single repeated point? Set "
                         f"ot.cost_scale explicitly.")
    return largest
