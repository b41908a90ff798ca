"""Neural estimation of entropic OT (Wang and Goldfeld 2024, Section 3).

What is estimated (the convention of ott-jax's ``reg_ot_cost``)::

    OT_eps(mu, nu) = min_pi  E_pi c(x, y) + eps * KL(pi | mu (x) nu)
                   = sup_phi E_mu phi + E_nu phi^c,                          (semi-dual)

with ``phi^c`` the entropic c-transform (:mod:`wormhole.neural_ot.plan`). The potential phi is
an MLP; the c-transform is taken on each mini-batch by log-sum-exp, and the mini-batch
semi-dual is maximised with Adam. The final estimate evaluates the semi-dual on large fresh
samples, in blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ott.geometry import costs
from tqdm.auto import tqdm

from wormhole.neural_ot.config import NetworkConfig, NeuralEvalConfig, NeuralTrainConfig
from wormhole.neural_ot.networks import (
    PotentialMLP,
    Standardisation,
    apply_potential,
    init_potential,
)
from wormhole.neural_ot.plan import EntropicPlan, semi_dual
from wormhole.neural_ot.sampling import Source, as_source
from wormhole.ot.costs import COSTS, lookup_cost

__all__ = [
    "EOTResult",
    "TrainedPotential",
    "estimate_semi_dual",
    "evaluation_samples",
    "neural_eot",
    "train_potential",
]

def _ground_cost(cost: str | costs.CostFn | None) -> costs.CostFn:
    """The ott-jax cost of neural EOT: ``None`` (squared Euclidean), a ``CostFn``, or the name
    of a cost in the package registry :data:`wormhole.ot.costs.COSTS` marked ``neural``."""
    if cost is None:
        return costs.SqEuclidean()
    if isinstance(cost, costs.CostFn):
        return cost
    usable = ", ".join(name for name, entry in COSTS.items() if entry.neural)
    if not isinstance(cost, str):
        raise TypeError(f"cost_fn must be a cost name ({usable}), an ott-jax CostFn or None, "
                        f"not {type(cost).__name__}.")
    entry = lookup_cost(cost)
    if entry is None:
        raise ValueError(f"Unknown cost {cost!r} for neural EOT; choose one of {usable} or "
                         "pass an ott.geometry.costs.CostFn.")
    if not entry.neural:
        raise ValueError(f"Cost {cost!r} is not usable by neural EOT (wormhole.ot.costs marks "
                         f"it neural=False); choose one of {usable} or pass an "
                         "ott.geometry.costs.CostFn.")
    return entry.make()


class TrainedPotential(NamedTuple):
    """A potential after training: ``phi(x) = apply_potential(model, params, standardisation,
    x)``; ``theta`` is the final cost parameter (the matrix A for GW, ``None`` for OT);
    ``history`` maps ``"step"`` and ``"objective"`` (mean mini-batch semi-dual over each logged
    block of steps) to arrays."""

    model: PotentialMLP
    params: Any
    standardisation: Standardisation
    theta: Any
    history: dict[str, np.ndarray]

    def potential(self, x: jnp.ndarray) -> jnp.ndarray:
        """``phi(x)``; ``x: [n, dx]`` -> ``[n]`` (traceable)."""
        return apply_potential(self.model, self.params, self.standardisation, x)


def _schedule(train: NeuralTrainConfig):
    if train.schedule == "constant":
        return train.learning_rate
    return optax.cosine_decay_schedule(train.learning_rate, train.steps,
                                       alpha=train.final_lr_fraction)


def _relative_rate(schedule, learning_rate: float, index):
    """The schedule's value at ``index`` as a fraction of the initial learning rate."""
    return 1.0 if not callable(schedule) else schedule(index) / learning_rate


def train_potential(source_x: Source, source_y: Source,
                    pair_cost: Callable[[Any, jnp.ndarray, jnp.ndarray], jnp.ndarray],
                    epsilon: float, network: NetworkConfig, train: NeuralTrainConfig, *,
                    theta: Any = None, theta_update: Callable | None = None,
                    progress: bool = False, desc: str = "neural OT") -> TrainedPotential:
    """Maximise the mini-batch semi-dual over the network's parameters.

    Args:
      source_x, source_y: the two distributions (see :mod:`wormhole.neural_ot.sampling`).
      pair_cost: ``pair_cost(theta, x: [B, dx], y: [B, dy]) -> [B, B]``.
      epsilon: regularisation strength.
      network, train: architecture and optimisation settings.
      theta: parameter of the cost (``None`` for a fixed cost).
      theta_update: ``(theta, phi_x [B], cost [B, B], x [B, dx], y [B, dy], rate) -> theta``,
        applied after every potential step (the alternating A-step of neural EGW); ``rate`` is
        ``train.a_step`` times the learning-rate schedule's current fraction of its first
        value. ``None`` keeps theta fixed.
      progress: show a tqdm progress bar.
    """
    model = PotentialMLP(network.width, network.depth, network.activation)
    k_init, k_x, k_y, k_train = jax.random.split(jax.random.PRNGKey(train.seed), 4)
    probe = min(train.batch_size, 2048)
    x0, y0 = source_x.fresh(k_x, probe), source_y.fresh(k_y, probe)
    standardisation = Standardisation.from_sample(x0, pair_cost(theta, x0, y0))
    params = init_potential(model, k_init, source_x.dim)
    schedule = _schedule(train)
    optimizer = optax.adam(schedule)
    batch = train.batch_size

    def step(carry, inputs, data):
        params, opt_state, theta = carry
        key, index = inputs
        kx, ky = jax.random.split(key)
        xb, yb = source_x.batch(data[0], kx, batch), source_y.batch(data[1], ky, batch)
        cost = pair_cost(theta, xb, yb)

        def loss(p):
            phi = apply_potential(model, p, standardisation, xb)
            return -semi_dual(phi, cost, epsilon), phi

        (neg_value, phi), grads = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if theta_update is not None:
            rate = train.a_step * _relative_rate(schedule, train.learning_rate, index)
            theta = theta_update(theta, jax.lax.stop_gradient(phi), cost, xb, yb, rate)
        return (params, opt_state, theta), -neg_value

    @jax.jit
    def run_block(carry, keys, indices, data):
        return jax.lax.scan(lambda c, inputs: step(c, inputs, data), carry, (keys, indices))

    carry = (params, optimizer.init(params), theta)
    data = (source_x.data, source_y.data)
    steps, values = [], []
    done = 0
    with tqdm(total=train.steps, desc=desc, disable=not progress, leave=False) as bar:
        while done < train.steps:
            size = min(train.log_every, train.steps - done)
            keys = jax.random.split(jax.random.fold_in(k_train, done), size)
            indices = jnp.arange(done, done + size)
            carry, objective = run_block(carry, keys, indices, data)
            done += size
            value = float(jnp.mean(objective))
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"{desc}: the semi-dual became {value} by step {done}; lower "
                    "train.learning_rate or raise problem.epsilon.")
            steps.append(done)
            values.append(value)
            bar.update(size)
            bar.set_postfix(objective=f"{value:.5g}")
    params, _, theta = carry
    history = {"step": np.asarray(steps), "objective": np.asarray(values)}
    return TrainedPotential(model, params, standardisation, theta, history)


def estimate_semi_dual(plan: EntropicPlan, x_eval: jnp.ndarray,
                       y_eval: jnp.ndarray) -> tuple[float, float]:
    """``mean phi(x_eval) + mean psi(y_eval)`` (psi against ``plan.reference``, in blocks) and
    its Monte Carlo standard error with the reference held fixed; ``x_eval: [n, dx]``,
    ``y_eval: [m, dy]``."""
    phi, psi = plan.phi(x_eval), plan.psi(y_eval)
    stderr = jnp.sqrt(jnp.var(phi) / phi.shape[0] + jnp.var(psi) / psi.shape[0])
    return float(jnp.mean(phi) + jnp.mean(psi)), float(stderr)


def evaluation_samples(source_x: Source, source_y: Source, evaluation: NeuralEvalConfig, key):
    """``(reference [<= reference_size, dx], x_eval, y_eval)``: fresh draws, or the whole
    finite sample when it is no larger than asked."""
    k_ref, k_x, k_y = jax.random.split(key, 3)
    reference = source_x.fresh(k_ref, evaluation.reference_size)
    return (reference, source_x.fresh(k_x, evaluation.eval_size),
            source_y.fresh(k_y, evaluation.eval_size))


class EOTResult(NamedTuple):
    """Neural estimate of ``OT_eps(mu, nu)``.

    Attributes:
      cost: the estimate (semi-dual on the evaluation samples).
      stderr: Monte Carlo standard error of ``cost`` over the evaluation samples.
      epsilon: regularisation strength.
      plan: the learned plan; ``plan.phi`` and ``plan.psi`` are the potentials.
      trained: network, parameters, standardisation and training history.
    """

    cost: float
    stderr: float
    epsilon: float
    plan: EntropicPlan
    trained: TrainedPotential

    @property
    def potential(self) -> Callable[[jnp.ndarray], jnp.ndarray]:
        """``phi``: ``[n, dx] -> [n]``."""
        return self.plan.phi

    @property
    def dual_potential(self) -> Callable[[jnp.ndarray], jnp.ndarray]:
        """``psi = phi^c`` against the reference sample: ``[m, dy] -> [m]``."""
        return self.plan.psi

    @property
    def history(self) -> dict[str, np.ndarray]:
        return self.trained.history


def neural_eot(x, y, epsilon: float = 1.0, cost_fn: str | costs.CostFn | None = None, *,
               network: NetworkConfig | None = None, train: NeuralTrainConfig | None = None,
               evaluation: NeuralEvalConfig | None = None, progress: bool = False) -> EOTResult:
    """Neural estimate of ``OT_eps(mu, nu) = min E_pi c + eps KL(pi | mu (x) nu)``.

    Args:
      x: samples of mu, an array ``[n, dx]`` (its empirical measure is mu) or a sampler
        ``(key, batch) -> [batch, dx]``.
      y: samples of nu, likewise ``[m, dy]``.
      epsilon: regularisation strength (absolute, in units of the cost).
      cost_fn: an ott-jax ``CostFn``, or the name of a cost marked ``neural`` in
        :data:`wormhole.ot.costs.COSTS` (default: squared Euclidean).
      network, train, evaluation: settings (defaults: :mod:`wormhole.neural_ot.config`).
      progress: show a progress bar while training.
    """
    network, train = network or NetworkConfig(), train or NeuralTrainConfig()
    evaluation = evaluation or NeuralEvalConfig()
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}.")
    cost = _ground_cost(cost_fn)
    source_x, source_y = as_source(x, "x"), as_source(y, "y")
    if source_x.dim != source_y.dim:
        raise ValueError(f"x has dimension {source_x.dim} and y {source_y.dim}; the ground cost "
                         "compares them directly. Use neural_egw for spaces of different "
                         "dimensions.")
    trained = train_potential(source_x, source_y, lambda _, a, b: cost.all_pairs(a, b),
                              epsilon, network, train, progress=progress, desc="neural EOT")
    key = jax.random.fold_in(jax.random.PRNGKey(train.seed), 1)
    reference, x_eval, y_eval = evaluation_samples(source_x, source_y, evaluation, key)
    plan = EntropicPlan(trained.potential, cost.all_pairs, reference, epsilon,
                        evaluation.chunk_size)
    cost, stderr = estimate_semi_dual(plan, x_eval, y_eval)
    return EOTResult(cost, stderr, float(epsilon), plan, trained)
