"""Point-cloud sets: validation, padding, normalisation, subsampling, splits, rotations."""

from __future__ import annotations

import json
import warnings

import jax
import numpy as np
import pytest

from wormhole.config import ConfigError, DataConfig
from wormhole.data import (
    CoordinateScaleWarning,
    Normalization,
    PointClouds,
    distinct_random_pairs,
    label_values,
    load_dataset,
    pad_clouds,
    prepare_dataset,
    random_rotations,
    rotate_clouds,
    select_splits,
    subsample_clouds,
    train_test_split,
    validate_clouds,
)


def ragged(seed: int = 0, count: int = 6, dim: int = 2, low: int = 3, high: int = 12):
    """Clouds of different sizes with random positive weights."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(low, high, count)
    clouds = [rng.normal(size=(n, dim)).astype(np.float32) * (i + 1) for i, n in enumerate(sizes)]
    weights = [rng.uniform(0.1, 1.0, n) for n in sizes]
    return clouds, weights


def _with(items, index, value):
    items = list(items)
    items[index] = value
    return items


# --------------------------------------------------------------------------- validation

GOOD, GOOD_W = ragged()
BAD_INPUTS = {
    "nan coordinate": (_with(GOOD, 2, np.where(np.arange(len(GOOD[2]))[:, None] == 1, np.nan,
                                               GOOD[2])), None, "cloud 2: point 1 has a NaN"),
    "infinite coordinate": (_with(GOOD, 4, np.full((3, 2), np.inf)), None,
                            "cloud 4: point 0 has a NaN or infinite"),
    "float64 beyond float32": (_with(GOOD, 4, np.array([[0.0, 1e39]])), None,
                               "cloud 4: point 0 has a coordinate beyond float32's range"),
    "empty cloud": (_with(GOOD, 1, np.zeros((0, 2))), None, "cloud 1 is empty"),
    "other dimension": (_with(GOOD, 3, np.zeros((4, 3))), None, "cloud 3 has dimension 3"),
    "1-D cloud": (_with(GOOD, 2, np.zeros(5)), None, "cloud 2: expected shape"),
    "text coordinates": (_with(GOOD, 5, np.array([["a", "b"]])), None,
                         "cloud 5: coordinates must be numbers"),
    "negative weight": (GOOD, _with(GOOD_W, 1, -GOOD_W[1]), "weights of cloud 1 contain negative"),
    "all-zero weights": (GOOD, _with(GOOD_W, 3, np.zeros(len(GOOD[3]))),
                         "weights of cloud 3 are all zero"),
    "ragged weights": (GOOD, _with(GOOD_W, 2, np.ones(len(GOOD[2]) + 1)),
                       "weights of cloud 2 have shape"),
    "nan weight": (GOOD, _with(GOOD_W, 0, np.full(len(GOOD[0]), np.nan)),
                   "weights of cloud 0 contain NaN"),
    "too few weight arrays": (GOOD, GOOD_W[:-1], "6 clouds but 5 weight arrays"),
    "no clouds": ([], None, "No clouds"),
    "one 2-D array": (GOOD[0], None, "Wrap a single cloud in a list"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_invalid_clouds_raise_naming_the_offending_cloud(case):
    clouds, weights, message = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        validate_clouds(clouds, weights)
    with pytest.raises(ValueError, match=message):
        PointClouds.from_list(clouds, weights)


def test_nothing_is_dropped_and_weights_are_normalised():
    clouds, weights = ragged(seed=1)
    weights[2][1] = 0.0  # a massless point inside a cloud is kept, not dropped
    data = PointClouds.from_list(clouds, weights)
    assert len(data) == len(clouds)
    assert data.sizes.tolist() == [len(c) for c in clouds]
    for i, (x, w) in enumerate(zip(clouds, weights, strict=True)):
        got_x, got_w = data.cloud(i)
        np.testing.assert_array_equal(got_x, x)
        np.testing.assert_allclose(got_w, w / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(data.weights.sum(axis=1), 1.0, rtol=1e-6)


def test_point_clouds_check_labels_and_metadata_lengths():
    clouds, _ = ragged(count=4)
    with pytest.raises(ValueError, match="4 clouds but labels of shape"):
        PointClouds.from_list(clouds, labels=[0, 1, 2])
    with pytest.raises(ValueError, match="metadata 'mean' has 3 rows for 4 clouds"):
        PointClouds.from_list(clouds, metadata={"mean": np.zeros((3, 2))})


# --------------------------------------------------------------------------- padding


def test_padding_rows_carry_zero_weight_and_zero_coordinates():
    clouds, weights = ragged(seed=2)
    data = PointClouds.from_list(clouds, weights)
    assert data.length == max(len(c) for c in clouds)
    pad = np.arange(data.length)[None, :] >= data.sizes[:, None]
    assert pad.any()
    assert np.all(data.weights[pad] == 0) and np.all(data.points[pad] == 0)
    assert np.all(data.weights[~pad] > 0)


def test_pad_to_never_cuts_a_cloud():
    data = PointClouds.from_list(*ragged(seed=3))
    longest = int(data.sizes.max())
    wider = data.pad_to(longest + 5)
    assert wider.length == longest + 5
    np.testing.assert_array_equal(wider.points[:, :longest], data.points)
    assert np.all(wider.points[:, longest:] == 0) and np.all(wider.weights[:, longest:] == 0)
    assert wider.pad_to(longest).length == longest
    with pytest.raises(ValueError, match=f"largest cloud has {longest}"):
        data.pad_to(longest - 1)
    with pytest.raises(ValueError, match=f"largest cloud has {longest}"):
        pad_clouds(*data.to_list(), length=longest - 1)


def test_subset_trims_padding_and_keeps_labels_and_metadata():
    clouds, weights = ragged(seed=4, count=8)
    order = np.argsort([len(c) for c in clouds])
    data = PointClouds.from_list(clouds, weights, labels=np.arange(8) % 3, label_names="abc",
                                 metadata={"id": np.arange(8) * 10}).pad_to(40)
    small = order[:3]
    part = data.subset(small)
    assert part.length == max(len(clouds[i]) for i in small)
    assert part.labels.tolist() == (small % 3).tolist()
    assert part.metadata["id"].tolist() == (small * 10).tolist()
    assert part.label_names == ("a", "b", "c")
    for j, i in enumerate(small):
        np.testing.assert_array_equal(part.cloud(j)[0], clouds[i])
    mask = np.zeros(8, bool)
    mask[[1, 5]] = True
    assert data.subset(mask).metadata["id"].tolist() == [10, 50]


def test_from_padded_round_trip():
    clouds, weights = ragged(seed=5)
    data = PointClouds.from_list(clouds, weights).pad_to(20)
    again = PointClouds.from_padded(data.points, data.weights)
    np.testing.assert_array_equal(again.sizes, data.sizes)
    np.testing.assert_array_equal(again.points, data.points[:, : again.length])
    np.testing.assert_allclose(again.weights, data.weights[:, : again.length], rtol=1e-6)
    uniform = PointClouds.from_padded(np.ones((3, 4, 2)))
    assert uniform.sizes.tolist() == [4, 4, 4]
    with pytest.raises(ValueError, match="do not match points"):
        PointClouds.from_padded(data.points, data.weights[:, :-1])


def test_label_values_accept_values_integer_strings_and_names():
    named = PointClouds.from_list(*ragged(seed=8, count=3), labels=[0, 1, 2],
                                  label_names=["Bag", "Coat", "Shirt"])
    assert label_values([2, "1", "Bag", np.int64(1)], named) == [2, 1, 0, 1]
    with pytest.raises(ValueError, match="Unknown label 'Hat'; .* labels are: Bag, Coat, Shirt"):
        label_values(["Hat"], named)
    unnamed = PointClouds.from_list(*ragged(seed=8, count=3), labels=[4, 4, 7])
    with pytest.raises(ValueError, match="Unknown label 'x'; .* labels are: 4, 7"):
        label_values(["x"], unnamed)
    with pytest.raises(ValueError, match="Unknown label True"):
        label_values([True], unnamed)


# --------------------------------------------------------------------------- normalisation


def test_minmax_maps_the_data_into_the_unit_box_and_invert_undoes_it():
    clouds, weights = ragged(seed=6, dim=3)
    data = PointClouds.from_list(clouds, weights).pad_to(30)
    norm = Normalization.fit(data, "minmax")
    out = norm.apply_to(data)
    real = np.arange(data.length)[None, :] < data.sizes[:, None]
    coords = out.points[real]
    np.testing.assert_allclose(coords.min(axis=0), 0.0, atol=1e-6)
    assert coords.max() == pytest.approx(1.0, abs=1e-6)  # the largest side spans [0, 1]
    assert np.all(coords <= 1 + 1e-6)
    assert np.all(out.points[~real] == 0)  # padding stays zero
    np.testing.assert_allclose(norm.invert(out.points)[real], data.points[real], atol=1e-5)
    # Through JSON (as a checkpoint stores it) and back.
    restored = Normalization.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_allclose(restored.apply(data.points), norm.apply(data.points), atol=1e-7)
    assert restored.scale == pytest.approx(norm.scale)


def test_minmax_box_includes_massless_points_of_a_cloud():
    # A zero-weight point inside a cloud is real data (it is kept), so it is inside the box.
    clouds = [np.array([[0.0, 0.0], [1.0, 1.0], [9.0, 4.0]]), np.array([[2.0, 2.0], [3.0, 1.0]])]
    weights = [np.array([1.0, 1.0, 0.0]), np.ones(2)]
    data = PointClouds.from_list(clouds, weights)
    out = Normalization.fit(data).apply_to(data)
    np.testing.assert_allclose(out.cloud(0)[0][2], [1.0, 4.0 / 9.0], rtol=1e-6)
    assert out.points.max() == pytest.approx(1.0)


def test_normalization_none_is_the_identity_and_unknown_methods_fail():
    data = PointClouds.from_list(*ragged(seed=7))
    out = Normalization.fit(data, "none").apply_to(data)
    np.testing.assert_array_equal(out.points, data.points)
    with pytest.raises(ValueError, match="Unknown normalisation 'zscore'"):
        Normalization.fit(data, "zscore")


# --------------------------------------------------------------------------- subsampling


def test_subsampling_keeps_at_most_n_points_with_renormalised_weights():
    clouds, weights = ragged(seed=8, low=5, high=40)
    data = PointClouds.from_list(clouds, weights)
    out = subsample_clouds(data, 10, seed=0)
    assert out.sizes.tolist() == [min(len(c), 10) for c in clouds]
    assert out.length == 10
    np.testing.assert_allclose(out.weights.sum(axis=1), 1.0, rtol=1e-5)
    for i, (x, w) in enumerate(zip(clouds, weights, strict=True)):
        kept_x, kept_w = out.cloud(i)
        rows = [int(np.flatnonzero((x == p).all(axis=1))[0]) for p in kept_x]
        assert len(set(rows)) == len(rows)  # drawn without replacement
        # Kept points keep their relative weights.
        np.testing.assert_allclose(kept_w, w[rows] / w[rows].sum(), rtol=1e-5)
    assert subsample_clouds(data, int(data.sizes.max())) is data


def test_subsampling_draws_only_points_that_carry_mass():
    # Two massive points among 98 massless ones: every kept point carries mass, so the
    # cloud's measure is unchanged (it used to draw five massless points and weigh them
    # uniformly, another measure).
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros((2, 2)), rng.normal(5.0, 1.0, (98, 2))])
    w = np.concatenate([[1.0, 3.0], np.zeros(98)])
    y = rng.normal(size=(30, 2))
    massive = np.concatenate([rng.normal(size=(20, 2)), np.ones((10, 2))])
    v = np.concatenate([np.ones(20), np.zeros(10)])
    out = subsample_clouds(PointClouds.from_list([x, y, massive], [w, np.ones(30), v]), 5)
    kept_x, kept_w = out.cloud(0)
    np.testing.assert_array_equal(kept_x, np.zeros((2, 2)))
    np.testing.assert_allclose(kept_w, [0.25, 0.75])
    # More massive points than room: five of the twenty, none of the massless ones.
    kept_x, kept_w = out.cloud(2)
    assert len(kept_x) == 5 and not (kept_x == 1.0).all(axis=1).any()
    np.testing.assert_allclose(kept_w, 0.2)


def test_subsampling_is_deterministic_by_seed():
    data = PointClouds.from_list(*ragged(seed=9, low=30, high=60))
    a, b = subsample_clouds(data, 8, seed=1), subsample_clouds(data, 8, seed=1)
    c = subsample_clouds(data, 8, seed=2)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)


# --------------------------------------------------------------------------- splits


def test_train_test_split_is_deterministic_disjoint_and_complete():
    clouds, _ = ragged(seed=10, count=50)
    data = PointClouds.from_list(clouds, metadata={"id": np.arange(50)})
    train, test = train_test_split(data, 0.2, seed=3)
    again_train, again_test = train_test_split(data, 0.2, seed=3)
    other_train, _ = train_test_split(data, 0.2, seed=4)
    ids_train, ids_test = train.metadata["id"], test.metadata["id"]
    assert len(ids_test) == 10 and len(ids_train) == 40
    assert sorted(ids_train.tolist() + ids_test.tolist()) == list(range(50))
    assert ids_train.tolist() == again_train.metadata["id"].tolist()
    assert ids_test.tolist() == again_test.metadata["id"].tolist()
    assert ids_train.tolist() != other_train.metadata["id"].tolist()
    assert train_test_split(data, 0.0)[1] is None
    with pytest.raises(ValueError, match="at least 2 are needed"):
        train_test_split(data.subset(np.arange(3)), 0.9)


def test_distinct_random_pairs_are_uniform_over_ordered_pairs_of_different_items():
    first, second = distinct_random_pairs(np.random.default_rng(0), 4, 60_000)
    assert np.all(first != second)
    counts = np.zeros((4, 4))
    np.add.at(counts, (first, second), 1)
    off_diagonal = counts[~np.eye(4, dtype=bool)]
    np.testing.assert_allclose(off_diagonal / 60_000, 1 / 12, atol=0.005)
    again = distinct_random_pairs(np.random.default_rng(0), 4, 60_000)
    np.testing.assert_array_equal(again[0], first)
    with pytest.raises(ValueError, match="at least two items"):
        distinct_random_pairs(np.random.default_rng(0), 1, 3)


def test_load_dataset_normalises_both_splits_with_the_training_fit():
    config = DataConfig(name="digits", test_fraction=0.2, max_clouds=300, max_points=20, seed=1)
    data = load_dataset(config)
    assert len(data.train) + len(data.test) == 300
    assert len(data.test) == 60
    assert int(data.train.sizes.max()) <= 20 and int(data.test.sizes.max()) <= 20
    real = np.arange(data.train.length)[None, :] < data.train.sizes[:, None]
    assert data.train.points[real].min() == pytest.approx(0.0, abs=1e-6)
    assert data.train.points[real].max() == pytest.approx(1.0, abs=1e-6)
    again = load_dataset(config)
    np.testing.assert_array_equal(again.train.points, data.train.points)


@pytest.mark.parametrize("factor, message", [(1e6, r"reach \|x\| = 1e\+06"),
                                             (1e-5, "span only 1e-05")])
def test_unnormalised_coordinates_far_from_unit_scale_warn_with_the_scale(factor, message):
    rng = np.random.default_rng(0)
    corners = np.array([[0.0, 0.0], [1.0, 1.0]])
    unit = PointClouds.from_list([np.concatenate([corners, rng.uniform(0, 1, (6, 2))])
                                  for _ in range(10)])
    scaled = unit.with_points(unit.points * factor)
    with pytest.warns(CoordinateScaleWarning, match=message + ".*data.normalize: minmax"):
        prepare_dataset(scaled, DataConfig(normalize="none", test_fraction=0.2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoordinateScaleWarning)
        minmax = prepare_dataset(scaled, DataConfig(normalize="minmax", test_fraction=0.2))
        prepare_dataset(unit, DataConfig(normalize="none", test_fraction=0.2))
        # The same selection in the clouds' own units, for callers that normalise later.
        train, test = select_splits(scaled, DataConfig(normalize="minmax", test_fraction=0.2))
    np.testing.assert_allclose(minmax.normalization.apply_to(train).points, minmax.train.points)
    np.testing.assert_allclose(minmax.normalization.apply_to(test).points, minmax.test.points)


def test_official_split_needs_a_data_set_that_has_one():
    with pytest.raises(ConfigError, match="no official train/test split"):
        load_dataset(DataConfig(name="digits", split="official"))


# --------------------------------------------------------------------------- rotations


@pytest.fixture(scope="module")
def rotations() -> dict[int, np.ndarray]:
    """64 random rotations in 2-D and in 3-D (computed once: the first call compiles)."""
    return {dim: np.asarray(random_rotations(jax.random.key(dim), 64, dim), np.float64)
            for dim in (2, 3)}


@pytest.mark.parametrize("dim", [2, 3])
def test_random_rotations_are_proper_rotations(rotations, dim):
    r = rotations[dim]
    eye = np.broadcast_to(np.eye(dim), r.shape)
    np.testing.assert_allclose(r @ np.swapaxes(r, 1, 2), eye, atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
    assert not np.allclose(r[0], r[1])


def test_rotate_clouds_preserves_intra_cloud_distances_and_padding(rotations):
    data = PointClouds.from_list(*ragged(seed=11, dim=3)).pad_to(16)
    out = np.asarray(rotate_clouds(data.points, rotations[3][: len(data)], data.weights))
    for i in range(len(data)):
        x, w = data.cloud(i)
        y = out[i, : len(x)]
        before = np.linalg.norm(x[:, None] - x[None], axis=-1)
        after = np.linalg.norm(y[:, None] - y[None], axis=-1)
        np.testing.assert_allclose(after, before, atol=1e-4)
        np.testing.assert_allclose(w @ y, w @ x, atol=1e-4)  # rotated about the weighted centre
        assert not np.allclose(y, x, atol=1e-3)
    pad = np.arange(data.length)[None, :] >= data.sizes[:, None]
    assert np.all(out[pad] == 0)
