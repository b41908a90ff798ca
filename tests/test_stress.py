"""Stress analysis against independent oracles: exact Euclidean input, L-BFGS over points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.spatial.distance import cdist
from threadpoolctl import threadpool_limits

from wormhole.evaluate import classical_mds, criterion_eigenvalues, stress_analysis, stress_bounds
from wormhole.evaluate.stress import embedding_stress, squared_distances


def test_classical_mds_is_exact_on_euclidean_distance_matrices():
    points = np.random.default_rng(0).normal(size=(25, 3))
    delta = squared_distances(points)
    mu, _ = criterion_eigenvalues(delta)
    assert np.sum(mu > 1e-8 * mu[0]) == 3  # rank of the centred configuration
    np.testing.assert_allclose(squared_distances(classical_mds(delta)), delta, atol=1e-9)
    result = stress_analysis(delta)
    assert max(result.lower_bound, result.upper_bound, result.classical_mds,
               result.optimum) < 1e-18
    # In two dimensions the third eigenvalue is what no embedding can fit.
    lower, upper = stress_bounds(delta, dim=2)
    assert lower == pytest.approx(mu[2] ** 2 / (25 * 24))
    mds2 = embedding_stress(delta, squared_distances(classical_mds(delta, 2)))
    assert lower <= mds2 <= upper


def _non_euclidean(count=18, seed=0):
    """Squared L1 distances: not a squared Euclidean distance matrix."""
    points = np.random.default_rng(seed).normal(size=(count, 4))
    return cdist(points, points, "cityblock") ** 2


@pytest.mark.parametrize("dim", [None, 2])
def test_eigenvalue_bounds_bracket_the_projected_gradient_optimum(dim):
    delta = _non_euclidean()
    result = stress_analysis(delta, dim=dim)
    assert result.negative_mass > 0.05
    assert result.optimum_converged
    assert result.lower_bound <= result.optimum <= result.classical_mds <= result.upper_bound
    assert result.lower_bound > 0


def test_unconstrained_optimum_matches_direct_minimisation_over_points():
    delta = _non_euclidean(count=12, seed=1)
    n = len(delta)
    first, second = np.triu_indices(n, 1)

    def stress_and_gradient(flat):
        points = flat.reshape(n, n - 1)
        residual = np.zeros((n, n))
        residual[first, second] = squared_distances(points)[first, second] - delta[first, second]
        residual = residual + residual.T
        gradient = 4 * (residual.sum(1)[:, None] * points - residual @ points)
        return np.sum(residual ** 2) / 2 / len(first), gradient.ravel() / len(first)

    rng = np.random.default_rng(0)
    with threadpool_limits(1):  # small matrices: a BLAS thread pool only adds contention
        direct = min(minimize(stress_and_gradient, rng.normal(size=n * (n - 1)), jac=True,
                              method="L-BFGS-B", options={"maxiter": 5000, "ftol": 1e-15,
                                                          "gtol": 1e-12}).fun
                     for _ in range(3))
    assert stress_analysis(delta).optimum == pytest.approx(direct, rel=1e-5)


def test_no_embedding_beats_the_lower_bound():
    delta = _non_euclidean(seed=2)
    lower, _ = stress_bounds(delta, dim=3)
    rng = np.random.default_rng(3)
    mds = classical_mds(delta, 3)
    for scale in (0.0, 0.1, 1.0):
        points = mds + scale * rng.normal(size=mds.shape) * mds.std()
        assert embedding_stress(delta, squared_distances(points)) >= lower
        result = stress_analysis(delta, dim=3, predicted=squared_distances(points),
                                 max_iterations=50)
        assert result.model >= result.lower_bound


def test_stress_analysis_rejects_malformed_matrices():
    delta = _non_euclidean(count=5)
    with pytest.raises(ValueError, match="square"):
        stress_analysis(delta[:4])
    with pytest.raises(ValueError, match="not symmetric"):
        stress_analysis(delta + np.triu(np.ones_like(delta), 1))
    with pytest.raises(ValueError, match="zero diagonal"):
        stress_analysis(delta + np.eye(5))
