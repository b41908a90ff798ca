"""Batches that contain near neighbours, found once from sketches of the clouds.

With uniformly random batches a cloud rarely meets its OT neighbours, so the stress sees few
small distances and the embedding's neighbourhoods stay loose. Here part of each batch is
drawn as groups: a random anchor cloud plus some of its nearest clouds under a cheap proxy of
the OT distance, the sliced quantile sketches of :mod:`wormhole.data.sketches`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mined_batch", "neighbour_table"]


def neighbour_table(sketches: np.ndarray, pool: int) -> np.ndarray:
    """``[N, pool]`` indices of each row's nearest other rows, nearest first."""
    from wormhole.search.candidates import BruteForce

    pool = min(pool, len(sketches) - 1)
    found = BruteForce(sketches).search(sketches, pool + 1)
    own = np.arange(len(sketches))[:, None]
    # Drop each row itself (duplicates may come first in either order).
    keep = np.where((found == own).any(axis=1, keepdims=True), found != own,
                    np.arange(pool + 1) < pool)
    return found[keep].reshape(len(sketches), pool)


def mined_batch(rng: np.random.Generator, table: np.ndarray, batch_size: int,
                fraction: float, group: int) -> np.ndarray:
    """Sorted indices of a batch: groups of an anchor and ``group - 1`` of its table
    neighbours fill ``fraction`` of the batch, uniformly random clouds the rest.

    A cloud drawn twice (as a neighbour of two anchors) is kept once and the batch is topped
    up at random, so the batch always holds ``batch_size`` distinct clouds.
    """
    count = len(table)
    groups = int(round(batch_size * fraction / group))
    chosen: dict[int, None] = {}  # insertion-ordered set

    def add(members) -> None:
        for member in map(int, members):
            if len(chosen) < batch_size:
                chosen.setdefault(member)

    for anchor in rng.choice(count, groups, replace=False):
        add([anchor])
        add(rng.choice(table[anchor], min(group - 1, table.shape[1]), replace=False))
    while len(chosen) < batch_size:
        add(rng.choice(count, batch_size - len(chosen), replace=False))
    return np.sort(np.fromiter(chosen, np.int64))
