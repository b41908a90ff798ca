"""DeepSets encoder, as in Siamese DeepSets Wasserstein embeddings."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from wormhole.models.transformer import weighted_mean

__all__ = ["DeepSetsEncoder"]


class DeepSetsEncoder(nn.Module):
    """``rho(pool_i phi(x_i))`` with ELU MLPs ``phi`` (per point) and ``rho`` (per set).

    ``mean`` pooling is the mass-weighted mean (a function of the measure alone); ``sum``
    pooling adds ``phi`` over real points (padding excluded), so it also sees the set size.
    Layer widths are ``num_layers`` layers of ``hidden`` units each, or ``phi_sizes`` /
    ``rho_sizes`` when given (e.g. the paper's phi 50-100-36 and rho 30-30-10).
    """

    emb_dim: int
    hidden: int
    num_layers: int
    pooling: str = "mean"
    dtype: jnp.dtype = jnp.float32
    phi_sizes: tuple[int, ...] | None = None
    rho_sizes: tuple[int, ...] | None = None

    def _sizes(self, given: tuple[int, ...] | None) -> tuple[int, ...]:
        return tuple(given) if given else (self.hidden,) * max(self.num_layers, 1)

    @nn.compact
    def __call__(self, points: jnp.ndarray, weights: jnp.ndarray,
                 deterministic: bool = True) -> jnp.ndarray:
        h = points.astype(self.dtype)
        for i, size in enumerate(self._sizes(self.phi_sizes)):
            h = nn.elu(nn.Dense(size, dtype=self.dtype, name=f"phi{i}")(h))
        if self.pooling == "mean":
            pooled = weighted_mean(h, weights)
        else:
            pooled = jnp.einsum("bn,bnc->bc", (weights > 0).astype(h.dtype), h)
        for i, size in enumerate(self._sizes(self.rho_sizes)):
            pooled = nn.elu(nn.Dense(size, dtype=self.dtype, name=f"rho{i}")(pooled))
        return nn.Dense(self.emb_dim, dtype=self.dtype, name="out")(pooled).astype(jnp.float32)
