"""Closed forms for entropic OT between Gaussians: the oracle for tests and benchmarks.

Convention (the one used throughout :mod:`wormhole.neural_ot` and by ott-jax's
``reg_ot_cost``)::

    OT_eps(mu, nu) = min_pi  E_pi ||x - y||^2 + eps * KL(pi | mu (x) nu).

Janati et al. (2020), "Entropic optimal transport between unbalanced Gaussian measures has a
closed form", Theorem 1 and Proposition 1, write the regulariser as ``2 sigma^2 KL``; here
``sigma^2 = eps / 2``. Mallasto et al. (2021), "Entropy-regularized 2-Wasserstein distance
between Gaussian measures", give the same formulas.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = [
    "Gaussian",
    "entropic_igw_gaussians",
    "entropic_ot_gaussians",
    "entropic_plan_gaussians",
    "entropic_potential_gaussians",
    "gaussian_plan_log_density",
    "gaussian_conditional_mean",
    "random_gaussian",
]


class Gaussian(NamedTuple):
    """A Gaussian measure N(mean, cov); ``mean: [d]``, ``cov: [d, d]`` (positive definite)."""

    mean: np.ndarray
    cov: np.ndarray

    @property
    def dim(self) -> int:
        return int(np.shape(self.mean)[0])

    def sample(self, key, num: int) -> jnp.ndarray:
        """``num`` draws, ``[num, d]``; usable as a sampler ``(key, batch) -> [batch, d]``."""
        import jax

        chol = jnp.linalg.cholesky(jnp.asarray(self.cov, jnp.float32))
        z = jax.random.normal(key, (num, self.dim), jnp.float32)
        return jnp.asarray(self.mean, jnp.float32) + z @ chol.T


def random_gaussian(dim: int, seed: int, *, mean_scale: float = 1.0,
                    eig_range: tuple[float, float] = (0.5, 2.0)) -> Gaussian:
    """A reproducible Gaussian: mean ``~ mean_scale * N(0, I/d)``, covariance ``Q diag(l) Q^T``
    with a Haar-random rotation ``Q`` and eigenvalues ``l`` uniform in ``eig_range``."""
    rng = np.random.default_rng(seed)
    mean = mean_scale * rng.standard_normal(dim) / np.sqrt(dim)
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    eigs = rng.uniform(*eig_range, size=dim)
    return Gaussian(mean, (q * eigs) @ q.T)


def _sqrtm(mat: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(mat)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def _d_sigma(cov_x: np.ndarray, cov_y: np.ndarray, sigma2: float):
    """``A^{1/2}`` and ``D_sigma = (4 A^{1/2} B A^{1/2} + sigma^4 I)^{1/2}`` (Janati et al.)."""
    root_a = _sqrtm(cov_x)
    d = _sqrtm(4.0 * root_a @ cov_y @ root_a + sigma2**2 * np.eye(len(cov_x)))
    return root_a, d


def entropic_ot_gaussians(mu: Gaussian, nu: Gaussian, epsilon: float) -> float:
    """``OT_eps(mu, nu)`` for the squared Euclidean cost (Janati et al. 2020, Theorem 1)::

        ||a - b||^2 + tr A + tr B - tr D + d s (1 - log 2s) + s log det(D + s I),   s = eps/2.
    """
    a, b = np.asarray(mu.mean, np.float64), np.asarray(nu.mean, np.float64)
    cov_x, cov_y = np.asarray(mu.cov, np.float64), np.asarray(nu.cov, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"squared Euclidean OT needs equal dimensions, got {a.shape} and "
                         f"{b.shape}.")
    s = epsilon / 2.0
    dim = len(a)
    _, d = _d_sigma(cov_x, cov_y, s)
    _, logdet = np.linalg.slogdet(d + s * np.eye(dim))
    value = (np.sum((a - b) ** 2) + np.trace(cov_x) + np.trace(cov_y) - np.trace(d)
             + dim * s * (1.0 - np.log(2.0 * s)) + s * logdet)
    return float(value)


def entropic_plan_gaussians(mu: Gaussian, nu: Gaussian, epsilon: float):
    """The optimal entropic plan, a Gaussian on ``(x, y)`` (Janati et al. 2020, Prop. 1).

    Returns ``(mean [2d], cov [2d, 2d])`` with cross-covariance
    ``C = A^{1/2} D A^{-1/2} / 2 - (eps / 4) I``.
    """
    cov_x, cov_y = np.asarray(mu.cov, np.float64), np.asarray(nu.cov, np.float64)
    s = epsilon / 2.0
    root_a, d = _d_sigma(cov_x, cov_y, s)
    cross = 0.5 * root_a @ d @ np.linalg.inv(root_a) - 0.5 * s * np.eye(len(cov_x))
    mean = np.concatenate([np.asarray(mu.mean, np.float64), np.asarray(nu.mean, np.float64)])
    cov = np.block([[cov_x, cross], [cross.T, cov_y]])
    return mean, cov


def entropic_potential_gaussians(mu: Gaussian, nu: Gaussian, epsilon: float):
    """An optimal potential of ``OT_eps(mu, nu)`` (squared Euclidean cost), up to a constant.

    Returns ``phi: [n, d] -> [n]`` (traceable) with ``E_mu phi + E_nu phi^c = OT_eps``. From
    the Gibbs form ``eps log dpi/d(mu (x) nu) = phi(x) + psi(y) - ||x - y||^2`` of the
    Gaussian plan ``N(m, S)`` (:func:`entropic_plan_gaussians`), with ``P = S^{-1}`` and
    ``u = x - a``::

        phi(x) = ||x||^2 - (eps / 2) u^T (P_xx - A^{-1}) u + eps u^T P_xy b.
    """
    mean, cov = entropic_plan_gaussians(mu, nu, epsilon)
    dim = mu.dim
    precision = np.linalg.inv(cov)
    a, b = mean[:dim], mean[dim:]
    quad = precision[:dim, :dim] - np.linalg.inv(np.asarray(mu.cov, np.float64))
    lin = precision[:dim, dim:] @ b
    a, quad, lin = (jnp.asarray(v, jnp.float32) for v in (a, quad, lin))

    def potential(x: jnp.ndarray) -> jnp.ndarray:
        u = x - a
        return (jnp.sum(x**2, axis=-1) - 0.5 * epsilon * jnp.sum((u @ quad) * u, axis=-1)
                + epsilon * u @ lin)

    return potential


def _gaussian_logpdf(z: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    chol = np.linalg.cholesky(cov)
    sol = np.linalg.solve(chol, (z - mean).T)
    logdet = 2.0 * np.sum(np.log(np.diag(chol)))
    return -0.5 * (np.sum(sol**2, axis=0) + logdet + len(mean) * np.log(2.0 * np.pi))


def gaussian_plan_log_density(x: np.ndarray, y: np.ndarray, mu: Gaussian, nu: Gaussian,
                              epsilon: float) -> np.ndarray:
    """``log dpi/d(mu (x) nu)(x_i, y_j)`` of the optimal entropic plan; ``x: [n, d]``,
    ``y: [m, d]`` -> ``[n, m]``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mean, cov = entropic_plan_gaussians(mu, nu, epsilon)
    n, m = len(x), len(y)
    pairs = np.concatenate([np.repeat(x, m, axis=0), np.tile(y, (n, 1))], axis=1)
    joint = _gaussian_logpdf(pairs, mean, cov).reshape(n, m)
    return (joint - _gaussian_logpdf(x, mu.mean, mu.cov)[:, None]
            - _gaussian_logpdf(y, nu.mean, nu.cov)[None, :])


def gaussian_conditional_mean(x: np.ndarray, mu: Gaussian, nu: Gaussian,
                              epsilon: float) -> np.ndarray:
    """Barycentric projection ``E_pi[y | x] = b + C^T A^{-1} (x - a)``;
    ``x: [n, d]`` -> ``[n, d]``."""
    mean, cov = entropic_plan_gaussians(mu, nu, epsilon)
    dim = mu.dim
    cross = cov[:dim, dim:]
    gain = np.linalg.solve(np.asarray(mu.cov, np.float64), cross)
    return mean[dim:] + (np.asarray(x, np.float64) - mean[:dim]) @ gain


def entropic_igw_gaussians(mu: Gaussian, nu: Gaussian, epsilon: float) -> float:
    """Entropic inner-product GW between centred Gaussians (dimensions may differ)::

        EIGW_eps = min_pi E_{pi (x) pi} (<x, x'> - <y, y'>)^2 + eps KL(pi | mu (x) nu)
                 = sum_i l_i^2 + sum_j m_j^2 + sum_{i <= min(dx, dy)} f(l_i m_i),
        f(p)     = -2 p + eps / 2 + (eps / 2) log(4 p / eps)   if 4 p > eps, else 0,

    with ``l``, ``m`` the covariance eigenvalues sorted in decreasing order (compare Le et al.
    2022, "Entropic Gromov-Wasserstein between Gaussian distributions"). Derivation: the cost
    is ``||E xx^T||^2 + ||E yy^T||^2 - 2 ||E_pi[x y^T]||^2``; for a given cross-covariance the
    Gaussian coupling has the least KL, so with canonical correlations ``rho_i`` between paired
    eigen-directions each pair contributes ``min_t -2 l_i m_i t - (eps / 2) log(1 - t)`` over
    ``t = rho_i^2``, minimised at ``t = 1 - eps / (4 l_i m_i)``.
    """
    for name, g in (("mu", mu), ("nu", nu)):
        if np.any(np.asarray(g.mean) != 0):
            raise ValueError(f"{name}: the inner-product GW closed form is for centred "
                             "Gaussians (mean 0); its value depends on the means otherwise.")
    lx = np.sort(np.linalg.eigvalsh(np.asarray(mu.cov, np.float64)))[::-1]
    ly = np.sort(np.linalg.eigvalsh(np.asarray(nu.cov, np.float64)))[::-1]
    k = min(len(lx), len(ly))
    p = lx[:k] * ly[:k]
    active = 4.0 * p > epsilon
    ratio = np.where(active, 4.0 * p / epsilon, 1.0)
    pairs = np.where(active, -2.0 * p + epsilon / 2.0 + epsilon / 2.0 * np.log(ratio), 0.0)
    return float(np.sum(lx**2) + np.sum(ly**2) + np.sum(pairs))
