"""The one way user input becomes :class:`PointClouds`: objects, padded arrays or lists."""

from __future__ import annotations

import jax
import numpy as np

from wormhole.data.clouds import PointClouds

__all__ = ["as_point_clouds", "checked_labels"]


def as_point_clouds(clouds, weights=None, labels=None, what: str = "cloud",
                    labels_name: str = "labels") -> PointClouds:
    """Accept :class:`PointClouds`, a list of ``[n_i, d]`` arrays, or a padded ``[N, n, d]``
    array (with ``weights [N, n]``, zero weight = padding).

    Every cloud is validated (see :func:`~wormhole.data.clouds.validate_clouds`); errors name
    the offending cloud's index. Labels must be non-negative integers (whole floats are read
    as integers) or strings; ``labels_name`` is the argument an error about them names.
    """
    if isinstance(clouds, PointClouds):
        if weights is not None or labels is not None:
            raise ValueError("Pass weights and labels inside the PointClouds, not separately.")
        checked_labels(clouds.labels, "the PointClouds' labels")
        return clouds
    labels = checked_labels(labels, labels_name)
    if isinstance(clouds, np.ndarray | jax.Array) and np.ndim(clouds) == 3:
        return PointClouds.from_padded(np.asarray(clouds), None if weights is None
                                       else np.asarray(weights), labels=labels)
    if isinstance(clouds, np.ndarray | jax.Array) and np.ndim(clouds) == 2:
        raise ValueError(f"Got one 2-D array of shape {np.shape(clouds)}; pass a list of "
                         f"{what}s ([[n, d], ...]) or a padded [N, n, d] array.")
    return PointClouds.from_list(list(clouds), weights, labels=labels)


def checked_labels(labels, name: str = "labels") -> np.ndarray | None:
    """``labels`` as a run stores them: non-negative integers, or strings (class names).

    Raises:
      ValueError: naming ``name`` and the first offending cloud, for a negative label, a
        fractional or non-finite number, or values that are neither numbers nor strings.
    """
    if labels is None:
        return None
    values = np.asarray(labels)
    if values.dtype.kind in "US":
        return values.astype(str)
    if values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if len(bad):
            raise ValueError(f"{name}: cloud {bad[0]} has label {float(values.flat[bad[0]])}; "
                             f"labels must be non-negative integers or strings.")
        values = values.astype(np.int64)
    if values.dtype.kind not in "iu":
        raise ValueError(f"{name}: got {values.dtype} values; labels must be non-negative "
                         f"integers or strings.")
    bad = np.flatnonzero(values < 0)
    if len(bad):
        raise ValueError(f"{name}: cloud {bad[0]} has label {int(values.flat[bad[0]])}; labels "
                         f"must be non-negative integers or strings (name a group of "
                         f"unlabelled clouds, e.g. 'unlabelled', instead of -1).")
    return values
