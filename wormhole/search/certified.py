"""Certified exact k-nearest search: solve exact OT in lower-bound order until none can win.

Given a lower bound ``b_i <= D(q, i)`` for every collection cloud (:mod:`.bounds`), solve
``D`` for clouds in increasing ``b_i``; once the next bound is at least the ``k``-th best
value solved so far, no unsolved cloud can beat it, so the ``k`` solved values are the
exact ``k`` nearest (a cloud tied with the ``k``-th may be left out). An optional second,
tighter and costlier bound (``refine``, e.g. :mod:`.dual_bounds`) is computed for the clouds
the first one lets through, and only those it cannot rule out are solved. The classic
filter-and-refine scheme of metric-space search (Zezula et al., 2006), here with OT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["Certified", "certified_nearest"]

_CHUNK = 16  # exact solves per call of ``solve``
_REFINE_CHUNK = 64  # clouds per call of ``refine``
_FIRST = 256  # bounds sorted at first; the sorted prefix doubles when a query needs more


class Certified(NamedTuple):
    """The exact ``k`` nearest of one query, nearest first.

    Attributes:
      indices, distances: ``[k]``.
      solved: exact solves made.
      refined: second bounds computed (0 without ``refine``).
    """

    indices: np.ndarray
    distances: np.ndarray
    solved: int
    refined: int


def certified_nearest(bounds: np.ndarray, solve: Callable[[np.ndarray], np.ndarray], k: int,
                      refine: Callable[[np.ndarray], np.ndarray] | None = None,
                      slack: float = 1e-3, chunk: int = _CHUNK) -> Certified:
    """The exact ``k`` nearest of one query.

    Args:
      bounds: ``[N]`` lower bounds of the distance to each collection cloud.
      solve: exact distances ``[m]`` to the collection clouds of an index array ``[m]``.
      k: neighbours wanted (at most ``N``).
      refine: optional tighter lower bounds ``[m]`` for an index array ``[m]``.
      slack: bounds are lowered by this relative amount first, so rounding in them cannot
        prune a true neighbour.
      chunk: clouds solved per call of ``solve``.
    """
    bounds = np.asarray(bounds, np.float64) * (1.0 - slack)
    count = len(bounds)
    best = _Best(k, solve)
    done = np.zeros(count, bool)
    refined = 0
    prefix = min(count, _FIRST)
    order = _smallest(bounds, prefix)
    while True:
        rest = order[~done[order]]
        if len(rest) == 0:
            if prefix == count:
                break
            prefix = min(count, 2 * prefix)  # the sorted prefix is spent: sort more
            order = _smallest(bounds, prefix)
            continue
        # Bounds outside the prefix are no smaller than any inside, so when the nearest
        # unsolved bound reaches the k-th value, no unsolved cloud can win.
        take = rest[:_REFINE_CHUNK if refine is not None else chunk]
        take = take[bounds[take] < best.kth]
        if len(take) == 0:
            break
        done[take] = True
        if refine is None:
            best.solve(take)
            continue
        tight = np.asarray(refine(take), np.float64) * (1.0 - slack)
        refined += len(take)
        ranked = np.argsort(tight, kind="stable")
        take, tight = take[ranked], tight[ranked]
        for start in range(0, len(take), chunk):
            keep = tight[start:start + chunk] < best.kth
            if not keep.any():
                break  # sorted: the rest of this chunk cannot win either
            best.solve(take[start:start + chunk][keep])
    return Certified(best.index, best.value, best.solved, refined)


class _Best:
    """The ``k`` smallest exact values solved so far."""

    def __init__(self, k: int, solve):
        self.k, self._solve = k, solve
        self.index = np.empty(0, np.int64)
        self.value = np.empty(0, np.float64)
        self.solved = 0

    @property
    def kth(self) -> float:
        return self.value[self.k - 1] if len(self.value) >= self.k else np.inf

    def solve(self, index: np.ndarray) -> None:
        self.solved += len(index)
        self.index = np.concatenate([self.index, index])
        self.value = np.concatenate([self.value, np.asarray(self._solve(index), np.float64)])
        keep = np.argsort(self.value, kind="stable")[:self.k]
        self.index, self.value = self.index[keep], self.value[keep]


def _smallest(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` smallest ``values``, in increasing order."""
    if count < len(values):
        part = np.argpartition(values, count - 1)[:count]
    else:
        part = np.arange(len(values))
    return part[np.argsort(values[part], kind="stable")]
