"""Sliced quantile sketches of point clouds: cheap vectors whose distances rank OT neighbours.

For each of ``directions`` fixed unit vectors, a cloud's projected quantile function at
``levels`` mid-point levels. The squared Euclidean distance between two sketches, divided by
``directions * levels``, is the mid-point rule of the sliced W2^2 (Bonneel et al., 2015), a
lower bound of W2^2 in expectation that ranks neighbours far better than matching means and
covariances (on 500 held-out MNIST clouds, 71% of the exact 10 nearest neighbours are among
the 32-direction sketch's 10 nearest, 99.2% among its 50 nearest:
``benchmarks/sketch_candidates.py``). For Gromov-Wasserstein kinds, which ignore rotations,
the sketch is the quantile function of each point's distance to the cloud's centroid
(invariant to rotations and translations). Used by neighbour-mined batches
(:mod:`wormhole.data.neighbour_batches`) and the ``sketch`` search backend.
"""

from __future__ import annotations

import numpy as np

from wormhole.data.clouds import PointClouds

__all__ = ["cloud_sketches", "quantile_bin_means", "weighted_quantiles"]

_CHUNK = 256  # clouds sketched per vectorised call


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels: int) -> np.ndarray:
    """Quantile functions of weighted 1-D samples at ``levels`` mid-point levels.

    Args:
      values: ``[c, n, s]`` samples (``s`` independent 1-D measures per cloud).
      weights: ``[c, n]`` probability weights (zero for padding).
      levels: quantile levels ``(j + 0.5) / levels``, ``j < levels``.

    Returns:
      ``[c, s, levels]``: the left-continuous inverse CDF at each level.
    """
    padded = np.where(weights[..., None] > 0, values, np.inf)
    order = np.argsort(padded, axis=1)
    sorted_values = np.take_along_axis(padded, order, axis=1)
    mass = np.take_along_axis(np.broadcast_to(weights[..., None], values.shape), order, axis=1)
    cdf = np.cumsum(mass, axis=1)  # [c, n, s]
    q = (np.arange(levels) + 0.5) / levels
    # The quantile at q is the first sorted value whose CDF reaches q.
    position = np.sum(cdf[..., None] < q, axis=1)  # [c, s, levels]
    position = np.minimum(position, values.shape[1] - 1)
    return np.take_along_axis(np.moveaxis(sorted_values, 1, -1), position, axis=-1)


def quantile_bin_means(values: np.ndarray, weights: np.ndarray, levels: int) -> np.ndarray:
    """Mean of each weighted 1-D sample's quantile function over ``levels`` equal-mass bins.

    The integral ``G(t)`` of the quantile function is piecewise linear (slope: the sorted
    values; knots: the cumulative weights), so each bin's mean ``levels * (G(t1) - G(t0))``
    is exact. All rows are interpolated by one ``searchsorted`` over their knots laid end
    to end (row ``r`` shifted by ``2 r``).

    Args:
      values: ``[c, n, s]`` samples (``s`` independent 1-D measures per cloud).
      weights: ``[c, n]`` non-negative weights (zero for padding), normalised here.
      levels: bins ``[j / levels, (j + 1) / levels]``, ``j < levels``.

    Returns:
      ``[c, s, levels]`` float64 bin means.
    """
    c, n, s = values.shape
    weights = np.asarray(weights, np.float64)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mass = np.broadcast_to(weights[..., None], values.shape)
    order = np.argsort(np.where(mass > 0, values, np.inf), axis=1)
    slope = np.take_along_axis(np.asarray(values, np.float64), order, axis=1)
    mass = np.take_along_axis(mass, order, axis=1)
    slope = np.where(mass > 0, slope, 0.0)
    slope, mass = (np.moveaxis(a, 1, -1).reshape(c * s, n) for a in (slope, mass))
    zero = np.zeros((c * s, 1))
    knots = np.concatenate([zero, np.cumsum(mass, axis=1)], axis=1)  # [R, n + 1]
    integral = np.concatenate([zero, np.cumsum(slope * mass, axis=1)], axis=1)
    shift = 2.0 * np.arange(c * s)[:, None]
    edges = np.linspace(0.0, 1.0, levels + 1)[None] + shift  # [R, L + 1]
    segment = np.searchsorted((knots + shift).ravel(), edges.ravel(), side="right") - 1
    segment = np.clip(segment.reshape(edges.shape) - (n + 1) * np.arange(c * s)[:, None],
                      0, n - 1)
    rows = np.arange(c * s)[:, None]
    at_edges = (integral[rows, segment]
                + slope[rows, segment] * (edges - shift - knots[rows, segment]))
    return (levels * np.diff(at_edges, axis=1)).reshape(c, s, levels)


def cloud_sketches(clouds: PointClouds, quadratic: bool = False, directions: int = 32,
                   levels: int = 32, seed: int = 0) -> np.ndarray:
    """``[N, directions * levels]`` sketches whose squared distances approximate the OT cost
    up to the factor ``directions * levels`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    axes = rng.standard_normal((clouds.dim, directions))
    axes /= np.linalg.norm(axes, axis=0, keepdims=True)
    out = []
    for start in range(0, len(clouds), _CHUNK):
        points = np.asarray(clouds.points[start:start + _CHUNK], np.float64)
        weights = np.asarray(clouds.weights[start:start + _CHUNK], np.float64)
        if quadratic:
            centre = np.einsum("cn,cnd->cd", weights, points)
            values = np.linalg.norm(points - centre[:, None], axis=-1)[..., None]
        else:
            values = points @ axes
        quantiles = weighted_quantiles(values, weights, levels)
        out.append(quantiles.reshape(len(points), -1).astype(np.float32))
    return np.concatenate(out)
