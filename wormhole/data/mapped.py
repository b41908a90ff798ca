"""Padded clouds read on demand from an array on disk (a memory-mapped ``.npy`` file).

A data set larger than the host's memory stays on disk: :class:`MappedPoints` holds the
memory-mapped ``[M, n, d]`` array, which of its rows are the clouds (a split or subset is a
list of rows, not a copy), the padded length, and the row-wise coordinate maps applied so far
(the normalisation). Indexing reads only the clouds asked for (a batch, a chunk to encode),
applies the maps to their real points and returns a dense numpy array, so a training run
holds one batch of coordinates at a time. Weights, sizes and labels (``N`` or ``N n``
numbers, not ``N n d``) stay in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["MappedPoints"]

_CHUNK = 4096  # clouds per read when a whole set is scanned (bounds, fingerprint)


class MappedPoints:
    """Coordinates ``[N, length, d']``: rows ``rows`` of ``source [M, n, d]`` with ``maps``
    applied to each cloud's first ``sizes[i]`` points, zero elsewhere.

    Indexing on the cloud and point axes returns what the same indexing of the dense array
    would. ``np.asarray`` reads everything (``N length d'`` floats): the training path uses
    indexing, :meth:`take` and :meth:`map_rows` instead.
    """

    def __init__(self, source: np.ndarray, sizes: np.ndarray, rows: np.ndarray | None = None,
                 length: int | None = None, maps: tuple[Callable, ...] = ()):
        if source.ndim != 3:
            raise ValueError(f"Mapped clouds must be [N, n, d], got shape {source.shape}.")
        self.source = source
        self.rows = np.arange(len(source)) if rows is None else np.asarray(rows, np.int64)
        self.sizes = np.asarray(sizes)
        if self.sizes.shape != self.rows.shape:
            raise ValueError(f"{len(self.rows)} clouds but {len(self.sizes)} sizes.")
        self.length = source.shape[1] if length is None else int(length)
        self.maps = tuple(maps)
        probe = np.zeros((1, source.shape[2]), np.float32)
        for fn in self.maps:
            probe = np.asarray(fn(probe))
        self._dim = probe.shape[1]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.rows), self.length, self._dim)

    @property
    def ndim(self) -> int:
        return 3

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        where = getattr(self.source, "filename", None) or "memory"
        return (f"MappedPoints({self.shape[0]} clouds x {self.shape[1]} points x "
                f"{self.shape[2]}-D from {where})")

    def _read(self, clouds: np.ndarray) -> np.ndarray:
        """Dense ``[len(clouds), length, d']`` coordinates of the clouds at ``clouds``."""
        source_rows = self.rows[clouds]
        order = np.argsort(source_rows, kind="stable")  # read the file forwards
        take = min(self.length, self.source.shape[1])
        raw = np.asarray(self.source[source_rows[order], :take], np.float32)
        points = np.empty_like(raw)
        points[order] = raw
        real = np.arange(take)[None, :] < self.sizes[clouds][:, None]
        coords = points[real]
        for fn in self.maps:
            coords = np.asarray(fn(coords), np.float32)
        out = np.zeros((len(clouds), self.length, self._dim), np.float32)
        out[:, :take][real] = coords
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple) and len(key) > 2:
            raise IndexError("MappedPoints is indexed on its cloud and point axes only.")
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        single = np.ndim(first) == 0 and not isinstance(first, slice)
        clouds = np.atleast_1d(np.arange(len(self))[first])
        out = self._read(clouds)
        if rest:
            out = out[(slice(None), *rest)]
        return out[0] if single else out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        dense = self[:]
        return dense if dtype is None else dense.astype(dtype)

    def chunks(self) -> Iterator[np.ndarray]:
        """The dense coordinates a chunk of clouds at a time, in order."""
        for start in range(0, len(self), _CHUNK):
            yield self._read(np.arange(start, min(start + _CHUNK, len(self))))

    def take(self, clouds, length: int | None = None) -> MappedPoints:
        """The clouds at ``clouds`` (any first-axis index), cut to ``length`` points: nothing
        is read."""
        index = np.arange(len(self))[clouds]
        return MappedPoints(self.source, self.sizes[index], self.rows[index],
                            self.length if length is None else length, self.maps)

    def pad_to(self, length: int) -> MappedPoints:
        """The same clouds with ``length`` points per row (added points are padding)."""
        return MappedPoints(self.source, self.sizes, self.rows, length, self.maps)

    def map_rows(self, fn: Callable) -> MappedPoints:
        """Apply a row-wise coordinate map (``[m, d] -> [m, d']``) whenever clouds are read."""
        return MappedPoints(self.source, self.sizes, self.rows, self.length, (*self.maps, fn))

    def used_rows(self, mask: np.ndarray) -> np.ndarray:
        """``[m, d']``: the coordinates of every ``mask [N, length]`` entry."""
        parts = [chunk[mask[start:start + len(chunk)]] for start, chunk in
                 zip(range(0, len(self), _CHUNK), self.chunks(), strict=True)]
        return np.concatenate(parts) if parts else np.zeros((0, self._dim), np.float32)

    def take_points(self, positions: np.ndarray) -> np.ndarray:
        """Cloud ``i``'s points ``positions[i]`` (``-1``: padding) as a dense array: reading
        every cloud (subsampling a mapped set with ``data.max_points`` loads it)."""
        dense = np.asarray(self)
        points = np.take_along_axis(dense, np.maximum(positions, 0)[..., None], 1)
        return np.where((positions >= 0)[..., None], points, 0.0).astype(np.float32)
