"""Neighbour-mined batches: quantile sketches against exact OT, the neighbour table, batches."""

from __future__ import annotations

import jax
import numpy as np
import ot as pot
import pytest

from wormhole.data import PointClouds
from wormhole.data.neighbour_batches import mined_batch, neighbour_table
from wormhole.data.sketches import cloud_sketches, weighted_quantiles
from wormhole.data.transforms import random_rotations, rotate_clouds


def test_weighted_quantiles_are_the_inverse_cdf_and_ignore_padding():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 40, 2))
    weights = rng.uniform(0.1, 1.0, size=(3, 40))
    weights[:, 30:] = 0.0  # padding: its values must not matter
    values[:, 30:] = 1e6
    weights /= weights.sum(1, keepdims=True)
    got = weighted_quantiles(values, weights, 16)
    q = (np.arange(16) + 0.5) / 16
    for c in range(3):
        for s in range(2):
            want = np.quantile(values[c, :30, s], q, weights=weights[c, :30],
                               method="inverted_cdf")
            np.testing.assert_allclose(got[c, s], want)


def test_one_dimensional_sketch_distance_is_exact_w2_squared():
    # With as many levels as points, the mid-point quantiles are the sorted samples, so the
    # sketch distance of 1-D clouds is W2^2 exactly (every direction is +-1).
    rng = np.random.default_rng(1)
    clouds = PointClouds.from_list([rng.gamma(2.0, 1.0, (32, 1)) for _ in range(5)])
    sketch = cloud_sketches(clouds, directions=4, levels=32)
    for a in range(5):
        for b in range(a + 1, 5):
            x, y = clouds.cloud(a)[0], clouds.cloud(b)[0]
            exact = pot.emd2(np.full(32, 1 / 32), np.full(32, 1 / 32), pot.dist(x, y))
            approx = np.sum((sketch[a] - sketch[b]) ** 2) / (4 * 32)
            np.testing.assert_allclose(approx, exact, rtol=1e-4)


def test_sketch_neighbours_find_most_exact_w2_neighbours_of_2d_clouds():
    rng = np.random.default_rng(2)
    centres = rng.uniform(-1, 1, (60, 2))
    clouds = [c + rng.normal(0, 0.1 + 0.2 * rng.uniform(), (40, 2)) for c in centres]
    table = neighbour_table(cloud_sketches(PointClouds.from_list(clouds)), 5)
    exact = np.array([[pot.emd2(np.full(40, 1 / 40), np.full(40, 1 / 40), pot.dist(x, y))
                       for y in clouds] for x in clouds])
    np.fill_diagonal(exact, np.inf)
    nearest = np.argmin(exact, axis=1)
    assert np.mean([nearest[i] in table[i] for i in range(60)]) >= 0.9


def test_quadratic_sketch_ignores_rotations_and_translations():
    rng = np.random.default_rng(3)
    clouds = PointClouds.from_list([rng.normal(size=(30, 3)) * [1.0, 0.5, 0.2]
                                    for _ in range(4)])
    turned = np.asarray(rotate_clouds(clouds.points, random_rotations(jax.random.key(4), 4, 3),
                                      clouds.weights))
    moved = clouds.with_points(np.where(clouds.weights[..., None] > 0, turned + 2.0, 0.0))
    np.testing.assert_allclose(cloud_sketches(clouds, quadratic=True),
                               cloud_sketches(moved, quadratic=True), atol=1e-4)
    assert not np.allclose(cloud_sketches(clouds), cloud_sketches(moved), atol=1e-2)


def test_neighbour_table_is_each_rows_nearest_others_nearest_first():
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(50, 6)).astype(np.float32)
    table = neighbour_table(rows, 4)
    sq = ((rows[:, None] - rows[None]) ** 2).sum(-1)
    np.fill_diagonal(sq, np.inf)
    np.testing.assert_array_equal(table, np.argsort(sq, axis=1)[:, :4])


@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
def test_mined_batches_hold_distinct_clouds_with_neighbour_groups(fraction):
    rng_table = np.random.default_rng(6)
    table = np.stack([rng_table.choice(np.delete(np.arange(100), i), 8, replace=False)
                      for i in range(100)])
    batch = mined_batch(np.random.default_rng(7), table, 16, fraction, 4)
    again = mined_batch(np.random.default_rng(7), table, 16, fraction, 4)
    np.testing.assert_array_equal(batch, again)
    assert len(set(batch.tolist())) == 16 and np.all(np.diff(batch) > 0)
    # Clouds with at least one table neighbour in the batch: the groups put them there.
    members = set(batch.tolist())
    linked = sum(bool(members & set(table[i].tolist())) for i in batch)
    assert linked >= 16 * fraction * 0.75
