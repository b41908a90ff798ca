"""Neural estimators of entropic OT and entropic Gromov-Wasserstein, cost and plan.

Wang and Goldfeld (2024), "Neural Entropic Optimal Transport and Gromov-Wasserstein Alignment":
the Sinkhorn step is replaced by a neural potential trained on mini-batches, so the two
distributions can be large samples or infinite streams and no ``n x n`` matrix is ever held.

    from wormhole.neural_ot import neural_eot, neural_egw

    eot = neural_eot(x, y, epsilon=1.0)            # x: [n, d] or a sampler (key, b) -> [b, d]
    eot.cost, eot.plan.barycentric_projection(x[:10], y)
    gw = neural_egw(x, z, epsilon=4.0)             # z may live in another dimension
    gw.cost, gw.matrix, gw.plan.conditional_sample(key, x[:10], z)

Layout: :mod:`~wormhole.neural_ot.eot` (semi-dual training loop and the EOT estimator),
:mod:`~wormhole.neural_ot.gw` (EGW / EIGW by alternating A and potential updates),
:mod:`~wormhole.neural_ot.plan` (c-transform and the Gibbs-form plan),
:mod:`~wormhole.neural_ot.networks`, :mod:`~wormhole.neural_ot.sampling`,
:mod:`~wormhole.neural_ot.config`, :mod:`~wormhole.neural_ot.gaussian` (closed forms),
:mod:`~wormhole.neural_ot.reference` (ott-jax Sinkhorn and entropic GW on small samples) and
:mod:`~wormhole.neural_ot.experiment` (one config-driven run with its plot, used by
``scripts/neural_ot.py``).
"""

from wormhole.neural_ot.config import (
    NetworkConfig,
    NeuralDataConfig,
    NeuralEvalConfig,
    NeuralOTConfig,
    NeuralTrainConfig,
    ProblemConfig,
)
from wormhole.neural_ot.eot import EOTResult, TrainedPotential, neural_eot
from wormhole.neural_ot.gaussian import (
    Gaussian,
    entropic_igw_gaussians,
    entropic_ot_gaussians,
    entropic_plan_gaussians,
    random_gaussian,
)
from wormhole.neural_ot.gw import GW_KINDS, EGWResult, neural_egw
from wormhole.neural_ot.plan import EntropicPlan
from wormhole.neural_ot.reference import entropic_gw, sinkhorn_eot
from wormhole.neural_ot.sampling import Sampler, Source

__all__ = [
    "GW_KINDS",
    "EGWResult",
    "EOTResult",
    "EntropicPlan",
    "Gaussian",
    "NetworkConfig",
    "NeuralDataConfig",
    "NeuralEvalConfig",
    "NeuralOTConfig",
    "NeuralTrainConfig",
    "ProblemConfig",
    "Sampler",
    "Source",
    "TrainedPotential",
    "entropic_gw",
    "entropic_igw_gaussians",
    "entropic_ot_gaussians",
    "entropic_plan_gaussians",
    "neural_egw",
    "neural_eot",
    "random_gaussian",
    "sinkhorn_eot",
]
