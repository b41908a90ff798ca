"""The Wormhole model: an encoder, an optional decoder, and the embedding distance."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from wormhole.config import ModelConfig
from wormhole.models.decoder import PointCloudDecoder
from wormhole.models.deepsets import DeepSetsEncoder
from wormhole.models.transformer import TransformerEncoder, weighted_mean

__all__ = ["ModelSpec", "WormholeModel", "build_model", "embedding_distance", "mean_scale"]


@dataclass(frozen=True)
class ModelSpec:
    """What the network needs besides its config, resolved from the training data.

    Stored with every checkpoint so inference rebuilds exactly the trained network.
    """

    data_dim: int
    decoder_points: int  # 0: no decoder
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    # model.mean_split: the factor on each cloud's mean in the embedding (None: no split).
    mean_scale: float | None = None
    # Encode each cloud moved to its weighted mean (GW and GS with a shift-invariant cost,
    # whose targets ignore where a cloud sits); False in runs written before it existed.
    centre: bool = False

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
        scale = data.get("mean_scale")  # absent from runs written before model.mean_split
        return cls(int(data["data_dim"]), int(data["decoder_points"]), as_tuple(data["low"]),
                   as_tuple(data["high"]), None if scale is None else float(scale),
                   bool(data.get("centre", False)))


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


def mean_scale(emb_dim: int, cost_scale: float) -> float:
    """The factor on a cloud's mean that makes its part of the ``mse`` embedding distance
    ``|mean_a - mean_b|^2 / cost_scale``, the mean term of W2^2 in target units."""
    return float(np.sqrt(emb_dim / cost_scale))


def _split_box(low, high):
    """The box of centred clouds: a point minus its cloud's mean moves by at most the
    data box's extent along each axis."""
    if low is None or high is None:
        return None, None
    extent = tuple(h - lo for lo, h in zip(low, high, strict=True))
    return tuple(-e for e in extent), extent


class WormholeModel(nn.Module):
    """Encoder (transformer or DeepSets) plus the point-cloud decoder.

    With ``spec.mean_scale`` set (``model.mean_split``), the first ``data_dim`` entries of an
    embedding are the cloud's weighted mean times that factor and the network embeds the
    centred cloud into the rest. For the squared-Euclidean cost, OT between two clouds is
    the squared distance between their means plus OT between the centred clouds (the cross
    term integrates to zero under any coupling of the marginals, so this holds for entropic
    and debiased OT too), so the mean part of every target is matched exactly and the
    network learns only the shape part. The decoder decodes the shape part and adds the mean.
    """

    config: ModelConfig
    spec: ModelSpec

    def setup(self):
        cfg = self.config
        dtype = jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
        split = self.spec.mean_scale is not None
        learned = cfg.emb_dim - self.spec.data_dim if split else cfg.emb_dim
        low, high = _split_box(self.spec.low, self.spec.high) if split else \
            (self.spec.low, self.spec.high)
        if cfg.encoder == "transformer":
            self.encoder = TransformerEncoder(learned, cfg.width, cfg.num_layers,
                                              cfg.num_heads, cfg.mlp_dim, cfg.dropout, dtype,
                                              cfg.fourier_features, cfg.fourier_scale)
        else:
            self.encoder = DeepSetsEncoder(
                learned, cfg.mlp_dim, cfg.num_layers, cfg.pooling, dtype,
                tuple(cfg.phi_sizes) if cfg.phi_sizes else None,
                tuple(cfg.rho_sizes) if cfg.rho_sizes else None)
        if self.spec.decoder_points > 0:
            self.decoder = PointCloudDecoder(
                self.spec.decoder_points, self.spec.data_dim, cfg.width, cfg.decoder_layers,
                cfg.num_heads, cfg.mlp_dim, low, high, cfg.dropout, dtype)

    def encode(self, points: jnp.ndarray, weights: jnp.ndarray,
               deterministic: bool = True) -> jnp.ndarray:
        """``points [B, n, d]``, ``weights [B, n]`` -> embeddings ``[B, emb_dim]``."""
        if self.spec.centre:
            mean = weighted_mean(points, weights)
            points = jnp.where(weights[..., None] > 0, points - mean[:, None], 0.0)
        if self.spec.mean_scale is None:
            return self.encoder(points, weights, deterministic)
        mean = weighted_mean(points, weights)
        centred = jnp.where(weights[..., None] > 0, points - mean[:, None], 0.0)
        shape = self.encoder(centred, weights, deterministic)
        return jnp.concatenate([mean * self.spec.mean_scale, shape], axis=-1)

    def decode(self, emb: jnp.ndarray, deterministic: bool = True) -> jnp.ndarray:
        """``[B, emb_dim]`` -> decoded clouds ``[B, decoder_points, d]`` (uniform weights)."""
        self.spec.require_decoder()
        if self.spec.mean_scale is None:
            return self.decoder(emb, deterministic)
        dim = self.spec.data_dim
        mean = emb[:, :dim] / self.spec.mean_scale
        return self.decoder(emb[:, dim:], deterministic) + mean[:, None]

    def __call__(self, points, weights, deterministic: bool = True):
        emb = self.encode(points, weights, deterministic)
        if self.spec.decoder_points == 0:
            return emb, None
        return emb, self.decode(emb, deterministic)


def build_model(config: ModelConfig, spec: ModelSpec) -> WormholeModel:
    return WormholeModel(config, spec)
