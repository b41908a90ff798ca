"""Data-set loaders: digits, IDX files (MNIST, Fashion-MNIST), synthetic, shapes, user files."""

from __future__ import annotations

import gzip
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from wormhole.config import ConfigError, DataConfig
from wormhole.data import PointClouds, load_clouds, load_dataset
from wormhole.data.loaders import idx
from wormhole.data.loaders.digits import load_digits
from wormhole.data.loaders.files import load_files, save_clouds_npz
from wormhole.data.loaders.idx import FASHION_MNIST_LABELS, load_fashion_mnist, load_mnist, read_idx
from wormhole.data.loaders.shapes import CYLINDER_RADIUS, ELLIPSOID_AXES, TORUS_RADII, load_shapes
from wormhole.data.loaders.synthetic import FAMILIES_1D, load_synthetic

# --------------------------------------------------------------------------- digits


def test_digits_are_1797_labelled_pixel_clouds():
    clouds = load_digits()
    assert len(clouds) == 1797 and clouds.dim == 2
    assert clouds.label_names == tuple(str(d) for d in range(10))
    assert set(clouds.labels.tolist()) == set(range(10))
    real = np.arange(clouds.length)[None, :] < clouds.sizes[:, None]
    assert clouds.points[real].min() >= 0 and clouds.points[real].max() <= 1
    fewer = load_digits(threshold=0.5)
    assert np.all(fewer.sizes <= clouds.sizes) and fewer.sizes.sum() < clouds.sizes.sum()


# --------------------------------------------------------------------------- IDX files

H, W = 5, 4  # tiny images: the coordinate scale is max(H, W) - 1 = 4


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    """Write an IDX file by the format's definition (independent of the reader under test)."""
    codes = {np.dtype("u1"): 0x08, np.dtype(">i2"): 0x0B, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(header + array.tobytes())
    return path


def tiny_split(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, H, W)).astype(np.uint8)
    images[:, 0, 0] = 255  # every image keeps a pixel at any threshold
    return images, rng.integers(0, 10, count).astype(np.uint8)


def write_mnist(directory: Path, gz: bool = True, train: int = 6, test: int = 3) -> dict:
    """Tiny train and test splits in the standard file names; returns what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    written = {}
    for split, prefix, count, seed in (("train", "train", train, 1), ("test", "t10k", test, 2)):
        if not count:
            continue
        images, labels = tiny_split(seed, count)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
        written[split] = (images, labels)
    return written


def expected_cloud(image: np.ndarray, cut: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixels above ``cut``, row by row, at (column, H-1-row) / (max(H, W) - 1)."""
    points, weights = [], []
    for row in range(image.shape[0]):
        for col in range(image.shape[1]):
            if image[row, col] > cut:
                points.append([col / (max(H, W) - 1), (H - 1 - row) / (max(H, W) - 1)])
                weights.append(float(image[row, col]))
    return np.array(points), np.array(weights) / sum(weights)


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """No $WORMHOLE_DATA, a private cache, no proxy, and downloads pointed at nothing."""
    for name in ("WORMHOLE_DATA", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    missing = (tmp_path / "no_mirror").as_uri()
    monkeypatch.setenv("WORMHOLE_MNIST_URL", missing)
    monkeypatch.setenv("WORMHOLE_FASHION_MNIST_URL", missing)
    monkeypatch.setattr(idx, "FASHION_MNIST", idx.FASHION_MNIST._replace(system_dirs=()))
    return tmp_path


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_idx_files_become_pixel_clouds_with_splits_and_labels(isolated, gz):
    written = write_mnist(isolated / "mnist", gz=gz)
    clouds = load_mnist(isolated / "mnist", threshold=0.5)
    images = np.concatenate([written["train"][0], written["test"][0]])
    labels = np.concatenate([written["train"][1], written["test"][1]])
    assert len(clouds) == 9
    assert clouds.metadata["split"].tolist() == ["train"] * 6 + ["test"] * 3
    assert clouds.metadata["index"].tolist() == list(range(6)) + list(range(3))
    assert clouds.labels.tolist() == labels.tolist()
    assert clouds.label_names == tuple(str(d) for d in range(10))
    for i, image in enumerate(images):
        points, weights = expected_cloud(image, 0.5 * 255)
        got_points, got_weights = clouds.cloud(i)
        np.testing.assert_allclose(got_points, points, atol=1e-6)
        np.testing.assert_allclose(got_weights, weights, rtol=1e-5)


def test_idx_options_choose_splits_limit_and_threshold(isolated):
    write_mnist(isolated / "mnist", train=6, test=3)
    only_test = load_mnist(isolated / "mnist", splits="test")
    assert only_test.metadata["split"].tolist() == ["test"] * 3
    limited = load_mnist(isolated / "mnist", limit=2)
    assert limited.metadata["split"].tolist() == ["train", "train", "test", "test"]
    low, high = load_mnist(isolated / "mnist", threshold=0.1), load_mnist(isolated / "mnist")
    assert np.all(low.sizes >= high.sizes) and low.sizes.sum() > high.sizes.sum()
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        load_mnist(isolated / "mnist", splits=["train", "validation"])
    with pytest.raises(ValueError, match="limit: must be a positive"):
        load_mnist(isolated / "mnist", limit=0)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\)"):
        load_mnist(isolated / "mnist", threshold=1.0)


def test_idx_official_split_through_the_config(isolated):
    write_mnist(isolated / "mnist", train=8, test=4)
    config = DataConfig(name="mnist", path=str(isolated / "mnist"), split="official")
    data = load_dataset(config)
    assert len(data.train) == 8 and len(data.test) == 4
    write_mnist(isolated / "only_test", train=0, test=4)
    config = DataConfig(name="mnist", path=str(isolated / "only_test"), split="official")
    with pytest.raises(ConfigError, match="no training split"):
        load_dataset(config)


def test_read_idx_handles_other_types_and_shapes(tmp_path):
    values = np.arange(-6, 6, dtype=">i2").reshape(3, 2, 2)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a", values, gz=False)), values)
    floats = np.linspace(0, 1, 10, dtype=">f4")
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "b.gz", floats, gz=True)), floats)
    np.testing.assert_array_equal(read_idx(tmp_path / "a", limit=2), values[:2])


def corrupt(kind: str, path: Path) -> Path:
    images, _ = tiny_split(0, 4)
    if kind == "truncated gzip":
        write_idx(path, images, gz=True)
        path.write_bytes(path.read_bytes()[:-12])
    elif kind == "truncated data":
        write_idx(path, images, gz=False)
        path.write_bytes(path.read_bytes()[:-5])
    elif kind == "truncated header":
        path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">I", 4))
    elif kind == "trailing data":
        write_idx(path, images, gz=False)
        path.write_bytes(path.read_bytes() + b"\x00")
    elif kind == "bad magic":
        path.write_bytes(b"PK\x03\x04" + bytes(100))
    elif kind == "empty":
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize("kind, message", [
    ("truncated gzip", "cannot be read as an IDX file"),
    ("truncated data", "truncated"),
    ("truncated header", "truncated IDX header"),
    ("trailing data", "more data than the shape"),
    ("bad magic", "not an IDX file"),
    ("empty", "not an IDX file"),
])
def test_corrupt_idx_files_raise_naming_the_file(tmp_path, kind, message):
    path = corrupt(kind, tmp_path / "t10k-images-idx3-ubyte")
    with pytest.raises(ValueError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_corrupt_or_mismatched_files_fail_the_loader_naming_them(isolated):
    directory = isolated / "mnist"
    write_mnist(directory, gz=False, train=0, test=4)
    labels = directory / "t10k-labels-idx1-ubyte"
    write_idx(labels, np.zeros(3, np.uint8), gz=False)  # one label short
    with pytest.raises(ValueError, match="holds 4 images but .* holds 3 labels") as err:
        load_mnist(directory)
    assert str(labels) in str(err.value)
    labels.unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(directory)
    write_idx(labels, np.full(4, 10, np.uint8), gz=False)
    with pytest.raises(ValueError, match="label 10 is out of range"):
        load_mnist(directory)
    corrupt("truncated data", directory / "t10k-images-idx3-ubyte")
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte: truncated"):
        load_mnist(directory)


def test_search_order_is_path_then_wormhole_data_then_cache(isolated, monkeypatch):
    given = write_mnist(isolated / "given", train=2, test=0)
    env = write_mnist(isolated / "env" / "mnist", train=3, test=0)
    cached = write_mnist(isolated / "cache" / "wormhole" / "mnist", train=4, test=0)
    monkeypatch.setenv("WORMHOLE_DATA", str(isolated / "env"))
    assert len(load_mnist(isolated / "given")) == len(given["train"][0])
    assert len(load_mnist(isolated / "empty_dir")) == len(env["train"][0])  # falls through
    assert len(load_mnist()) == len(env["train"][0])
    monkeypatch.delenv("WORMHOLE_DATA")
    assert len(load_mnist()) == len(cached["train"][0])


def closed_port_url() -> str:
    """An http:// URL on the loopback interface where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist"


def test_offline_download_fails_with_directories_and_file_names(isolated, monkeypatch):
    url = closed_port_url()
    monkeypatch.setenv("WORMHOLE_MNIST_URL", url)
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(isolated / "nowhere")
    message = str(err.value)
    cache = isolated / "cache" / "wormhole" / "mnist"
    for expected in (str(isolated / "nowhere"), str(cache), url, "download",
                     "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "WORMHOLE_DATA"):
        assert expected in message
    assert not cache.exists() or not any(cache.iterdir())  # nothing half-written
    with pytest.raises(FileNotFoundError, match="Downloading is switched off"):
        load_mnist(isolated / "nowhere", download=False)


def test_fashion_offline_message_names_its_own_mirror_and_files(isolated):
    with pytest.raises(FileNotFoundError) as err:
        load_fashion_mnist(splits="test")
    message = str(err.value)
    assert "Fashion-MNIST files not found" in message
    assert (isolated / "no_mirror").as_uri() in message
    assert str(isolated / "cache" / "wormhole" / "fashion_mnist") in message
    assert "t10k-images-idx3-ubyte.gz" in message and "train-images" not in message


def test_download_fills_the_cache_and_is_then_reused(isolated, monkeypatch):
    mirror = isolated / "mirror"
    written = write_mnist(mirror, gz=True)
    monkeypatch.setenv("WORMHOLE_MNIST_URL", mirror.as_uri())
    first = load_mnist()
    cache = isolated / "cache" / "wormhole" / "mnist"
    assert sorted(os.listdir(cache)) == sorted(os.listdir(mirror))
    assert len(first) == len(written["train"][0]) + len(written["test"][0])
    for file in mirror.iterdir():
        file.unlink()  # the second load must not need the mirror
    second = load_mnist()
    np.testing.assert_array_equal(second.points, first.points)


def test_corrupt_download_never_enters_the_cache(isolated, monkeypatch):
    mirror = isolated / "mirror"
    write_mnist(mirror, gz=True, train=0, test=4)
    corrupt("truncated gzip", mirror / "t10k-images-idx3-ubyte.gz")
    monkeypatch.setenv("WORMHOLE_MNIST_URL", mirror.as_uri())
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        load_mnist(splits="test")
    cache = isolated / "cache" / "wormhole" / "mnist"
    # The complete labels file stays; no partial images file or temporary file is left.
    assert os.listdir(cache) == ["t10k-labels-idx1-ubyte.gz"]


def test_real_mnist_at_half_threshold_keeps_about_105_points(mnist_dir):
    clouds = load_mnist(mnist_dir, splits="test", download=False)
    assert len(clouds) == 10000
    assert set(clouds.metadata["split"].tolist()) == {"test"}
    assert np.bincount(clouds.labels).min() > 800  # every digit is well represented
    assert 95 < clouds.sizes.mean() < 115  # the Wormhole paper's ~105 points per digit
    real = np.arange(clouds.length)[None, :] < clouds.sizes[:, None]
    assert clouds.points[real].min() >= 0 and clouds.points[real].max() <= 1


def test_real_mnist_through_the_config_with_a_limit(mnist_dir):
    config = DataConfig(name="mnist", path=str(mnist_dir),
                        options={"limit": 300, "threshold": 0.3, "download": False})
    data = load_dataset(config)
    assert len(data.train) + len(data.test) == 300


def test_real_fashion_mnist(fashion_dir):
    clouds = load_fashion_mnist(fashion_dir, limit=200, download=False)
    assert len(clouds) == 400  # 200 of each split the package ships
    assert clouds.metadata["split"].tolist() == ["train"] * 200 + ["test"] * 200
    assert clouds.label_names == FASHION_MNIST_LABELS
    assert clouds.label_names[:2] == ("T-shirt/top", "Trouser")
    assert len(set(clouds.labels.tolist())) == 10
    assert 100 < clouds.sizes.mean() < 500


# --------------------------------------------------------------------------- synthetic


def sample_moments(clouds: PointClouds) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean [N, d] and covariance [N, d, d] of every cloud."""
    mean = np.einsum("nk,nkd->nd", clouds.weights, clouds.points)
    centred = clouds.points - mean[:, None]
    cov = np.einsum("nk,nkd,nke->nde", clouds.weights, centred, centred)
    return mean, cov


@pytest.mark.parametrize("family, dim", [("gaussians", 3), ("boxes", 2), ("mixtures", 2),
                                         ("gaussians", 1)])
def test_synthetic_sample_moments_match_the_generating_parameters(family, dim):
    clouds = load_synthetic(family=family, dim=dim, num_clouds=12, points=20000, seed=3)
    assert clouds.points.shape == (12, 20000, dim)
    assert clouds.metadata["mean"].shape == (12, dim)
    assert clouds.metadata["cov"].shape == (12, dim, dim)
    mean, cov = sample_moments(clouds)
    true_cov = clouds.metadata["cov"]
    spread = np.sqrt(np.trace(true_cov, axis1=1, axis2=2) / dim)[:, None]
    np.testing.assert_allclose(mean, clouds.metadata["mean"], atol=0.05 * spread.max())
    scale = np.trace(true_cov, axis1=1, axis2=2)[:, None, None]
    assert np.all(np.abs(cov - true_cov) < 0.06 * scale)
    np.testing.assert_allclose(true_cov, np.swapaxes(true_cov, 1, 2), atol=1e-12)
    assert np.all(np.linalg.eigvalsh(true_cov) > 0)


def test_synthetic_family_parameters_are_kept():
    boxes = load_synthetic(family="boxes", num_clouds=5, points=300)
    low, high = boxes.metadata["low"][:, None], boxes.metadata["high"][:, None]
    assert np.all((boxes.points >= low - 1e-6) & (boxes.points <= high + 1e-6))
    mix = load_synthetic(family="mixtures", components=4, num_clouds=5, dim=3)
    assert mix.metadata["component_weights"].shape == (5, 4)
    np.testing.assert_allclose(mix.metadata["component_weights"].sum(axis=1), 1.0)
    assert mix.metadata["component_means"].shape == (5, 4, 3)
    assert mix.metadata["component_covs"].shape == (5, 4, 3, 3)


def test_one_dimensional_families_are_labelled_with_their_parameters():
    clouds = load_synthetic(family="1d", num_clouds=140, points=8000, seed=5)
    assert clouds.dim == 1
    assert clouds.label_names == FAMILIES_1D
    assert set(clouds.labels.tolist()) == set(range(len(FAMILIES_1D)))
    params = clouds.metadata["params"]
    one_param = clouds.labels == FAMILIES_1D.index("exponential")
    assert np.all(np.isnan(params[one_param, 1])) and not np.isnan(params[~one_param]).any()
    mean, cov = sample_moments(clouds)
    true_mean, true_var = clouds.metadata["mean"][:, 0], clouds.metadata["cov"][:, 0, 0]
    assert np.all(np.abs(mean[:, 0] - true_mean) < 6 * np.sqrt(true_var / 8000))
    # Heavy-tailed members (lognormal, exponential) need a looser variance tolerance.
    np.testing.assert_allclose(cov[:, 0, 0], true_var, rtol=0.2)
    betas = clouds.labels == FAMILIES_1D.index("beta")
    real = clouds.points[betas]
    assert real.min() >= 0 and real.max() <= 1


def test_synthetic_is_deterministic_with_variable_sizes():
    a = load_synthetic(family=["gaussians", "boxes"], num_clouds=30, points=50, min_points=10)
    b = load_synthetic(family=["gaussians", "boxes"], num_clouds=30, points=50, min_points=10)
    c = load_synthetic(family=["gaussians", "boxes"], num_clouds=30, points=50, min_points=10,
                       seed=1)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)
    assert a.sizes.min() >= 10 and a.sizes.max() <= 50 and len(set(a.sizes.tolist())) > 5
    assert a.label_names == ("gaussians", "boxes")
    # A key of one family is NaN for clouds of the other.
    is_box = a.labels == 1
    assert np.isnan(a.metadata["low"][~is_box]).all()
    assert not np.isnan(a.metadata["low"][is_box]).any()


@pytest.mark.parametrize("options, message", [
    ({"family": "gausians"}, "Did you mean 'gaussians'"),
    ({"family": "beta", "dim": 2}, "one-dimensional; set dim: 1"),
    ({"min_points": 200}, "min_points"),
    ({"scale": [0.5, 0.1]}, "scale"),
    ({"family": ["normal", "normal"]}, "listed twice"),
])
def test_synthetic_option_errors(options, message):
    with pytest.raises(ValueError, match=message):
        load_synthetic(num_clouds=3, **options)


# --------------------------------------------------------------------------- shapes


def unit_frame(clouds: PointClouds, i: int) -> np.ndarray:
    """Cloud ``i`` rotated and scaled back to its unit shape."""
    x, _ = clouds.cloud(i)
    return x @ clouds.metadata["rotation"][i] / clouds.metadata["scale"][i]


def surface_residual(name: str, p: np.ndarray) -> np.ndarray:
    """Distance-like residual of unit-frame points ``p [n, 3]`` from the named surface."""
    x, y, z = p.T
    radial = np.hypot(x, y)
    if name == "sphere":
        return np.abs(np.linalg.norm(p, axis=1) - 1)
    if name == "ellipsoid":
        return np.abs(np.sum((p / ELLIPSOID_AXES) ** 2, axis=1) - 1)
    if name == "cube":
        return np.abs(np.abs(p).max(axis=1) - 1)
    if name == "torus":
        big, small = TORUS_RADII
        return np.abs(np.hypot(radial - big, z) - small)
    if name == "cylinder":
        side = np.abs(radial - CYLINDER_RADIUS) + np.maximum(np.abs(z) - 1, 0)
        caps = np.abs(np.abs(z) - 1) + np.maximum(radial - CYLINDER_RADIUS, 0)
        return np.minimum(side, caps)
    if name == "cone":
        side = np.abs(radial - (1 - z) / 2) + np.maximum(np.abs(z) - 1, 0)
        base = np.abs(z + 1) + np.maximum(radial - 1, 0)
        return np.minimum(side, base)
    if name == "pyramid":
        side = np.abs(np.maximum(np.abs(x), np.abs(y)) - (1 - z) / 2)
        base = np.abs(z + 1) + np.maximum(np.maximum(np.abs(x), np.abs(y)) - 1, 0)
        return np.minimum(side, base)
    if name == "capsule":
        core = np.clip(z, -0.5, 0.5)  # nearest point of the axis segment
        return np.abs(np.hypot(radial, z - core) - 0.5)
    raise AssertionError(name)


def test_shape_points_lie_on_their_surfaces():
    clouds = load_shapes(num_clouds=48, points=400, seed=2)
    names = clouds.label_names
    assert set(clouds.labels.tolist()) == set(range(len(names)))  # every shape drawn
    for i in range(len(clouds)):
        residual = surface_residual(names[clouds.labels[i]], unit_frame(clouds, i))
        assert residual.max() < 1e-5, names[clouds.labels[i]]
    spheres = np.flatnonzero(clouds.labels == names.index("sphere"))
    for i in spheres:  # radius equals the scale, whatever the rotation
        radii = np.linalg.norm(clouds.cloud(i)[0], axis=1)
        np.testing.assert_allclose(radii, clouds.metadata["scale"][i], rtol=1e-5)


def test_shape_metadata_scales_and_rotations():
    clouds = load_shapes(num_clouds=40, points=50, scale=(0.5, 2.0), min_points=20)
    scale, rotation = clouds.metadata["scale"], clouds.metadata["rotation"]
    assert scale.min() >= 0.5 and scale.max() <= 2.0
    np.testing.assert_allclose(rotation @ np.swapaxes(rotation, 1, 2),
                               np.broadcast_to(np.eye(3), rotation.shape), atol=1e-10)
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-10)
    assert clouds.sizes.min() >= 20 and clouds.sizes.max() <= 50
    fixed = load_shapes(num_clouds=4, points=50, rotate=False)
    assert np.all(fixed.metadata["rotation"] == np.eye(3))
    again = load_shapes(num_clouds=40, points=50, scale=(0.5, 2.0), min_points=20)
    np.testing.assert_array_equal(again.points, clouds.points)


def part_fraction(name: str, inside) -> float:
    clouds = load_shapes(shapes=[name], num_clouds=1, points=40000, rotate=False,
                         scale=(1.0, 1.0), seed=7)
    return float(np.mean(inside(clouds.cloud(0)[0])))


def test_shape_sampling_is_uniform_in_area():
    r = CYLINDER_RADIUS
    caps = part_fraction("cylinder", lambda p: np.abs(np.abs(p[:, 2]) - 1) < 1e-6)
    assert caps == pytest.approx(2 * np.pi * r**2 / (2 * np.pi * r**2 + 4 * np.pi * r), abs=0.015)
    base = part_fraction("cone", lambda p: np.abs(p[:, 2] + 1) < 1e-6)
    assert base == pytest.approx(np.pi / (np.pi + np.pi * np.sqrt(5)), abs=0.015)
    # Outer half of the torus (cos(theta) > 0) has area (pi R + 2 r) / (2 pi R) of the total.
    big, small = TORUS_RADII
    outer = part_fraction("torus", lambda p: np.hypot(p[:, 0], p[:, 1]) > big)
    assert outer == pytest.approx((np.pi * big + 2 * small) / (2 * np.pi * big), abs=0.015)
    # On a sphere z is uniform in [-1, 1] (Archimedes): a quarter of the points have z > 0.5.
    cap = part_fraction("sphere", lambda p: p[:, 2] > 0.5)
    assert cap == pytest.approx(0.25, abs=0.015)
    # Ellipsoid: compare with the area of |x| > 0.5 integrated from the parametric area element
    # (a stretched uniform sphere would put 0.50 of the points there instead of 0.45).
    a, b, c = ELLIPSOID_AXES
    theta, phi = np.meshgrid((np.arange(400) + 0.5) * np.pi / 400,
                             (np.arange(800) + 0.5) * np.pi / 400, indexing="ij")
    sin, cos = np.sin(theta), np.cos(theta)
    area = sin * np.sqrt((b * c * sin * np.cos(phi)) ** 2 + (a * c * sin * np.sin(phi)) ** 2
                         + (a * b * cos) ** 2)
    far = np.abs(a * sin * np.cos(phi)) > 0.5
    ends = part_fraction("ellipsoid", lambda p: np.abs(p[:, 0]) > 0.5)
    assert ends == pytest.approx(area[far].sum() / area.sum(), abs=0.015)


def test_shape_noise_and_errors():
    noisy = load_shapes(shapes=["sphere"], num_clouds=2, points=200, noise=0.05, rotate=False)
    radii = np.linalg.norm(noisy.cloud(0)[0], axis=1) / noisy.metadata["scale"][0]
    assert 0.01 < np.abs(radii - 1).mean() < 0.1
    with pytest.raises(ValueError, match="Did you mean 'sphere'"):
        load_shapes(shapes=["spere"])
    with pytest.raises(ValueError, match="noise"):
        load_shapes(noise=-1.0)


# --------------------------------------------------------------------------- user files


def assert_same_clouds(a: PointClouds, b: PointClouds):
    np.testing.assert_array_equal(a.sizes, b.sizes)
    for i in range(len(a)):
        np.testing.assert_allclose(a.cloud(i)[0], b.cloud(i)[0], rtol=1e-6)
        np.testing.assert_allclose(a.cloud(i)[1], b.cloud(i)[1], rtol=1e-6)


def some_clouds(count: int = 5, dim: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    clouds = [rng.normal(size=(n, dim)) for n in rng.integers(2, 9, count)]
    weights = [rng.uniform(0.1, 1, len(c)) for c in clouds]
    return clouds, weights


def test_npz_ragged_with_sizes_or_offsets(tmp_path):
    clouds, weights = some_clouds()
    sizes = np.array([len(c) for c in clouds])
    points, mass = np.concatenate(clouds), np.concatenate(weights)
    expected = PointClouds.from_list(clouds, weights, labels=[0, 1, 0, 1, 1], label_names="ab")
    np.savez(tmp_path / "s.npz", points=points, sizes=sizes, weights=mass,
             labels=[0, 1, 0, 1, 1], label_names=["a", "b"])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    np.savez(tmp_path / "o.npz", points=points, offsets=starts, weights=mass,
             labels=np.array(["a", "b", "a", "b", "b"]))
    np.savez(tmp_path / "c.npz", points=points, offsets=np.append(starts, len(points)),
             weights=mass, labels=[0, 1, 0, 1, 1], label_names=["a", "b"])
    for name in ("s", "o", "c"):
        got = load_files(tmp_path / f"{name}.npz")
        assert_same_clouds(got, expected)
        assert got.labels.tolist() == [0, 1, 0, 1, 1] and got.label_names == ("a", "b")
    uniform = load_files(_save(tmp_path / "u.npz", points=points, sizes=sizes))
    np.testing.assert_allclose(uniform.cloud(0)[1], 1 / sizes[0], rtol=1e-6)


def _save(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_padded_with_weights_or_sizes(tmp_path):
    clouds, weights = some_clouds(seed=1)
    padded = PointClouds.from_list(clouds, weights).pad_to(12)
    by_weights = load_files(_save(tmp_path / "w.npz", points=padded.points,
                                  weights=padded.weights))
    assert_same_clouds(by_weights, padded)
    by_sizes = load_files(_save(tmp_path / "s.npz", points=padded.points, sizes=padded.sizes))
    np.testing.assert_array_equal(by_sizes.sizes, padded.sizes)
    full = load_files(_save(tmp_path / "f.npz", points=padded.points))
    assert full.sizes.tolist() == [12] * len(clouds)


def test_npy_directory_in_sorted_order_with_weights_and_class_labels(tmp_path):
    clouds, weights = some_clouds(count=4, dim=2, seed=2)
    flat = tmp_path / "flat"
    flat.mkdir()
    for name, x in zip(["b", "a", "d", "c"], clouds, strict=True):
        np.save(flat / f"{name}.npy", x)
    np.save(flat / "d.weights.npy", weights[2])
    got = load_files(flat)
    assert got.metadata["file"].tolist() == ["a.npy", "b.npy", "c.npy", "d.npy"]
    np.testing.assert_allclose(got.cloud(0)[0], clouds[1], rtol=1e-6)
    np.testing.assert_allclose(got.cloud(3)[1], weights[2] / weights[2].sum(), rtol=1e-6)
    np.testing.assert_allclose(got.cloud(0)[1], 1 / len(clouds[1]), rtol=1e-6)
    assert got.labels is None
    classes = tmp_path / "classes"
    for label, name, x in zip(["cat", "cat", "ant", "dog"], "wxyz", clouds, strict=True):
        (classes / label).mkdir(parents=True, exist_ok=True)
        np.save(classes / label / f"{name}.npy", x)
    got = load_files(classes)
    assert got.label_names == ("ant", "cat", "dog")
    assert got.labels.tolist() == [0, 1, 1, 2]
    assert got.metadata["file"].tolist() == ["ant/y.npy", "cat/w.npy", "cat/x.npy", "dog/z.npy"]


def test_pickled_objects_are_refused(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((3, 2)), np.zeros((4, 2))
    np.savez(tmp_path / "objects.npz", points=ragged, sizes=[1, 1])
    with pytest.raises(ValueError, match="'points' is an object array; .*allow_pickle=False"):
        load_files(tmp_path / "objects.npz")
    directory = tmp_path / "dir"
    directory.mkdir()
    np.save(directory / "a.npy", np.zeros((3, 2)))
    np.save(directory / "b.npy", ragged, allow_pickle=True)
    with pytest.raises(ValueError, match="b.npy: holds an object array"):
        load_files(directory)


@pytest.mark.parametrize("arrays, message", [
    (dict(points=np.zeros((5, 2)), sizes=[2, 2]), "add up to 4 points but 'points' holds 5"),
    (dict(points=np.zeros((5, 2))), "no 'sizes' or 'offsets'"),
    (dict(points=np.zeros((5, 2)), sizes=[2, 3], offsets=[0, 2]), "keep one of them"),
    (dict(points=np.zeros((5, 2)), offsets=[1, 3]), "offsets\\[0\\] is 1"),
    (dict(points=np.zeros((5, 2)), offsets=[0, 3, 2]), "cloud 1 has a negative size"),
    (dict(points=np.ones((5, 2)), sizes=[2, 0, 3]), "cloud 1 is empty"),
    (dict(points=np.ones((5, 2)), sizes=[2, 3], weights=np.ones(4)), "'weights' has shape"),
    (dict(points=np.ones((5, 2)), sizes=[2, 3], weights=[1, 1, 0, 0, 0]),
     "weights of cloud 1 are all zero"),
    (dict(points=np.where(np.arange(10).reshape(5, 2) == 7, np.nan, 1.0), sizes=[2, 2, 1]),
     "cloud 1: point 1 has a NaN"),
    (dict(points=np.ones((5, 2)), sizes=[2, 3], labels=[0, 3], label_names=["a", "b"]),
     "cloud 1 has label 3"),
    (dict(points=np.ones((5, 2)), sizes=[2, 3], labels=[0]), "'labels' has shape"),
    (dict(points=np.ones((5, 2)), sizes=[2, 3], wieghts=np.ones(5)), "unknown item.*wieghts"),
    (dict(points=np.ones((5, 2)), sizes=[2, 3], **{"metadata.id": [1, 2, 3]}),
     "metadata 'id' has 3 rows for 2 clouds"),
    (dict(sizes=[2, 3]), "no 'points' array"),
    (dict(points=np.ones((2, 3, 2)), sizes=[3, 4]), "'sizes' must be \\[2\\] integers"),
])
def test_malformed_npz_errors_name_the_file_and_item(tmp_path, arrays, message):
    path = _save(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message) as err:
        load_files(path)
    assert str(path) in str(err.value)


def test_malformed_npy_directory_errors_name_the_file(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir()
    np.save(directory / "a.npy", np.zeros((3, 2)))
    np.save(directory / "b.npy", np.zeros((3, 3)))
    with pytest.raises(ValueError, match="b.npy: cloud 1 has dimension 3, but cloud 0"):
        load_files(directory)
    np.save(directory / "b.npy", np.full((3, 2), np.inf))
    with pytest.raises(ValueError, match="b.npy: cloud 1: point 0 has a NaN or infinite"):
        load_files(directory)
    np.save(directory / "b.npy", np.zeros((3, 2)))
    np.save(directory / "b.weights.npy", np.ones(4))
    with pytest.raises(ValueError, match="b.npy: weights of cloud 1 have shape"):
        load_files(directory)
    np.save(directory / "c.weights.npy", np.ones(3))
    with pytest.raises(ValueError, match="c.weights.npy: weights without a cloud"):
        load_files(directory)


def test_files_loader_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_files(tmp_path / "missing.npz")
    np.save(tmp_path / "one.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"one.npy: a single .npy file is read as padded "
                                         r"clouds \[N, n, d\].*shape \(3, 2\)"):
        load_files(tmp_path / "one.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no .npy clouds found"):
        load_files(tmp_path / "empty")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz: not a readable .npz file"):
        load_files(tmp_path / "junk.npz")


def _damage_compressed_member(path: Path, member: str) -> None:
    """Overwrite the start of a deflated member's data with an invalid deflate block header."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
        assert info.compress_type == zipfile.ZIP_DEFLATED
    data = bytearray(path.read_bytes())
    start = info.header_offset
    name_length, extra_length = struct.unpack("<HH", data[start + 26:start + 30])
    offset = start + 30 + name_length + extra_length
    data[offset:offset + 4] = b"\xff\xff\xff\xff"  # block type 3: reserved, invalid
    path.write_bytes(bytes(data))


def test_damaged_compressed_npz_is_not_readable_naming_the_file_and_item(tmp_path):
    path = save_clouds_npz(tmp_path / "damaged.npz", load_shapes(num_clouds=4, points=16))
    _damage_compressed_member(path, "points.npy")
    with pytest.raises(ValueError, match=r"damaged.npz: not a readable .npz file: item "
                                         r"'points' is damaged \(error: "):
        load_files(path)


def test_a_text_file_named_npz_is_not_reported_as_pickled_data(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("points, sizes\n1.0, 2.0\n")
    with pytest.raises(ValueError, match="x.npz: not a readable .npz file") as err:
        load_files(path)
    assert "pickle" not in str(err.value)
    np.save(tmp_path / "array.npy", np.zeros((3, 2)))
    (tmp_path / "array.npy").rename(tmp_path / "renamed.npz")
    with pytest.raises(ValueError, match="renamed.npz: not a readable .npz file"):
        load_files(tmp_path / "renamed.npz")


def test_save_clouds_npz_round_trip(tmp_path):
    original = load_synthetic(family=["gaussians", "boxes"], num_clouds=6, points=30,
                              min_points=5)
    original = PointClouds(original.points, original.weights, original.sizes, original.labels,
                           original.label_names,
                           {**original.metadata, "split": np.array(["train", "test"] * 3)})
    path = save_clouds_npz(tmp_path / "out" / "clouds.npz", original)
    again = load_files(path)
    assert_same_clouds(again, original)
    assert again.labels.tolist() == original.labels.tolist()
    assert again.label_names == original.label_names
    assert set(again.metadata) == set(original.metadata)
    for key, value in original.metadata.items():
        np.testing.assert_array_equal(again.metadata[key], value)
    with_objects = PointClouds(original.points, original.weights, original.sizes,
                               metadata={"obj": np.array([None] * 6, dtype=object)})
    with pytest.raises(ValueError, match="metadata 'obj' holds Python objects"):
        save_clouds_npz(tmp_path / "bad.npz", with_objects)


def test_files_through_the_config(tmp_path):
    path = save_clouds_npz(tmp_path / "c.npz", load_shapes(num_clouds=20, points=32))
    clouds = load_clouds(DataConfig(name="files", path=str(path)))
    assert len(clouds) == 20 and clouds.dim == 3
