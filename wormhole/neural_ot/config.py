"""Typed configuration of the neural EOT / EGW estimators (issue 6).

Declared with the validated fields of :mod:`wormhole.configlib`, so a YAML file fails on load
with a message naming the dotted key and what is allowed. Load with::

    load_config("neural_eot_gaussian", ["train.steps=500"], cls=NeuralOTConfig)
"""

from __future__ import annotations

from dataclasses import dataclass

from wormhole.configlib import ConfigError, build_dataclass, option
from wormhole.ot.costs import COSTS

__all__ = [
    "PROBLEM_KINDS",
    "NetworkConfig",
    "NeuralDataConfig",
    "NeuralEvalConfig",
    "NeuralOTConfig",
    "NeuralTrainConfig",
    "ProblemConfig",
    "check_config",
    "neural_ot_config_from_dict",
]

PROBLEM_KINDS = ("eot", "egw", "eigw")
# The ground costs of 'eot': the names the package registry marks usable by neural OT.
COST_NAMES = tuple(name for name, entry in COSTS.items() if entry.neural)
ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "softplus")


@dataclass
class ProblemConfig:
    """What is estimated: entropic OT, quadratic entropic GW, or inner-product entropic GW."""

    kind: str = option("eot", choices=PROBLEM_KINDS,
                       doc="eot: OT_eps; egw: quadratic-loss GW with squared Euclidean distances; "
                           "eigw: inner-product GW")
    epsilon: float = option(1.0, min=0.0, min_exclusive=True,
                            doc="regulariser weight of eps * KL(pi | mu (x) nu)")
    cost: str = option("sqeuclidean", choices=COST_NAMES,
                       doc="ott-jax ground cost of eot (egw and eigw fix their own)")


@dataclass
class NeuralDataConfig:
    """The two distributions mu and nu (synthetic Gaussians, or two arrays in an .npz file)."""

    source: str = option("gaussian", choices=("gaussian", "npz"),
                         doc="gaussian: random Gaussians (closed-form EOT oracle); npz: arrays "
                             "'x' and 'y' read from path")
    path: str | None = option(None, doc=".npz file with arrays x [n, dx] and y [m, dy]")
    dim: int = option(2, min=1, doc="dimension of mu (gaussian)")
    dim_y: int | None = option(None, min=1, doc="dimension of nu (gaussian; None: dim)")
    num_samples: int | None = option(None, min=2,
                                     doc="draw this many points per side once and train on them "
                                         "(None: fresh Gaussian samples at every step)")
    mean_scale: float = option(1.0, min=0.0, doc="Gaussian means ~ mean_scale * N(0, I / d) "
                                                  "(eigw: always 0, for its closed form)")
    eig_min: float = option(0.5, min=0.0, min_exclusive=True, doc="smallest covariance eigenvalue")
    eig_max: float = option(2.0, min=0.0, min_exclusive=True, doc="largest covariance eigenvalue")
    seed: int = option(0, doc="seed of the Gaussians' parameters and of the drawn samples")


@dataclass
class NetworkConfig:
    """The potential phi: an MLP on standardised inputs (the paper's shallow net at depth 1)."""

    width: int = option(256, min=1, doc="hidden width k")
    depth: int = option(1, min=1, doc="number of hidden layers")
    activation: str = option("relu", choices=ACTIVATIONS)


@dataclass
class NeuralTrainConfig:
    """Stochastic gradient ascent on the mini-batch semi-dual."""

    steps: int = option(3000, min=1)
    batch_size: int = option(512, min=2, doc="points per side per step; a sample no larger "
                                             "than this is used whole (full batch)")
    reference_batch_size: int | None = option(
        None, min=2, doc="points of mu per step, over which the mini-batch c-transform "
                         "averages (None: batch_size). At small epsilon a c-transform over few "
                         "points is biased towards a smaller epsilon; more points cut that bias "
                         "for a cost linear in this size")
    learning_rate: float = option(1e-2, min=0.0, min_exclusive=True,
                                  doc="Adam step size (the potential's output is scaled to the "
                                      "cost's spread, so one value suits most problems)")
    schedule: str = option("cosine", choices=("constant", "cosine"))
    final_lr_fraction: float = option(0.05, min=0.0, max=1.0, doc="cosine: last lr / first lr")
    a_step: float = option(0.05, min=0.0, max=1.0, min_exclusive=True,
                           doc="egw/eigw: each step moves A this fraction of the way to the "
                               "mini-batch minimiser E_pi[x y^T] / 2 (a gradient step of size "
                               "a_step / (2 w), w = 32 or 8), decayed with the learning rate")
    seed: int = option(0, doc="network initialisation and mini-batch draws")
    log_every: int = option(100, min=1, doc="steps per jitted chunk and per history entry")


@dataclass
class NeuralEvalConfig:
    """The final estimate on large fresh batches, computed in chunks (bounded memory)."""

    eval_size: int = option(10000, min=2, doc="points of mu and of nu averaged in the estimate")
    reference_size: int = option(100000, min=2,
                                 doc="points of mu in the log-sum-exp of the c-transform psi "
                                     "(cost: eval_size x reference_size pair costs); a finite "
                                     "sample no larger than this is used whole (psi exact)")
    reference_blocks: int = option(20, min=2,
                                   doc="independent blocks of the reference sample: the "
                                       "leave-one-block-out jackknife corrects psi's bias and "
                                       "gives the reference's share of the standard error")
    moment_size: int = option(200000, min=2, doc="egw/eigw, sampler data: draws per side for "
                                                 "the training means (centring) and the "
                                                 "starting A (a finite sample is used whole)")
    chunk_size: int = option(2048, min=1, doc="rows per block when evaluating")
    sinkhorn_size: int | None = option(None, min=2,
                                       doc="experiment: also solve with ott-jax on this many "
                                           "points per side (None: skip)")
    plot: bool = option(True, doc="experiment: write a PNG of the learned plan")


@dataclass
class NeuralOTConfig:
    """A neural EOT/EGW run: problem, data, network, training and evaluation."""

    name: str = option("neural_ot")
    problem: ProblemConfig = option(factory=ProblemConfig)
    data: NeuralDataConfig = option(factory=NeuralDataConfig)
    network: NetworkConfig = option(factory=NetworkConfig)
    train: NeuralTrainConfig = option(factory=NeuralTrainConfig)
    eval: NeuralEvalConfig = option(factory=NeuralEvalConfig)


def check_config(config: NeuralOTConfig) -> NeuralOTConfig:
    """Checks that involve more than one key; returns ``config`` unchanged when it passes."""
    data, problem = config.data, config.problem
    if data.eig_min > data.eig_max:
        raise ConfigError(f"data.eig_min ({data.eig_min}) must be <= data.eig_max "
                          f"({data.eig_max}).")
    if data.source == "npz" and not data.path:
        raise ConfigError("data.path: the 'npz' source needs a file with arrays 'x' and 'y'.")
    if (problem.kind == "eot" and data.source == "gaussian" and data.dim_y is not None
            and data.dim_y != data.dim):
        raise ConfigError(f"data.dim_y ({data.dim_y}) must equal data.dim ({data.dim}) for "
                          "problem.kind 'eot': the ground cost compares x and y directly. "
                          "Use problem.kind 'egw' for spaces of different dimensions.")
    if problem.kind != "eot" and problem.cost != "sqeuclidean":
        raise ConfigError(f"problem.cost ({problem.cost!r}) applies to 'eot' only; "
                          f"'{problem.kind}' fixes its own cost. Remove problem.cost.")
    return config


def neural_ot_config_from_dict(raw: dict | None) -> NeuralOTConfig:
    """Build and validate a :class:`NeuralOTConfig` from nested plain data."""
    return check_config(build_dataclass(NeuralOTConfig, raw))
