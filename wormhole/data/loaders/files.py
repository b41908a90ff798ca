"""The user's own point clouds, from one ``.npz`` file or a directory of ``.npy`` files.

Files are read with ``allow_pickle=False``: a data file can never run code, so object arrays
(pickled Python objects) are refused. Every error names the file and the offending item.

One ``.npz`` file, ragged form (what :func:`save_clouds_npz` writes)
  ``points``       ``[total, d]`` the points of all clouds, concatenated cloud after cloud
  ``sizes``        ``[N]`` points of each cloud (sum ``total``), or instead
  ``offsets``      ``[N]`` index in ``points`` where each cloud starts (the first is 0); an
                   ``[N + 1]`` form ending with ``total`` is also accepted
  ``weights``      optional ``[total]`` non-negative weights, normalised per cloud (default
                   uniform)
  ``labels``       optional ``[N]`` integer labels, or strings (then ``label_names`` defaults
                   to the sorted distinct strings)
  ``label_names``  optional ``[K]`` strings naming label values ``0 .. K-1``
  ``metadata.<key>`` optional per-cloud arrays ``[N, ...]`` of numbers or strings

One ``.npz`` file, padded form
  ``points``       ``[N, n, d]``
  ``weights``      optional ``[N, n]``; trailing zero-weight points of a row are padding
  ``sizes``        optional ``[N]``: real points at the start of each row (the rest is padding)
  ``labels``, ``label_names``, ``metadata.<key>`` as above

One ``.npy`` file, padded and memory-mapped (for data sets larger than memory)
  ``name.npy``         ``[N, n, d]`` float coordinates, read from disk a batch at a time
                       (:class:`~wormhole.data.mapped.MappedPoints`)
  ``name.weights.npy`` optional ``[N, n]`` weights in memory; trailing zero-weight points of a
                       row are padding (default: every row's ``n`` points, uniform)
  ``name.labels.npy``  optional ``[N]`` integer labels
  :func:`save_clouds_npy` writes this form.

A directory of ``.npy`` files
  One cloud per file, ``[n_i, d]``, in sorted file-name order. Weights of ``name.npy``, if
  any, are in ``name.weights.npy`` (``[n_i]``). Clouds may instead sit in subdirectories, one per
  class: the subdirectory names (sorted) become the label names. ``metadata["file"]`` records
  each cloud's path relative to the directory.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from wormhole.atomic import replaced_atomically
from wormhole.data.clouds import PointClouds, validate_clouds
from wormhole.data.mapped import MappedPoints

__all__ = ["load_files", "save_clouds_npy", "save_clouds_npz"]

WEIGHTS_SUFFIX = ".weights.npy"
LABELS_SUFFIX = ".labels.npy"
_NPZ_KEYS = ("points", "sizes", "offsets", "weights", "labels", "label_names")
_PICKLE_HINT = ("wormhole reads data with allow_pickle=False, because a pickled object can run "
                "code when loaded; save plain numeric or string arrays instead")


def _load_npy(file: Path, mmap_mode: str | None = None) -> np.ndarray:
    try:
        return np.load(file, allow_pickle=False, mmap_mode=mmap_mode)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"{file}: holds an object array; {_PICKLE_HINT}.") from None
        raise ValueError(f"{file}: not a readable .npy file ({err}).") from None
    except (OSError, EOFError) as err:
        raise ValueError(f"{file}: not a readable .npy file ({err}).") from None


def _read_npz(file: Path) -> dict[str, np.ndarray]:
    # np.load guesses the format from the first bytes and reads anything it does not
    # recognise as a pickle, so a text file would be reported as "pickled data": check that
    # the file is a zip archive (what numpy.savez writes) before numpy looks at it.
    if not zipfile.is_zipfile(file):
        raise ValueError(f"{file}: not a readable .npz file (not a zip archive; an .npz file "
                         f"is what numpy.savez or numpy.savez_compressed writes).")
    try:
        archive = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{file}: not a readable .npz file ({err}).") from None
    items = {}
    with archive:
        for key in archive.files:
            try:
                items[key] = archive[key]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise ValueError(f"{file}: item '{key}' is an object array; "
                                     f"{_PICKLE_HINT}.") from None
                raise ValueError(f"{file}: not a readable .npz file: item '{key}' cannot be "
                                 f"read ({err}).") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                # zlib.error: the compressed data of a member are damaged.
                raise ValueError(f"{file}: not a readable .npz file: item '{key}' is damaged "
                                 f"({type(err).__name__}: {err}).") from None
    return items


def _labels(labels, names, count: int, file: Path):
    """Integer labels and their names from an .npz file's ``labels`` and ``label_names``."""
    if names is not None:
        names = np.asarray(names)
        if names.ndim != 1 or names.dtype.kind != "U":
            raise ValueError(f"{file}: 'label_names' must be a 1-D array of strings, got "
                             f"{names.dtype} of shape {names.shape}.")
        names = [str(n) for n in names]
    if labels is None:
        if names is not None:
            raise ValueError(f"{file}: has 'label_names' but no 'labels'.")
        return None, None
    if labels.shape != (count,):
        raise ValueError(f"{file}: 'labels' has shape {labels.shape}; expected [{count}], one "
                         f"per cloud.")
    if labels.dtype.kind == "U":
        names = names if names is not None else sorted(set(labels.tolist()))
        unknown = sorted(set(labels.tolist()) - set(names))
        if unknown:
            raise ValueError(f"{file}: labels {unknown} are not in 'label_names'.")
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[v] for v in labels.tolist()], np.int32), names
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{file}: 'labels' must be integers or strings, got {labels.dtype}.")
    top = len(names) if names is not None else np.iinfo(np.int32).max
    bad = np.nonzero((labels < 0) | (labels >= top))[0]
    if len(bad):
        allowed = f"0..{top - 1}" if names is not None else "non-negative values"
        raise ValueError(f"{file}: cloud {bad[0]} has label {int(labels[bad[0]])}; labels must be "
                         f"{allowed}.")
    return labels.astype(np.int32), names


def _ragged_sizes(items: dict, total: int, file: Path) -> np.ndarray:
    if "sizes" in items and "offsets" in items:
        raise ValueError(f"{file}: has both 'sizes' and 'offsets'; keep one of them.")
    if "sizes" in items:
        sizes = np.asarray(items["sizes"])
        if sizes.ndim != 1 or sizes.dtype.kind not in "iu":
            raise ValueError(f"{file}: 'sizes' must be a 1-D integer array, got {sizes.dtype} "
                             f"of shape {sizes.shape}.")
    elif "offsets" in items:
        offsets = np.asarray(items["offsets"])
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu" or len(offsets) == 0:
            raise ValueError(f"{file}: 'offsets' must be a non-empty 1-D integer array, got "
                             f"{offsets.dtype} of shape {offsets.shape}.")
        if offsets[0] != 0:
            raise ValueError(f"{file}: offsets[0] is {int(offsets[0])}; the first cloud must "
                             f"start at 0.")
        ends = offsets if offsets[-1] == total and len(offsets) > 1 else np.append(offsets, total)
        sizes = np.diff(ends)
    else:
        raise ValueError(f"{file}: 'points' is [total, d] = {(total, '...')} but there is no "
                         f"'sizes' or 'offsets' saying where each cloud starts; add sizes=[N] "
                         f"(sizes=[{total}] for a single cloud).")
    if np.any(sizes < 0):
        bad = int(np.argmax(sizes < 0))
        raise ValueError(f"{file}: cloud {bad} has a negative size ({int(sizes[bad])}); offsets "
                         f"must not decrease.")
    if int(sizes.sum()) != total:
        raise ValueError(f"{file}: the cloud sizes add up to {int(sizes.sum())} points but "
                         f"'points' holds {total}.")
    return sizes.astype(np.int64)


def _load_npz(file: Path) -> PointClouds:
    items = _read_npz(file)
    unknown = [k for k in items if k not in _NPZ_KEYS and not k.startswith("metadata.")]
    if unknown:
        raise ValueError(f"{file}: unknown item(s) {unknown}; expected {', '.join(_NPZ_KEYS)} "
                         f"or metadata.<key> (see wormhole.data.loaders.files).")
    if "points" not in items:
        raise ValueError(f"{file}: has no 'points' array (items: {', '.join(items) or 'none'}).")
    points = items["points"]
    weights = items.get("weights")
    if points.ndim == 3:
        count = len(points)
        if "offsets" in items:
            raise ValueError(f"{file}: 'offsets' applies to ragged [total, d] points, but "
                             f"'points' is padded {points.shape}; use 'sizes'.")
        if weights is not None and weights.shape != points.shape[:2]:
            raise ValueError(f"{file}: 'weights' has shape {weights.shape}; padded points "
                             f"{points.shape} need weights {points.shape[:2]}.")
        if "sizes" in items:
            sizes = np.asarray(items["sizes"])
            if (sizes.shape != (count,) or sizes.dtype.kind not in "iu" or np.any(sizes < 0)
                    or np.any(sizes > points.shape[1])):
                raise ValueError(f"{file}: 'sizes' must be [{count}] integers in "
                                 f"0..{points.shape[1]}, got {sizes.tolist()[:10]}.")
            clouds = [x[:s] for x, s in zip(points, sizes, strict=True)]
            masses = None
            if weights is not None:
                masses = [w[:s] for w, s in zip(weights, sizes, strict=True)]
        elif weights is not None:
            clouds, masses = [], []
            for x, w in zip(points, weights, strict=True):
                real = np.nonzero(w)[0]
                size = real[-1] + 1 if len(real) else len(w)
                clouds.append(x[:size])
                masses.append(w[:size])
        else:
            clouds, masses = list(points), None
    elif points.ndim == 2:
        sizes = _ragged_sizes(items, len(points), file)
        count = len(sizes)
        if weights is not None and weights.shape != (len(points),):
            raise ValueError(f"{file}: 'weights' has shape {weights.shape}; ragged points "
                             f"{points.shape} need weights [{len(points)}].")
        cuts = np.cumsum(sizes)[:-1]
        clouds = np.split(points, cuts)
        masses = None if weights is None else np.split(weights, cuts)
    else:
        raise ValueError(f"{file}: 'points' has shape {points.shape}; expected ragged "
                         f"[total, d] with sizes, or padded [N, n, d].")
    labels, names = _labels(items.get("labels"), items.get("label_names"), count, file)
    metadata = {k[len("metadata."):]: v for k, v in items.items() if k.startswith("metadata.")}
    try:
        return PointClouds.from_list(clouds, masses, labels=labels, label_names=names,
                                     metadata=metadata)
    except ValueError as err:
        raise ValueError(f"{file}: {err}") from None


def _load_directory(root: Path) -> PointClouds:
    def clouds_in(directory: Path) -> list[Path]:
        files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix == ".npy")
        clouds = [p for p in files if not p.name.endswith(WEIGHTS_SUFFIX)]
        names = {p.name for p in clouds}
        for weights in (p for p in files if p.name.endswith(WEIGHTS_SUFFIX)):
            partner = weights.name[: -len(WEIGHTS_SUFFIX)] + ".npy"
            if partner not in names:
                raise ValueError(f"{weights}: weights without a cloud; expected "
                                 f"{directory / partner}.")
        return clouds

    top = clouds_in(root)
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = [d for d in classes if clouds_in(d)]
    if top and classes:
        raise ValueError(f"{root}: holds both .npy clouds ({top[0].name}, ...) and class "
                         f"subdirectories ({classes[0].name}, ...); put every cloud in a class "
                         f"subdirectory, or none.")
    if classes:
        files = [(f, i) for i, d in enumerate(classes) for f in clouds_in(d)]
    else:
        files = [(f, None) for f in top]
    if not files:
        raise ValueError(f"{root}: no .npy clouds found (expected name.npy files of shape "
                         f"[n, d], or class subdirectories holding them).")
    clouds, masses, dim = [], [], None
    for i, (file, _) in enumerate(files):
        x = _load_npy(file)
        weight_file = file.with_name(file.name[: -len(".npy")] + WEIGHTS_SUFFIX)
        w = _load_npy(weight_file) if weight_file.is_file() else None
        try:
            validate_clouds([x], None if w is None else [w])
        except ValueError as err:
            raise ValueError(f"{file}: {str(err).replace('cloud 0', f'cloud {i}')}") from None
        if dim is None:
            dim = x.shape[1]
        elif x.shape[1] != dim:
            raise ValueError(f"{file}: cloud {i} has dimension {x.shape[1]}, but cloud 0 "
                             f"({files[0][0]}) has dimension {dim}.")
        clouds.append(x)
        masses.append(w if w is not None else np.ones(len(x)))
    labels = None if not classes else np.array([c for _, c in files], np.int32)
    relative = np.array([str(f.relative_to(root)) for f, _ in files])
    return PointClouds.from_list(clouds, masses, labels=labels,
                                 label_names=[d.name for d in classes] if classes else None,
                                 metadata={"file": relative})


def load_files(path: str | None = None, seed: int = 0) -> PointClouds:
    """Clouds from an ``.npz`` file, a padded ``.npy`` file (memory-mapped) or a directory of
    ``.npy`` files (see the module docstring).

    Args:
      path: the ``.npz`` or ``.npy`` file, or the directory.
      seed: unused (the data are fixed).

    Raises:
      FileNotFoundError: if ``path`` does not exist.
      ValueError: naming the file and the offending item when the data are malformed.
    """
    if not path:
        raise ValueError("data.path: the 'files' loader needs a path to an .npz file or a "
                         "directory of .npy files.")
    path = Path(path).expanduser()
    if path.is_dir():
        return _load_directory(path)
    if not path.exists():
        raise FileNotFoundError(f"data.path: {path} does not exist; expected an .npz file or a "
                                f"directory of .npy files.")
    if path.suffix == ".npy":
        return _load_mapped(path)
    return _load_npz(path)


def _sibling(file: Path, suffix: str) -> Path:
    return file.with_name(file.name[: -len(".npy")] + suffix)


def _load_mapped(file: Path) -> PointClouds:
    points = _load_npy(file, mmap_mode="r")
    if points.ndim != 3:
        raise ValueError(f"{file}: a single .npy file is read as padded clouds [N, n, d] "
                         f"(memory-mapped), but it has shape {points.shape}. For one cloud per "
                         f"file, put the .npy clouds in a directory and point data.path at it.")
    if points.dtype.kind != "f":
        raise ValueError(f"{file}: coordinates must be floats, got {points.dtype}.")
    count, length, _ = points.shape
    weight_file = _sibling(file, WEIGHTS_SUFFIX)
    if weight_file.is_file():
        weights = np.asarray(_load_npy(weight_file), np.float64)
        if weights.shape != (count, length):
            raise ValueError(f"{weight_file}: shape {weights.shape}; the clouds {file.name} "
                             f"{points.shape} need weights [{count}, {length}].")
        bad = np.nonzero(~np.all(np.isfinite(weights) & (weights >= 0), axis=1))[0]
        if len(bad):
            raise ValueError(f"{weight_file}: weights of cloud {bad[0]} are negative, NaN or "
                             f"infinite.")
        total = weights.sum(axis=1)
        if np.any(total <= 0):
            raise ValueError(f"{weight_file}: weights of cloud {int(np.argmax(total <= 0))} are "
                             f"all zero; a cloud needs mass.")
        positive = weights > 0
        sizes = length - np.argmax(positive[:, ::-1], axis=1)
        weights = (weights / total[:, None]).astype(np.float32)
    else:
        sizes = np.full(count, length)
        weights = np.full((count, length), 1.0 / length, np.float32)
    sizes = sizes.astype(np.int32)
    real = np.arange(length)[None, :] < sizes[:, None]
    for start in range(0, count, 4096):  # a scan, not a copy: the file stays on disk
        chunk = np.asarray(points[start:start + 4096])
        finite = np.all(np.isfinite(chunk), axis=2) | ~real[start:start + 4096]
        if not finite.all():
            cloud, point = np.argwhere(~finite)[0]
            raise ValueError(f"{file}: cloud {start + cloud}: point {point} has a NaN or "
                             f"infinite coordinate.")
    label_file = _sibling(file, LABELS_SUFFIX)
    labels = _load_npy(label_file) if label_file.is_file() else None
    labels, names = _labels(labels, None, count, label_file)
    return PointClouds(MappedPoints(points, sizes), weights, sizes, labels, names)


def save_clouds_npy(path: str | Path, clouds: PointClouds, chunk: int = 4096) -> Path:
    """Write ``clouds`` as ``path`` (``[N, n, d]``), ``.weights.npy`` and ``.labels.npy``:
    the memory-mapped form :func:`load_files` reads a batch at a time. Written a chunk of
    clouds at a time, so the clouds may themselves be on demand."""
    path = Path(path)
    if path.suffix != ".npy":
        raise ValueError(f"{path}: the memory-mapped form is an .npy file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=clouds.points.shape)
    for start in range(0, len(clouds), chunk):
        out[start:start + chunk] = clouds.points[start:start + chunk]
    out.flush()
    del out
    np.save(_sibling(path, WEIGHTS_SUFFIX), np.asarray(clouds.weights, np.float32))
    if clouds.labels is not None:
        np.save(_sibling(path, LABELS_SUFFIX), np.asarray(clouds.labels))
    return path


def save_clouds_npz(path: str | Path, clouds: PointClouds) -> Path:
    """Write ``clouds`` as a ragged ``.npz`` file that :func:`load_files` reads back.

    Only real points are written (no padding); labels, label names and metadata are kept.
    The file is replaced in one step (:func:`wormhole.atomic.replaced_atomically`).

    Raises:
      ValueError: if a metadata array holds Python objects (they cannot be saved unpickled).
    """
    path = Path(path)
    points, weights = clouds.to_list()
    arrays = {"points": np.concatenate(points), "sizes": np.asarray(clouds.sizes, np.int64),
              "weights": np.concatenate(weights)}
    if clouds.labels is not None:
        arrays["labels"] = np.asarray(clouds.labels)
    if clouds.label_names is not None:
        arrays["label_names"] = np.array(clouds.label_names, dtype=str)
    for key, value in clouds.metadata.items():
        value = np.asarray(value)
        if value.dtype == object:
            raise ValueError(f"metadata '{key}' holds Python objects, which cannot be saved "
                             f"without pickling; convert it to numbers or strings.")
        arrays[f"metadata.{key}"] = value
    with replaced_atomically(path) as temporary, open(temporary, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path
