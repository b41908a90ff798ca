"""The one registry of OT distance kinds: what each kind is, in one typed record.

Every module that needs a fact about a kind (config validation, the batched engine, the
trainer's scaling regulariser, unit conversion in inference, ground-truth evaluation,
benchmarks) asks :func:`get_kind`. Adding a kind is one :class:`Kind` record here plus its
solver function in :mod:`wormhole.ot.solvers`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KINDS", "Kind", "debiased_kinds", "get_kind", "quadratic_kinds", "sorting_kinds"]


@dataclass(frozen=True)
class Kind:
    """One OT distance kind.

    Attributes:
      name: ``ot.kind`` in configs.
      quadratic: Gromov-Wasserstein family (compares intra-cloud costs) rather than linear
        OT (a ground cost between the two clouds' points).
      debiased: ``OT(x, y) - (OT(x, x) + OT(y, y)) / 2`` (Feydy et al. 2019), so that a cloud
        is at distance zero from itself.
      default_cost: ground cost name (:mod:`wormhole.ot.costs`) when ``ot.cost`` is unset.
      scaling_power: scaling both clouds by ``a`` multiplies the value by ``|a| ** p`` (for
        the default cost; exact for unregularised OT): 1 for a Euclidean cost, 2 for a
        squared one, 4 for GW on squared intra-cloud distances.
      exact: the unregularised kind a trained model is judged against (``W2`` for ``S2``),
        or ``None`` when the kind is an entropic quantity without an exact solver.
      sorting: exact 1-D values by sorting (``ot.solver: sorting``) are available.
    """

    name: str
    quadratic: bool
    debiased: bool
    default_cost: str
    scaling_power: int
    exact: str | None
    sorting: bool = False

    @property
    def has_exact_solver(self) -> bool:
        """Whether this kind itself is an unregularised OT cost (POT's network simplex)."""
        return self.exact == self.name


_RECORDS = (
    Kind("W1", quadratic=False, debiased=False, default_cost="euclidean", scaling_power=1,
         exact="W1", sorting=True),
    Kind("W2", quadratic=False, debiased=False, default_cost="sqeuclidean", scaling_power=2,
         exact="W2", sorting=True),
    Kind("S1", quadratic=False, debiased=True, default_cost="euclidean", scaling_power=1,
         exact="W1"),
    Kind("S2", quadratic=False, debiased=True, default_cost="sqeuclidean", scaling_power=2,
         exact="W2"),
    Kind("GW", quadratic=True, debiased=False, default_cost="sqeuclidean", scaling_power=4,
         exact=None),
    Kind("GS", quadratic=True, debiased=True, default_cost="sqeuclidean", scaling_power=4,
         exact=None),
)
KINDS: dict[str, Kind] = {record.name: record for record in _RECORDS}


def get_kind(name: str) -> Kind:
    """The record of ``name``, or a ``ValueError`` listing the kinds."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown OT kind {name!r}; choose one of "
                         f"{', '.join(KINDS)}.") from None


def sorting_kinds() -> tuple[str, ...]:
    return tuple(k.name for k in _RECORDS if k.sorting)


def debiased_kinds() -> tuple[str, ...]:
    return tuple(k.name for k in _RECORDS if k.debiased)


def quadratic_kinds() -> tuple[str, ...]:
    return tuple(k.name for k in _RECORDS if k.quadratic)
