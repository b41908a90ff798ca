"""How well *any* Euclidean embedding could reproduce a matrix of OT distances.

The stress analysis of the Wormhole paper (Haviv et al. 2024, Section 5 and Table 2) for a
small set of clouds whose full distance matrix is computable. ``delta [n, n]`` holds the
dissimilarities that the embedding's *squared* Euclidean distances are fitted to (OT values
such as ``W2^2`` or ``S2`` for a model with the ``mse`` embedding distance; squared values for
the ``euclidean`` one).

**Normalisation.** An embedding ``X [n, k]`` with squared distances ``D_X`` has the stress

    stress(X) = mean_{i<j} (delta_ij - D_X,ij)^2 = |delta - D_X|_F^2 / (n (n - 1)),

the mean over unordered pairs, which equals the mean over ordered pairs ``i != j`` (the
training stress loss over all pairs). The paper states ``L`` and ``U`` as Frobenius sums
``|.|_F^2`` over all ordered pairs; every figure here, bounds included, is that sum divided
by ``n (n - 1)``, so all of them compare directly with :func:`embedding_stress`.

**Notation.** ``J = I - 11^T / n`` is the centring matrix and ``F = -J delta J`` the
criterion matrix, with eigenpairs ``(mu_i, v_i)``, ``mu_1 >= ... >= mu_n``. ``F`` is
``2 J X X^T J`` (positive semi-definite, rank ``<= k``) exactly when ``delta`` is a
squared-distance matrix of points in ``R^k``. ``R`` is the set of all eigenvalues except the
``dim`` largest positive ones (with no dimension limit: the eigenvalues ``<= 0``), and
``g_i = sum_{m in R} mu_m v_mi^2``, the diagonal of ``F_R = sum_{m in R} mu_m v_m v_m^T``
(the paper's ``dg``).

**The identity behind everything.** The residual ``E = delta - D_X`` of an embedding with
centred Gram matrix ``G`` is hollow and symmetric, and ``-J E J = W := F - 2 J G J``. A hollow
matrix is recovered from its centred form, ``E_ij = (W_ii + W_jj) / 2 - W_ij``, and ``W 1 = 0``
makes the two parts orthogonal:

    |E|_F^2 = |W|_F^2 + sum_{i,j} ((W_ii + W_jj) / 2)^2.                                (*)

- **Lower bound** (the paper's ``L``): ``sum_{m in R} mu_m^2 / (n (n - 1))``. By (*),
  ``|E|_F^2 >= |F - 2 J G J|_F^2``, and for a positive semi-definite ``P`` of rank ``<= k``
  von Neumann's trace inequality gives ``|F - P|_F^2 >= sum_{m<=k} (mu_m - p_m)^2 +
  sum_{m>k} mu_m^2 >= sum_{m in R} mu_m^2``. With no limit ``R`` holds the negative
  eigenvalues and this is the paper's ``L`` exactly; with ``dim`` below the number of positive
  eigenvalues, the positive ones beyond the ``dim``-th are what no ``dim``-dimensional
  embedding can fit, and they count too.
- **Classical MDS** (Torgerson): ``X = V_k diag(mu_k / 2)^{1/2}`` from the ``dim`` largest
  positive eigenpairs. Then ``W = F_R`` and, by (*), its stress is exactly
  ``(sum_{m in R} mu_m^2 + sum_{i,j} ((g_i + g_j) / 2)^2) / (n (n - 1))``.
- **The paper's upper bound** ``U = L + sum_{i,j} (g_i - g_j)^2`` (over ``n (n - 1)``) is
  *not* an upper bound on the optimum of this stress: on random non-Euclidean matrices the
  optimum (confirmed by L-BFGS over point coordinates) exceeds it now and then, by up to ~20%
  on symmetric perturbations of squared-distance matrices. What it does bound is classical
  MDS with a free constant. With ``e = g - mean(g)``, the classical-MDS stress above is
  ``L + (n mean(g))^2 + n |e|^2 / 2`` (as Frobenius sums); subtracting ``c = mean(g)`` from
  the fitted off-diagonal values removes the middle term and a little more, leaving
  ``L + n |e|^2 / 2 - n mean(g)^2 <= L + 2 n |e|^2 = U``. So ``min_c stress(delta, D_MDS +
  c (11^T - I)) <= U``; for ``c < 0`` (the case ``dim=None``: ``g <= 0``) that fit is not a
  squared-distance matrix and can even beat ``L``, which is why ``U`` does not bound the
  optimum. It is reported as ``paper_upper_bound``. The same closed forms say that ``U`` lies
  below the classical-MDS stress exactly when ``std(g) < sqrt(2/3) |mean(g)|``: the usual
  case for clearly non-Euclidean input (the paper notes that classical MDS falls outside
  ``[L, U]``), not for nearly Euclidean input whose few negative eigenvalues sit on a few
  points.
- **Upper bound** (provable): the stress of classical MDS with its kept eigenvalues shrunk,
  ``X_s = V_k diag((mu_k - s)_+ / 2)^{1/2}``, at the best ``s in [0, mu_1]`` (bounded Brent
  search). Without a dimension limit classical MDS overestimates every dissimilarity
  (``E = -kappa(-F_R / 2) <= 0``, ``kappa`` taking a Gram matrix to its squared distances),
  and the diagonal ``g`` of its ``W = F_R`` enters (*) about ``n`` times over; shrinking
  trades a little of ``|W|_F^2`` for much of that. Each ``X_s`` is an embedding in
  ``R^dim``, so its stress bounds the optimum, and ``s = 0`` is classical MDS, so this bound
  never exceeds the classical-MDS stress.
- **Optimum** by projected gradient descent on the Gram matrix: stress is a convex
  quadratic of ``G = X X^T``, minimised over the positive semi-definite cone (projection:
  clip negative eigenvalues), started from the shrunk classical MDS above, so it never
  exceeds the upper bound. Without a rank limit the problem is convex and this is the global
  optimum; with ``dim`` the projection also keeps only the ``dim`` largest eigenvalues and the
  result is the best found (still at least the lower bound, which holds for every embedding).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize_scalar
from threadpoolctl import threadpool_limits

__all__ = ["StressAnalysis", "StressBounds", "classical_mds", "criterion_eigenvalues",
           "embedding_stress", "nearest_euclidean", "paper_bounds", "squared_distances",
           "stress_analysis", "stress_bounds"]


class StressAnalysis(NamedTuple):
    """Stress (mean over pairs ``i < j`` of the squared error) of embeddings of one matrix.

    All figures use the normalisation of :func:`embedding_stress` (see the module docstring).

    Attributes:
      lower_bound: the paper's ``L`` (with ``dim``, also the positive eigenvalues beyond the
        ``dim``-th); no embedding in ``dim`` dimensions can do better.
      classical_mds: the stress of classical MDS in ``dim`` dimensions.
      optimum: the stress found by projected gradient descent (see the module docstring).
      upper_bound: the stress of the best shrunk classical MDS, a provable bound on the
        optimum (``lower_bound <= optimum <= upper_bound <= classical_mds``).
      paper_upper_bound: the paper's ``U``; not a bound on the optimum (module docstring).
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
    paper_upper_bound: float
    model: float | None
    dim: int | None
    num_clouds: int
    negative_mass: float
    optimum_iterations: int
    optimum_converged: bool

    def as_dict(self) -> dict:
        return dict(self._asdict())


class StressBounds(NamedTuple):
    """A lower and an upper figure for the optimal stress (normalised as the stress is)."""

    lower: float
    upper: float


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
    """Mean over pairs ``i < j`` of ``(delta_ij - fitted_ij)^2`` for two ``[n, n]`` matrices.

    For hollow symmetric matrices this is ``|delta - fitted|_F^2 / (n (n - 1))``.
    """
    delta, fitted = np.asarray(delta, np.float64), np.asarray(fitted, np.float64)
    if fitted.shape != delta.shape:
        raise ValueError(f"Matrices of shapes {delta.shape} and {fitted.shape} differ.")
    first, second = np.triu_indices(len(delta), 1)
    return float(np.mean((delta[first, second] - fitted[first, second]) ** 2))


def classical_mds(delta, dim: int | None = None, shrink: float = 0.0) -> np.ndarray:
    """Classical (Torgerson) MDS: points ``[n, r]`` whose squared distances fit ``delta``.

    ``r`` is the number of positive eigenvalues of ``F`` kept (at most ``dim``). ``shrink``
    (``s >= 0``) first lowers each kept eigenvalue ``mu`` to ``max(mu - s, 0)``: the shrunk
    classical MDS of the upper bound (module docstring).
    """
    mu, vectors = criterion_eigenvalues(delta)
    keep = _kept(mu, dim)
    return vectors[:, keep] * np.sqrt(np.maximum(mu[keep] - shrink, 0.0) / 2.0)


def paper_bounds(delta, dim: int | None = None) -> StressBounds:
    """The paper's ``(L, U)`` (Haviv et al. 2024, Section 5), normalised as the stress is.

    ``L = sum_{m in R} mu_m^2`` and ``U = L + sum_{i,j} (g_i - g_j)^2``, both over
    ``n (n - 1)``, with ``R`` and ``g`` as in the module docstring (with no ``dim``, ``R``
    holds the eigenvalues ``<= 0``: the paper's definition). ``L`` is a lower bound on every
    embedding's stress. ``U`` is not an upper bound on the optimal stress; it bounds the
    stress of classical MDS plus the best constant, ``min_c stress(delta, D_MDS + c
    (11^T - I))``, a fit that need not be Euclidean (module docstring).
    """
    mu, vectors = criterion_eigenvalues(delta)
    rest = ~_kept(mu, dim)
    values = mu[rest]
    diagonal = (vectors[:, rest] ** 2) @ values  # g = diag(F_R), the paper's dg
    lower = np.sum(values ** 2)
    upper = lower + np.sum((diagonal[:, None] - diagonal[None, :]) ** 2)
    pairs = len(mu) * (len(mu) - 1)
    return StressBounds(float(lower / pairs), float(upper / pairs))


def _best_shrink(delta: np.ndarray, dim: int | None) -> tuple[float, float]:
    """``(s, stress)`` of the least-stress shrunk classical MDS; ``s = 0`` is classical MDS."""
    mu, _ = criterion_eigenvalues(delta)
    largest = mu[0] if np.any(_kept(mu, dim)) else 0.0

    def stress(shrink):
        return embedding_stress(delta, squared_distances(classical_mds(delta, dim, shrink)))

    best = (0.0, stress(0.0))
    if largest > 0:
        # Every s gives a valid bound, so a local search over [0, mu_1] is enough.
        found = minimize_scalar(stress, bounds=(0.0, largest), method="bounded",
                                options={"xatol": 1e-6 * largest})
        if found.fun < best[1]:
            best = (float(found.x), float(found.fun))
    return best


def stress_bounds(delta, dim: int | None = None) -> StressBounds:
    """Provable ``(lower, upper)`` bounds on the optimal stress in ``dim`` dimensions.

    ``lower`` is the paper's ``L``, which no embedding in ``dim`` dimensions beats; ``upper``
    is the stress of the best shrunk classical MDS, an embedding in ``dim`` dimensions, and
    never exceeds the classical-MDS stress (module docstring). Normalised as
    :func:`embedding_stress`.
    """
    delta = _check_matrix(delta)
    with threadpool_limits(1):
        return StressBounds(paper_bounds(delta, dim).lower, _best_shrink(delta, dim)[1])


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
    (O'Donoghue and Candes 2015), started from the best shrunk classical MDS, so the result
    never has more stress than the upper bound of :func:`stress_bounds` (nor than classical
    MDS).

    Returns:
      ``(fitted [n, n], iterations, converged)``; converged means the Gram matrix moved by
      less than ``tol`` (relative) in the last step.
    """
    delta = _check_matrix(delta)
    with threadpool_limits(1):
        shrink, _ = _best_shrink(delta, dim)
        return _nearest_euclidean(delta, dim, max_iterations, tol, shrink)


def _nearest_euclidean(delta, dim, max_iterations, tol,
                       shrink) -> tuple[np.ndarray, int, bool]:
    n = len(delta)
    points = classical_mds(delta, dim, shrink)
    gram = points @ points.T
    step = 1.0 / (2.0 * _lipschitz(n))

    def fitted_of(g):
        fitted = _kappa(g)
        np.fill_diagonal(fitted, 0.0)
        return fitted

    def objective(g):
        return embedding_stress(delta, fitted_of(g))

    # The start is measured exactly as the upper bound was, so the result never exceeds it.
    start = squared_distances(points)
    best, best_value = start, embedding_stress(delta, start)
    previous, momentum_gram, t = gram, gram, 1.0
    value = objective(gram)
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
            best, best_value = fitted_of(new), value
        if moved < tol:
            converged = True
            break
    return best, iterations, converged


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
    lower, paper_upper = paper_bounds(delta, dim)
    shrink, upper = _best_shrink(delta, dim)
    mds = embedding_stress(delta, squared_distances(classical_mds(delta, dim)))
    fitted, iterations, converged = _nearest_euclidean(delta, dim, max_iterations, tol, shrink)
    model = None if predicted is None else embedding_stress(delta, predicted)
    total = np.sum(np.abs(mu))
    negative = float(np.sum(np.abs(mu[mu < 0])) / total) if total > 0 else 0.0
    return StressAnalysis(lower, mds, embedding_stress(delta, fitted), upper, paper_upper,
                          model, dim, len(delta), negative, iterations, converged)
