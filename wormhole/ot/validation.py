"""Input checks that run before any solve, so bad clouds fail with a clear message."""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["check_clouds"]


def _concrete(array) -> bool:
    return not isinstance(array, jax.core.Tracer)


def check_clouds(points, weights, name: str = "clouds") -> None:
    """Check a padded batch ``points [B, n, d]``, ``weights [B, n]``.

    Shapes are always checked; values (NaN or infinite coordinates, negative or all-zero
    weights) only when the arrays are concrete, i.e. outside ``jit`` (data are validated
    when loaded, so traced batches were checked upstream). Errors name the cloud index.
    """
    if points.ndim != 3:
        raise ValueError(f"{name}: points must be [clouds, points, dim], got shape "
                         f"{tuple(points.shape)}.")
    if weights.shape != points.shape[:2]:
        raise ValueError(f"{name}: weights of shape {tuple(weights.shape)} do not match "
                         f"points of shape {tuple(points.shape)} (expected "
                         f"{tuple(points.shape[:2])}).")
    if not (_concrete(points) and _concrete(weights)):
        return
    points, weights = np.asarray(points), np.asarray(weights)
    checks = (
        (~np.isfinite(points).all(axis=(1, 2)), "has NaN or infinite coordinates"),
        (~np.isfinite(weights).all(axis=1), "has NaN or infinite weights"),
        ((weights < 0).any(axis=1), "has negative weights"),
        (~(weights > 0).any(axis=1), "has no point with positive weight"),
    )
    for bad, what in checks:
        if bad.any():
            index = np.flatnonzero(bad)
            more = f" (and {len(index) - 1} more)" if len(index) > 1 else ""
            raise ValueError(f"{name}: cloud {int(index[0])} {what}{more}.")
