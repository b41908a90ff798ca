"""Neural estimation of entropic OT (Wang and Goldfeld 2024, Section 3).

What is estimated (the convention of ott-jax's ``reg_ot_cost``)::

    OT_eps(mu, nu) = min_pi  E_pi c(x, y) + eps * KL(pi | mu (x) nu)
                   = sup_phi E_mu phi + E_nu phi^c,                          (semi-dual)

with ``phi^c`` the entropic c-transform (:mod:`wormhole.neural_ot.plan`). The potential phi is
an MLP; the c-transform is taken on each mini-batch by log-sum-exp, and the mini-batch
semi-dual is maximised with Adam. The final estimate evaluates the semi-dual on large fresh
samples, in blocks, with the c-transform's reference sample split into independent blocks
for a jackknife correction of its bias and its share of the standard error.
"""

from __future__ import annotations

import math
import warnings
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
    "RELIABLE_ESS",
    "EOTResult",
    "SemiDualEstimate",
    "TrainedPotential",
    "estimate_semi_dual",
    "evaluation_samples",
    "neural_eot",
    "train_potential",
    "warn_if_unreliable",
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
    batch_x = train.reference_batch_size or batch

    def step(carry, inputs, data):
        params, opt_state, theta = carry
        key, index = inputs
        kx, ky = jax.random.split(key)
        xb, yb = source_x.batch(data[0], kx, batch_x), source_y.batch(data[1], ky, batch)
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


class SemiDualEstimate(NamedTuple):
    """``E_mu phi + E_nu psi`` of a learned potential, estimated on fresh samples.

    ``psi`` averages ``exp((phi - c) / eps)`` over a finite reference sample of mu, and the
    log of an average is biased: ``psi`` comes out too large, by about ``eps / (2 ESS)`` at
    a point where the reference's effective sample size ESS
    (:meth:`~wormhole.neural_ot.plan.EntropicPlan.reference_ess`) is large, and by more where
    it is small; ESS falls quickly as epsilon shrinks. With the exact c-transform the
    semi-dual is a lower bound of ``OT_eps``; with a reference sample it can exceed it. The
    estimate removes the ``1 / m`` part of that bias by a jackknife over independent blocks of
    the reference (leave one block out), which also gives the reference sample's share of the
    standard error.

    Attributes:
      value: the estimate (jackknife-corrected, unless the reference is exact).
      plug_in: ``mean phi(x_eval) + mean psi(y_eval)`` with the whole reference.
      stderr: standard error of ``value``: the evaluation samples' and the reference's.
      reference_stderr: the reference sample's part of ``stderr`` (block jackknife; 0 when
        the reference is exact).
      reference_ess: median effective sample size of the reference in the c-transform over
        (up to 1,000 of) the evaluation points of nu.
      reliable: the reference is exact, or ``reference_ess >= RELIABLE_ESS``; otherwise
        ``value`` is likely biased upward by more than ``stderr``.
    """

    value: float
    plug_in: float
    stderr: float
    reference_stderr: float
    reference_ess: float
    reliable: bool


RELIABLE_ESS = 10.0
"""Below this median effective sample size of the c-transform's reference sample, the
jackknife leaves a bias of several standard errors: measured with the exact optimal potential
between Gaussians in d = 16 (the corrected estimate was within 1.6 standard errors of the
closed form at ESS 13 and 20, and 5.9 to 40 above it at ESS 1.5 to 6.6)."""


def warn_if_unreliable(estimate: SemiDualEstimate, what: str) -> None:
    """Warn when ``estimate`` is not ``reliable`` (see :data:`RELIABLE_ESS`)."""
    if not estimate.reliable:
        warnings.warn(
            f"{what}: the c-transform's reference sample has a median effective size of "
            f"{estimate.reference_ess:.1f} points (< {RELIABLE_ESS:g}), so the estimate "
            f"{estimate.value:.6g} is likely biased upward by more than its standard error "
            f"{estimate.stderr:.2g} (uncorrected: {estimate.plug_in:.6g}). Raise "
            "eval.reference_size (the needed size grows quickly as epsilon falls) or epsilon.",
            stacklevel=3)


def _leave_one_out_lse(log_sums: jnp.ndarray) -> jnp.ndarray:
    """``[B, n]`` -> ``[B, n]``: row b is the logsumexp over all rows but b (exact even when
    one block dominates, unlike subtracting it from the total)."""
    blocks = log_sums.shape[0]
    rows = jnp.arange(blocks)[:, None]
    return jax.lax.map(
        lambda b: jax.nn.logsumexp(jnp.where(rows == b, -jnp.inf, log_sums), axis=0),
        jnp.arange(blocks))


def estimate_semi_dual(plan: EntropicPlan, x_eval: jnp.ndarray, y_eval: jnp.ndarray, *,
                       blocks: int, exact_reference: bool = False,
                       influence_x: jnp.ndarray | None = None,
                       influence_y: jnp.ndarray | None = None) -> SemiDualEstimate:
    """The semi-dual of ``plan``'s potential on ``x_eval: [n, dx]`` and ``y_eval: [k, dy]``
    (drawn independently of ``plan.reference``), see :class:`SemiDualEstimate`.

    Args:
      blocks: independent blocks of the reference for the jackknife (its size must be a
        multiple of ``blocks``).
      exact_reference: the reference is the whole of mu (a finite sample used whole), so psi
        is exact: no correction, no reference variance.
      influence_x, influence_y: ``[n]``, ``[k]`` terms added to phi and psi in the variance
        only (the first-order terms of other parts of an estimate on the same samples).
    """
    phi = plan.phi(x_eval)
    eps, m = plan.epsilon, plan.reference.shape[0]
    ess = float(jnp.median(plan.reference_ess(y_eval[:1000])))
    if exact_reference:
        psi = plan.psi(y_eval)
        plug_in = float(jnp.mean(phi) + jnp.mean(psi))
        value, reference_var = plug_in, 0.0
    else:
        log_sums = plan.reference_log_sums(y_eval, blocks)
        psi = -eps * (jax.nn.logsumexp(log_sums, axis=0) - jnp.log(m))
        left_out = -eps * (_leave_one_out_lse(log_sums) - jnp.log(m - m // blocks))
        plug_in = float(jnp.mean(phi) + jnp.mean(psi))
        # Only the psi term depends on the reference; phi's mean is common to every copy.
        copies = jnp.mean(phi) + jnp.mean(left_out, axis=1)
        value = float(blocks * plug_in - (blocks - 1) * jnp.mean(copies))
        reference_var = float((blocks - 1) * jnp.mean((copies - jnp.mean(copies)) ** 2))
    fx = phi if influence_x is None else phi + influence_x
    fy = psi if influence_y is None else psi + influence_y
    eval_var = float(jnp.var(fx) / fx.shape[0] + jnp.var(fy) / fy.shape[0])
    return SemiDualEstimate(value, plug_in, math.sqrt(eval_var + reference_var),
                            math.sqrt(reference_var), ess,
                            exact_reference or ess >= RELIABLE_ESS)


def evaluation_samples(source_x: Source, source_y: Source, evaluation: NeuralEvalConfig, key):
    """``(reference, x_eval, y_eval, exact_reference)``: fresh draws (the reference's size
    rounded down to a multiple of ``evaluation.reference_blocks``), or the whole finite sample
    when it is no larger than asked; ``exact_reference`` says the reference is all of mu."""
    k_ref, k_x, k_y = jax.random.split(key, 3)
    exact = source_x.size is not None and source_x.size <= evaluation.reference_size
    blocks = evaluation.reference_blocks
    if not exact and evaluation.reference_size < 2 * blocks:
        raise ValueError(f"eval.reference_size ({evaluation.reference_size}) must be at least "
                         f"twice eval.reference_blocks ({blocks}) to split the reference "
                         "sample into blocks of two or more points.")
    size = evaluation.reference_size if exact else blocks * (evaluation.reference_size // blocks)
    reference = source_x.fresh(k_ref, size)
    return (reference, source_x.fresh(k_x, evaluation.eval_size),
            source_y.fresh(k_y, evaluation.eval_size), exact)


class EOTResult(NamedTuple):
    """Neural estimate of ``OT_eps(mu, nu)``.

    Attributes:
      cost: the estimate: the semi-dual on fresh evaluation samples, corrected for the bias
        of the c-transform's finite reference sample (see :class:`SemiDualEstimate`).
      stderr: its standard error over the evaluation samples and the reference sample.
      plug_in: the uncorrected semi-dual with the whole reference sample.
      reference_stderr: the reference sample's part of ``stderr``.
      reference_ess: median effective sample size of the reference in the c-transform.
      reliable: the reference is exact or its ESS is at least :data:`RELIABLE_ESS`; if not,
        ``cost`` is likely biased upward by more than ``stderr`` (raise
        ``eval.reference_size`` or epsilon) and a warning says so.
      epsilon: regularisation strength.
      plan: the learned plan; ``plan.phi`` and ``plan.psi`` are the potentials.
      trained: network, parameters, standardisation and training history.
    """

    cost: float
    stderr: float
    plug_in: float
    reference_stderr: float
    reference_ess: float
    reliable: bool
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
    reference, x_eval, y_eval, exact = evaluation_samples(source_x, source_y, evaluation, key)
    plan = EntropicPlan(trained.potential, cost.all_pairs, reference, epsilon,
                        evaluation.chunk_size)
    estimate = estimate_semi_dual(plan, x_eval, y_eval, blocks=evaluation.reference_blocks,
                                  exact_reference=exact)
    warn_if_unreliable(estimate, "neural EOT")
    return EOTResult(estimate.value, estimate.stderr, estimate.plug_in,
                     estimate.reference_stderr, estimate.reference_ess, estimate.reliable,
                     float(epsilon), plan, trained)
