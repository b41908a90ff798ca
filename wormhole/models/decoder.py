"""Decoder: an embedding to a fixed-size point cloud."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from wormhole.models.transformer import TransformerBlock

__all__ = ["PointCloudDecoder"]


class PointCloudDecoder(nn.Module):
    """``[B, emb_dim]`` -> ``[B, num_points, data_dim]`` with uniform point weights.

    The embedding is expanded into ``num_points`` tokens, refined by transformer blocks
    (attention over the generated points, so they arrange themselves jointly), and mapped to
    coordinates. With ``low``/``high`` set, a sigmoid squashes each coordinate into that box
    (the training data's range), which keeps early reconstructions on the data's support;
    without them (GW targets, defined up to rigid motions) the output is unbounded.
    """

    num_points: int
    data_dim: int
    width: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, emb: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        x = nn.Dense(self.num_points * self.width, dtype=self.dtype, name="expand")(emb)
        x = x.reshape(emb.shape[0], self.num_points, self.width)
        for i in range(self.num_layers):
            x = TransformerBlock(self.num_heads, self.mlp_dim, self.dropout, self.dtype,
                                 name=f"block{i}")(x, None, deterministic)
        x = nn.LayerNorm(dtype=self.dtype)(x)
        x = nn.Dense(self.data_dim, dtype=self.dtype, name="coords")(x).astype(jnp.float32)
        if self.low is None or self.high is None:
            return x
        low, high = jnp.asarray(self.low), jnp.asarray(self.high)
        return low + (high - low) * nn.sigmoid(x)
