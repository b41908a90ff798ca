"""What OT distance to compute: kind, ground cost, scaling and solver settings.

An :class:`OTSpec` is a frozen, hashable description that the batched entry points close
over (it is never traced), so one spec gives one compiled program per input shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import jax
from ott.geometry import costs

from wormhole.ot.costs import CostLike, resolve_cost
from wormhole.ot.kinds import KINDS, get_kind

__all__ = ["BATCHING", "OTSpec", "SOLVERS", "default_max_iterations"]

BATCHING = ("auto", "vmap", "sequential")
SOLVERS = ("sinkhorn", "sorting")


def default_max_iterations(epsilon: float) -> int:
    """The Sinkhorn iteration cap for ``epsilon`` (in units of the scaled cost).

    Sinkhorn needs a number of iterations growing like ``1 / epsilon`` on costs of order
    one (the cost scale makes them so), so a fixed cap that suits ``epsilon = 0.01`` stops
    most solves at ``1e-3`` far from convergence. The cap is ``10 / epsilon``, at least 200:
    on 16 digits clouds (W2, threshold 1e-3) the fraction of solves at the cap was 98% at
    ``epsilon = 1e-3`` with the old fixed cap of 200, 2% with 3,000 and none with 10,000;
    65% at ``3e-3`` with 200 and none with 1,000. Solves stop on the threshold, so a high
    cap costs time only where a solve needs it.
    """
    return max(200, int(math.ceil(_ITERATIONS_PER_INVERSE_EPSILON / epsilon)))


_ITERATIONS_PER_INVERSE_EPSILON = 10.0


@dataclass(frozen=True)
class OTSpec:
    """An OT distance between weighted clouds and how to solve it.

    Attributes:
      kind: ``W1``/``W2`` entropic OT cost with Euclidean/squared Euclidean ground cost;
        ``S1``/``S2`` the debiased Sinkhorn divergences ``OT(x, y) - (OT(x, x) + OT(y, y))/2``
        (Feydy et al. 2019); ``GW`` entropic Gromov-Wasserstein on intra-cloud costs;
        ``GS`` its debiased form.
      epsilon: entropic regularisation, in units of the scaled cost.
      cost_scale: ground costs are divided by this fixed number (one per data set, stored
        with the model) so that targets are comparable across batches and runs.
      threshold: Sinkhorn stops when the marginal error falls below this.
      max_iterations: Sinkhorn iteration cap; reaching it is reported as ``hit_cap``.
      lse_mode: log-domain (stable) updates rather than kernel scalings.
      cost: ground cost (see :func:`resolve_cost`); ``None`` uses the kind's default.
      differentiation: ``implicit`` (implicit function theorem, constant memory) or
        ``unroll`` (back-propagate through the iterations) for gradients of a distance
        with respect to the clouds, as the decoder's reconstruction loss needs.
      outer_iterations: cap on the outer (linearisation) iterations of GW solvers.
      outer_threshold: GW solvers stop when the relative change of the cost between outer
        iterations falls below this. A debiased GS value is a small difference of larger
        GW costs, so this is tighter than ``threshold``: on 64-point 2-D clouds, the largest
        relative GS error fell from 0.56 at 1e-3 to 0.007 at 1e-4, for 20% more time.
      batching: how the solves of a batch run: ``vmap`` (all at once, in lock-step until
        the slowest converges: best on GPU/TPU), ``sequential`` (one after another, each
        stopping on its own and cropped to its clouds' size bucket: several times faster
        on CPU), or ``auto`` (sequential on CPU, vmap elsewhere).
      length_bucket: in sequential batching, padding is cropped to a multiple of this.
      solver: ``sinkhorn`` (entropic, any dimension) or ``sorting``: the exact OT cost
        between 1-D clouds from their quantile functions (ott-jax's univariate solver),
        ``O(n log n)`` and without iterations, for ``W1`` and ``W2`` only (exact OT needs no
        debiasing); ``epsilon`` and the iteration settings are then unused.
    """

    kind: str = "S2"
    epsilon: float = 0.01
    cost_scale: float = 1.0
    threshold: float = 1e-3
    max_iterations: int = 200
    lse_mode: bool = True
    cost: CostLike | None = None
    differentiation: str = "implicit"
    outer_iterations: int = 20
    outer_threshold: float = 1e-4
    batching: str = "auto"
    length_bucket: int = 32
    solver: str = "sinkhorn"

    def __post_init__(self):
        get_kind(self.kind)  # raises on an unknown kind
        if self.differentiation not in ("implicit", "unroll"):
            raise ValueError(f"differentiation must be 'implicit' or 'unroll', "
                             f"not {self.differentiation!r}.")
        for name in ("epsilon", "cost_scale", "threshold", "outer_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"OTSpec.{name} must be positive, got {getattr(self, name)}.")
        if self.batching not in BATCHING:
            raise ValueError(f"batching must be one of {BATCHING}, not {self.batching!r}.")
        if self.max_iterations < 1 or self.outer_iterations < 1 or self.length_bucket < 1:
            raise ValueError("OTSpec iteration caps must be at least 1.")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, not {self.solver!r}.")
        if self.sorting and not self.record.sorting:
            raise ValueError(f"The sorting solver computes exact W1 or W2 between 1-D clouds; "
                             f"kind {self.kind!r} needs the sinkhorn solver.")
        if self.sorting and self.cost is not None \
                and not isinstance(resolve_cost(self.cost), costs.CostFn):
            raise ValueError("The sorting solver needs an ott-jax CostFn of x - y (e.g. "
                             "'euclidean'), not a cost-matrix function.")
        if self.cost is not None and self.quadratic \
                and not isinstance(self.cost, str | costs.CostFn):
            raise ValueError("GW kinds take an ott-jax CostFn for the intra-cloud cost, "
                             "not a cost-matrix function.")

    @property
    def record(self):
        """The kind's :class:`~wormhole.ot.kinds.Kind` record."""
        return KINDS[self.kind]

    @property
    def debiased(self) -> bool:
        return self.record.debiased

    @property
    def quadratic(self) -> bool:
        return self.record.quadratic

    @property
    def sorting(self) -> bool:
        """Whether distances are exact 1-D OT by sorting (see ``solver``)."""
        return self.solver == "sorting"

    @property
    def sequential(self) -> bool:
        """Whether solves run one after another (see ``batching``)."""
        if self.sorting:
            return False  # no iterations to stop early: vmap is best everywhere
        if self.batching == "auto":
            return jax.default_backend() == "cpu"
        return self.batching == "sequential"

    @property
    def cost_fn(self) -> costs.CostFn | Callable:
        return resolve_cost(self.cost if self.cost is not None else self.record.default_cost)

    def replace(self, **changes) -> OTSpec:
        return replace(self, **changes)

    @classmethod
    def from_config(cls, ot, cost_scale: float, decoder: bool = False) -> OTSpec:
        """The spec of a run's ``ot`` config section.

        With ``decoder=True``, the spec of the reconstruction loss: ``ot.decoder_kind`` and
        ``ot.decoder_epsilon`` where set, else the target's.
        """
        kind, epsilon = ot.kind, ot.epsilon
        if decoder:
            kind = ot.decoder_kind or kind
            epsilon = ot.decoder_epsilon or epsilon
        return cls(kind=kind, epsilon=epsilon, cost_scale=cost_scale, threshold=ot.threshold,
                   max_iterations=ot.max_iterations or default_max_iterations(epsilon),
                   lse_mode=ot.lse_mode, cost=ot.cost,
                   differentiation=ot.differentiation,
                   outer_iterations=ot.outer_iterations, outer_threshold=ot.outer_threshold,
                   batching=ot.batching, solver=ot.solver)
