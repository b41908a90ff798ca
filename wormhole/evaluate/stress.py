"""How well *any* Euclidean embedding could reproduce a matrix of OT distances.

The stress analysis of the Wormhole paper (Haviv et al. 2024, Table 2) for a small set of
clouds whose full distance matrix is computable. ``delta [n, n]`` holds the dissimilarities
that the embedding's *squared* Euclidean distances are fitted to (OT values such as
``W2^2`` or ``S2`` for a model with the ``mse`` embedding distance; squared values for the
``euclidean`` one). An embedding ``X [n, k]`` has the stress

    stress(X) = mean_{i<j} (delta_ij - |x_i - x_j|^2)^2 = |delta - D_X|_F^2 / (n (n - 1)),

the training stress loss over all pairs. With ``J = I - 11^T / n`` the centring matrix, the
criterion matrix ``F = -J delta J`` is ``2 J X X^T J`` (positive semi-definite, rank ``<= k``)
exactly when ``delta`` is a squared-distance matrix of points in ``R^k``; its eigenvalues
``mu_1 >= ... >= mu_n`` measure how far ``delta`` is from that. Let ``R`` be the indices
of all eigenvalues except the ``k`` largest positive ones.

- **Lower bound**, for every embedding in ``R^k``: ``sum_{i in R} mu_i^2 / (n (n - 1))``.
  ``J`` is an orthogonal projection, so ``|delta - D_X|_F >= |J (delta - D_X) J|_F =
  |F - 2 J X X^T J|_F``, and the closest positive semi-definite matrix of rank ``<= k`` to
  ``F`` keeps its ``k`` largest positive eigenvalues (Eckart-Young).
- **Classical MDS** (Torgerson): ``X = V_k diag(mu_k / 2)^{1/2}`` from the top positive
  eigenpairs; its stress is computed directly.
- **Upper bound**, on the classical-MDS stress and so on the optimum: a hollow symmetric
  matrix ``E`` is recovered from ``B = -J E J / 2`` as ``E = diag(B) 1^T + 1 diag(B)^T - 2B``.
  For ``E = delta - D_X`` with classical MDS, ``B = sum_{i in R} mu_i v_i v_i^T / 2``, which
  gives ``|E|_F^2 = 2n |diag B|^2 + 2 (tr B)^2 + 4 |B|_F^2`` (``B 1 = 0``) and, with
  ``|diag B| <= |B|_F``, the bound ``((n/2 + 1) sum_R mu_i^2 + (sum_R mu_i)^2 / 2)`` over
  ``n (n - 1)``.
- **Optimum** by projected gradient descent on the Gram matrix: stress is a convex
  quadratic of ``G = X X^T``, minimised over the positive semi-definite cone (projection:
  clip negative eigenvalues), started from classical MDS. Without a rank limit the problem
  is convex and this is the global optimum; with ``dim`` the projection also keeps only the
  ``dim`` largest eigenvalues and the result is the best found.

These bounds are derived here in the form the paper uses (eigenvalues of ``F``); the tests
check that they bracket the optimum and that all of them vanish on exact Euclidean input.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["StressAnalysis", "classical_mds", "criterion_eigenvalues", "embedding_stress",
           "nearest_euclidean", "squared_distances", "stress_analysis", "stress_bounds"]


class StressAnalysis(NamedTuple):
    """Stress (mean over pairs ``i < j`` of the squared error) of embeddings of one matrix.

    Attributes:
      lower_bound: no embedding in ``dim`` dimensions can do better.
      classical_mds: the stress of classical MDS in ``dim`` dimensions.
      optimum: the stress found by projected gradient descent (see the module docstring).
      upper_bound: the eigenvalue bound on the classical-MDS stress.
      model: the trained model's stress on the same matrix (``None`` if not given).
      dim: the embedding dimension the figures are for (``None``: unlimited).
      num_clouds: ``n``.
      negative_mass: ``sum |mu_i|`` over negative eigenvalues of ``F`` over ``sum |mu_i|``,
        0 for Euclidean input.
      optimum_iterations, optimum_converged: how the descent ended.
    """

    lower_bound: float
    classical_mds: float
    optimum: float
    upper_bound: float
    model: float | None
    dim: int | None
    num_clouds: int
    negative_mass: float
    optimum_iterations: int
    optimum_converged: bool

    def as_dict(self) -> dict:
        return dict(self._asdict())


def _check_matrix(delta) -> np.ndarray:
    delta = np.asarray(delta, np.float64)
    if delta.ndim != 2 or delta.shape[0] != delta.shape[1]:
        raise ValueError(f"Expected a square [n, n] dissimilarity matrix, got {delta.shape}.")
    if delta.shape[0] < 3:
        raise ValueError("The stress analysis needs at least three clouds.")
    if not np.all(np.isfinite(delta)):
        raise ValueError("The dissimilarity matrix contains NaN or infinite values.")
    scale = max(np.abs(delta).max(), np.finfo(float).tiny)
    if np.abs(delta - delta.T).max() > 1e-6 * scale:
        raise ValueError("The dissimilarity matrix is not symmetric.")
    if np.abs(np.diag(delta)).max() > 1e-6 * scale:
        raise ValueError("The dissimilarity matrix must have a zero diagonal.")
    delta = 0.5 * (delta + delta.T)
    np.fill_diagonal(delta, 0.0)
    return delta


def _kept(mu: np.ndarray, dim: int | None) -> np.ndarray:
    """Mask of the ``dim`` largest positive eigenvalues (``mu`` sorted descending)."""
    keep = mu > 0
    if dim is not None:
        keep &= np.arange(len(mu)) < dim
    return keep


def _centre(matrix: np.ndarray) -> np.ndarray:
    row = matrix.mean(axis=0, keepdims=True)
    return matrix - row - row.T + matrix.mean()


def criterion_eigenvalues(delta) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``[n]`` (descending) and eigenvectors ``[n, n]`` of ``F = -J delta J``."""
    delta = _check_matrix(delta)
    mu, vectors = np.linalg.eigh(-_centre(delta))
    return mu[::-1], vectors[:, ::-1]


def squared_distances(points) -> np.ndarray:
    """``[n, n]`` squared Euclidean distances between the rows of ``points [n, k]``."""
    points = np.asarray(points, np.float64)
    norms = np.sum(points ** 2, axis=1)
    out = np.maximum(norms[:, None] + norms[None, :] - 2.0 * points @ points.T, 0.0)
    np.fill_diagonal(out, 0.0)
    return out


def embedding_stress(delta, fitted) -> float:
    """Mean over pairs ``i < j`` of ``(delta_ij - fitted_ij)^2`` for two ``[n, n]`` matrices."""
    delta, fitted = np.asarray(delta, np.float64), np.asarray(fitted, np.float64)
    if fitted.shape != delta.shape:
        raise ValueError(f"Matrices of shapes {delta.shape} and {fitted.shape} differ.")
    first, second = np.triu_indices(len(delta), 1)
    return float(np.mean((delta[first, second] - fitted[first, second]) ** 2))


def classical_mds(delta, dim: int | None = None) -> np.ndarray:
    """Classical (Torgerson) MDS: points ``[n, r]`` whose squared distances fit ``delta``.

    ``r`` is the number of positive eigenvalues of ``F`` kept (at most ``dim``).
    """
    mu, vectors = criterion_eigenvalues(delta)
    keep = _kept(mu, dim)
    return vectors[:, keep] * np.sqrt(mu[keep] / 2.0)


def stress_bounds(delta, dim: int | None = None) -> tuple[float, float]:
    """``(lower, upper)`` eigenvalue bounds on the optimal stress in ``dim`` dimensions."""
    mu, _ = criterion_eigenvalues(delta)
    n = len(mu)
    rest = mu[~_kept(mu, dim)]
    lower = np.sum(rest ** 2)
    upper = (0.5 * n + 1.0) * np.sum(rest ** 2) + 0.5 * np.sum(rest) ** 2
    pairs = n * (n - 1)
    return float(lower / pairs), float(upper / pairs)


def _kappa(gram: np.ndarray) -> np.ndarray:
    """Squared distances of a Gram matrix: ``diag(G) 1^T + 1 diag(G)^T - 2G``."""
    diag = np.diag(gram)
    return diag[:, None] + diag[None, :] - 2.0 * gram


def _kappa_adjoint(residual: np.ndarray) -> np.ndarray:
    return 2.0 * np.diag(residual.sum(axis=1)) - 2.0 * residual


def _project(matrix: np.ndarray, dim: int | None) -> np.ndarray:
    """Closest positive semi-definite matrix (of rank ``<= dim``) to a symmetric one."""
    values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
    values, vectors = values[::-1], vectors[:, ::-1]
    values = np.where(_kept(values, dim), values, 0.0)
    return (vectors * values) @ vectors.T


def _lipschitz(n: int, seed: int = 0, iterations: int = 100) -> float:
    """Largest eigenvalue of ``kappa* kappa`` on symmetric matrices (power iteration)."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, n))
    matrix = matrix + matrix.T
    value = 1.0
    for _ in range(iterations):
        matrix = _kappa_adjoint(_kappa(matrix))
        value = np.linalg.norm(matrix)
        matrix /= value
    return 1.05 * value  # a margin: power iteration approaches the top from below


def nearest_euclidean(delta, dim: int | None = None, max_iterations: int = 5000,
                      tol: float = 1e-9) -> tuple[np.ndarray, int, bool]:
    """Squared-distance matrix closest to ``delta`` in stress, by projected gradient descent.

    Accelerated (FISTA) projected gradient on the Gram matrix with adaptive restart
    (O'Donoghue and Candes 2015), started from classical MDS, so the result never has more
    stress than classical MDS.

    Returns:
      ``(fitted [n, n], iterations, converged)``; converged means the Gram matrix moved by
      less than ``tol`` (relative) in the last step.
    """
    with threadpool_limits(1):
        return _nearest_euclidean(_check_matrix(delta), dim, max_iterations, tol)


def _nearest_euclidean(delta, dim, max_iterations, tol) -> tuple[np.ndarray, int, bool]:
    n = len(delta)
    points = classical_mds(delta, dim)
    gram = points @ points.T
    step = 1.0 / (2.0 * _lipschitz(n))

    def objective(g):
        return float(np.sum((delta - _kappa(g)) ** 2))

    best, best_value = gram, objective(gram)
    previous, momentum_gram, t = gram, gram, 1.0
    value = best_value
    converged = False
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        gradient = -2.0 * _kappa_adjoint(delta - _kappa(momentum_gram))
        new = _project(momentum_gram - step * gradient, dim)
        new_value = objective(new)
        if new_value > value:
            if t == 1.0:  # a plain projected step from the last iterate no longer descends
                converged = True
                break
            t, momentum_gram = 1.0, previous  # restart the momentum from the last iterate
            continue
        moved = np.linalg.norm(new - previous) / max(np.linalg.norm(previous), 1e-300)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        momentum_gram = new + ((t - 1.0) / t_next) * (new - previous)
        previous, value, t = new, new_value, t_next
        if value < best_value:
            best, best_value = new, value
        if moved < tol:
            converged = True
            break
    fitted = _kappa(best)
    np.fill_diagonal(fitted, 0.0)
    return fitted, iterations, converged


def stress_analysis(delta, dim: int | None = None, predicted=None,
                    max_iterations: int = 5000, tol: float = 1e-9) -> StressAnalysis:
    """The stress table for one matrix: bounds, classical MDS, optimum and the model.

    Args:
      delta: ``[n, n]`` symmetric dissimilarities with a zero diagonal, fitted by squared
        Euclidean distances (see the module docstring).
      dim: embedding dimension (the model's ``emb_dim``); ``None`` for no limit.
      predicted: optional ``[n, n]`` matrix of the model's (squared-distance-like)
        embedding distances between the same clouds.
      max_iterations, tol: projected gradient descent settings.
    """
    # Hundreds of small eigendecompositions: one BLAS thread is ~30x faster than a pool
    # fighting other processes for a few cores.
    with threadpool_limits(1):
        return _stress_analysis(delta, dim, predicted, max_iterations, tol)


def _stress_analysis(delta, dim, predicted, max_iterations, tol) -> StressAnalysis:
    delta = _check_matrix(delta)
    mu, _ = criterion_eigenvalues(delta)
    lower, upper = stress_bounds(delta, dim)
    mds = embedding_stress(delta, squared_distances(classical_mds(delta, dim)))
    fitted, iterations, converged = nearest_euclidean(delta, dim, max_iterations, tol)
    model = None if predicted is None else embedding_stress(delta, predicted)
    total = np.sum(np.abs(mu))
    negative = float(np.sum(np.abs(mu[mu < 0])) / total) if total > 0 else 0.0
    return StressAnalysis(lower, mds, embedding_stress(delta, fitted), upper, model, dim,
                          len(delta), negative, iterations, converged)
