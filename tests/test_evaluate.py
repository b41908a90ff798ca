"""Evaluation pieces against independent oracles: closed forms, assignment, POT, L-BFGS."""

from __future__ import annotations

import json
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import ot as pot
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from wormhole.config import ConfigError, DataConfig
from wormhole.data import PointClouds, distinct_random_pairs, prepare_dataset
from wormhole.data.loaders.digits import load_digits
from wormhole.data.loaders.synthetic import load_synthetic
from wormhole.evaluate import (
    UndefinedCorrelationWarning,
    agreement,
    barycenter_objectives,
    free_support_barycenter,
    ground_truth_distances,
    nearest_neighbor_accuracy,
    pairwise_ground_truth,
)
from wormhole.evaluate.ground_truth import cross_ground_truth, gaussian_w2, neighbour_judge
from wormhole.evaluate.metrics import knn_accuracies, probe_accuracy
from wormhole.evaluate.plots import plot_clouds
from wormhole.ot import OTSpec, pairwise_distances

from .conftest import REPO


def _clouds(count, size, dim=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(size, dim)).astype(np.float32) for _ in range(count)]


# --------------------------------------------------------------------------- ground truth


def test_exact_w2_of_a_translated_cloud_is_the_squared_shift():
    clouds = _clouds(3, 12)
    shift = np.array([0.7, -0.3], np.float32)
    values = ground_truth_distances(clouds, None, [c + shift for c in clouds], None,
                                    kind="W2", method="exact")
    np.testing.assert_allclose(values, np.sum(shift ** 2), rtol=1e-5)


def test_exact_w2_matches_an_optimal_assignment_and_the_cost_scale_divides():
    # Uniform clouds of equal size: OT is an assignment problem (Birkhoff).
    a, b = _clouds(2, 15, dim=3, seed=1)
    cost = cdist(a, b, "sqeuclidean")
    rows, cols = linear_sum_assignment(cost)
    expected = cost[rows, cols].mean()
    (value,) = ground_truth_distances([a], None, [b], None, kind="W2", method="exact")
    (scaled,) = ground_truth_distances([a], None, [b], None, kind="W2", method="exact",
                                       cost_scale=4.0)
    assert value == pytest.approx(expected, rel=1e-6)
    assert scaled == pytest.approx(expected / 4.0, rel=1e-6)
    (w1,) = ground_truth_distances([a], None, [b], None, kind="W1", method="exact")
    cost1 = cdist(a, b)
    rows, cols = linear_sum_assignment(cost1)
    assert w1 == pytest.approx(cost1[rows, cols].mean(), rel=1e-6)


def test_exact_w2_in_one_dimension_is_the_mean_squared_quantile_gap():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 1)), rng.normal(2.0, 0.5, size=(20, 1))
    (value,) = ground_truth_distances([x], None, [y], None, kind="W2", method="exact")
    assert value == pytest.approx(np.mean((np.sort(x[:, 0]) - np.sort(y[:, 0])) ** 2),
                                  rel=1e-5)


def test_converged_sinkhorn_w2_approaches_the_exact_value():
    xs, ys = _clouds(3, 10, seed=3), _clouds(3, 14, seed=4)
    exact = ground_truth_distances(xs, None, ys, None, kind="W2", method="exact")
    entropic = ground_truth_distances(xs, None, ys, None, kind="W2", method="sinkhorn")
    np.testing.assert_allclose(entropic, exact, rtol=2e-3)


def test_s2_ground_truth_is_the_training_target_at_a_tight_threshold():
    clouds = _clouds(4, 9, seed=5) + _clouds(1, 6, seed=6)
    matrix = pairwise_ground_truth(clouds, kind="S2", epsilon=0.05, cost_scale=3.0)
    assert np.allclose(matrix, matrix.T) and np.all(np.diag(matrix) == 0)
    data = PointClouds.from_list(clouds)
    spec = OTSpec(kind="S2", epsilon=0.05, cost_scale=3.0, threshold=1e-8,
                  max_iterations=20_000)
    with jax.enable_x64(True):
        engine = pairwise_distances(data.points.astype(np.float64),
                                    data.weights.astype(np.float64), spec)
        values = np.asarray(engine.values)
    np.testing.assert_allclose(matrix[np.triu_indices(5, 1)], values, rtol=1e-5, atol=1e-9)
    assert np.all(values > 0)


def test_exact_pairs_solved_in_threads_keep_their_order_and_values():
    rng = np.random.default_rng(4)
    xs = [rng.normal(size=(n, 2)) for n in rng.integers(3, 30, 24)]
    ys = [rng.normal(size=(n, 2)) + 1.0 for n in rng.integers(3, 30, 24)]
    expected = [pot.emd2(np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y)),
                         pot.dist(x, y)) for x, y in zip(xs, ys, strict=True)]
    serial = ground_truth_distances(xs, None, ys, None, kind="W2", method="exact", workers=1)
    threaded = ground_truth_distances(xs, None, ys, None, kind="W2", method="exact", workers=5)
    np.testing.assert_allclose(serial, expected, rtol=1e-6)  # clouds are stored as float32
    np.testing.assert_array_equal(threaded, serial)
    with pytest.raises(ValueError, match="workers must be a positive integer or None, got 0"):
        ground_truth_distances(xs, None, ys, None, workers=0)


def test_ground_truth_errors_say_what_is_wrong():
    clouds = _clouds(2, 5)
    with pytest.raises(ValueError, match="Unknown OT kind 'W3'"):
        ground_truth_distances(clouds, None, clouds, None, kind="W3")
    with pytest.raises(ValueError, match="no exact solver"):
        ground_truth_distances(clouds, None, clouds, None, kind="S2", method="exact")
    with pytest.raises(ValueError, match="clouds_a has 2 clouds but clouds_b has 1"):
        ground_truth_distances(clouds, None, clouds[:1], None)
    with pytest.raises(ValueError, match="2-D but clouds_b are 3-D"):
        ground_truth_distances(clouds, None, _clouds(2, 5, dim=3), None)
    with pytest.raises(ValueError, match="Unknown OT cost 'hamming'"):
        ground_truth_distances(clouds, None, clouds, None, cost="hamming")
    with pytest.raises(ValueError, match="could not be imported"):
        ground_truth_distances(clouds, None, clouds, None, cost="no_such_module:cost")


def circle_geodesic(x, y):
    """Arc length between the directions of points: NaN at the zero coordinates of padding."""
    x = x / jnp.linalg.norm(x, axis=-1, keepdims=True)
    y = y / jnp.linalg.norm(y, axis=-1, keepdims=True)
    return jnp.arccos(jnp.clip(x @ y.T, -1.0, 1.0))


def sqeuclidean_matrix(x, y):
    return jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)


def _circle_clouds(sizes, seed):
    rng = np.random.default_rng(seed)
    angles = [rng.uniform(0, 2 * np.pi, n) for n in sizes]
    clouds = [np.stack([np.cos(t), np.sin(t)], -1).astype(np.float32) for t in angles]
    return clouds, [rng.uniform(0.5, 1.5, n) for n in sizes]


@pytest.mark.parametrize("cost", ["cosine", f"{__name__}:circle_geodesic"])
def test_costs_training_accepts_are_evaluated_exactly_and_by_sinkhorn_as_pot_does(cost):
    xs, wx = _circle_clouds((10, 14, 7), seed=2)
    ys, wy = _circle_clouds((12, 9, 15), seed=3)
    expected = []
    for x, a, y, b in zip(xs, wx, ys, wy, strict=True):
        x, y = x.astype(np.float64), y.astype(np.float64)
        matrix = pot.dist(x, y, "cosine") if cost == "cosine" else \
            np.arccos(np.clip(x @ y.T, -1, 1))
        expected.append(pot.emd2(a / a.sum(), b / b.sum(), matrix) / 2.0)
    exact = ground_truth_distances(xs, wx, ys, wy, kind="W1", method="exact", cost=cost,
                                   cost_scale=2.0)
    np.testing.assert_allclose(exact, expected, rtol=1e-5)  # float32 points, not unit norm
    # Sizes differ, so the Sinkhorn batch is padded: the geodesic is NaN there.
    entropic = ground_truth_distances(xs, wx, ys, wy, kind="W1", method="sinkhorn",
                                      cost=cost, cost_scale=2.0, epsilon=3e-3)
    np.testing.assert_allclose(entropic, expected, rtol=3e-3)


def test_gs_solves_each_distinct_clouds_self_term_once_and_is_otts_debiased_gw(monkeypatch):
    """GS = GW_eps(x, y) - (GW_eps(x, x) + GW_eps(y, y)) / 2, each term solved by ott-jax's
    entropic GW here; the evaluation solves a cloud's self term once however many pairs it
    is in, and gives identical clouds 0 without a solve."""
    from ott.geometry import pointcloud
    from ott.problems.quadratic import quadratic_problem
    from ott.solvers.linear import sinkhorn
    from ott.solvers.quadratic import gromov_wasserstein

    import wormhole.evaluate.ground_truth as gt

    xs = _clouds(3, 7, dim=3, seed=2) + _clouds(1, 5, dim=3, seed=3)
    left, right = [0, 0, 1, 2, 1, 3], [1, 2, 2, 0, 1, 0]
    solved = []
    original = gt._sinkhorn_pairs
    monkeypatch.setattr(gt, "_sinkhorn_pairs", lambda *args, **kwargs: (
        solved.append(len(args[4])), original(*args, **kwargs))[1])
    values = ground_truth_distances([xs[i] for i in left], None, [xs[j] for j in right], None,
                                    kind="GS", epsilon=0.05, cost_scale=2.0)
    assert solved == [4, 5]  # the 4 distinct clouds' self terms, the 5 pairs of two clouds
    assert values[4] == 0.0

    @jax.jit
    def entropic_gw(x, y):
        geoms = [pointcloud.PointCloud(c, c, scale_cost=2.0) for c in (x, y)]
        solver = gromov_wasserstein.GromovWasserstein(
            sinkhorn.Sinkhorn(threshold=1e-5, max_iterations=50_000), epsilon=0.05,
            threshold=1e-5, max_iterations=200)
        return solver(quadratic_problem.QuadraticProblem(*geoms)).reg_gw_cost

    with jax.enable_x64(True):
        terms = {(i, j): float(entropic_gw(np.float64(xs[i]), np.float64(xs[j])))
                 for i, j in {*zip(left, right, strict=True), *((i, i) for i in range(4))}}
    oracle = [terms[i, j] - (terms[i, i] + terms[j, j]) / 2
              for i, j in zip(left, right, strict=True) if i != j]
    np.testing.assert_allclose(np.delete(values, 4), oracle, rtol=1e-6)
    assert values[1] == pytest.approx(values[3], rel=1e-5)  # GS is symmetric (to its threshold)


@pytest.mark.parametrize("kind", ["S2", "GW"])
def test_a_cost_matrix_function_gives_the_values_of_the_same_named_cost(kind):
    xs, ys = _clouds(2, 9, seed=0), _clouds(2, 6, seed=1)
    named = ground_truth_distances(xs, None, ys, None, kind=kind, epsilon=0.05)
    function = ground_truth_distances(xs, None, ys, None, kind=kind, epsilon=0.05,
                                      cost=f"{__name__}:sqeuclidean_matrix")
    np.testing.assert_allclose(function, named, rtol=1e-6)


def test_gaussian_w2_is_pots_closed_form_and_its_large_sample_value():
    from ot.gaussian import bures_wasserstein_distance

    clouds = load_synthetic(family="gaussians", num_clouds=6, points=1000, dim=2, seed=3)
    mean, cov = clouds.metadata["mean"], clouds.metadata["cov"]
    values = gaussian_w2(mean[::2], cov[::2], mean[1::2], cov[1::2])
    expected = [bures_wasserstein_distance(mean[i], mean[i + 1], cov[i], cov[i + 1]) ** 2
                for i in (0, 2, 4)]
    np.testing.assert_allclose(values, expected, rtol=1e-10)
    # Exact OT between 1000-point samples: the closed form up to sampling error.
    samples = [pot.emd2(np.full(1000, 1e-3), np.full(1000, 1e-3),
                        pot.dist(*(clouds.cloud(k)[0].astype(np.float64) for k in (i, i + 1))))
               for i in (0, 2, 4)]
    np.testing.assert_allclose(values, samples, rtol=0.03, atol=0.02)
    # One dimension: (m1 - m2)^2 + (s1 - s2)^2; equal Gaussians are at distance zero.
    assert gaussian_w2([0.0], [[4.0]], [1.0], [[1.0]]) == pytest.approx(2.0)
    assert gaussian_w2(mean, cov, mean, cov) == pytest.approx(np.zeros(6), abs=1e-12)
    with pytest.raises(ValueError, match="must share d"):
        gaussian_w2(mean[0], cov[0], mean[1, :1], cov[1, :1, :1])


@pytest.mark.parametrize("kind, cost", [("S2", None), ("W2", "sqeuclidean"), ("S2", "cosine"),
                                        ("S1", None)])
def test_the_report_compares_gaussian_clouds_with_the_closed_form_in_target_units(kind, cost):
    from types import SimpleNamespace

    from wormhole.config import config_from_dict
    from wormhole.data import Normalization
    from wormhole.evaluate.report import _Evaluation

    clouds = load_synthetic(family=["gaussians", "boxes"], num_clouds=40, points=5, seed=1)
    first, second = distinct_random_pairs(np.random.default_rng(0), 40, 200)
    meta = clouds.metadata
    closed = gaussian_w2(meta["mean"][first], meta["cov"][first], meta["mean"][second],
                         meta["cov"][second])
    ev = _Evaluation.__new__(_Evaluation)
    ev.clouds, ev.report = clouds, {}
    ev.config = config_from_dict({"ot": {"kind": kind, "cost": cost}})
    ev.model = SimpleNamespace(normalization=Normalization(np.zeros(2, np.float32), 2.0),
                               cost_scale=3.0)
    predicted = closed / (2.0 ** 2 * 3.0)  # normalised coordinates, then the cost scale
    ev._gaussian_closed_form(first, second, predicted, predicted + 0.01)
    section = ev.report["gaussian_closed_form"]
    if kind == "S1" or cost == "cosine":
        assert "skipped" in section
        return
    gaussian = clouds.labels == clouds.label_names.index("gaussians")
    assert section["num_pairs"] == int(np.sum(gaussian[first] & gaussian[second])) > 20
    assert section["model"]["pearson"] == pytest.approx(1.0)
    assert section["model"]["stress"] == pytest.approx(0.0, abs=1e-20)
    assert section["target"]["stress"] == pytest.approx(1e-4)


# --------------------------------------------------------------------------- metrics


def test_agreement_figures_follow_their_definitions():
    target = np.array([1.0, 2.0, 4.0, 8.0])
    predicted = 1.5 * target
    result = agreement(predicted, target)
    assert result.pearson == pytest.approx(1.0) and result.spearman == pytest.approx(1.0)
    assert result.stress == pytest.approx(np.mean((0.5 * target) ** 2))
    assert result.mean_relative_error == pytest.approx(0.5)
    reversed_ = agreement(target[::-1], target)
    assert reversed_.spearman == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="3 predicted values for 4 targets"):
        agreement(predicted[:3], target)
    with pytest.raises(ValueError, match="target distances contain NaN"):
        agreement(predicted, np.array([1.0, np.nan, 2.0, 3.0]))


@pytest.mark.parametrize("constant", ["predicted", "target"])
def test_agreement_of_all_equal_values_warns_that_correlation_is_undefined(constant):
    rng = np.random.default_rng(0)
    varied = rng.uniform(0.5, 1.5, 100)
    same = np.full(100, 0.3, np.float32) + rng.normal(0, 1e-9, 100)  # float rounding only
    predicted, target = (same, varied) if constant == "predicted" else (varied, same)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy warning slips through
        with pytest.warns(UndefinedCorrelationWarning,
                          match=f"undefined because all 100 {constant} values are equal"):
            result = agreement(predicted, target)
    assert np.isnan(result.pearson) and np.isnan(result.spearman)
    assert result.stress == pytest.approx(np.mean((predicted - target) ** 2))


def test_nearest_neighbor_accuracy_on_separated_and_mixed_classes():
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 0.1, (20, 4)), rng.normal(5, 0.1, (20, 4))])
    labels = np.repeat([0, 1], 20)
    assert nearest_neighbor_accuracy(emb, labels) == 1.0
    assert nearest_neighbor_accuracy(emb, 1 - labels, emb + 0.01, labels) == 0.0
    with pytest.raises(ValueError, match="labels of shape"):
        nearest_neighbor_accuracy(emb, labels[:5])
    # Duplicates (the same cloud twice embeds twice alike): each is the other's neighbour,
    # never its own, so the accuracy is how often the two copies' labels agree.
    twice, twice_labels = np.repeat(emb, 2, axis=0), rng.integers(0, 5, 80)
    assert nearest_neighbor_accuracy(twice, twice_labels) == pytest.approx(
        np.mean(twice_labels[0::2] == twice_labels[1::2]))


def test_knn_accuracies_vote_among_the_k_nearest_references():
    # References on a line, labelled a a b b b; a query at 0.1 labelled a is right by its
    # nearest (a), its 3 nearest (a a b) and wrong by all 5 (b b b win).
    refs, ref_labels = np.arange(5.0)[:, None], np.array(list("aabbb"))
    assert knn_accuracies([[0.1]], ["a"], refs, ref_labels, ks=(1, 3, 5, 6)) == {
        "1": 1.0, "3": 1.0, "5": 0.0}  # k = 6 exceeds the references: left out
    rng = np.random.default_rng(1)
    emb, ref = rng.normal(size=(50, 3)), rng.normal(size=(80, 3))
    labels, ref_lab = rng.integers(3, size=50), rng.integers(3, size=80)
    assert knn_accuracies(emb, labels, ref, ref_lab)["1"] == nearest_neighbor_accuracy(
        emb, labels, ref, ref_lab)
    with pytest.raises(ValueError, match="reference embeddings of shape"):
        knn_accuracies(emb, labels, ref, ref_lab[:3])


def test_probe_accuracy_learns_a_boundary_nearest_neighbours_need_not_see():
    # Label = inside or outside the unit circle: no linear boundary, an MLP learns it.
    rng = np.random.default_rng(0)
    train, test = rng.uniform(-2, 2, (1500, 2)), rng.uniform(-2, 2, (400, 2))
    inside = lambda x: (np.linalg.norm(x, axis=1) < 1.2).astype(int)  # noqa: E731
    assert probe_accuracy(train, inside(train), test, inside(test)) > 0.9
    # Labels unrelated to the embedding: chance, not better.
    noise = rng.integers(2, size=len(train))
    assert probe_accuracy(train, noise, test, rng.integers(2, size=len(test))) < 0.6
    with pytest.raises(ValueError, match="at least two labels"):
        probe_accuracy(train, np.zeros(len(train)), test, inside(test))


# --------------------------------------------------------------------------- barycenter


def test_free_support_barycenter_of_translates_is_the_mean_translate():
    # W2 barycenters commute with translations: the barycenter of x + t_i is x + mean(t_i).
    base = np.random.default_rng(0).uniform(size=(16, 2)).astype(np.float32)
    shifts = np.array([[0.0, 0.0], [1.0, 0.2], [0.2, 1.0]], np.float32)
    points, converged = free_support_barycenter([base + s for s in shifts], num_points=16,
                                                epsilon=1e-3)
    expected = base + shifts.mean(axis=0)
    (gap,) = ground_truth_distances([points], None, [expected], None, kind="W2",
                                    method="exact")
    (spread,) = ground_truth_distances([base], None, [base + shifts[1]], None, kind="W2",
                                       method="exact")
    assert converged
    assert gap < 0.02 * spread


def test_free_support_barycenter_of_gathered_clouds_is_that_of_their_dense_copy():
    # AnnData niches arrive as rows of one table (GatheredPoints); the solver takes them as
    # the dense array they stand for.
    from wormhole.data.gathered import GatheredPoints

    rng = np.random.default_rng(1)
    table = rng.uniform(size=(40, 2)).astype(np.float32)
    index = np.stack([rng.choice(40, 12, replace=False) for _ in range(5)])
    index[1, 9:] = -1  # a shorter cloud: padding rows
    weights = np.where(index >= 0, 1.0, 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    sizes = (index >= 0).sum(axis=1)
    gathered = PointClouds(GatheredPoints(table, index), weights, sizes)
    dense = PointClouds(np.asarray(gathered.points), weights, sizes)
    got, _ = free_support_barycenter(gathered, num_points=8, epsilon=1e-2)
    want, _ = free_support_barycenter(dense, num_points=8, epsilon=1e-2)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_barycenter_objective_of_translates_is_the_mean_squared_shift_gap():
    # S2 with the squared Euclidean cost between a cloud and its translate by t is |t|^2
    # exactly (the coupling's cross term integrates to zero), so the objective of x + c over
    # the clouds x + t_i is mean |t_i - c|^2, over the cost scale.
    base = np.random.default_rng(1).uniform(size=(12, 2)).astype(np.float32)
    shifts = np.array([[0.0, 0.0], [0.6, 0.1], [0.1, 0.5]], np.float32)
    centre = shifts.mean(axis=0)
    values = barycenter_objectives([base + s for s in shifts], [base + centre, base],
                                   epsilon=0.01, cost_scale=2.0)
    expected = [np.mean(np.sum((shifts - c) ** 2, axis=1)) / 2.0 for c in (centre, 0 * centre)]
    assert values == pytest.approx(expected, rel=1e-3)
    assert values[0] < values[1]  # the mean translate is the better barycenter


# --------------------------------------------------------------------------- held-out classes


def test_excluded_labels_leave_the_training_split_only():
    clouds = load_digits()
    data = prepare_dataset(clouds, DataConfig(exclude_labels=[3, "7"], test_fraction=0.2))
    assert not np.isin(data.train.labels, [3, 7]).any()
    assert np.isin(data.test.labels, [3, 7]).any()
    with pytest.raises(ConfigError, match="no class 'Bag'.*classes are: 0, 1"):
        prepare_dataset(clouds, DataConfig(exclude_labels=["Bag"]))


# --------------------------------------------------------------------------- plots


@pytest.mark.parametrize("dim", [1, 2, 3, 5])
def test_clouds_of_any_dimension_are_drawn(tmp_path, dim):
    clouds = [(c, np.linspace(1, 2, len(c))) for c in _clouds(3, 30, dim=dim)]
    path = plot_clouds(clouds, tmp_path / f"clouds{dim}.png", titles=["a", "b", "c"],
                       title=f"{dim}-D")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_neighbour_judge_prefers_the_exact_counterpart_while_pot_applies():
    # Entropic kinds are judged by their unregularised counterpart, solved by POT...
    assert neighbour_judge("S2", 356, 2000) == ("W2", "exact")
    assert neighbour_judge("S1", 2000, 2000) == ("W1", "exact")
    # ...until the clouds outgrow the network simplex: then the kind itself, by Sinkhorn,
    assert neighbour_judge("S2", 2001, 2000) == ("S2", "sinkhorn")
    # unless the run's eval.ground_truth names a method.
    assert neighbour_judge("W2", 2001, 2000, "exact") == ("W2", "exact")
    # GW has no exact counterpart at any size.
    assert neighbour_judge("GW", 10, 2000) == ("GW", "sinkhorn")


def test_exact_ground_truth_benchmark_times_both_settings_on_the_same_values(tmp_path):
    sys.path.insert(0, str(REPO))
    from benchmarks.exact_ground_truth import main

    assert main(["--quick", "--output", str(tmp_path / "gt")]) == 0
    result = json.loads((tmp_path / "gt.json").read_text())
    assert result["pairs"] == 40 and result["points"] == 60
    assert all(len(s) == 2 and min(s) > 0 for s in result["seconds"].values())
    assert result["speedup"] == pytest.approx(
        result["median_s"]["one pair at a time (workers=1)"]
        / result["median_s"][f"default ({result['threads']} threads)"])
    assert "identical values" in (tmp_path / "gt.md").read_text()


def test_cross_ground_truth_is_pots_exact_w2_from_every_cloud_to_every_other():
    rng = np.random.default_rng(3)
    first = PointClouds.from_list([rng.normal(size=(n, 2)) for n in (5, 8)])
    second = PointClouds.from_list([rng.normal(size=(n, 2)) + 1 for n in (6, 4, 7)])
    matrix = cross_ground_truth(first, second, kind="W2", method="exact", progress=False)
    assert matrix.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            (x, a), (y, b) = first.cloud(i), second.cloud(j)
            assert matrix[i, j] == pytest.approx(pot.emd2(a / a.sum(), b / b.sum(),
                                                          cdist(x, y, "sqeuclidean")))
