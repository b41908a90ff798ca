"""OT distances between batches of padded weighted point clouds, with ott-jax underneath.

Kinds ``W1``, ``W2`` (entropic OT), ``S1``, ``S2`` (Sinkhorn divergences), ``GW`` (entropic
Gromov-Wasserstein) and ``GS`` (its debiased form); all in-batch pairs or explicit pairs.
"""

from wormhole.ot.batched import OTDistances, paired_distances, pairwise_distances, self_terms
from wormhole.ot.scale import estimate_cost_scale
from wormhole.ot.spec import KINDS, OTSpec, resolve_cost
from wormhole.ot.validation import check_clouds

__all__ = ["KINDS", "OTDistances", "OTSpec", "check_clouds", "estimate_cost_scale",
           "paired_distances", "pairwise_distances", "resolve_cost", "self_terms"]
