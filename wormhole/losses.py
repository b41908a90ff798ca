"""Loss terms of Wormhole training: one pure function each, composed by weights.

The math of each term is a pure function of arrays (``stress_loss`` ...). :data:`LOSS_TERMS`
maps each ``config.loss`` name to a function of the step's arrays (:class:`StepArrays`)
returning ``(value, extra metrics)``; the train step adds ``weight * value`` over the terms
whose weight is positive. Adding a term is one function here plus one line in the table
(and its weight in :class:`~wormhole.config.LossConfig`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from wormhole.ot import OTDistances, OTSpec, paired_distances

__all__ = [
    "LOSS_TERMS",
    "StepArrays",
    "local_stress_loss",
    "log_stress_loss",
    "pearson",
    "reconstruction_distances",
    "reconstruction_loss",
    "scaling_loss",
    "stress_loss",
    "translation_loss",
]


def stress_loss(embedding_distances: jnp.ndarray, ot_distances: jnp.ndarray) -> jnp.ndarray:
    """Mean squared error between embedding distances and OT targets over pairs ``[P]``."""
    return jnp.mean(jnp.square(embedding_distances - ot_distances))


def local_stress_loss(embedding_distances: jnp.ndarray, ot_distances: jnp.ndarray,
                      offset: float = 0.1) -> jnp.ndarray:
    """Squared errors weighted towards small targets, for neighbourhoods that match OT.

    Pair ``p`` weighs ``1 / (t_p + offset * mean(t))``, normalised to mean one over the
    pairs ``[P]``: a relative (Sammon-like) stress that the ``offset`` keeps finite for
    near-identical clouds. The plain stress is dominated by the largest distances; this term
    values getting each cloud's near neighbours right.
    """
    weights = 1.0 / (ot_distances + offset * jnp.mean(ot_distances))
    weights = weights / jnp.mean(weights)
    return jnp.mean(weights * jnp.square(embedding_distances - ot_distances))


def log_stress_loss(embedding_distances: jnp.ndarray, ot_distances: jnp.ndarray,
                    offset: float = 0.1) -> jnp.ndarray:
    """Squared log-ratio of embedding distance to target, in the stress's units.

    ``mean(t)^2 * mean((log(d_p + c) - log(t_p + c))^2)`` over the pairs ``[P]`` with
    ``c = offset * mean(t)``: a relative error, so a pair of near neighbours counts as much as
    a distant pair off by the same factor (about ``(d - t)^2 / t^2`` where the plain stress
    has ``(d - t)^2``). The ``mean(t)^2`` factor gives it the stress's units and scaling, so
    that weights of the two compare; ``c`` keeps near-identical clouds finite.
    """
    scale = jnp.mean(ot_distances)
    shift = jnp.maximum(offset * scale, 1e-12)
    ratio = jnp.log(embedding_distances + shift) - jnp.log(ot_distances + shift)
    return jnp.square(scale) * jnp.mean(jnp.square(ratio))


def reconstruction_distances(points, weights, decoded, spec: OTSpec,
                             x_self=None) -> OTDistances:
    """OT distance between each input cloud and its decoding ``[B, m, d]``, whose ``m``
    points weigh ``1 / m`` each; ``x_self``: the inputs' self terms, if already solved."""
    uniform = jnp.full(decoded.shape[:2], 1.0 / decoded.shape[1])
    return paired_distances(points, weights, decoded, uniform, spec, validate=False,
                            x_self=x_self)


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


# --------------------------------------------------------------------------- the table


class StepArrays(NamedTuple):
    """What a loss term of one train step may read.

    Attributes:
      params: the parameters being differentiated.
      points, weights: the batch ``[B, n, d]``, ``[B, n]`` (after any random rotation).
      targets: OT distances of the in-batch pairs (no gradient).
      distances: ``[P]`` embedding distances of the same pairs.
      embeddings: ``[B, e]``.
      keys: PRNG keys by term name (``shift``, ``scale``).
      encode: ``(params, points) -> [B, e]`` with the batch's weights and dropout.
      decode: ``(params, embeddings) -> [B, m, d]`` decoded clouds.
      pair_distances: ``[B, e] -> [P]`` embedding distances of the in-batch pairs.
      reconstruction_spec: the OT distance of the reconstruction loss.
      reuse_self_terms: the targets' self terms serve the reconstruction divergence.
      scaling_power: the target kind's scaling exponent (``Kind.scaling_power``).
      settings: the run's ``loss`` config section (settings of the terms beyond weights).
    """

    params: Any
    points: jnp.ndarray
    weights: jnp.ndarray
    targets: OTDistances
    distances: jnp.ndarray
    embeddings: jnp.ndarray
    keys: dict
    encode: Callable
    decode: Callable
    pair_distances: Callable
    reconstruction_spec: OTSpec | None
    reuse_self_terms: bool
    scaling_power: int
    settings: Any = None


def _stress_term(step: StepArrays):
    return stress_loss(step.distances, step.targets.values), {}


def _local_stress_term(step: StepArrays):
    return local_stress_loss(step.distances, jax.lax.stop_gradient(step.targets.values),
                             step.settings.local_offset), {}


def _log_stress_term(step: StepArrays):
    return log_stress_loss(step.distances, jax.lax.stop_gradient(step.targets.values),
                           step.settings.local_offset), {}


def _reconstruction_term(step: StepArrays):
    emb = step.embeddings
    if step.settings is not None and step.settings.detach_decoder:
        emb = jax.lax.stop_gradient(emb)
    decoded = step.decode(step.params, emb)
    own = step.targets.self_values if step.reuse_self_terms else None
    rec = reconstruction_distances(step.points, step.weights, decoded,
                                   step.reconstruction_spec, x_self=own)
    return reconstruction_loss(rec.values), {"reconstruction_hit_cap": rec.hit_cap_fraction}


def _translation_term(step: StepArrays):
    shift = 0.1 * jax.random.normal(step.keys["shift"], (step.points.shape[-1],))
    moved = jnp.where(step.weights[..., None] > 0, step.points + shift, 0.0)
    return translation_loss(step.distances,
                            step.pair_distances(step.encode(step.params, moved))), {}


def _scaling_term(step: StepArrays):
    factor = jax.random.uniform(step.keys["scale"], (), minval=0.5, maxval=1.5)
    scaled = step.pair_distances(step.encode(step.params, step.points * factor))
    return scaling_loss(step.distances, scaled, factor ** step.scaling_power), {}


LOSS_TERMS: dict[str, Callable[[StepArrays], tuple[jnp.ndarray, dict]]] = {
    "stress": _stress_term,
    "local_stress": _local_stress_term,
    "log_stress": _log_stress_term,
    "reconstruction": _reconstruction_term,
    "translation": _translation_term,
    "scaling": _scaling_term,
}
