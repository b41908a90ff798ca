"""The OT engine against independent oracles (POT's exact solver, ott-jax's divergence tool,
closed-form identities) and its invariances."""

from __future__ import annotations

import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np
import ot as pot
import pytest
from ott.geometry import pointcloud
from ott.tools import sinkhorn_divergence as ott_divergence

from wormhole.ot import (
    KINDS,
    OTSpec,
    estimate_cost_scale,
    paired_distances,
    pairwise_distances,
)


def random_batch(seed, size=4, n=10, dim=2, pad=0):
    """``size`` clouds of 5..n points (padded to n + pad with junk coordinates)."""
    rng = np.random.default_rng(seed)
    points = rng.random((size, n + pad, dim)).astype(np.float32)
    weights = np.zeros((size, n + pad), np.float32)
    for i in range(size):
        count = int(rng.integers(5, n + 1))
        weights[i, :count] = rng.uniform(0.5, 1.5, count)
        points[i, count:] = 7.0 + rng.random((n + pad - count, dim))  # junk under zero weight
    return points, weights / weights.sum(1, keepdims=True)


def real(points, weights, i):
    keep = weights[i] > 0
    return points[i][keep].astype(np.float64), weights[i][keep].astype(np.float64)


@pytest.mark.parametrize("kind,metric", [("W2", "sqeuclidean"), ("W1", "euclidean")])
def test_entropic_cost_brackets_the_exact_cost_of_pot(kind, metric):
    points, weights = random_batch(0, size=5)
    epsilon = 1e-3
    spec = OTSpec(kind=kind, epsilon=epsilon, threshold=1e-5, max_iterations=20000)
    result = pairwise_distances(points, weights, spec)
    first, second = np.triu_indices(5, 1)
    for k, (i, j) in enumerate(zip(first, second, strict=True)):
        (x, a), (y, b) = real(points, weights, i), real(points, weights, j)
        exact = pot.emd2(a, b, pot.dist(x, y, metric=metric))
        # OT_eps = <C, P> + eps KL(P | a b^T), and 0 <= KL <= log(min(n, m)).
        slack = epsilon * np.log(min(len(a), len(b)))
        assert exact - 1e-4 <= float(result.values[k]) <= exact + slack + 1e-4


def test_divergence_matches_ott_sinkhorn_divergence_tool():
    points, weights = random_batch(1, size=3)
    spec = OTSpec(kind="S2", epsilon=0.02, threshold=1e-6, max_iterations=5000)
    ours = pairwise_distances(points, weights, spec).values
    first, second = np.triu_indices(3, 1)
    for k, (i, j) in enumerate(zip(first, second, strict=True)):
        reference = ott_divergence.sinkhorn_divergence(
            pointcloud.PointCloud, points[i], points[j], a=weights[i], b=weights[j],
            epsilon=0.02, solve_kwargs={"threshold": 1e-6, "max_iterations": 5000})[0]
        assert float(ours[k]) == pytest.approx(float(reference), abs=1e-5)


@pytest.mark.parametrize("kind", ["S1", "S2", "GS"])
def test_divergence_of_a_cloud_with_itself_is_zero_and_others_positive(kind):
    points, weights = random_batch(2, size=3, dim=3)
    points = np.concatenate([points, points[:1]])  # cloud 3 repeats cloud 0
    weights = np.concatenate([weights, weights[:1]])
    spec = OTSpec(kind=kind, epsilon=0.05, threshold=1e-6, max_iterations=5000)
    matrix = np.asarray(pairwise_distances(points, weights, spec).matrix())
    assert matrix[0, 3] == pytest.approx(0.0, abs=1e-5)
    off = matrix[np.triu_indices(4, 1)]
    assert (off > -1e-6).all()
    assert (np.delete(off, 2) > 1e-4).all()  # index 2 of the triu order is the pair (0, 3)
    np.testing.assert_allclose(matrix, matrix.T)
    assert (np.diag(matrix) == 0).all()


@pytest.mark.parametrize("kind", ["W2", "S2", "S1", "GW"])
def test_paired_distances_are_symmetric(kind):
    points, weights = random_batch(3, size=4)
    spec = OTSpec(kind=kind, epsilon=0.05, threshold=1e-6, max_iterations=5000)
    forward = paired_distances(points[:2], weights[:2], points[2:], weights[2:], spec).values
    backward = paired_distances(points[2:], weights[2:], points[:2], weights[:2], spec).values
    np.testing.assert_allclose(forward, backward, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["W2", "S2"])
def test_translating_one_cloud_adds_the_closed_form_term(kind):
    # For squared Euclidean costs, OT(x, y + t) = OT(x, y) + |t|^2 + 2 <t, mean(y) - mean(x)>
    # exactly (the extra cost is separable), also with entropy; self terms do not move.
    points, weights = random_batch(4, size=2)
    x, a, y, b = points[:1], weights[:1], points[1:], weights[1:]
    shift = np.array([0.3, -0.2], np.float32)
    spec = OTSpec(kind=kind, epsilon=0.02, threshold=1e-6, max_iterations=5000)
    base = float(paired_distances(x, a, y, b, spec).values[0])
    moved = float(paired_distances(x, a, np.where(b[..., None] > 0, y + shift, y), b,
                                   spec).values[0])
    mean_x, mean_y = (a[0] @ x[0]), (b[0] @ y[0])
    expected = base + shift @ shift + 2 * shift @ (mean_y - mean_x)
    assert moved == pytest.approx(expected, abs=2e-5)


def _rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


@pytest.mark.parametrize("kind", ["GW", "GS"])
def test_gromov_wasserstein_ignores_rigid_motions_of_either_cloud(kind):
    points, weights = random_batch(5, size=2, n=9, dim=3)
    spec = OTSpec(kind=kind, epsilon=0.05, threshold=1e-6, max_iterations=2000,
                  outer_iterations=50)
    base = paired_distances(points[:1], weights[:1], points[1:], weights[1:], spec).values
    moved_x = points[:1] @ _rotation(1).T + np.float32(0.5)
    moved_y = points[1:] @ _rotation(2).T - np.float32(1.0)
    for x, y in ((moved_x, points[1:]), (points[:1], moved_y), (moved_x, moved_y)):
        value = paired_distances(x, weights[:1], y, weights[1:], spec).values
        np.testing.assert_allclose(value, base, rtol=1e-3, atol=1e-6)
    # ... but not to a non-rigid stretch.
    stretched = points[1:] * np.array([1.0, 1.0, 3.0], np.float32)
    value = paired_distances(points[:1], weights[:1], stretched, weights[1:], spec).values
    assert abs(float(value[0] - base[0])) > 1e-3


@pytest.mark.parametrize("kind,batching", [(kind, "sequential") for kind in KINDS] + [
    ("S2", "vmap"), ("GS", "vmap"),
    *[pytest.param(kind, "vmap", marks=pytest.mark.slow) for kind in ("W1", "W2", "S1", "GW")]])
def test_padding_changes_no_distance(kind, batching):
    points, weights = random_batch(6, size=3, n=8, dim=3)
    padded_points, padded_weights = random_batch(6, size=3, n=8, dim=3, pad=9)
    # Same real points and weights; only the padding (junk coordinates, zero weight) differs.
    padded_points[:, :8], padded_weights[:, :8] = points, weights
    spec = OTSpec(kind=kind, epsilon=0.05, threshold=1e-5, max_iterations=2000,
                  batching=batching, length_bucket=8)
    plain = pairwise_distances(points, weights, spec).values
    padded = pairwise_distances(padded_points, padded_weights, spec).values
    np.testing.assert_allclose(padded, plain, rtol=1e-4, atol=1e-6)


def test_cost_scale_divides_costs_consistently():
    # OT_eps(C / s) = OT_{eps s}(C) / s.
    points, weights = random_batch(7, size=3)
    scaled = OTSpec(kind="W2", epsilon=0.01, cost_scale=4.0, threshold=1e-6,
                    max_iterations=5000)
    plain = OTSpec(kind="W2", epsilon=0.04, threshold=1e-6, max_iterations=5000)
    np.testing.assert_allclose(pairwise_distances(points, weights, scaled).values,
                               pairwise_distances(points, weights, plain).values / 4.0,
                               rtol=1e-4)


def test_estimated_cost_scale_is_the_largest_cost_between_real_points():
    points, weights = random_batch(8, size=2)
    (x, _), (y, _) = real(points, weights, 0), real(points, weights, 1)
    expected = pot.dist(x, y, metric="sqeuclidean").max()
    assert estimate_cost_scale(points, weights, "S2") == pytest.approx(expected, rel=1e-5)
    within = pot.dist(x, x, metric="sqeuclidean").max()
    assert estimate_cost_scale(points[:1], weights[:1], "GW") == pytest.approx(within, rel=1e-5)


def sqeuclidean_matrix(x, y):
    return jnp.sum((x[:, None] - y[None]) ** 2, axis=-1)


def test_a_cost_matrix_function_or_import_path_replaces_the_ground_cost():
    points, weights = random_batch(9, size=3)
    named = pairwise_distances(points, weights, OTSpec(kind="S2", cost="sqeuclidean")).values
    function = pairwise_distances(points, weights, OTSpec(kind="S2", cost=sqeuclidean_matrix))
    path = f"{__name__}:sqeuclidean_matrix"
    assert sys.modules[__name__].sqeuclidean_matrix is sqeuclidean_matrix
    imported = pairwise_distances(points, weights, OTSpec(kind="S2", cost=path))
    np.testing.assert_allclose(function.values, named, rtol=1e-5)
    np.testing.assert_allclose(imported.values, named, rtol=1e-5)
    euclid = pairwise_distances(points, weights, OTSpec(kind="S2", cost="euclidean")).values
    assert not np.allclose(euclid, named)


def circle_geodesic(x, y):
    """Arc length between points on the unit circle: a cost no ott-jax CostFn provides."""
    return jnp.arccos(jnp.clip(x @ y.T, -1.0, 1.0))


def test_a_geodesic_cost_matrix_function_matches_pots_exact_solver():
    rng = np.random.default_rng(16)
    angles = rng.uniform(0, 2 * np.pi, (4, 12))
    points = np.stack([np.cos(angles), np.sin(angles)], -1).astype(np.float32)
    weights = rng.uniform(0.5, 1.5, (4, 12)).astype(np.float32)
    weights /= weights.sum(1, keepdims=True)
    scale = estimate_cost_scale(points, weights, "W1", cost=circle_geodesic)
    assert scale <= np.pi + 1e-5
    epsilon = 1e-3
    spec = OTSpec(kind="W1", epsilon=epsilon, cost=f"{__name__}:circle_geodesic",
                  cost_scale=scale, threshold=1e-6, max_iterations=20000)
    values = pairwise_distances(points, weights, spec).values * scale
    for k, (i, j) in enumerate(zip(*np.triu_indices(4, 1), strict=True)):
        arc = np.arccos(np.clip(points[i].astype(np.float64) @ points[j].T, -1, 1))
        exact = pot.emd2(weights[i].astype(np.float64), weights[j].astype(np.float64), arc)
        slack = epsilon * scale * np.log(12)  # the entropic term, in cost units
        assert exact - 1e-3 <= float(values[k]) <= exact + slack + 1e-3


def random_1d_batch(seed, size=5, n=12, pad=4):
    """1-D clouds of 5..n points, padded with junk far away under zero weight."""
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(size, n + pad, 1)).astype(np.float32)
    weights = np.zeros((size, n + pad), np.float32)
    for i in range(size):
        count = int(rng.integers(5, n + 1))
        weights[i, :count] = rng.uniform(0.5, 1.5, count)
        points[i, count:] = 50.0
    return points, weights / weights.sum(1, keepdims=True)


@pytest.mark.parametrize("kind,metric", [("W1", "euclidean"), ("W2", "sqeuclidean")])
def test_sorting_solver_is_exact_ot_between_1d_clouds(kind, metric):
    points, weights = random_1d_batch(17)
    spec = OTSpec(kind=kind, solver="sorting")
    result = pairwise_distances(points, weights, spec)
    assert not bool(result.hit_cap.any())
    for k, (i, j) in enumerate(zip(*np.triu_indices(5, 1), strict=True)):
        (x, a), (y, b) = real(points, weights, i), real(points, weights, j)
        exact = pot.emd2(a, b, pot.dist(x, y, metric=metric))
        assert float(result.values[k]) == pytest.approx(exact, rel=1e-5, abs=1e-6)
    unpadded = pairwise_distances(points[:, :12], weights[:, :12], spec).values
    np.testing.assert_allclose(result.values, unpadded, rtol=1e-6, atol=1e-7)
    scaled = pairwise_distances(points, weights, spec.replace(cost_scale=4.0)).values
    np.testing.assert_allclose(scaled, result.values / 4.0, rtol=1e-6)


def test_sorting_solver_gradient_is_the_monotone_matching():
    # Equal sizes, uniform weights: W2 = mean((sort x - sort y)^2), so the gradient with
    # respect to y is 2 (y - x matched by rank) / n.
    rng = np.random.default_rng(18)
    x, y = rng.normal(size=(1, 8, 1)), rng.normal(size=(1, 8, 1)) + 0.5
    x, y = x.astype(np.float32), y.astype(np.float32)
    w = np.full((1, 8), 1 / 8, np.float32)
    spec = OTSpec(kind="W2", solver="sorting")
    grad = jax.grad(lambda z: paired_distances(x, w, z, w, spec, validate=False).values[0])(y)
    matched = np.empty(8, np.float32)
    matched[np.argsort(y[0, :, 0])] = np.sort(x[0, :, 0])
    np.testing.assert_allclose(grad[0, :, 0], 2 * (y[0, :, 0] - matched) / 8, rtol=1e-4,
                               atol=1e-6)


def test_sorting_solver_refuses_what_it_cannot_compute():
    points, weights = random_batch(19, size=3)  # 2-D
    with pytest.raises(ValueError, match="needs 1-D clouds; got points of dimension 2"):
        pairwise_distances(points, weights, OTSpec(kind="W1", solver="sorting"))
    with pytest.raises(ValueError, match="kind 'S2' needs the sinkhorn solver"):
        OTSpec(kind="S2", solver="sorting")
    with pytest.raises(ValueError, match="solver must be one of"):
        OTSpec(solver="simplex")


def test_convergence_failures_are_reported_as_hit_cap_fraction():
    points, weights = random_batch(10, size=4)
    capped = OTSpec(kind="S2", epsilon=0.001, threshold=1e-7, max_iterations=20)
    loose = OTSpec(kind="S2", epsilon=0.1, threshold=1e-2, max_iterations=2000)
    result = pairwise_distances(points, weights, capped)
    assert result.hit_cap.shape == (6 + 4,)  # 6 cross terms and 4 self terms: not 12 self
    assert bool(result.hit_cap[:6].all())  # cross terms cannot converge in 20 iterations
    assert float(result.hit_cap_fraction) == pytest.approx(float(np.mean(result.hit_cap)))
    assert float(pairwise_distances(points, weights, loose).hit_cap_fraction) == 0.0


def test_gromov_wasserstein_stops_on_the_outer_threshold_or_reports_the_cap():
    points, weights = random_batch(15, size=3, n=9)
    spec = OTSpec(kind="GS", epsilon=0.05, threshold=1e-6, max_iterations=2000,
                  outer_iterations=10)
    strict = pairwise_distances(points, weights, spec.replace(outer_threshold=1e-12))
    lenient = pairwise_distances(points, weights, spec.replace(outer_threshold=0.5))
    assert bool(strict.hit_cap.all())  # no 10 outer iterations meet a 1e-12 change
    assert not bool(lenient.hit_cap.any())


def test_spec_from_config_carries_every_ot_setting():
    from wormhole.config import OTConfig

    changed = dict(kind="GS", epsilon=0.03, threshold=2e-4, max_iterations=77, lse_mode=False,
                   cost="euclidean", differentiation="unroll", outer_iterations=7,
                   outer_threshold=3e-5, batching="vmap", solver="sinkhorn")
    spec = OTSpec.from_config(OTConfig(**changed), cost_scale=2.5)
    assert {key: getattr(spec, key) for key in changed} == changed
    assert spec.cost_scale == 2.5
    shared = {f.name for f in dataclasses.fields(OTConfig)} & \
        {f.name for f in dataclasses.fields(OTSpec)}
    assert shared - {"cost_scale"} <= set(changed), "a new OT setting is not checked here"
    decoder = OTSpec.from_config(OTConfig(kind="S2", decoder_kind="W2", decoder_epsilon=0.2),
                                 cost_scale=1.0, decoder=True)
    assert (decoder.kind, decoder.epsilon) == ("W2", 0.2)


def _pot_entropic_cost(x, a, y, b, epsilon):
    """POT's converged log-domain Sinkhorn plan, scored as ott's reg_ot_cost:
    <P, C> + eps KL(P | a b^T). Weights renormalised in float64: float32 weights miss a
    total of 1 by ~1e-7, and the 1e-10 marginal threshold is then never met."""
    a, b = (np.asarray(w, np.float64) / np.sum(w, dtype=np.float64) for w in (a, b))
    cost = pot.dist(x, y)
    plan = pot.sinkhorn(a, b, cost, epsilon, method="sinkhorn_log", numItermax=100_000,
                        stopThr=1e-10)
    ratio = np.where(plan > 0, plan / np.outer(a, b), 1.0)
    return float(np.sum(plan * cost) + epsilon * np.sum(plan * np.log(ratio)))


def test_the_default_iteration_cap_converges_at_small_epsilon():
    """ot.max_iterations unset: the cap grows with 1/epsilon, so solves at epsilon 1e-3
    converge (the old fixed cap of 200 left them ~10% off)."""
    from wormhole.config import OTConfig

    points, weights = random_batch(3, size=2, n=30)
    spec = OTSpec.from_config(OTConfig(kind="W2", epsilon=1e-3), cost_scale=1.0)
    assert spec.max_iterations >= 10_000
    out = pairwise_distances(points, weights, spec)
    assert float(out.hit_cap_fraction) == 0.0
    first, second = np.triu_indices(2, 1)
    for value, i, j in zip(np.asarray(out.values), first, second, strict=True):
        x, a = real(points, weights, i)
        y, b = real(points, weights, j)
        assert value == pytest.approx(_pot_entropic_cost(x, a, y, b, 1e-3), rel=2e-3)
    capped = pairwise_distances(points, weights, spec.replace(max_iterations=200))
    assert float(capped.hit_cap_fraction) > 0.5  # what the old default did here


def test_reconstruction_gradients_implicit_and_unrolled_agree_with_finite_differences():
    points, weights = random_batch(11, size=2)
    x, a = points[:1], weights[:1]
    y = points[1:, :6] * 0.8 + 0.1
    b = np.full((1, 6), 1 / 6, np.float32)
    grads = {}
    for mode in ("implicit", "unroll"):
        spec = OTSpec(kind="S2", epsilon=0.05, threshold=1e-6, max_iterations=3000,
                      differentiation=mode)
        loss = lambda y, spec=spec: paired_distances(x, a, y, b, spec, validate=False).values[0]
        grads[mode] = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(y)))
    np.testing.assert_allclose(grads["implicit"], grads["unroll"], rtol=1e-2, atol=1e-5)
    spec = OTSpec(kind="S2", epsilon=0.05, threshold=1e-6, max_iterations=3000)
    direction = np.random.default_rng(0).normal(size=y.shape).astype(np.float32)
    h = 1e-2
    distance = jax.jit(lambda z: paired_distances(x, a, z, b, spec, validate=False).values[0])
    value = lambda z: float(distance(z))
    numeric = (value(y + h * direction) - value(y - h * direction)) / (2 * h)
    assert float(np.sum(grads["implicit"] * direction)) == pytest.approx(numeric, rel=2e-2)


def test_sequential_and_vmapped_batching_agree_under_jit():
    # Sequential batching crops each problem to its size bucket; vmap runs the full length.
    points, weights = random_batch(12, size=5, n=12, pad=20)
    results = {}
    for batching in ("vmap", "sequential"):
        spec = OTSpec(kind="S2", epsilon=0.05, threshold=1e-6, max_iterations=3000,
                      batching=batching, length_bucket=8)
        jitted = jax.jit(lambda p, w, spec=spec: pairwise_distances(p, w, spec).values)
        results[batching] = np.asarray(jitted(points, weights))
    np.testing.assert_allclose(results["sequential"], results["vmap"], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mutate,message", [
    (lambda p, w: (p[:, :, :2], w[:, :3]), "do not match points"),
    (lambda p, w: (p.at[2, 1, 0].set(jnp.nan), w), "cloud 2 has NaN or infinite coordinates"),
    (lambda p, w: (p, w.at[1].set(0.0)), "cloud 1 has no point with positive weight"),
    (lambda p, w: (p, w.at[3, 0].set(-0.1)), "cloud 3 has negative weights"),
    (lambda p, w: (p[0], w[0]), "must be \\[clouds, points, dim\\]"),
])
def test_bad_input_is_refused_before_any_solve(mutate, message):
    points, weights = random_batch(13, size=4)
    bad_points, bad_weights = mutate(jnp.asarray(points), jnp.asarray(weights))
    with pytest.raises(ValueError, match=message):
        pairwise_distances(bad_points, bad_weights, OTSpec())


def test_paired_distances_refuse_mismatched_pair_lists():
    points, weights = random_batch(14, size=4)
    with pytest.raises(ValueError, match="as many x as y"):
        paired_distances(points[:3], weights[:3], points[:2], weights[:2], OTSpec())


def test_spec_errors_name_the_problem():
    with pytest.raises(ValueError, match="Unknown OT kind 'W3'"):
        OTSpec(kind="W3")
    with pytest.raises(ValueError, match="epsilon must be positive"):
        OTSpec(epsilon=0.0)
    with pytest.raises(ValueError, match="outer_threshold must be positive"):
        OTSpec(outer_threshold=0.0)
    with pytest.raises(ValueError, match="Unknown OT cost 'geodesik'"):
        _ = OTSpec(cost="geodesik").cost_fn
    with pytest.raises(ValueError, match="could not be imported"):
        _ = OTSpec(cost="no_such_module:f").cost_fn
    with pytest.raises(ValueError, match="GW kinds take an ott-jax CostFn"):
        OTSpec(kind="GW", cost=sqeuclidean_matrix)
