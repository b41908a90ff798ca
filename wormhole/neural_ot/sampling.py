"""Where mini-batches come from: a finite sample (an array) or an infinite stream (a sampler).

Both are wrapped as a :class:`Source`. A finite sample's array is passed to jitted code as an
argument (``Source.data``), so a 10^6-point array is never baked into a compiled program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Sampler", "Source", "as_source"]

Sampler = Callable[[jax.Array, int], jnp.ndarray]
"""``sampler(key, batch_size) -> [batch_size, d]``: an infinite stream of i.i.d. points."""


class Source(NamedTuple):
    """A distribution known through samples: either ``data: [n, d]`` (a finite sample; its
    empirical measure is the distribution) or ``sampler`` (an infinite stream). ``shift: [d]``
    is subtracted from every point drawn (``None``: no shift)."""

    data: jnp.ndarray | None
    sampler: Sampler | None
    dim: int
    shift: jnp.ndarray | None = None

    @property
    def size(self) -> int | None:
        """Number of points of a finite sample; ``None`` for a sampler."""
        return None if self.data is None else int(self.data.shape[0])

    def shifted(self, shift: jnp.ndarray) -> Source:
        """The same distribution translated by ``-shift`` (used to centre for GW)."""
        return self._replace(shift=shift if self.shift is None else self.shift + shift)

    def _finish(self, points: jnp.ndarray) -> jnp.ndarray:
        return points if self.shift is None else points - self.shift

    def batch(self, data: jnp.ndarray | None, key: jax.Array, num: int) -> jnp.ndarray:
        """A training batch ``[num or n, d]`` (traceable; pass ``self.data`` as ``data``): the
        whole sample when it has at most ``num`` points, else ``num`` points drawn with
        replacement; ``num`` draws from a sampler."""
        if self.data is None:
            return self._finish(self.sampler(key, num))
        if self.data.shape[0] <= num:
            return self._finish(data)
        return self._finish(data[jax.random.randint(key, (num,), 0, data.shape[0])])

    def fresh(self, key: jax.Array, num: int) -> jnp.ndarray:
        """An evaluation sample: the whole finite sample when it has at most ``num`` points,
        else ``num`` distinct points of it; ``num`` new draws from a sampler."""
        if self.data is None:
            return self._finish(self.sampler(key, num))
        if self.data.shape[0] <= num:
            return self._finish(self.data)
        idx = jax.random.choice(key, self.data.shape[0], (num,), replace=False)
        return self._finish(self.data[idx])


def as_source(obj, name: str = "sample") -> Source:
    """Wrap an array ``[n, d]`` or a sampler ``(key, batch) -> [batch, d]`` as a :class:`Source`."""
    if isinstance(obj, Source):
        return obj
    if callable(obj):
        probe = obj(jax.random.PRNGKey(0), 2)
        if probe.ndim != 2 or probe.shape[0] != 2:
            raise ValueError(f"{name}: a sampler must return [batch, d] for (key, batch); it "
                             f"returned shape {tuple(probe.shape)} for batch 2.")
        return Source(None, obj, int(probe.shape[1]))
    arr = jnp.asarray(obj, jnp.float32)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{name}: expected an array [n, d] with n >= 2 or a sampler "
                         f"(key, batch) -> [batch, d], got shape {tuple(np.shape(obj))}.")
    if not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError(f"{name}: the array holds NaN or infinite values.")
    return Source(arr, None, int(arr.shape[1]))
