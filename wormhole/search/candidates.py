"""Candidate neighbours: exact blocked brute force, or HNSW through faiss, over rows.

``brute`` and ``hnsw`` rank collection rows by Euclidean distance between embeddings, which
orders neighbours as both of the model's embedding distances do (``mse`` is its square over
the dimension). ``sketch`` is brute force over sliced quantile sketches of the clouds instead
(:mod:`wormhole.data.sketches`; the index computes them): no model involved, and on
held-out MNIST clouds a better ranking of exact-W2 neighbours than a trained embedding. All
return candidate *indices*; the caller computes the distances it reports.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from wormhole.data.padding import power_of_two_at_least
from wormhole.extras import MissingExtra

__all__ = ["BACKENDS", "BruteForce", "FaissHNSW", "make_backend"]

BACKENDS = ("brute", "hnsw", "sketch")

_QUERY_BLOCK = 256  # queries per compiled call
_ROW_BLOCK = 1 << 16  # collection rows per compiled call: [256, 65536] floats = 64 MiB


@functools.partial(jax.jit, static_argnames="k")
def _block_top_k(queries: jnp.ndarray, rows: jnp.ndarray, rows_sq: jnp.ndarray, k: int):
    """The ``k`` rows nearest to each query: ``([q, k] squared distances, [q, k] indices)``."""
    sq = (jnp.sum(queries * queries, axis=1)[:, None] - 2.0 * queries @ rows.T
          + rows_sq[None, :])
    negative, index = jax.lax.top_k(-sq, k)
    return -negative, index


def _padded_count(count: int) -> int:
    return min(_QUERY_BLOCK, power_of_two_at_least(count))


class BruteForce:
    """Exact nearest rows by blocked matrix products in JAX (any device).

    Memory stays at one ``[256, 65536]`` block of distances whatever the collection size;
    time is ``O(Q N e)``, fine to millions of 64-128-D rows on one machine.
    """

    name = "brute"

    def __init__(self, embeddings: np.ndarray):
        self.size = len(embeddings)
        self._blocks = []
        for start in range(0, self.size, _ROW_BLOCK):
            rows = np.asarray(embeddings[start:start + _ROW_BLOCK], np.float32)
            squares = np.sum(rows.astype(np.float64) ** 2, axis=1).astype(np.float32)
            if self.size > _ROW_BLOCK and len(rows) < _ROW_BLOCK:
                # Pad the last block to the common shape; padded rows are infinitely far.
                pad = _ROW_BLOCK - len(rows)
                rows = np.pad(rows, ((0, pad), (0, 0)))
                squares = np.pad(squares, (0, pad), constant_values=np.inf)
            self._blocks.append((start, jnp.asarray(rows), jnp.asarray(squares)))

    def search(self, queries: np.ndarray, k: int) -> np.ndarray:
        """``[Q, k]`` indices of the nearest rows, nearest first."""
        queries = np.asarray(queries, np.float32)
        out = np.empty((len(queries), k), np.int64)
        for start in range(0, len(queries), _QUERY_BLOCK):
            block = queries[start:start + _QUERY_BLOCK]
            count = len(block)
            # Pad to a power of two: a few compiled shapes, and one query costs one row.
            block = np.pad(block, ((0, _padded_count(count) - count), (0, 0)))
            best_sq = np.full((len(block), 0), np.inf, np.float32)
            best_index = np.zeros((len(block), 0), np.int64)
            for offset, rows, squares in self._blocks:
                take = min(k, rows.shape[0])
                sq, index = _block_top_k(jnp.asarray(block), rows, squares, take)
                best_sq = np.concatenate([best_sq, np.asarray(sq)], axis=1)
                best_index = np.concatenate([best_index, np.asarray(index) + offset], axis=1)
                keep = np.argsort(best_sq, axis=1, kind="stable")[:, :k]
                best_sq = np.take_along_axis(best_sq, keep, axis=1)
                best_index = np.take_along_axis(best_index, keep, axis=1)
            out[start:start + count] = best_index[:count]
        return out


class FaissHNSW:
    """Approximate nearest rows with faiss's HNSW graph (``pip install -e ".[ann]"``).

    For collections where even blocked brute force is too slow per query. ``ef_search``
    (default ``max(64, 2k)``) trades recall for speed; the exact OT re-rank downstream
    repairs most misses among the candidates it is given.
    """

    name = "hnsw"

    def __init__(self, embeddings: np.ndarray, neighbours: int = 32, ef_construction: int = 80):
        try:
            import faiss
        except ImportError:
            raise MissingExtra("The 'hnsw' search backend needs faiss: pip install -e "
                              "\".[ann]\" (or pip install faiss-cpu).") from None
        self._faiss = faiss
        self.size = len(embeddings)
        self._index = faiss.IndexHNSWFlat(embeddings.shape[1], neighbours)
        self._index.hnsw.efConstruction = ef_construction
        self._index.add(np.ascontiguousarray(embeddings, np.float32))

    def search(self, queries: np.ndarray, k: int, ef_search: int | None = None) -> np.ndarray:
        self._index.hnsw.efSearch = ef_search or max(64, 2 * k)
        _, index = self._index.search(np.ascontiguousarray(queries, np.float32), k)
        return index.astype(np.int64)


def make_backend(name: str, embeddings: np.ndarray):
    """A candidate backend of :data:`BACKENDS` over ``embeddings [N, e]`` (for ``sketch``:
    the clouds' sketches)."""
    if name in ("brute", "sketch"):
        return BruteForce(embeddings)
    if name == "hnsw":
        return FaissHNSW(embeddings)
    raise ValueError(f"Unknown search backend '{name}'; choose one of {', '.join(BACKENDS)}.")
