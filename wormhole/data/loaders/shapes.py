"""Surface point clouds of primitive 3-D shapes: a small stand-in for ModelNet or ShapeNet.

Each cloud is a uniform sample of the surface of one shape (area-correct: every patch of
surface gets points in proportion to its area), scaled by a random factor, optionally rotated
by a random rotation, and labelled by shape. Surfaces made of several parts (faces, caps, the
side of a cylinder) pick each point's part with probability proportional to its area; curved
parts whose parametrisation does not preserve area (torus, ellipsoid) use rejection sampling.

Unit shapes, centred at the origin, before scaling (``x = scale * rotation @ p``):

========== ==========================================================================
sphere     radius 1
ellipsoid  semi-axes 1, 0.75, 0.5 along x, y, z
cube       the surface of ``[-1, 1]^3``
torus      circle of radius 0.7 in the xy-plane, tube radius 0.3
cylinder   radius 0.6, ``z`` in ``[-1, 1]``, with both caps
cone       base disk of radius 1 at ``z = -1``, apex at ``(0, 0, 1)``, with the base
pyramid    square base ``[-1, 1]^2`` at ``z = -1``, apex at ``(0, 0, 1)``, with the base
capsule    radius 0.5: the side of a cylinder with ``z`` in ``[-0.5, 0.5]`` and two
           hemispherical ends
========== ==========================================================================

Metadata: ``scale`` [N] and ``rotation`` [N, 3, 3] (the identity when ``rotate`` is off).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from wormhole.configlib import did_you_mean
from wormhole.data.clouds import PointClouds

__all__ = ["SHAPES", "load_shapes"]

ELLIPSOID_AXES = np.array([1.0, 0.75, 0.5])
TORUS_RADII = (0.7, 0.3)  # major (centre circle), minor (tube)
CYLINDER_RADIUS = 0.6
CAPSULE_RADIUS = 0.5


def _rotations(rng: np.random.Generator, count: int) -> np.ndarray:
    """Haar-random rotations [count, 3, 3] (determinant +1), drawn on the host.

    The same distribution as :func:`wormhole.data.transforms.random_rotations`, but from the
    loader's numpy generator: data generation stays one seeded stream and needs no JAX
    compilation.
    """
    q, r = np.linalg.qr(rng.standard_normal((count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[..., 0] *= np.sign(np.linalg.det(q))[:, None]
    return q


def _sphere(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _disk(rng: np.random.Generator, n: int, radius: float, z: float | np.ndarray) -> np.ndarray:
    r = radius * np.sqrt(rng.uniform(size=n))  # sqrt: uniform in area, not in radius
    phi = rng.uniform(0, 2 * np.pi, n)
    return np.stack([r * np.cos(phi), r * np.sin(phi), np.broadcast_to(z, n)], axis=1)


def _parts(rng: np.random.Generator, n: int, areas: Sequence[float],
           samplers: Sequence[Callable[[int], np.ndarray]]) -> np.ndarray:
    """``n`` points over a surface of several parts, each part chosen in proportion to area."""
    areas = np.asarray(areas, np.float64)
    counts = np.bincount(rng.choice(len(areas), n, p=areas / areas.sum()),
                         minlength=len(areas))
    points = np.concatenate([sample(int(k)) for sample, k in zip(samplers, counts, strict=True)])
    return points[rng.permutation(n)]


def _triangles(rng: np.random.Generator, n: int, corners: np.ndarray) -> np.ndarray:
    """Uniform points on a triangle mesh ``corners [T, 3 (corner), 3 (xyz)]``."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    areas = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    which = rng.choice(len(corners), n, p=areas / areas.sum())
    u, v = rng.uniform(size=(2, n, 1))
    # Reflect the points of the parallelogram's far half back into the triangle.
    flip = (u + v) > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    return a[which] + u * (b - a)[which] + v * (c - a)[which]


def _rejection(rng: np.random.Generator, n: int, propose: Callable[[int], np.ndarray],
               accept: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Keep proposals with probability ``accept(x)`` (in [0, 1]) until ``n`` are kept."""
    kept, total = [], 0
    while total < n:
        x = propose(2 * (n - total) + 16)
        x = x[rng.uniform(size=len(x)) < accept(x)]
        kept.append(x)
        total += len(x)
    return np.concatenate(kept)[:n]


def _ellipsoid(rng, n):
    # Mapping the unit sphere by A = diag(axes) stretches area by |det A| * |A^-1 u| at u.
    stretch = lambda u: np.linalg.norm(u / ELLIPSOID_AXES, axis=1) * ELLIPSOID_AXES.min()
    return _rejection(rng, n, lambda k: _sphere(rng, k), stretch) * ELLIPSOID_AXES


def _cube_corners() -> np.ndarray:
    faces = []
    for axis in range(3):
        for side in (-1.0, 1.0):
            square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
            quad = np.insert(square, axis, side, axis=1)
            faces += [quad[[0, 1, 2]], quad[[0, 2, 3]]]
    return np.stack(faces)


def _pyramid_corners() -> np.ndarray:
    base = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1]], np.float64)
    apex = np.array([0.0, 0.0, 1.0])
    sides = [np.stack([base[i], base[(i + 1) % 4], apex]) for i in range(4)]
    return np.stack([base[[0, 1, 2]], base[[0, 2, 3]], *sides])


def _torus(rng, n):
    big, small = TORUS_RADII
    # The tube angle theta has area density proportional to big + small * cos(theta).
    theta = _rejection(rng, n, lambda k: rng.uniform(0, 2 * np.pi, k),
                       lambda t: (big + small * np.cos(t)) / (big + small))
    phi = rng.uniform(0, 2 * np.pi, n)
    ring = big + small * np.cos(theta)
    return np.stack([ring * np.cos(phi), ring * np.sin(phi), small * np.sin(theta)], axis=1)


def _cylinder(rng, n):
    r = CYLINDER_RADIUS

    def side(k):
        phi = rng.uniform(0, 2 * np.pi, k)
        return np.stack([r * np.cos(phi), r * np.sin(phi), rng.uniform(-1, 1, k)], axis=1)

    return _parts(rng, n, [4 * np.pi * r, np.pi * r**2, np.pi * r**2],
                  [side, lambda k: _disk(rng, k, r, -1.0), lambda k: _disk(rng, k, r, 1.0)])


def _cone(rng, n):
    def side(k):
        # Distance from the apex has density proportional to itself (circumference grows).
        t = np.sqrt(rng.uniform(size=k))
        phi = rng.uniform(0, 2 * np.pi, k)
        return np.stack([t * np.cos(phi), t * np.sin(phi), 1 - 2 * t], axis=1)

    return _parts(rng, n, [np.pi * np.sqrt(5.0), np.pi],
                  [side, lambda k: _disk(rng, k, 1.0, -1.0)])


def _capsule(rng, n):
    r = CAPSULE_RADIUS

    def side(k):
        phi = rng.uniform(0, 2 * np.pi, k)
        return np.stack([r * np.cos(phi), r * np.sin(phi), rng.uniform(-0.5, 0.5, k)], axis=1)

    def ends(k):
        x = r * _sphere(rng, k)
        x[:, 2] += np.where(x[:, 2] >= 0, 0.5, -0.5)
        return x

    return _parts(rng, n, [2 * np.pi * r, 4 * np.pi * r**2], [side, ends])


_CUBE, _PYRAMID = _cube_corners(), _pyramid_corners()

SHAPES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "sphere": _sphere,
    "ellipsoid": _ellipsoid,
    "cube": lambda rng, n: _triangles(rng, n, _CUBE),
    "torus": _torus,
    "cylinder": _cylinder,
    "cone": _cone,
    "pyramid": lambda rng, n: _triangles(rng, n, _PYRAMID),
    "capsule": _capsule,
}


def load_shapes(path: str | None = None, seed: int = 0, shapes: Sequence[str] = tuple(SHAPES),
                num_clouds: int = 1000, points: int = 512, min_points: int | None = None,
                scale: Sequence[float] = (0.5, 1.5), rotate: bool = True,
                noise: float = 0.0) -> PointClouds:
    """Uniform surface samples of random shapes, labelled by shape.

    Args:
      path: unused (the data are generated).
      seed: seed of every random draw.
      shapes: which shapes (see the module docstring); each cloud draws one uniformly.
      num_clouds: number of clouds ``N``.
      points: points per cloud; with ``min_points`` the largest size.
      min_points: if given, each cloud's size is uniform in ``[min_points, points]``.
      scale: ``(low, high)``: each shape is scaled by a factor uniform in this range.
      rotate: apply a Haar-random rotation to each cloud.
      noise: standard deviation of Gaussian jitter added to each point, relative to the
        cloud's scale (0: points lie exactly on the surface).

    Returns:
      Clouds ``[N, points, 3]`` with ``metadata["scale"]`` ``[N]`` and
      ``metadata["rotation"]`` ``[N, 3, 3]``.
    """
    names = [shapes] if isinstance(shapes, str) else list(shapes)
    for name in names:
        if name not in SHAPES:
            raise ValueError(f"data.options.shapes: unknown shape {name!r}."
                             f"{did_you_mean(str(name), SHAPES)} Available: {', '.join(SHAPES)}.")
    if not names or len(set(names)) != len(names):
        raise ValueError(f"data.options.shapes: expected distinct shape names, got {names}.")
    if num_clouds < 1 or points < 1:
        raise ValueError(f"data.options: num_clouds and points must be positive, got "
                         f"{num_clouds} and {points}.")
    if min_points is not None and not 1 <= min_points <= points:
        raise ValueError(f"data.options.min_points: must be in [1, points={points}], got "
                         f"{min_points}.")
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise ValueError(f"data.options.scale: expected [low, high] with 0 < low <= high, got "
                         f"{list(scale)}.")
    if noise < 0:
        raise ValueError(f"data.options.noise: must be non-negative, got {noise}.")
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(names), size=num_clouds)
    sizes = (np.full(num_clouds, points) if min_points is None
             else rng.integers(min_points, points + 1, size=num_clouds))
    scales = rng.uniform(scale[0], scale[1], num_clouds)
    if rotate:
        rotations = _rotations(rng, num_clouds)
    else:
        rotations = np.broadcast_to(np.eye(3), (num_clouds, 3, 3)).copy()
    clouds = []
    for label, size, s, rotation in zip(labels, sizes, scales, rotations, strict=True):
        unit = SHAPES[names[label]](rng, int(size))
        if noise:
            unit = unit + noise * rng.standard_normal(unit.shape)
        clouds.append(s * unit @ rotation.T)
    return PointClouds.from_list(clouds, labels=labels.astype(np.int32), label_names=names,
                                 metadata={"scale": scales, "rotation": rotations})
