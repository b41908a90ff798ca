"""Padded clouds stored as a table of rows and indices into it, gathered when indexed.

Niches of a tissue share their cells: with ``k`` cells per niche, a dense ``[cells, k, d]``
array holds every feature row ``k`` times (250,000 MERFISH-sized niches of 11 cells in 250
features: 2.75 GB). :class:`GatheredPoints` keeps the ``[rows, d]`` table once and an
``[N, n]`` integer index, and builds dense coordinates only for the clouds asked for
(a batch, a chunk to encode), so a training run never holds more than a batch of them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PADDING", "GatheredPoints"]

PADDING = -1  # an index entry that is padding: zero coordinates (its weight is zero too)


class GatheredPoints:
    """Coordinates ``[N, n, d]`` given by ``table[index]``, zero where ``index == PADDING``.

    Indexing on the first two axes (integers, slices, index arrays, boolean masks) returns
    the dense numpy array the same indexing of the dense array would, gathered from the
    table. ``np.asarray`` builds the whole dense array (a copy of ``N n d`` floats): code
    on the training path uses indexing, :meth:`take` and :meth:`map_rows` instead.

    Attributes:
      table: ``[rows, d]`` float32 coordinates, each stored once.
      index: ``[N, n]`` integer rows of ``table``; ``PADDING`` (-1) marks padding.
    """

    def __init__(self, table: np.ndarray, index: np.ndarray):
        table, index = np.asarray(table), np.asarray(index)
        if table.ndim != 2:
            raise ValueError(f"The row table must be [rows, d], got shape {table.shape}.")
        if index.ndim != 2 or not np.issubdtype(index.dtype, np.integer):
            raise ValueError(f"The index must be an integer [N, n] array, got {index.dtype} of "
                             f"shape {index.shape}.")
        if index.size and (index.max() >= len(table) or index.min() < PADDING):
            raise ValueError(f"The index refers to rows outside the table's {len(table)} "
                             f"(range {index.min()}..{index.max()}).")
        self.table = table.astype(np.float32, copy=False)
        self.index = index

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*self.index.shape, self.table.shape[1])

    @property
    def ndim(self) -> int:
        return 3

    @property
    def dtype(self) -> np.dtype:
        return self.table.dtype

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return (f"GatheredPoints({self.shape[0]} clouds x {self.shape[1]} points x "
                f"{self.shape[2]}-D from a table of {len(self.table)} rows)")

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple) and len(key) > 2:
            raise IndexError("GatheredPoints is indexed on its cloud and point axes only.")
        rows = self.index[key]
        out = self.table[np.maximum(rows, 0)]
        padding = rows == PADDING
        if np.any(padding):
            out[padding] = 0.0
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        dense = self[:]
        return dense if dtype is None else dense.astype(dtype)

    def take(self, clouds, length: int | None = None) -> GatheredPoints:
        """The clouds at ``clouds`` (any first-axis index), cut to ``length`` points: no
        coordinates are copied."""
        index = self.index[clouds]
        return GatheredPoints(self.table, index if length is None else index[:, :length])

    def take_points(self, positions: np.ndarray) -> GatheredPoints:
        """Cloud ``i``'s points ``positions[i]`` (``[N, m]`` positions within each cloud;
        ``PADDING`` for padding), as new gathered clouds."""
        rows = np.take_along_axis(self.index, np.maximum(positions, 0), axis=1)
        return GatheredPoints(self.table, np.where(positions == PADDING, PADDING, rows))

    def pad_to(self, length: int) -> GatheredPoints:
        """The same clouds with ``length`` points per row (added points are padding)."""
        extra = length - self.index.shape[1]
        if extra <= 0:
            return self.take(slice(None), length)
        return GatheredPoints(self.table, np.pad(self.index, ((0, 0), (0, extra)),
                                                 constant_values=PADDING))

    def map_rows(self, fn) -> GatheredPoints:
        """Apply a row-wise coordinate map (``[rows, d] -> [rows, d']``) to the table."""
        return GatheredPoints(np.asarray(fn(self.table), np.float32), self.index)

    def used_rows(self, mask: np.ndarray) -> np.ndarray:
        """``[m, d]``: each table row that some ``mask [N, n]`` entry refers to, once."""
        used = np.zeros(len(self.table), bool)
        used[self.index[mask & (self.index != PADDING)]] = True
        return self.table[used]
