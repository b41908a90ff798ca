"""OT between each query and its candidate clouds: the run's own engine, or exact by POT.

Both return values in the model's target units (the OT cost on normalised coordinates
divided by the run's ``cost_scale``), the units of :meth:`Wormhole.distance`, so a re-ranked
list and an embedding-only list are comparable.
"""

from __future__ import annotations

import numpy as np

from wormhole.data import Normalization, PointClouds
from wormhole.data.padding import bucket_length
from wormhole.evaluate.ground_truth import ground_truth_distances
from wormhole.ot import OTSpec, get_kind, paired_distances, self_terms
from wormhole.parallel import on_local_devices

__all__ = ["EngineReranker", "exact_distances", "exact_kind"]

_PAIRS_PER_CALL = 64  # pairs per compiled solve: one shape for every query
_BUCKET = 32


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """``array`` with its last row repeated up to ``rows`` rows (valid clouds, not zeros)."""
    extra = rows - len(array)
    return array if extra <= 0 else np.concatenate([array, np.repeat(array[-1:], extra, 0)])


class EngineReranker:
    """The training kind's distance between queries and collection clouds, by ott-jax.

    The solves are batched and jitted exactly as in training (``spec.batching``). For a
    debiased kind the self term ``OT(y, y)`` of a collection cloud is solved the first time
    the cloud is a candidate and cached (``self_values``), so repeated searches solve only
    the cross terms and one self term per query.
    """

    def __init__(self, spec: OTSpec, collection: PointClouds, normalization: Normalization,
                 self_values: np.ndarray | None = None):
        import jax

        self.spec, self.collection, self.normalization = spec, collection, normalization
        count = len(collection)
        self.self_values = (np.full(count, np.nan) if self_values is None
                            else np.asarray(self_values, np.float64))
        if self.self_values.shape != (count,):
            raise ValueError(f"self_values has shape {self.self_values.shape}; the collection "
                             f"has {count} clouds.")
        # Self terms are read only by debiased kinds (zeros are passed for the others).
        self._cross = jax.jit(lambda x, a, y, b, sx, sy: paired_distances(
            x, a, y, b, spec, validate=False, x_self=sx, y_self=sy).values)
        self._self = jax.jit(lambda x, a: self_terms(x, a, spec)[0])

    def _length(self, queries: PointClouds) -> int:
        largest = max(self.collection.length, queries.length)
        return bucket_length(largest, _BUCKET, 1 << 30)

    def _normalised(self, index: np.ndarray, length: int) -> PointClouds:
        return self.normalization.apply_to(self.collection.subset(index)).pad_to(length)

    def _solve_self(self, clouds: PointClouds) -> np.ndarray:
        out = np.empty(len(clouds), np.float64)
        for start in range(0, len(clouds), _PAIRS_PER_CALL):
            stop = min(start + _PAIRS_PER_CALL, len(clouds))
            x = _pad_rows(clouds.points[start:stop], _PAIRS_PER_CALL)
            a = _pad_rows(clouds.weights[start:stop], _PAIRS_PER_CALL)
            with on_local_devices():
                out[start:stop] = np.asarray(self._self(x, a))[:stop - start]
        return out

    def cached_self_values(self, index: np.ndarray, length: int) -> np.ndarray:
        """Self terms of collection clouds ``index``, solving those not yet cached."""
        index = np.asarray(index)
        missing = np.unique(index[np.isnan(self.self_values[index])])
        if len(missing):
            self.self_values[missing] = self._solve_self(self._normalised(missing, length))
        return self.self_values[index]

    def distances(self, queries: PointClouds, candidates: np.ndarray) -> np.ndarray:
        """``[Q, r]`` distances between normalised ``queries`` and their ``candidates``."""
        length = self._length(queries)
        queries = queries.pad_to(length)
        count, width = candidates.shape
        first = np.repeat(np.arange(count), width)
        second = candidates.reshape(-1)
        query_self = np.zeros(count)
        collection_self = np.zeros(len(second))
        if self.spec.debiased:
            query_self = self._solve_self(queries)
            collection_self = self.cached_self_values(second, length)
        out = np.empty(len(second), np.float64)
        for start in range(0, len(second), _PAIRS_PER_CALL):
            stop = min(start + _PAIRS_PER_CALL, len(second))
            rows, cols = first[start:stop], second[start:stop]
            other = self._normalised(cols, length)
            args = [_pad_rows(v, _PAIRS_PER_CALL) for v in (
                queries.points[rows], queries.weights[rows], other.points, other.weights,
                query_self[rows].astype(np.float32),
                collection_self[start:stop].astype(np.float32))]
            with on_local_devices():
                out[start:stop] = np.asarray(self._cross(*args))[:stop - start]
        return out.reshape(count, width)


def exact_kind(kind: str) -> str:
    """The unregularised kind that ``exact=True`` re-ranks by (``W2`` for ``S2`` runs)."""
    exact = get_kind(kind).exact
    if exact is None:
        raise ValueError(f"exact=True re-ranks by unregularised OT, which {kind} has no "
                         f"counterpart for; use exact=False (the run's own {kind} engine).")
    return exact


def exact_distances(queries: PointClouds, candidates: PointClouds, width: int, kind: str,
                    cost, cost_scale: float) -> np.ndarray:
    """``[Q, width]`` exact OT (POT's network simplex) from each query to its candidates.

    ``queries`` (``Q`` clouds) and ``candidates`` (``Q * width`` clouds, query by query) are
    normalised already; ``kind`` is the run's kind, whose exact counterpart is solved (see
    :func:`exact_kind`).
    """
    count = len(queries)
    query_points, query_weights = queries.to_list()
    xs_a = [query_points[q] for q in range(count) for _ in range(width)]
    ws_a = [query_weights[q] for q in range(count) for _ in range(width)]
    xs_b, ws_b = candidates.to_list()
    values = ground_truth_distances(xs_a, ws_a, xs_b, ws_b, kind=exact_kind(kind),
                                    method="exact", cost=cost, cost_scale=cost_scale,
                                    progress=False)
    return values.reshape(count, width)
