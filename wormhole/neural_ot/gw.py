"""Neural estimation of entropic Gromov-Wasserstein (Wang and Goldfeld 2024, Section 4).

Quadratic GW between mu on R^dx and nu on R^dy, both centred (GW is translation invariant, so
they are centred first), with ``eps * KL(pi | mu (x) nu)`` as regulariser::

    EGW_eps(mu, nu) = min_pi E_{pi (x) pi} (||x - x'||^2 - ||y - y'||^2)^2 + eps KL(pi | mu (x) nu)
                    = S1(mu, nu) + min_A { 32 ||A||_F^2 + OT_{c_A, eps}(mu, nu) },
    S1(mu, nu)      = E||x - x'||^4 + E||y - y'||^4 - 4 E||x||^2 E||y||^2,
    c_A(x, y)       = -4 ||x||^2 ||y||^2 - 32 x^T A y,                    A: [dx, dy].

(Zhang, Goldfeld, Mroueh and Sriperumbudur 2024, "Gromov-Wasserstein distances: entropic
regularization, duality and sample complexity", Corollary 1.) Expanding the square, the
cross term of the GW cost is ``-8 ||E_pi[x y^T]||_F^2``, and ``-8 ||M||^2 = min_A 32 ||A||^2 -
32 <A, M>``, attained at ``A = M / 2``. The inner-product variant (used by Wang and Goldfeld
for MNIST) does the same without centring::

    EIGW_eps(mu, nu) = min_pi E_{pi (x) pi} (<x, x'> - <y, y'>)^2 + eps KL(pi | mu (x) nu)
                     = ||E x x^T||_F^2 + ||E y y^T||_F^2 + min_A { 8 ||A||^2 + OT_{c_A, eps} },
    c_A(x, y)        = -8 x^T A y.

Both are solved by alternating, at every step, one Adam step on the neural potential of the
inner EOT (:func:`wormhole.neural_ot.eot.train_potential`) and one step on A along the
gradient ``2 w A - w E_pi[x y^T]`` (``w`` = 32 or 8; Wang and Goldfeld, Algorithm 2), with
``E_pi[x y^T]`` taken under the mini-batch Gibbs plan of the current potential.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wormhole.neural_ot.config import NetworkConfig, NeuralEvalConfig, NeuralTrainConfig
from wormhole.neural_ot.eot import (
    TrainedPotential,
    estimate_semi_dual,
    evaluation_samples,
    train_potential,
    warn_if_unreliable,
)
from wormhole.neural_ot.plan import EntropicPlan, c_transform
from wormhole.neural_ot.sampling import Source, as_source

__all__ = [
    "GW_KINDS",
    "EGWResult",
    "GWKind",
    "batch_cross_moment",
    "gw_pair_cost",
    "moment_term",
    "neural_egw",
]


class GWKind(NamedTuple):
    """One variational GW problem: ``weight * ||A||^2 + OT`` with ``c_A = -quartic * 4 ||x||^2
    ||y||^2 - weight * x^T A y``; ``centred``: whether both measures are centred first."""

    weight: float
    quartic: bool
    centred: bool


GW_KINDS: dict[str, GWKind] = {
    "egw": GWKind(weight=32.0, quartic=True, centred=True),
    "eigw": GWKind(weight=8.0, quartic=False, centred=False),
}


def _kind(kind: str) -> GWKind:
    if kind not in GW_KINDS:
        raise ValueError(f"Unknown GW kind {kind!r}; choose one of {', '.join(GW_KINDS)}.")
    return GW_KINDS[kind]


def gw_pair_cost(kind: str, matrix: jnp.ndarray, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """``c_A(x_i, y_j)``; ``matrix`` is ``A: [dx, dy]``, ``x: [n, dx]``, ``y: [m, dy]``
    -> ``[n, m]``."""
    spec = _kind(kind)
    cost = -spec.weight * (x @ matrix) @ y.T
    if spec.quartic:
        cost = cost - 4.0 * jnp.sum(x**2, axis=1)[:, None] * jnp.sum(y**2, axis=1)[None, :]
    return cost


def _second_moment_matrix(x: jnp.ndarray) -> jnp.ndarray:
    return x.T @ x / x.shape[0]


def _mean_quartic_distance(x: jnp.ndarray) -> jnp.ndarray:
    """``E ||x - x'||^4`` over independent ``x, x'`` of the sample ``x: [n, d]``::

        2 E||x||^4 + 2 (E||x||^2)^2 + 4 ||E x x^T||_F^2 - 8 E[||x||^2 x] . E[x].
    """
    sq = jnp.sum(x**2, axis=1)
    mean = jnp.mean(x, axis=0)
    return (2.0 * jnp.mean(sq**2) + 2.0 * jnp.mean(sq) ** 2
            + 4.0 * jnp.sum(_second_moment_matrix(x) ** 2)
            - 8.0 * jnp.dot(jnp.mean(sq[:, None] * x, axis=0), mean))


def moment_term(kind: str, x: jnp.ndarray, y: jnp.ndarray) -> float:
    """``S1(mu, nu)`` from samples ``x: [n, dx]``, ``y: [m, dy]`` (centred by the caller for
    'egw'): the part of the GW cost that does not depend on the coupling."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    if _kind(kind).quartic:
        value = (_mean_quartic_distance(x) + _mean_quartic_distance(y)
                 - 4.0 * jnp.mean(jnp.sum(x**2, axis=1)) * jnp.mean(jnp.sum(y**2, axis=1)))
    else:
        value = (jnp.sum(_second_moment_matrix(x) ** 2)
                 + jnp.sum(_second_moment_matrix(y) ** 2))
    return float(value)


def _moment_influence(kind: str, x: jnp.ndarray, y: jnp.ndarray):
    """First-order terms of ``S1`` at each point, ``([n], [m])``: ``S1(sample) - S1(mu, nu)
    ~ mean(ix) + mean(iy)``. Added to the potentials they give the influence function of the
    whole estimate, whose variance is its standard error (the large fluctuations of ``S1`` and
    of ``OT_A`` cancel, since they come from the same points)."""
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    if not _kind(kind).quartic:
        return tuple(2.0 * (jnp.einsum("ni,ij,nj->n", z, _second_moment_matrix(z), z)
                            - jnp.sum(_second_moment_matrix(z) ** 2)) for z in (x, y))

    def quartic(z):
        # E_z' ||z - z'||^4 at each z, centred: the V-statistic's first-order term is twice it.
        sq = jnp.sum(z**2, axis=1)
        cov, mean = _second_moment_matrix(z), jnp.mean(z, axis=0)
        g = (sq**2 + jnp.mean(sq**2) + 4.0 * jnp.einsum("ni,ij,nj->n", z, cov, z)
             + 2.0 * sq * jnp.mean(sq) - 4.0 * sq * (z @ mean)
             - 4.0 * z @ jnp.mean(sq[:, None] * z, axis=0))
        return 2.0 * (g - jnp.mean(g)), sq - jnp.mean(sq), jnp.mean(sq)

    qx, ax, mx = quartic(x)
    qy, ay, my = quartic(y)
    return qx - 4.0 * ax * my, qy - 4.0 * ay * mx


def batch_cross_moment(phi_x: jnp.ndarray, cost_xy: jnp.ndarray, x: jnp.ndarray,
                       y: jnp.ndarray, epsilon: float) -> jnp.ndarray:
    """``E_pi[x y^T]`` under the mini-batch Gibbs plan of ``phi``: ``pi_ij = exp((phi_i + psi_j
    - c_ij) / eps) / (n m)`` with ``psi`` the batch c-transform (so ``pi`` has exactly the
    batch's nu marginal). ``phi_x: [n]``, ``cost_xy: [n, m]`` -> ``[dx, dy]``."""
    n, m = cost_xy.shape
    psi = c_transform(phi_x, cost_xy, epsilon)
    plan = jnp.exp((phi_x[:, None] + psi[None, :] - cost_xy) / epsilon - jnp.log(n * m))
    return x.T @ plan @ y


class EGWResult(NamedTuple):
    """Neural estimate of ``EGW_eps`` (kind 'egw') or ``EIGW_eps`` (kind 'eigw').

    Attributes:
      cost: the estimate ``S1 + weight ||A||^2 + OT_A``, both terms on the same evaluation
        samples.
      stderr: its standard error: over the evaluation samples, from the influence function
        ``S1' + phi`` and ``S1' + psi``, and over the c-transform's reference sample (block
        jackknife, see :class:`~wormhole.neural_ot.eot.SemiDualEstimate`).
      kind: 'egw' or 'eigw'.
      epsilon: regularisation strength.
      matrix: the final ``A: [dx, dy]`` (half the plan's cross moment ``E_pi[x y^T]``).
      moment_term: ``S1(mu, nu)``.
      ot_cost: the inner ``OT_{c_A, eps}`` at the final A (corrected for the bias of the
        c-transform's finite reference sample).
      reference_ess: median effective sample size of that reference in the c-transform.
      reliable: the reference is exact or its ESS is at least
        :data:`~wormhole.neural_ot.eot.RELIABLE_ESS` (else a warning was issued).
      shift_x, shift_y: the means of the evaluation samples, subtracted in the final cost
        and the plan (zeros for 'eigw'; training centres with the moment sample's means).
      plan: the alignment plan, on the original (uncentred) coordinates.
      trained: network, parameters, standardisation, final A and training history.
    """

    cost: float
    stderr: float
    kind: str
    epsilon: float
    matrix: np.ndarray
    moment_term: float
    ot_cost: float
    reference_ess: float
    reliable: bool
    shift_x: np.ndarray
    shift_y: np.ndarray
    plan: EntropicPlan
    trained: TrainedPotential

    @property
    def history(self) -> dict[str, np.ndarray]:
        return self.trained.history


def _moment_sample(source: Source, key: jax.Array, num: int) -> jnp.ndarray:
    """The whole finite sample (exact moments of its empirical measure) or ``num`` draws."""
    return source.data if source.data is not None else source.fresh(key, num)


def _principal_axes(x: jnp.ndarray, k: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The top ``k`` eigenvalues ``[k]`` and eigenvectors ``[d, k]`` of ``E x x^T``, each axis
    signed so that the sample's third moment along it is >= 0."""
    vals, vecs = jnp.linalg.eigh(_second_moment_matrix(x))
    vals, vecs = vals[::-1][:k], vecs[:, ::-1][:, :k]
    skew = jnp.mean((x @ vecs) ** 3, axis=0)
    return vals, vecs * jnp.where(skew < 0, -1.0, 1.0)


def _initial_matrix(x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
    """``A = E_pi0[x y^T] / 2`` for the Gaussian coupling ``pi0`` that maps the principal axes
    of ``x: [n, dx]`` onto those of ``y: [m, dy]`` in order of variance (the unregularised GW
    alignment of Gaussians, Delon, Desolneux and Salmona 2022), skewed side onto skewed side;
    the iterations then shrink it as epsilon requires.

    GW is non-convex in A: its local minima include alignments of a large axis with a small
    one and, for skewed data, reflections of the best alignment (A near -A* when only one side
    is flipped). Starting from the matched principal axes avoids both in the cases tested.
    """
    k = min(x.shape[1], y.shape[1])
    lx, ux = _principal_axes(x, k)
    ly, uy = _principal_axes(y, k)
    return 0.5 * (ux * jnp.sqrt(jnp.clip(lx * ly, 0.0))) @ uy.T


def neural_egw(x, y, epsilon: float, kind: str = "egw", *, network: NetworkConfig | None = None,
               train: NeuralTrainConfig | None = None, evaluation: NeuralEvalConfig | None = None,
               progress: bool = False) -> EGWResult:
    """Neural estimate of entropic GW (``kind='egw'``, quadratic, squared Euclidean distances)
    or of its inner-product variant (``kind='eigw'``), with the alignment plan.

    Args:
      x: samples of mu, an array ``[n, dx]`` or a sampler ``(key, batch) -> [batch, dx]``.
      y: samples of nu, ``[m, dy]`` or a sampler; ``dy`` may differ from ``dx``.
      epsilon: regularisation strength, in units of the GW cost (squared distances squared).
      kind: 'egw' or 'eigw'.
      network, train, evaluation: settings (defaults: :mod:`wormhole.neural_ot.config`);
        ``train.a_step`` is the step on A; the final cost is computed on
        ``evaluation.eval_size`` points per side.
      progress: show a progress bar while training.
    """
    spec = _kind(kind)
    network, train = network or NetworkConfig(), train or NeuralTrainConfig()
    evaluation = evaluation or NeuralEvalConfig()
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}.")
    source_x, source_y = as_source(x, "x"), as_source(y, "y")
    keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(train.seed), 2), 3)
    k_mx, k_my, k_eval = keys
    moments_x = _moment_sample(source_x, k_mx, evaluation.moment_size)
    moments_y = _moment_sample(source_y, k_my, evaluation.moment_size)
    shift_x = jnp.mean(moments_x, axis=0) if spec.centred else jnp.zeros(source_x.dim)
    shift_y = jnp.mean(moments_y, axis=0) if spec.centred else jnp.zeros(source_y.dim)
    moments_x, moments_y = moments_x - shift_x, moments_y - shift_y
    start = _initial_matrix(moments_x, moments_y)
    del moments_x, moments_y

    def update_matrix(matrix, phi_x, cost_xy, xb, yb, rate):
        target = 0.5 * batch_cross_moment(phi_x, cost_xy, xb, yb, epsilon)
        return matrix + rate * (target - matrix)

    trained = train_potential(
        source_x.shifted(shift_x), source_y.shifted(shift_y),
        lambda matrix, a, b: gw_pair_cost(kind, matrix, a, b), epsilon, network, train,
        theta=start, theta_update=update_matrix, progress=progress, desc=f"neural {kind.upper()}")
    matrix = trained.theta

    # The final estimate is S1 + w ||A||^2 + OT_A of the evaluation samples' own measures, so
    # they are centred by their own means: the decomposition into S1 and OT_A holds for
    # centred measures only, and the training means differ from these by sampling error.
    reference, x_eval, y_eval, exact = evaluation_samples(source_x, source_y, evaluation,
                                                          k_eval)
    train_shift_x = shift_x
    if spec.centred:
        shift_x, shift_y = jnp.mean(x_eval, axis=0), jnp.mean(y_eval, axis=0)

    def potential(a):
        return trained.potential(a - train_shift_x)

    def pair_cost(a, b):
        return gw_pair_cost(kind, matrix, a - shift_x, b - shift_y)

    plan = EntropicPlan(potential, pair_cost, reference, epsilon, evaluation.chunk_size)
    s1 = moment_term(kind, x_eval - shift_x, y_eval - shift_y)
    infl_x, infl_y = _moment_influence(kind, x_eval - shift_x, y_eval - shift_y)
    inner = estimate_semi_dual(plan, x_eval, y_eval, blocks=evaluation.reference_blocks,
                               exact_reference=exact, influence_x=infl_x, influence_y=infl_y)
    warn_if_unreliable(inner, f"neural {kind.upper()} (its inner OT)")
    cost = s1 + spec.weight * float(jnp.sum(matrix**2)) + inner.value
    return EGWResult(cost, inner.stderr, kind, float(epsilon), np.asarray(matrix), s1,
                     inner.value, inner.reference_ess, inner.reliable, np.asarray(shift_x),
                     np.asarray(shift_y), plan, trained)
