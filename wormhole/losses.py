"""Loss terms of Wormhole training: one pure function each, composed by weights.

Each term takes arrays and returns a scalar; the train step multiplies it by the weight in
``config.loss`` and skips it when the weight is zero. Adding a term is one function here
plus one line in the train step's table of terms.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = [
    "pearson",
    "reconstruction_loss",
    "scaling_loss",
    "stress_loss",
    "translation_loss",
]


def stress_loss(embedding_distances: jnp.ndarray, ot_distances: jnp.ndarray) -> jnp.ndarray:
    """Mean squared error between embedding distances and OT targets over pairs ``[P]``."""
    return jnp.mean(jnp.square(embedding_distances - ot_distances))


def reconstruction_loss(reconstruction_distances: jnp.ndarray) -> jnp.ndarray:
    """Mean OT distance ``[B]`` between each input cloud and its decoding."""
    return jnp.mean(reconstruction_distances)


def translation_loss(distances: jnp.ndarray, translated_distances: jnp.ndarray) -> jnp.ndarray:
    """Translating both clouds of a pair by one vector must not change their distance.

    Both arguments are embedding distances ``[P]`` of the same pairs before and after the
    translation (the regulariser of the Siamese DeepSets embedding work).
    """
    return jnp.mean(jnp.square(translated_distances - distances))


def scaling_loss(distances: jnp.ndarray, scaled_distances: jnp.ndarray,
                 factor: jnp.ndarray) -> jnp.ndarray:
    """Scaling both clouds by ``a`` must multiply their distance by ``factor``.

    ``factor`` is ``|a|`` for costs that scale linearly (W1, S1) and ``a**2`` for squared
    costs (W2, S2); ``distances`` and ``scaled_distances`` are ``[P]``.
    """
    return jnp.mean(jnp.square(scaled_distances - factor * distances))


def pearson(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """Pearson correlation of two vectors (a metric, not a loss; safe for constant input)."""
    xc, yc = x - jnp.mean(x), y - jnp.mean(y)
    denom = jnp.sqrt(jnp.sum(xc * xc) * jnp.sum(yc * yc))
    return jnp.where(denom > 0, jnp.sum(xc * yc) / jnp.where(denom > 0, denom, 1.0), 0.0)
