"""MNIST and Fashion-MNIST from their standard IDX files, as weighted pixel clouds.

Files
  Each split is a pair of IDX files, gzipped (``.gz``) or raw::

    train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]   split "train" (60,000)
    t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]    split "test"  (10,000)

  Whatever requested split is present is loaded; ``metadata["split"]`` records it ("train" or
  "test", for ``data.split: official``) and ``metadata["index"]`` the image's position in its
  file.

Where the files are looked for, in this order (``<name>`` is ``mnist`` or ``fashion_mnist``)
  1. ``data.path`` (a directory);
  2. ``$WORMHOLE_DATA/<name>``;
  3. the cache, ``$XDG_CACHE_HOME/wormhole/<name>`` or ``~/.cache/wormhole/<name>``;
  4. Fashion-MNIST only: ``/usr/share/datasets/fashion-mnist`` (Debian package
     ``dataset-fashion-mnist``).

  The first directory holding the images of a requested split is used. When none does, the
  gzipped files are downloaded into the cache from the standard public mirror, or from the base
  URL in ``$WORMHOLE_MNIST_URL`` / ``$WORMHOLE_FASHION_MNIST_URL`` (any URL urllib opens,
  ``file://`` included). Each file is downloaded to a temporary name, checked, then renamed, so
  an interrupted or corrupt download never leaves a file in the cache. Offline, the loader stops
  with a message listing the directories searched and the file names expected.

IDX format (http://yann.lecun.com/exdb/mnist/)
  Four magic bytes ``00 00 <type> <ndim>`` (type ``08`` unsigned byte, ``09`` signed byte,
  ``0B`` int16, ``0C`` int32, ``0D`` float32, ``0E`` float64), then ``ndim`` big-endian uint32
  sizes, then the values in C order, big-endian.

Clouds
  A pixel becomes a point when its intensity is above ``threshold`` times the data set's
  maximum; its weight is its intensity and its coordinates lie in ``[0, 1]^2`` (see
  :func:`wormhole.data.images.images_to_clouds`). ``threshold=0.5`` keeps about 105 points per
  MNIST digit, the setting of the Wormhole paper (Haviv et al., 2024).
"""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import tempfile
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from wormhole.data.clouds import PointClouds
from wormhole.data.images import images_to_clouds

__all__ = ["FASHION_MNIST_LABELS", "cache_dir", "load_fashion_mnist", "load_mnist", "read_idx"]

FASHION_MNIST_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                        "Sneaker", "Bag", "Ankle boot")

SPLITS = {"train": "train", "test": "t10k"}  # split name -> file name prefix

_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class _Source(NamedTuple):
    """Where one IDX data set lives and what its labels mean."""

    name: str
    title: str
    url: str
    url_env: str
    label_names: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()


MNIST = _Source("mnist", "MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "WORMHOLE_MNIST_URL", tuple(str(d) for d in range(10)))
FASHION_MNIST = _Source("fashion_mnist", "Fashion-MNIST",
                        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                        "WORMHOLE_FASHION_MNIST_URL", FASHION_MNIST_LABELS,
                        ("/usr/share/datasets/fashion-mnist",))


# --------------------------------------------------------------------------- IDX parsing


def _open(path: Path):
    """A binary reader of ``path``, decompressing when the file starts with the gzip magic."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_idx(path: str | Path, limit: int | None = None) -> tuple[np.ndarray, tuple[int, ...]]:
    """The first ``limit`` items of an IDX file (all when ``None``) and the header's sizes."""
    path = Path(path)
    try:
        with _open(path) as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_TYPES \
                    or magic[3] == 0:
                raise ValueError(f"{path}: not an IDX file (first bytes {magic.hex(' ')!r}; "
                                 f"expected 00 00 <type> <ndim>).")
            ndim = magic[3]
            header = f.read(4 * ndim)
            if len(header) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header ({ndim} sizes declared, "
                                 f"{len(header) // 4} present).")
            dims = tuple(int(d) for d in np.frombuffer(header, ">u4"))
            dtype = np.dtype(_IDX_TYPES[magic[2]])
            count = dims[0] if limit is None else min(limit, dims[0])
            shape = (count, *dims[1:])
            expected = int(np.prod(shape)) * dtype.itemsize
            data = f.read(expected)
            if len(data) < expected:
                raise ValueError(f"{path}: truncated; the header declares shape {dims} but the "
                                 f"file ends after {len(data)} of the {expected} data bytes "
                                 f"needed for {count} items.")
            if limit is None and f.read(1):
                raise ValueError(f"{path}: corrupt; the file holds more data than the shape "
                                 f"{dims} declared in its header.")
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: cannot be read as an IDX file ({err}); the file is corrupt "
                         f"or truncated, delete it and fetch it again.") from err
    array = np.frombuffer(data, dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("=")), dims


def read_idx(path: str | Path, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or raw) into an array of its declared shape and type.

    Args:
      path: the file.
      limit: read only the first ``limit`` items along the first axis.

    Raises:
      ValueError: naming the file when it is not IDX, truncated or has trailing data.
    """
    return _read_idx(path, limit)[0]


# --------------------------------------------------------------------------- finding files


def cache_dir(name: str) -> Path:
    """The download cache of data set ``name``: ``$XDG_CACHE_HOME/wormhole/<name>``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "wormhole" / name


def _file_name(split: str, kind: str) -> str:
    return f"{SPLITS[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"


def _find(directory: Path, split: str, kind: str) -> Path | None:
    name = _file_name(split, kind)
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _search_dirs(source: _Source, path: str | None) -> list[tuple[Path, str]]:
    """Candidate directories, in search order, each with where it came from."""
    dirs: list[tuple[Path, str]] = []
    if path:
        given = Path(path).expanduser()
        dirs.append((given.parent if given.is_file() else given, "data.path"))
    if os.environ.get("WORMHOLE_DATA"):
        dirs.append((Path(os.environ["WORMHOLE_DATA"]) / source.name, "$WORMHOLE_DATA"))
    dirs.append((cache_dir(source.name), "cache"))
    dirs.extend((Path(d), "system") for d in source.system_dirs)
    unique, seen = [], set()
    for directory, origin in dirs:
        if directory not in seen:
            seen.add(directory)
            unique.append((directory, origin))
    return unique


def _download(source: _Source, splits: Sequence[str], directory: Path) -> None:
    """Fetch the gzipped files of ``splits`` into ``directory``, labels before images.

    Labels come first so that a directory holding an images file always holds its labels,
    whatever step a failed download stopped at.
    """
    base = os.environ.get(source.url_env) or source.url
    directory.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for kind in ("labels", "images"):
            name = f"{_file_name(split, kind)}.gz"
            target = directory / name
            if target.is_file():
                continue
            url = f"{base.rstrip('/')}/{name}"
            handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.",
                                                 suffix=".part")
            try:
                with os.fdopen(handle, "wb") as out, \
                        urllib.request.urlopen(url, timeout=60) as response:
                    shutil.copyfileobj(response, out)
                _read_idx(temporary)  # a truncated or corrupt download never enters the cache
                os.replace(temporary, target)
            except (OSError, ValueError, http.client.HTTPException) as err:
                raise OSError(f"downloading {url} failed: {err}") from err
            finally:
                Path(temporary).unlink(missing_ok=True)


def _not_found(source: _Source, searched: list[tuple[Path, str]], splits: Sequence[str],
               reason: str) -> FileNotFoundError:
    where = "\n".join(f"  {directory}  ({origin})" for directory, origin in searched)
    files = ", ".join(f"{_file_name(s, k)}.gz" for s in splits for k in ("images", "labels"))
    return FileNotFoundError(
        f"{source.title} files not found. Searched:\n{where}\n{reason}\n"
        f"Put {files} (gzipped or not) in one of these directories, or set data.path (or "
        f"$WORMHOLE_DATA, which is searched as $WORMHOLE_DATA/{source.name}) to where they are.")


# --------------------------------------------------------------------------- loading


def _check_splits(splits: str | Sequence[str]) -> list[str]:
    chosen = [splits] if isinstance(splits, str) else list(splits)
    for split in chosen:
        if split not in SPLITS:
            raise ValueError(f"data.options.splits: unknown split {split!r}; choose from "
                             f"{', '.join(SPLITS)}.")
    if not chosen:
        raise ValueError("data.options.splits: no split requested; use train and/or test.")
    return sorted(set(chosen), key=list(SPLITS).index)


def _load(source: _Source, path: str | None, threshold: float, splits: str | Sequence[str],
          limit: int | None, download: bool) -> PointClouds:
    splits = _check_splits(splits)
    if limit is not None and limit < 1:
        raise ValueError(f"data.options.limit: must be a positive number of images, got {limit}.")
    searched = _search_dirs(source, path)
    found = next((d for d, _ in searched if any(_find(d, s, "images") for s in splits)), None)
    if found is None:
        if not download:
            raise _not_found(source, searched, splits, "Downloading is switched off "
                             "(data.options.download: false).")
        cache = cache_dir(source.name)
        try:
            _download(source, splits, cache)
        except OSError as err:
            raise _not_found(source, searched, splits, f"The download into {cache} failed "
                             f"(offline?): {err}") from None
        found = cache
    images, labels, split_names, index = [], [], [], []
    for split in splits:
        image_file = _find(found, split, "images")
        if image_file is None:
            continue
        label_file = _find(found, split, "labels")
        if label_file is None:
            raise FileNotFoundError(f"{image_file} has no labels beside it; expected "
                                    f"{found / _file_name(split, 'labels')}[.gz].")
        pixels, image_dims = _read_idx(image_file, limit)
        targets, label_dims = _read_idx(label_file, limit)
        if pixels.ndim != 3:
            raise ValueError(f"{image_file}: expected images [N, H, W], got shape {image_dims}.")
        if targets.ndim != 1:
            raise ValueError(f"{label_file}: expected labels [N], got shape {label_dims}.")
        if image_dims[0] != label_dims[0]:
            raise ValueError(f"{image_file} holds {image_dims[0]} images but {label_file} holds "
                             f"{label_dims[0]} labels.")
        if targets.size and targets.max() >= len(source.label_names):
            raise ValueError(f"{label_file}: label {int(targets.max())} is out of range for "
                             f"{source.title}'s {len(source.label_names)} classes.")
        images.append(pixels)
        labels.append(targets.astype(np.int32))
        split_names.append(np.full(len(pixels), split))
        index.append(np.arange(len(pixels), dtype=np.int32))
    return images_to_clouds(np.concatenate(images), np.concatenate(labels), threshold,
                            label_names=source.label_names,
                            metadata={"split": np.concatenate(split_names),
                                      "index": np.concatenate(index)})


def load_mnist(path: str | None = None, seed: int = 0, threshold: float = 0.5,
               splits: str | Sequence[str] = ("train", "test"), limit: int | None = None,
               download: bool = True) -> PointClouds:
    """MNIST digits as pixel clouds (about 105 points each at ``threshold=0.5``), labelled 0-9.

    Args:
      path: directory holding the IDX files (see the module docstring for the search order).
      seed: unused (the data are fixed).
      threshold: keep pixels above this fraction of the maximum intensity, in ``[0, 1)``.
      splits: ``"train"``, ``"test"`` or both; the ones present are loaded.
      limit: keep only the first ``limit`` images of each split (less memory, faster).
      download: fetch missing files into the cache (``False``: fail instead).
    """
    return _load(MNIST, path, threshold, splits, limit, download)


def load_fashion_mnist(path: str | None = None, seed: int = 0, threshold: float = 0.5,
                       splits: str | Sequence[str] = ("train", "test"),
                       limit: int | None = None, download: bool = True) -> PointClouds:
    """Fashion-MNIST articles as pixel clouds, labelled with :data:`FASHION_MNIST_LABELS`.

    Arguments as for :func:`load_mnist`; ``/usr/share/datasets/fashion-mnist`` is also searched.
    """
    return _load(FASHION_MNIST, path, threshold, splits, limit, download)
