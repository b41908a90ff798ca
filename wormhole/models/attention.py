"""Multi-head self-attention over a weighted, padded point set."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

__all__ = ["WeightedSelfAttention", "weight_bias"]


def weight_bias(weights: jnp.ndarray) -> jnp.ndarray:
    """Additive attention bias ``log w`` for keys: ``[B, n] -> [B, 1, 1, n]``.

    Adding ``log w_j`` to the logits makes each query attend to key ``j`` in proportion to
    its mass times ``exp(q . k_j)``: a point of twice the weight counts like two copies of
    it, and padding (``w = 0``) gets ``-inf`` so it is never attended to.
    """
    safe = jnp.where(weights > 0, weights, 1.0)
    bias = jnp.where(weights > 0, jnp.log(safe), -jnp.inf)
    return bias[:, None, None, :]


class WeightedSelfAttention(nn.Module):
    """Self-attention whose keys are weighted by point mass (``weights=None``: uniform).

    Attributes:
      num_heads: attention heads; the input width must be divisible by it.
      dropout: dropout rate on the attention matrix.
    """

    num_heads: int
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, weights: jnp.ndarray | None = None,
                 deterministic: bool = True) -> jnp.ndarray:
        """``x: [B, n, width]``, ``weights: [B, n]`` -> ``[B, n, width]``."""
        batch, length, width = x.shape
        head_dim = width // self.num_heads
        qkv = nn.Dense(3 * width, dtype=self.dtype, name="qkv")(x)
        # Heads-major [3, B, heads, n, c] before the products: with the einsum form
        # "bqhc,bkhc->bhqk" XLA's CPU backend lays the logits out so that the softmax over
        # keys is strided, which made attention ~7x slower (same numbers either way).
        qkv = qkv.reshape(batch, length, 3, self.num_heads, head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = q @ jnp.swapaxes(k, -1, -2) / jnp.sqrt(head_dim).astype(self.dtype)
        if weights is not None:
            logits = logits + weight_bias(weights).astype(logits.dtype)
        attention = nn.softmax(logits.astype(jnp.float32), axis=-1).astype(self.dtype)
        attention = nn.Dropout(self.dropout)(attention, deterministic=deterministic)
        out = (attention @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
        return nn.Dense(width, dtype=self.dtype, name="out")(out)
