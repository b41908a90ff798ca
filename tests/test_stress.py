"""Stress analysis against independent oracles: exact Euclidean input, closed forms, L-BFGS.

The bounds are checked on many random non-Euclidean matrices in the normalisation of
``embedding_stress`` (mean over pairs ``i < j``), the one the optimum is reported in.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment, minimize
from scipy.spatial.distance import cdist
from threadpoolctl import threadpool_limits

from wormhole.evaluate.stress import (
    _best_shrink,
    _kept,
    classical_mds,
    criterion_eigenvalues,
    embedding_stress,
    paper_bounds,
    squared_distances,
    stress_analysis,
    stress_bounds,
)

KINDS = ("ot", "perturbed", "metric")
RTOL = 1e-9  # slack for comparisons between figures computed along different routes


def _w2_squared(first, second):
    """Exact ``W2^2`` between two uniform clouds of the same size (an assignment problem)."""
    cost = cdist(first, second, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    return cost[rows, cols].mean()


def _candidate(kind, n, rng):
    if kind == "ot":  # W2^2 between small random clouds in the plane
        clouds = [rng.normal(size=2) + rng.normal(size=(5, 2)) @ rng.normal(size=(2, 2))
                  for _ in range(n)]
        delta = np.zeros((n, n))
        for i in range(n):
            for j in range(i):
                delta[i, j] = delta[j, i] = _w2_squared(clouds[i], clouds[j])
        return delta
    points = rng.normal(size=(n, int(rng.integers(2, 6))))
    if kind == "perturbed":  # squared Euclidean distances plus symmetric noise
        noise = np.triu(rng.normal(size=(n, n)), 1)
        delta = squared_distances(points)
        return np.abs(delta + rng.uniform(0.05, 0.5) * delta.mean() * (noise + noise.T))
    # squared distances of a metric that is not Euclidean
    return cdist(points, points, str(rng.choice(["cityblock", "chebyshev"]))) ** 2


def _non_euclidean(kind, n, rng):
    """A random ``[n, n]`` matrix of the given kind whose ``F`` has a negative eigenvalue."""
    while True:
        delta = _candidate(kind, n, rng)
        mu, _ = criterion_eigenvalues(delta)
        if mu[-1] < -1e-6 * mu[0]:  # small OT matrices can be exactly Euclidean: draw again
            return delta


def _draws(count, seed):
    """``count`` ``(kind, delta)`` pairs, the kinds in turn, sizes drawn from 8..30."""
    rng = np.random.default_rng(seed)
    return [(KINDS[i % 3], _non_euclidean(KINDS[i % 3], int(rng.integers(8, 31)), rng))
            for i in range(count)]


def _euclidean(n, rank, seed=0):
    return squared_distances(np.random.default_rng(seed).normal(size=(n, rank)))


def _squared_l1(count=18, seed=0):
    """Squared L1 distances: not a squared Euclidean distance matrix."""
    points = np.random.default_rng(seed).normal(size=(count, 4))
    return cdist(points, points, "cityblock") ** 2


def _rest(delta, dim):
    """Eigenvalues of ``F`` outside the kept ones, and ``g``: the diagonal of their part."""
    mu, vectors = criterion_eigenvalues(delta)
    rest = ~_kept(mu, dim)
    return mu[rest], (vectors[:, rest] ** 2) @ mu[rest]


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # Many small eigendecompositions: a BLAS thread pool only adds contention.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def analyses(_one_blas_thread):
    """200 random non-Euclidean matrices with their unconstrained stress analyses."""
    return [(kind, delta, stress_analysis(delta)) for kind, delta in _draws(200, seed=0)]


# --------------------------------------------------------------------------- normalisation


def test_stress_and_bounds_are_frobenius_sums_over_n_times_n_minus_one():
    kind, delta = _draws(1, seed=1)[0]
    n = len(delta)
    fitted = squared_distances(classical_mds(delta, 2))
    assert embedding_stress(delta, fitted) == pytest.approx(
        np.sum((delta - fitted) ** 2) / (n * (n - 1)), rel=1e-12)
    # The paper's L and U are unnormalised sums over all ordered pairs (i, j).
    mu, _ = criterion_eigenvalues(delta)
    negative = mu[mu < 0]
    lower, upper = paper_bounds(delta)
    assert lower * n * (n - 1) == pytest.approx(np.sum(negative ** 2), rel=1e-12)
    _, g = _rest(delta, None)
    assert upper * n * (n - 1) == pytest.approx(
        np.sum(negative ** 2) + sum((a - b) ** 2 for a in g for b in g), rel=1e-12)
    assert stress_bounds(delta).lower == lower


# --------------------------------------------------------------------------- Euclidean input


def test_classical_mds_is_exact_on_euclidean_distance_matrices():
    delta = _euclidean(25, 3)
    mu, _ = criterion_eigenvalues(delta)
    assert np.sum(mu > 1e-8 * mu[0]) == 3  # rank of the centred configuration
    np.testing.assert_allclose(squared_distances(classical_mds(delta)), delta, atol=1e-9)
    result = stress_analysis(delta)
    assert max(result.lower_bound, result.upper_bound, result.paper_upper_bound,
               result.classical_mds, result.optimum) < 1e-18
    # In two dimensions the third eigenvalue is what no embedding can fit, although F has
    # no negative eigenvalue: the rank-limited lower bound counts it.
    lower, upper = stress_bounds(delta, dim=2)
    assert lower == pytest.approx(mu[2] ** 2 / (25 * 24))
    assert paper_bounds(delta, dim=2).lower == lower
    mds2 = embedding_stress(delta, squared_distances(classical_mds(delta, 2)))
    assert lower <= upper <= mds2


@pytest.mark.parametrize("n, rank", [(8, 1), (17, 3), (30, 5)])
def test_all_bounds_vanish_on_euclidean_input(n, rank):
    delta = _euclidean(n, rank, seed=n)
    scale = delta.max() ** 2
    for dim in (None, rank, rank + 2):
        result = stress_analysis(delta, dim=dim)
        figures = (result.lower_bound, result.upper_bound, result.paper_upper_bound,
                   result.classical_mds, result.optimum)
        assert max(abs(f) for f in figures) < 1e-20 * scale, (dim, figures)


# --------------------------------------------------------------------------- the bracket


def test_bounds_bracket_the_optimum_on_random_non_euclidean_matrices(analyses):
    for kind, delta, result in analyses:
        assert result.optimum_converged, kind
        assert result.negative_mass > 0
        assert 0 < result.lower_bound <= result.optimum * (1 + RTOL), kind
        # Exact: the descent starts from the embedding the upper bound measures.
        assert result.optimum <= result.upper_bound <= result.classical_mds, kind
        assert result.lower_bound <= result.paper_upper_bound
        assert (result.lower_bound, result.upper_bound) == stress_bounds(delta)
    # Shrinking classical MDS pays off on every one of these matrices.
    assert all(r.upper_bound < 0.99 * r.classical_mds for _, _, r in analyses)


@pytest.mark.parametrize("dim", [None, 1, 2, 3])
def test_upper_bound_is_the_stress_of_an_embedding_in_dim_dimensions(dim):
    for _, delta in _draws(12, seed=2):
        shrink, value = _best_shrink(delta, dim)
        points = classical_mds(delta, dim, shrink)
        assert dim is None or points.shape[1] <= dim
        assert embedding_stress(delta, squared_distances(points)) == pytest.approx(value)
        assert stress_bounds(delta, dim).upper == value


@pytest.mark.parametrize("dim", [None, 1, 2, 3])
def test_classical_mds_stress_has_the_closed_form_of_identity_star(dim):
    # stress = (sum_R mu^2 + sum_ij ((g_i + g_j) / 2)^2) / (n (n - 1)): module docstring (*).
    for _, delta in _draws(15, seed=3):
        n = len(delta)
        rest, g = _rest(delta, dim)
        closed = (np.sum(rest ** 2) + np.sum(((g[:, None] + g[None, :]) / 2) ** 2)) / (n * (n - 1))
        fitted = squared_distances(classical_mds(delta, dim))
        assert embedding_stress(delta, fitted) == pytest.approx(closed, rel=1e-9)


# --------------------------------------------------------------------------- the paper's U


def test_paper_upper_bound_lies_below_classical_mds_on_typical_input(analyses):
    ratios = {kind: [] for kind in KINDS}
    for kind, delta, result in analyses:
        ratios[kind].append(result.classical_mds / result.paper_upper_bound)
        # From the closed forms: U < classical MDS exactly when std(g) < sqrt(2/3) |mean(g)|.
        _, g = _rest(delta, None)
        if abs(np.std(g) / abs(np.mean(g)) - np.sqrt(2 / 3)) > 1e-6:
            assert (result.paper_upper_bound < result.classical_mds) == (
                np.std(g) < np.sqrt(2 / 3) * abs(np.mean(g)))
    for kind in ("perturbed", "metric"):  # clearly non-Euclidean: U well below MDS
        assert np.mean(np.array(ratios[kind]) > 1) > 0.9, kind
        assert np.median(ratios[kind]) > 1.5, kind
    # Our OT matrices are nearly Euclidean (a few small negative eigenvalues concentrated on
    # few clouds, so g is spread out): U is then about the classical-MDS stress.
    assert 0.8 < np.median(ratios["ot"]) < 1.5


def _paper_counterexample():
    rng = np.random.default_rng(10)
    delta = squared_distances(rng.normal(size=(12, 3)))
    noise = np.triu(rng.normal(size=(12, 12)), 1)
    return np.abs(delta + 0.5 * delta.mean() * (noise + noise.T))


def test_paper_upper_bound_does_not_bound_the_optimum():
    delta = _paper_counterexample()
    result = stress_analysis(delta)
    assert result.optimum_converged
    assert result.optimum > 1.1 * result.paper_upper_bound
    assert result.lower_bound <= result.optimum <= result.upper_bound
    # The optimum is genuine: direct minimisation over point coordinates agrees.
    assert _direct_minimum(delta) == pytest.approx(result.optimum, rel=1e-6)


@pytest.mark.parametrize("dim", [None, 2])
def test_paper_upper_bound_bounds_classical_mds_with_a_free_constant(dim):
    draws = _draws(45, seed=4) + [("perturbed", _paper_counterexample())]
    below_lower = []
    for _, delta in draws:
        lower, upper = paper_bounds(delta, dim)
        first, second = np.triu_indices(len(delta), 1)
        residual = (delta - squared_distances(classical_mds(delta, dim)))[first, second]
        shifted = np.mean((residual - residual.mean()) ** 2)  # the best constant c
        assert shifted <= upper * (1 + RTOL)
        below_lower.append(shifted < lower)
    # That fit can beat every Euclidean one: it is not a squared-distance matrix.
    assert any(below_lower)


# --------------------------------------------------------------------------- rank limit


def test_rank_limited_lower_bound_counts_positive_eigenvalues_beyond_dim():
    for i, (kind, delta) in enumerate(_draws(24, seed=5)):
        n = len(delta)
        mu, _ = criterion_eigenvalues(delta)
        dim = 1 + i % 3
        positive = mu[mu > 0]
        expected = (np.sum(mu[mu < 0] ** 2) + np.sum(positive[dim:] ** 2)) / (n * (n - 1))
        result = stress_analysis(delta, dim=dim)
        assert result.lower_bound == pytest.approx(expected, rel=1e-12)
        assert result.lower_bound >= stress_bounds(delta).lower
        assert result.lower_bound <= result.optimum * (1 + RTOL), (kind, dim)
        assert result.optimum <= result.upper_bound <= result.classical_mds, (kind, dim)


def test_no_embedding_beats_the_lower_bound():
    delta = _squared_l1(seed=2)
    lower, _ = stress_bounds(delta, dim=3)
    rng = np.random.default_rng(3)
    mds = classical_mds(delta, 3)
    for scale in (0.0, 0.1, 1.0):
        points = mds + scale * rng.normal(size=mds.shape) * mds.std()
        assert embedding_stress(delta, squared_distances(points)) >= lower
        result = stress_analysis(delta, dim=3, predicted=squared_distances(points),
                                 max_iterations=50)
        assert result.model >= result.lower_bound


# --------------------------------------------------------------------------- optimum


def _direct_minimum(delta, starts=3):
    """Least stress over points in ``R^(n-1)`` by L-BFGS from random starts."""
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
    return min(minimize(stress_and_gradient, rng.normal(size=n * (n - 1)), jac=True,
                        method="L-BFGS-B", options={"maxiter": 5000, "ftol": 1e-15,
                                                    "gtol": 1e-12}).fun
               for _ in range(starts))


@pytest.mark.parametrize("dim", [None, 2])
def test_eigenvalue_bounds_bracket_the_projected_gradient_optimum(dim):
    delta = _squared_l1()
    result = stress_analysis(delta, dim=dim)
    assert result.negative_mass > 0.05
    assert result.optimum_converged
    assert result.lower_bound <= result.optimum <= result.upper_bound <= result.classical_mds
    assert result.lower_bound > 0


def test_unconstrained_optimum_matches_direct_minimisation_over_points():
    delta = _squared_l1(count=12, seed=1)
    assert stress_analysis(delta).optimum == pytest.approx(_direct_minimum(delta), rel=1e-5)


def test_stress_analysis_rejects_malformed_matrices():
    delta = _squared_l1(count=5)
    with pytest.raises(ValueError, match="square"):
        stress_analysis(delta[:4])
    with pytest.raises(ValueError, match="not symmetric"):
        stress_analysis(delta + np.triu(np.ones_like(delta), 1))
    with pytest.raises(ValueError, match="zero diagonal"):
        stress_analysis(delta + np.eye(5))


def test_stress_table_quick_run_orders_the_bounds(tmp_path):
    """benchmarks/stress_table.py --quick: trains gaussians.yaml briefly and reports its
    stress next to the bounds, with L <= PGD optimum <= provable upper bound; the in-sample
    row trains on exactly the clouds it is scored on."""
    import json
    import os
    import subprocess
    import sys

    from .conftest import REPO

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "stress_table.py"),
                           "--quick", "--in-sample-steps", "20",
                           "--output", str(tmp_path / "st")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "st.json").read_text())
    stress = result["sets"]["gaussians"]["stress"]
    assert stress["num_clouds"] == 20 and stress["model"] > 0
    assert stress["lower_bound"] <= stress["optimum"] * (1 + 1e-6)
    assert stress["optimum"] <= stress["upper_bound"] * (1 + 1e-6)
    assert stress["mean_delta_squared"] > stress["lower_bound"]
    fitted = result["sets"]["gaussians, in-sample"]
    assert fitted["split"] == "train" and fitted["steps"] == 20
    assert fitted["stress"]["num_clouds"] == 24  # all of its training clouds
    assert fitted["stress"]["lower_bound"] <= fitted["stress"]["model"]
    text = (tmp_path / "st.md").read_text()
    assert "gaussians: paper / L" in text and "gaussians, in-sample: paper / L" in text
    # Both runs were trained in a temporary directory, removed once scored, as the file says.
    for entry in result["sets"].values():
        assert entry["removed"] and not os.path.exists(entry["run"])
    assert text.count("(removed after scoring; --keep-runs DIR keeps it)") == 2
