"""The neural potential phi: an MLP on standardised inputs with a fixed output scale.

Wang and Goldfeld (2024), Section 3, parametrise the potential by a shallow network of width
``k``; ``depth > 1`` stacks more hidden layers. The affine input standardisation and the output
scale are constants measured once from the data (a reparametrisation, not a change of the
function class): they make one learning rate work whatever the units of the data and the
magnitude of the cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["PotentialMLP", "Standardisation", "apply_potential", "init_potential"]

_ACTIVATIONS: dict[str, Callable] = {
    "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu, "tanh": jnp.tanh,
    "softplus": nn.softplus,
}


class PotentialMLP(nn.Module):
    """``[..., d] -> [...]``: ``depth`` hidden layers of ``width`` units, then a linear read-out."""

    width: int = 256
    depth: int = 1
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        act = _ACTIVATIONS[self.activation]
        h = x
        for _ in range(self.depth):
            h = act(nn.Dense(self.width)(h))
        return nn.Dense(1)(h)[..., 0]


class Standardisation(NamedTuple):
    """Constants of ``phi(x) = out_scale * mlp((x - shift) / scale)``.

    ``shift: [d]``, ``scale: [d]``, ``out_scale: []``.
    """

    shift: jnp.ndarray
    scale: jnp.ndarray
    out_scale: jnp.ndarray

    @classmethod
    def from_sample(cls, x: jnp.ndarray, cost_sample: jnp.ndarray) -> Standardisation:
        """Per-coordinate mean and std of ``x: [n, d]``; ``out_scale`` = std of the cost
        entries ``cost_sample: [n, m]`` (the size of a potential's variations)."""
        std = jnp.std(x, axis=0)
        scale = jnp.maximum(std, 1e-6 * jnp.max(std) + 1e-12)
        out_scale = jnp.maximum(jnp.std(cost_sample), 1e-12)
        return cls(jnp.mean(x, axis=0), scale, out_scale)


def init_potential(model: PotentialMLP, key: jax.Array, dim: int):
    """Initial parameters of ``model`` for inputs of dimension ``dim``."""
    return model.init(key, jnp.zeros((1, dim), jnp.float32))


def apply_potential(model: PotentialMLP, params, standardisation: Standardisation,
                    x: jnp.ndarray) -> jnp.ndarray:
    """``phi(x)``; ``x: [n, d]`` -> ``[n]``."""
    s = standardisation
    return s.out_scale * model.apply(params, (x - s.shift) / s.scale)
