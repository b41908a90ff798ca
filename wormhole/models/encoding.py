"""Encoding many clouds in chunks with one jitted network call per chunk."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from wormhole.data.padding import bucket_length

__all__ = ["encode_in_chunks"]


def encode_in_chunks(encode: Callable, points: np.ndarray, weights: np.ndarray,
                     sizes: np.ndarray, emb_dim: int, batch_size: int = 256,
                     bucket: int = 32) -> np.ndarray:
    """``encode(points [b, n, d], weights [b, n]) -> [b, emb_dim]`` over all ``N`` clouds.

    Clouds are sorted by size so that similar sizes share a chunk, and each chunk's padding
    is cropped by :func:`~wormhole.data.padding.bucket_length`. Returns ``[N, emb_dim]`` in
    the input order.
    """
    order = np.argsort(sizes, kind="stable")
    out = np.empty((len(sizes), emb_dim), np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        length = bucket_length(int(sizes[index].max()), bucket, points.shape[1])
        out[index] = np.asarray(encode(points[index, :length], weights[index, :length]))
    return out
