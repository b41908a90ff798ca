"""Encoding many clouds in chunks with one jitted network call per chunk."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from wormhole.data.padding import bucket_length, fill_with_first, power_of_two_at_least

__all__ = ["default_encode_batch", "encode_in_chunks"]


def default_encode_batch() -> int:
    """Clouds per encoder call: 16 on CPU, 256 on accelerators.

    On CPU the encoder is memory-bound (the attention logits of a chunk are
    ``[B, heads, n, n]``): on 2 cores, MNIST-sized clouds (~100 points) encode about 2.5x
    faster 16 at a time than 256 at a time (``benchmarks/search.py`` reports the figure).
    GPUs and TPUs need large chunks to fill their cores.
    """
    import jax

    return 16 if jax.default_backend() == "cpu" else 256


def _filled(count: int, batch_size: int, devices: int) -> int:
    """Rows of a chunk of ``count`` clouds once filled: a power of two per device, at most
    ``batch_size`` (rounded up to a multiple of ``devices``)."""
    per_device = min(power_of_two_at_least(math.ceil(count / devices)),
                     math.ceil(batch_size / devices))
    return per_device * devices


def encode_in_chunks(encode: Callable, points: np.ndarray, weights: np.ndarray,
                     sizes: np.ndarray, emb_dim: int, batch_size: int | None = None,
                     bucket: int = 32, mesh=None) -> np.ndarray:
    """``encode(points [b, n, d], weights [b, n]) -> [b, emb_dim]`` over all ``N`` clouds.

    Clouds are sorted by size so that similar sizes share a chunk, and each chunk's padding
    is cropped by :func:`~wormhole.data.padding.bucket_length`. Returns ``[N, emb_dim]`` in
    the input order. ``batch_size`` defaults to :func:`default_encode_batch` per device.
    With a ``mesh`` (:func:`wormhole.parallel.local_mesh`) each chunk is split over its
    devices. A short chunk is filled with copies of its first cloud (dropped afterwards) up
    to a power of two of clouds per device, so that calls with any number of clouds compile
    a handful of chunk shapes.
    """
    devices = 1 if mesh is None else mesh.size
    batch_size = batch_size or default_encode_batch() * devices
    layout = None
    if devices > 1:
        from wormhole.parallel import batch_sharding

        layout = batch_sharding(mesh)
    order = np.argsort(sizes, kind="stable")
    out = np.empty((len(sizes), emb_dim), np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        length = bucket_length(int(sizes[index].max()), bucket, points.shape[1])
        rows = fill_with_first(index, _filled(len(index), batch_size, devices))
        chunk = (points[rows, :length], weights[rows, :length])
        if layout is not None:
            import jax

            chunk = jax.device_put(chunk, layout)
        out[index] = np.asarray(encode(*chunk))[:len(index)]
    return out
