"""The one registry of ground costs: name -> ott-jax cost, POT metric, neural-OT use.

Training (:class:`~wormhole.ot.spec.OTSpec`), ground-truth evaluation
(:mod:`wormhole.evaluate.ground_truth`) and the neural estimators
(:mod:`wormhole.neural_ot`) all resolve costs here, so a name means the same cost
everywhere. Besides the names, a cost may be an ott-jax ``CostFn`` or an import path
``"package.module:attribute"`` to a ``CostFn`` (class or instance) or to a function
``(x [n, d], y [m, d]) -> cost matrix [n, m]`` (e.g. a geodesic distance).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from ott.geometry import costs

__all__ = ["COSTS", "CostLike", "NamedCost", "cost_matrix", "lookup_cost", "resolve_cost"]

CostLike = str | costs.CostFn | Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]


@dataclass(frozen=True)
class NamedCost:
    """A ground cost known by name.

    Attributes:
      name: the canonical name (what configs and run metadata store).
      make: builds the ott-jax ``CostFn``.
      pot_metric: the metric of POT's ``ot.dist`` computing the same matrix, or ``None``
        when POT has none (the matrix is then computed by the ``CostFn`` itself).
      neural: usable by the neural OT estimators (a cost of two points with a gradient).
      aliases: other spellings accepted on input.
      shift_invariant: a function of ``x - y`` alone, so that moving a cloud changes none of
        its internal costs (GW and GS between clouds then ignore where each cloud sits).
    """

    name: str
    make: Callable[[], costs.CostFn]
    pot_metric: str | None
    neural: bool = True
    aliases: tuple[str, ...] = ()
    shift_invariant: bool = True


_ENTRIES = (
    NamedCost("sqeuclidean", costs.SqEuclidean, "sqeuclidean",
              aliases=("squared_euclidean",)),
    NamedCost("euclidean", costs.Euclidean, "euclidean"),
    NamedCost("cosine", costs.Cosine, "cosine", shift_invariant=False),
    NamedCost("l1", lambda: costs.PNormP(1.0), "cityblock",
              aliases=("cityblock", "manhattan", "pnormp1")),
    NamedCost("neg_dot", costs.NegDotProduct, None, shift_invariant=False),
)
COSTS: dict[str, NamedCost] = {entry.name: entry for entry in _ENTRIES}
_BY_SPELLING = {spelling: entry for entry in _ENTRIES
                for spelling in (entry.name, *entry.aliases)}


def lookup_cost(name: str) -> NamedCost | None:
    """The registry entry for a cost name or alias (case and dashes ignored), else ``None``."""
    return _BY_SPELLING.get(name.strip().lower().replace("-", "_"))


def resolve_cost(cost: CostLike) -> costs.CostFn | Callable:
    """A cost from a registered name, an ott-jax ``CostFn``, an import path or a function.

    Returns a ``CostFn`` instance, or a function returning a cost matrix.
    """
    if isinstance(cost, costs.CostFn):
        return cost
    if isinstance(cost, str):
        entry = lookup_cost(cost)
        if entry is not None:
            return entry.make()
        if ":" not in cost:
            raise ValueError(f"Unknown OT cost {cost!r}: use one of {', '.join(COSTS)}, or an "
                             f"import path 'module:function'.")
        module, _, attribute = cost.partition(":")
        try:
            found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"OT cost {cost!r} could not be imported: {err}") from err
        if isinstance(found, type) and issubclass(found, costs.CostFn):
            found = found()
        return resolve_cost(found)
    if callable(cost):
        return cost
    raise TypeError(f"An OT cost must be a name, an ott-jax CostFn or a function, "
                    f"not {type(cost).__name__}.")


def cost_matrix(cost: CostLike, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The float64 ``[n, m]`` ground-cost matrix between ``x [n, d]`` and ``y [m, d]``.

    Registered names with a POT metric use POT's ``ot.dist`` (exact, in numpy); any other
    cost is evaluated by its ``CostFn`` or function in JAX with 64-bit floats.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    entry = lookup_cost(cost) if isinstance(cost, str) else None
    if entry is not None and entry.pot_metric is not None:
        import ot

        return np.asarray(ot.dist(x, y, metric=entry.pot_metric), np.float64)
    import jax

    fn = resolve_cost(cost)
    with jax.enable_x64(True):
        if isinstance(fn, costs.CostFn):
            matrix = fn.all_pairs(jnp.asarray(x), jnp.asarray(y))
        else:
            matrix = fn(jnp.asarray(x), jnp.asarray(y))
        matrix = np.asarray(matrix, np.float64)
    if matrix.shape != (len(x), len(y)):
        raise ValueError(f"OT cost {cost!r} returned a matrix of shape {matrix.shape} for "
                         f"{len(x)} x {len(y)} points; expected ({len(x)}, {len(y)}).")
    return matrix
