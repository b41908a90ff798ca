"""The one way user input becomes :class:`PointClouds`: objects, padded arrays or lists."""

from __future__ import annotations

import jax
import numpy as np

from wormhole.data.clouds import PointClouds

__all__ = ["as_point_clouds"]


def as_point_clouds(clouds, weights=None, labels=None, what: str = "cloud") -> PointClouds:
    """Accept :class:`PointClouds`, a list of ``[n_i, d]`` arrays, or a padded ``[N, n, d]``
    array (with ``weights [N, n]``, zero weight = padding).

    Every cloud is validated (see :func:`~wormhole.data.clouds.validate_clouds`); errors name
    the offending cloud's index.
    """
    if isinstance(clouds, PointClouds):
        if weights is not None or labels is not None:
            raise ValueError("Pass weights and labels inside the PointClouds, not separately.")
        return clouds
    if isinstance(clouds, np.ndarray | jax.Array) and np.ndim(clouds) == 3:
        return PointClouds.from_padded(np.asarray(clouds), None if weights is None
                                       else np.asarray(weights), labels=labels)
    if isinstance(clouds, np.ndarray | jax.Array) and np.ndim(clouds) == 2:
        raise ValueError(f"Got one 2-D array of shape {np.shape(clouds)}; pass a list of "
                         f"{what}s ([[n, d], ...]) or a padded [N, n, d] array.")
    return PointClouds.from_list(list(clouds), weights, labels=labels)
