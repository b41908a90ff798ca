"""OT distances between batches of padded weighted point clouds, with ott-jax underneath.

Kinds ``W1``, ``W2`` (entropic OT), ``S1``, ``S2`` (Sinkhorn divergences), ``GW`` (entropic
Gromov-Wasserstein) and ``GS`` (its debiased form); all in-batch pairs or explicit pairs.
"""

from wormhole.ot.batched import OTDistances, paired_distances, pairwise_distances, self_terms
from wormhole.ot.costs import COSTS, cost_matrix, resolve_cost
from wormhole.ot.kinds import KINDS, Kind, get_kind
from wormhole.ot.scale import estimate_cost_scale
from wormhole.ot.spec import OTSpec
from wormhole.ot.validation import check_clouds

__all__ = ["COSTS", "KINDS", "Kind", "OTDistances", "OTSpec", "check_clouds", "cost_matrix",
           "estimate_cost_scale", "get_kind", "paired_distances", "pairwise_distances",
           "resolve_cost", "self_terms"]
