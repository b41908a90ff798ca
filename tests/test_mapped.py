"""Memory-mapped clouds: read on demand, the same clouds, splits and training as in memory."""

from __future__ import annotations

import numpy as np
import pytest

from wormhole.config import config_from_dict
from wormhole.data import PointClouds, load_dataset
from wormhole.data.loaders.files import load_files, save_clouds_npy
from wormhole.data.mapped import MappedPoints
from wormhole.data.transforms import Normalization
from wormhole.trainer import sample_batch


def _ragged(count=60, seed=0):
    rng = np.random.default_rng(seed)
    clouds = [rng.normal(size=(rng.integers(3, 12), 2)) * 3 + 5 for _ in range(count)]
    weights = [rng.uniform(0.1, 1.0, len(c)) for c in clouds]
    return PointClouds.from_list(clouds, weights, labels=np.arange(count) % 3)


def test_mapped_clouds_read_as_the_dense_ones_through_every_transform(tmp_path):
    dense = _ragged()
    path = save_clouds_npy(tmp_path / "clouds.npy", dense)
    mapped = load_files(path)
    assert isinstance(mapped.points, MappedPoints) and mapped.on_demand
    assert isinstance(mapped.points.source, np.memmap)  # on disk, not loaded
    np.testing.assert_array_equal(mapped.sizes, dense.sizes)
    np.testing.assert_allclose(mapped.weights, dense.weights, rtol=1e-6)
    np.testing.assert_array_equal(mapped.labels, dense.labels)
    np.testing.assert_array_equal(np.asarray(mapped.points), dense.points)
    # A subset, a normalisation and a crop stay on disk and read back as the dense ones do.
    norm = Normalization.fit(dense, "minmax")
    index = np.array([7, 3, 41, 3, 0])
    for a, b in ((mapped, dense), (norm.apply_to(mapped), norm.apply_to(dense))):
        sub_a, sub_b = a.subset(index), b.subset(index)
        assert isinstance(sub_a.points, MappedPoints)
        np.testing.assert_allclose(np.asarray(sub_a.points), sub_b.points, atol=1e-6)
        np.testing.assert_allclose(sub_a.points[1:3, :4], sub_b.points[1:3, :4], atol=1e-6)
        np.testing.assert_allclose(sub_a.points[2], sub_b.points[2], atol=1e-6)
        np.testing.assert_allclose(a.pad_to(a.length + 3).points[5], b.pad_to(b.length + 3)
                                   .points[5], atol=1e-6)
        for got, want in zip(a.bounds(), b.bounds(), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-6)
        batch_a, batch_b = sample_batch(a, 4, 8, seed=2, bucket=4), \
            sample_batch(b, 4, 8, seed=2, bucket=4)
        np.testing.assert_allclose(batch_a.points, batch_b.points, atol=1e-6)
        np.testing.assert_allclose(batch_a.weights, batch_b.weights)


def test_a_mapped_data_set_prepares_like_the_npz_one(tmp_path):
    from wormhole.data.loaders.files import save_clouds_npz

    dense = _ragged(80, seed=1)
    save_clouds_npz(tmp_path / "clouds.npz", dense)
    save_clouds_npy(tmp_path / "clouds.npy", dense)
    config = {"name": "files", "test_fraction": 0.25}
    a = load_dataset(config_from_dict({"data": {**config, "path": str(tmp_path / "clouds.npy")}}
                                      ).data)
    b = load_dataset(config_from_dict({"data": {**config, "path": str(tmp_path / "clouds.npz")}}
                                      ).data)
    assert isinstance(a.train.points, MappedPoints)
    np.testing.assert_allclose(a.normalization.shift, b.normalization.shift, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(a.test.points), b.test.points, atol=1e-6)
    np.testing.assert_allclose(np.asarray(a.train.points), b.train.points, atol=1e-6)


def test_mapped_file_errors_name_the_file_and_the_cloud(tmp_path):
    points = np.zeros((5, 4, 2), np.float32)
    points[3, 1, 0] = np.nan
    np.save(tmp_path / "bad.npy", points)
    with pytest.raises(ValueError, match=r"bad.npy: cloud 3: point 1 has a NaN"):
        load_files(tmp_path / "bad.npy")
    weights = np.ones((5, 4))
    weights[3, 1:] = 0  # the NaN is padding now: allowed
    np.save(tmp_path / "bad.weights.npy", weights)
    clouds = load_files(tmp_path / "bad.npy")
    assert clouds.sizes.tolist() == [4, 4, 4, 1, 4]
    assert np.isfinite(np.asarray(clouds.points)).all()
    weights[2] = 0
    np.save(tmp_path / "bad.weights.npy", weights)
    with pytest.raises(ValueError, match="bad.weights.npy: weights of cloud 2 are all zero"):
        load_files(tmp_path / "bad.npy")
    np.save(tmp_path / "bad.weights.npy", np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"need weights \[5, 4\]"):
        load_files(tmp_path / "bad.npy")
    np.save(tmp_path / "ints.npy", np.zeros((2, 3, 2), np.int64))
    with pytest.raises(ValueError, match="ints.npy: coordinates must be floats"):
        load_files(tmp_path / "ints.npy")
