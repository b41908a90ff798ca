"""Certified exact k-nearest search: solve exact OT in lower-bound order until none can win.

Given a lower bound ``b_i <= D(q, i)`` for every collection cloud (:mod:`.bounds`), solve
``D`` for clouds in increasing ``b_i``; once the next bound is at least the ``k``-th best
value solved so far, no unsolved cloud can beat it, so the ``k`` solved values are the
exact ``k`` nearest (a cloud tied with the ``k``-th may be left out). The classic
filter-and-refine scheme of metric-space search (Zezula et al., 2006), here with OT.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["certified_nearest"]

_CHUNK = 16  # exact solves per call of ``solve``
_FIRST = 256  # bounds sorted at first; the sorted prefix doubles when a query needs more


def certified_nearest(bounds: np.ndarray, solve: Callable[[np.ndarray], np.ndarray], k: int,
                      slack: float = 1e-3, chunk: int = _CHUNK):
    """The exact ``k`` nearest of one query.

    Args:
      bounds: ``[N]`` lower bounds of the distance to each collection cloud.
      solve: exact distances ``[m]`` to the collection clouds of an index array ``[m]``.
      k: neighbours wanted (at most ``N``).
      slack: bounds are lowered by this relative amount first, so rounding in them cannot
        prune a true neighbour.
      chunk: clouds solved per call of ``solve``.

    Returns:
      ``(indices [k], distances [k], solved)``, nearest first; ``solved`` counts exact solves.
    """
    bounds = np.asarray(bounds, np.float64) * (1.0 - slack)
    count = len(bounds)
    found_index = np.empty(0, np.int64)
    found_value = np.empty(0, np.float64)
    done = np.zeros(count, bool)
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
        kth = found_value[k - 1] if len(found_value) >= k else np.inf
        # Bounds outside the prefix are no smaller than any inside, so when the nearest
        # unsolved bound reaches the k-th value, no unsolved cloud can win.
        take = rest[:chunk]
        take = take[bounds[take] < kth]
        if len(take) == 0:
            break
        done[take] = True
        found_index = np.concatenate([found_index, take])
        found_value = np.concatenate([found_value, np.asarray(solve(take), np.float64)])
        keep = np.argsort(found_value, kind="stable")[:k]
        found_index, found_value = found_index[keep], found_value[keep]
    return found_index, found_value, int(done.sum())


def _smallest(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` smallest ``values``, in increasing order."""
    if count < len(values):
        part = np.argpartition(values, count - 1)[:count]
    else:
        part = np.arange(len(values))
    return part[np.argsort(values[part], kind="stable")]
