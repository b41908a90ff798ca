"""Encoders (transformer, DeepSets), the point-cloud decoder and the Wormhole model."""

from wormhole.models.autoencoder import (
    ModelSpec,
    WormholeModel,
    build_model,
    embedding_distance,
    mean_scale,
)
from wormhole.models.decoder import PointCloudDecoder
from wormhole.models.deepsets import DeepSetsEncoder
from wormhole.models.transformer import TransformerEncoder

__all__ = [
    "DeepSetsEncoder",
    "ModelSpec",
    "PointCloudDecoder",
    "TransformerEncoder",
    "WormholeModel",
    "build_model",
    "embedding_distance",
    "mean_scale",
]
