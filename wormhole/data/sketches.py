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

__all__ = ["cloud_sketches", "weighted_quantiles"]

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
