"""Provable lower bounds of W2^2 between clouds: what certified exact search prunes with.

Two inequalities give a bound that costs one small vector per cloud:

1. *Orthonormal projections.* For orthonormal ``u_1..u_r`` and any coupling,
   ``|x - y|^2 >= sum_j (u_j . (x - y))^2``, so
   ``W2^2(mu, nu) >= sum_j W2^2(u_j # mu, u_j # nu)``, each term a 1-D problem
   ``int_0^1 (F_j^-1 - G_j^-1)^2`` between projected quantile functions (the projection
   argument behind sliced and max-sliced Wasserstein distances; Deshpande et al., 2019).
2. *Jensen on equal-mass bins.* Over a bin of width ``1/L``,
   ``int (f - g)^2 >= L (int f - int g)^2``: the bin means of the two quantile functions
   bound the 1-D cost from below.

So with each cloud's *frame sketch* (bin means of its projected quantile functions for
``frames`` random orthonormal frames of ``r = min(d, 8)`` directions,
:func:`frame_sketches`), ``max_f |s_f(mu) - s_f(nu)|^2 / L`` is a lower bound of
``W2^2(mu, nu)`` (:func:`lower_bounds`): loose (about half of W2^2 between near MNIST
neighbours) but one vector distance per cloud, so it ranks a whole collection per query;
certified search then bounds the clouds it lets through tightly (:mod:`.dual_bounds`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from wormhole.data.clouds import PointClouds
from wormhole.data.padding import power_of_two_at_least
from wormhole.data.sketches import quantile_bin_means

__all__ = ["FRAMES", "LEVELS", "FrameBounds", "frame_sketches", "lower_bounds", "random_frames"]

FRAMES = 8  # random frames: more tighten the bound only slowly
LEVELS = 32  # equal-mass bins per projected quantile function
_FRAME_WIDTH = 8  # directions per frame in high dimension (all d directions when d <= 8)
_POINT_BUDGET = 1 << 21  # projected values held at once while sketching
_ROW_BLOCK = 1 << 14  # collection rows per compiled bound call


def random_frames(dim: int, frames: int = FRAMES, seed: int = 0) -> np.ndarray:
    """``[frames, dim, r]`` random orthonormal frames (Haar, by QR), ``r = min(dim, 8)``."""
    rng = np.random.default_rng(seed)
    width = min(dim, _FRAME_WIDTH)
    out = np.empty((frames, dim, width))
    for f in range(frames):
        q, r = np.linalg.qr(rng.standard_normal((dim, width)))
        out[f] = q * np.sign(np.diag(r))  # sign fix: Haar-distributed frames
    return out


def frame_sketches(clouds: PointClouds, frames: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """``[N, F, r * levels]`` float32 bin means of the clouds' quantile functions along each
    frame's directions (``frames`` from :func:`random_frames`)."""
    count, width = frames.shape[0], frames.shape[2]
    axes = np.moveaxis(frames, 0, 1).reshape(frames.shape[1], count * width)  # [d, F r]
    chunk = max(1, _POINT_BUDGET // max(1, clouds.length * axes.shape[1]))
    out = np.empty((len(clouds), count, width * levels), np.float32)
    for start in range(0, len(clouds), chunk):
        points = np.asarray(clouds.points[start:start + chunk], np.float64)
        means = quantile_bin_means(points @ axes, clouds.weights[start:start + chunk], levels)
        out[start:start + chunk] = means.reshape(len(points), count, width * levels)
    return out


@jax.jit
def _block_bounds(queries: jnp.ndarray, rows: jnp.ndarray) -> jnp.ndarray:
    # Differences, not |q|^2 - 2 q.s + |s|^2: near neighbours would lose their digits.
    def one(query):
        return jnp.max(jnp.sum((rows - query[None]) ** 2, axis=-1), axis=-1)

    return jax.lax.map(one, queries)


class FrameBounds:
    """A collection's frame sketches on the device, in blocks of one compiled shape."""

    def __init__(self, sketches: np.ndarray, levels: int = LEVELS):
        self.size, self.levels = len(sketches), levels
        self.nbytes = sketches.nbytes
        self._blocks = []
        for start in range(0, self.size, _ROW_BLOCK):
            block = np.asarray(sketches[start:start + _ROW_BLOCK], np.float32)
            if len(block) < _ROW_BLOCK and self.size > _ROW_BLOCK:
                block = np.concatenate([block, np.repeat(block[-1:], _ROW_BLOCK - len(block),
                                                         0)])
            self._blocks.append((start, jnp.asarray(block)))

    def bounds(self, query_sketches: np.ndarray) -> np.ndarray:
        """``[Q, N]`` lower bounds of W2^2 (on the coordinates the sketches were taken in)
        between each query and each collection cloud."""
        count = len(query_sketches)
        queries = np.asarray(query_sketches, np.float32)
        queries = jnp.asarray(np.concatenate(
            [queries, np.repeat(queries[-1:], power_of_two_at_least(count) - count, 0)]))
        out = np.empty((count, self.size), np.float64)
        for start, block in self._blocks:
            stop = min(start + _ROW_BLOCK, self.size)
            values = np.asarray(_block_bounds(queries, block))
            out[:, start:stop] = values[:count, :stop - start]
        return out / self.levels


def lower_bounds(query_sketches: np.ndarray, sketches: np.ndarray,
                 levels: int = LEVELS) -> np.ndarray:
    """``[Q, N]`` lower bounds of W2^2 (on the coordinates the sketches were taken in)
    between each query and each sketched cloud (see :class:`FrameBounds` to reuse a
    collection's sketches across queries)."""
    return FrameBounds(sketches, levels).bounds(query_sketches)
