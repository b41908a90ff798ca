"""Pre-norm transformer blocks and the set-transformer encoder."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from wormhole.models.attention import WeightedSelfAttention

__all__ = ["MLP", "FourierLift", "TransformerBlock", "TransformerEncoder", "weighted_mean"]


def weighted_mean(h: jnp.ndarray, weights: jnp.ndarray) -> jnp.ndarray:
    """Mass-weighted average over points: ``h [B, n, c]``, ``weights [B, n]`` -> ``[B, c]``."""
    total = jnp.sum(weights, axis=1, keepdims=True)
    return jnp.einsum("bn,bnc->bc", weights, h) / total


class MLP(nn.Module):
    """Two-layer perceptron ``width -> hidden -> out`` (``out`` defaults to the input width)."""

    hidden: int
    out: int | None = None
    dropout: float = 0.0
    activation: str = "gelu"
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        act = getattr(nn, self.activation)
        y = act(nn.Dense(self.hidden, dtype=self.dtype)(x))
        y = nn.Dropout(self.dropout)(y, deterministic=deterministic)
        return nn.Dense(self.out or x.shape[-1], dtype=self.dtype)(y)


class FourierLift(nn.Module):
    """Coordinates ``[..., d]`` to ``width`` tokens through learned Fourier features.

    ``[sin(2 pi x W + b), cos(2 pi x W + b), x]`` with ``features`` frequencies ``W [d, F]``
    drawn from ``N(0, scale^2)`` (cycles per unit of the normalised coordinates) and trained,
    then a dense layer to ``width``. A linear lift makes every first-layer token an affine
    function of its point, so fine spatial structure must be built by attention alone; the
    features give the first layer a multi-scale view of where each point is (Tancik et al.,
    2020, "Fourier features let networks learn high frequency functions in low dimensional
    domains").
    """

    features: int
    scale: float
    width: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, points: jnp.ndarray) -> jnp.ndarray:
        init = nn.initializers.normal(stddev=self.scale)
        phase = 2.0 * jnp.pi * nn.Dense(self.features, kernel_init=init, dtype=self.dtype,
                                        name="frequencies")(points)
        feats = jnp.concatenate([jnp.sin(phase), jnp.cos(phase), points.astype(phase.dtype)],
                                axis=-1)
        return nn.Dense(self.width, dtype=self.dtype, name="lift")(feats)


class TransformerBlock(nn.Module):
    """``x + attn(LN(x))`` then ``x + mlp(LN(x))``; ``weights=None`` attends uniformly."""

    num_heads: int
    mlp_dim: int
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jnp.ndarray, weights: jnp.ndarray | None = None,
                 deterministic: bool = True) -> jnp.ndarray:
        h = nn.LayerNorm(dtype=self.dtype)(x)
        h = WeightedSelfAttention(self.num_heads, self.dropout, self.dtype)(h, weights,
                                                                           deterministic)
        x = x + nn.Dropout(self.dropout)(h, deterministic=deterministic)
        h = nn.LayerNorm(dtype=self.dtype)(x)
        h = MLP(self.mlp_dim, dropout=self.dropout, dtype=self.dtype)(h, deterministic)
        return x + nn.Dropout(self.dropout)(h, deterministic=deterministic)


class TransformerEncoder(nn.Module):
    """Weighted point set ``[B, n, d]`` to one embedding ``[B, emb_dim]``.

    Points are lifted to ``width`` tokens, linearly or with ``fourier_features`` learned
    Fourier features (:class:`FourierLift`; no positional encoding: the output is invariant
    to the order of points), pass through pre-norm blocks whose attention ignores padding and
    weighs keys by mass, and are pooled by their weighted mean before a projection head.
    """

    emb_dim: int
    width: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32
    fourier_features: int = 0
    fourier_scale: float = 1.0

    @nn.compact
    def __call__(self, points: jnp.ndarray, weights: jnp.ndarray,
                 deterministic: bool = True) -> jnp.ndarray:
        if self.fourier_features:
            x = FourierLift(self.fourier_features, self.fourier_scale, self.width, self.dtype,
                            name="fourier")(points)
        else:
            x = nn.Dense(self.width, dtype=self.dtype, name="lift")(points)
        for i in range(self.num_layers):
            x = TransformerBlock(self.num_heads, self.mlp_dim, self.dropout, self.dtype,
                                 name=f"block{i}")(x, weights, deterministic)
        x = nn.LayerNorm(dtype=self.dtype)(x)
        pooled = weighted_mean(x, weights)
        return MLP(self.mlp_dim, self.emb_dim, dtype=self.dtype, name="head")(pooled).astype(
            jnp.float32)
