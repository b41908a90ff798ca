"""The Wormhole model: an encoder, an optional decoder, and the embedding distance."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import flax.linen as nn
import jax.numpy as jnp

from wormhole.config import ModelConfig
from wormhole.models.decoder import PointCloudDecoder
from wormhole.models.deepsets import DeepSetsEncoder
from wormhole.models.transformer import TransformerEncoder

__all__ = ["ModelSpec", "WormholeModel", "build_model", "embedding_distance"]


@dataclass(frozen=True)
class ModelSpec:
    """What the network needs besides its config, resolved from the training data.

    Stored with every checkpoint so inference rebuilds exactly the trained network.
    """

    data_dim: int
    decoder_points: int  # 0: no decoder
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def require_decoder(self) -> None:
        """Raise the one error for decoding with a model trained without a decoder."""
        if self.decoder_points == 0:
            raise ValueError("This model was trained without a decoder (loss.reconstruction "
                             "= 0), so it cannot decode.")

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        def as_tuple(v):
            return None if v is None else tuple(float(x) for x in v)
        return cls(int(data["data_dim"]), int(data["decoder_points"]), as_tuple(data["low"]),
                   as_tuple(data["high"]))


def embedding_distance(e1: jnp.ndarray, e2: jnp.ndarray, kind: str = "mse") -> jnp.ndarray:
    """Distance between embeddings along the last axis.

    ``mse``: mean squared difference (the Wormhole choice; it behaves like a squared
    distance, matching W2^2/S2-type targets). ``euclidean``: the norm of the difference
    (matching W1/S1-type targets that scale linearly).
    """
    diff = e1 - e2
    if kind == "mse":
        return jnp.mean(jnp.square(diff), axis=-1)
    if kind == "euclidean":
        # The epsilon keeps the gradient finite at zero distance.
        return jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1) + 1e-12)
    raise ValueError(f"Unknown embedding distance '{kind}'; use 'mse' or 'euclidean'.")


class WormholeModel(nn.Module):
    """Encoder (transformer or DeepSets) plus the point-cloud decoder."""

    config: ModelConfig
    spec: ModelSpec

    def setup(self):
        cfg = self.config
        dtype = jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
        if cfg.encoder == "transformer":
            self.encoder = TransformerEncoder(cfg.emb_dim, cfg.width, cfg.num_layers,
                                              cfg.num_heads, cfg.mlp_dim, cfg.dropout, dtype,
                                              cfg.fourier_features, cfg.fourier_scale)
        else:
            self.encoder = DeepSetsEncoder(
                cfg.emb_dim, cfg.mlp_dim, cfg.num_layers, cfg.pooling, dtype,
                tuple(cfg.phi_sizes) if cfg.phi_sizes else None,
                tuple(cfg.rho_sizes) if cfg.rho_sizes else None)
        if self.spec.decoder_points > 0:
            self.decoder = PointCloudDecoder(
                self.spec.decoder_points, self.spec.data_dim, cfg.width, cfg.decoder_layers,
                cfg.num_heads, cfg.mlp_dim, self.spec.low, self.spec.high, cfg.dropout, dtype)

    def encode(self, points: jnp.ndarray, weights: jnp.ndarray,
               deterministic: bool = True) -> jnp.ndarray:
        """``points [B, n, d]``, ``weights [B, n]`` -> embeddings ``[B, emb_dim]``."""
        return self.encoder(points, weights, deterministic)

    def decode(self, emb: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        """``[B, emb_dim]`` -> decoded clouds ``[B, decoder_points, d]`` (uniform weights)."""
        self.spec.require_decoder()
        return self.decoder(emb, deterministic)

    def __call__(self, points, weights, deterministic: bool = True):
        emb = self.encode(points, weights, deterministic)
        if self.spec.decoder_points == 0:
            return emb, None
        return emb, self.decode(emb, deterministic)


def build_model(config: ModelConfig, spec: ModelSpec) -> WormholeModel:
    return WormholeModel(config, spec)
