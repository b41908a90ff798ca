"""Preparation of point-cloud sets: normalisation, subsampling, rotations, splits."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from wormhole.data.clouds import PointClouds

__all__ = [
    "Normalization",
    "distinct_random_pairs",
    "random_rotations",
    "rotate_clouds",
    "subsample_clouds",
    "train_test_split",
]


@dataclass(frozen=True)
class Normalization:
    """An affine map ``x -> (x - shift) / scale`` with one scalar scale for all axes.

    A single scale keeps the geometry isotropic, so an OT cost on normalised coordinates is
    the original cost times a known factor (``scale**-2`` for squared Euclidean costs).
    """

    shift: np.ndarray  # [d]
    scale: float

    @classmethod
    def identity(cls, dim: int) -> Normalization:
        return cls(np.zeros(dim, np.float32), 1.0)

    @classmethod
    def fit(cls, clouds: PointClouds, method: str = "minmax") -> Normalization:
        """``minmax``: map the data set's bounding box into ``[0, 1]^d`` (largest side to 1)."""
        if method == "none":
            return cls.identity(clouds.dim)
        if method != "minmax":
            raise ValueError(f"Unknown normalisation '{method}'; use 'none' or 'minmax'.")
        low, high = clouds.bounds()
        scale = float((high - low).max())
        return cls(low.astype(np.float32), scale if scale > 0 else 1.0)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return ((np.asarray(points) - self.shift) / self.scale).astype(np.float32)

    def invert(self, points):
        """Back to original units; works on numpy and JAX arrays."""
        return points * self.scale + self.shift

    def apply_to(self, clouds: PointClouds) -> PointClouds:
        """Normalise real points; padding stays at zero (gathered clouds stay gathered)."""
        return clouds.map_points(self.apply)

    def to_dict(self) -> dict:
        return {"shift": np.asarray(self.shift, np.float32).tolist(), "scale": float(self.scale)}

    @classmethod
    def from_dict(cls, data: dict) -> Normalization:
        return cls(np.asarray(data["shift"], np.float32), float(data["scale"]))


def subsample_clouds(clouds: PointClouds, max_points: int, seed: int = 0) -> PointClouds:
    """Keep at most ``max_points`` points of each cloud, drawn uniformly without replacement
    among its points of positive weight.

    The kept weights are renormalised to one. A cloud with at most ``max_points`` points of
    positive weight keeps exactly those (its massless points change no OT value); clouds
    already small enough are unchanged. Gathered clouds stay gathered (only their indices are
    subsampled).
    """
    if int(clouds.sizes.max()) <= max_points:
        return clouds
    rng = np.random.default_rng(seed)
    positions = np.full((len(clouds), max_points), -1, np.int64)
    weights = np.zeros((len(clouds), max_points), np.float32)
    for i, size in enumerate(clouds.sizes.tolist()):
        w = clouds.weights[i, :size]
        if size <= max_points:
            positions[i, :size], weights[i, :size] = np.arange(size), w
            continue
        massive = np.flatnonzero(w > 0)
        keep = massive if len(massive) <= max_points else \
            massive[np.sort(rng.choice(len(massive), max_points, replace=False))]
        kept = w[keep]
        positions[i, :len(keep)] = keep
        weights[i, :len(keep)] = (kept / kept.sum()).astype(np.float32)
    return clouds.take_points(positions, weights)


def distinct_random_pairs(rng: np.random.Generator, count: int,
                          num_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """``num_pairs`` uniformly random ordered pairs ``(i, j)`` of ``count`` items, ``i != j``.

    Pairs are drawn independently (with replacement); ``i`` is uniform and ``j`` uniform
    among the other ``count - 1`` items.

    Returns:
      ``first, second``: ``[num_pairs]`` integer indices.

    Raises:
      ValueError: if there are fewer than two items.
    """
    if count < 2:
        raise ValueError(f"Distinct pairs need at least two items, got {count}.")
    first = rng.integers(0, count, num_pairs)
    return first, (first + rng.integers(1, count, num_pairs)) % count


def train_test_split(clouds: PointClouds, test_fraction: float,
                     seed: int = 0) -> tuple[PointClouds, PointClouds | None]:
    """A deterministic random split; ``test_fraction == 0`` gives no test set."""
    n = len(clouds)
    n_test = int(round(n * test_fraction))
    if n_test == 0:
        return clouds, None
    if n - n_test < 2:
        raise ValueError(f"test_fraction={test_fraction} leaves {n - n_test} training clouds "
                         f"of {n}; at least 2 are needed.")
    order = np.random.default_rng(seed).permutation(n)
    return clouds.subset(np.sort(order[n_test:])), clouds.subset(np.sort(order[:n_test]))


def random_rotations(key: jax.Array, count: int, dim: int) -> jax.Array:
    """``count`` Haar-random rotation matrices ``[count, dim, dim]`` (determinant +1)."""
    q = jax.random.orthogonal(key, dim, shape=(count,))
    # Flip one axis of improper matrices so every sample is a proper rotation.
    det = jnp.linalg.det(q)
    return q.at[:, :, 0].multiply(jnp.sign(det)[:, None])


def rotate_clouds(points: jax.Array, rotations: jax.Array, weights: jax.Array) -> jax.Array:
    """Rotate each cloud ``points [B, n, d]`` about its weighted centre.

    Rotating about the centre (not the origin) keeps clouds inside the normalised box and
    leaves GW distances, which only see intra-cloud distances, unchanged.
    """
    centre = jnp.einsum("bn,bnd->bd", weights, points)[:, None, :]
    rotated = jnp.einsum("bnd,bed->bne", points - centre, rotations) + centre
    return jnp.where(weights[..., None] > 0, rotated, 0.0)
