"""A set of weighted point clouds of different sizes, padded to one array.

Every cloud ``i`` is stored in ``points[i, :sizes[i]]`` with probability weights in
``weights[i, :sizes[i]]``; the rest of the row is padding with zero weight and zero
coordinates. Zero-weight points carry no mass, so padding never changes an OT distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from wormhole.data.gathered import GatheredPoints
from wormhole.data.mapped import MappedPoints

_ON_DEMAND = (GatheredPoints, MappedPoints)

__all__ = ["PointClouds", "label_values", "pad_clouds", "validate_clouds"]


def validate_clouds(clouds: Sequence, weights: Sequence | None = None,
                    what: str = "cloud") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Check ragged clouds and weights; return float arrays and weights that sum to one.

    Args:
      clouds: ``N`` arrays of shape ``[n_i, d]`` (one shared ``d``).
      weights: ``None`` (uniform) or ``N`` non-negative arrays of shape ``[n_i]``.
      what: the word used for an item in error messages.

    Raises:
      ValueError: naming the offending index and what is wrong with it.
    """
    if isinstance(clouds, np.ndarray) and clouds.ndim == 2:
        raise ValueError(f"Expected a list of {what}s (or a [N, n, d] array); got one 2-D array "
                         f"of shape {clouds.shape}. Wrap a single {what} in a list.")
    if len(clouds) == 0:
        raise ValueError(f"No {what}s given.")
    if weights is not None and len(weights) != len(clouds):
        raise ValueError(f"Got {len(clouds)} {what}s but {len(weights)} weight arrays.")
    out_points, out_weights, dim = [], [], None
    for i, cloud in enumerate(clouds):
        x = np.asarray(cloud)
        if x.dtype == object or not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"{what} {i}: coordinates must be numbers, got dtype {x.dtype}.")
        given = x
        with np.errstate(over="ignore"):
            x = x.astype(np.float32)
        if x.ndim == 1:
            raise ValueError(f"{what} {i}: expected shape [points, dim], got {x.shape}; "
                             f"reshape 1-D samples to [n, 1].")
        if x.ndim != 2:
            raise ValueError(f"{what} {i}: expected shape [points, dim], got {x.shape}.")
        if x.shape[0] == 0:
            raise ValueError(f"{what} {i} is empty (0 points).")
        if dim is None:
            dim = x.shape[1]
        elif x.shape[1] != dim:
            raise ValueError(f"{what} {i} has dimension {x.shape[1]}, but {what} 0 has "
                             f"dimension {dim}; all {what}s must share one dimension.")
        if not np.all(np.isfinite(x)):
            bad = int(np.argwhere(~np.isfinite(x))[0, 0])
            if np.all(np.isfinite(given[bad])):
                raise ValueError(f"{what} {i}: point {bad} has a coordinate beyond float32's "
                                 f"range (|x| > 3.4e38); rescale the clouds.")
            raise ValueError(f"{what} {i}: point {bad} has a NaN or infinite coordinate.")
        if weights is None:
            w = np.full(x.shape[0], 1.0 / x.shape[0], np.float32)
        else:
            w = np.asarray(weights[i], dtype=np.float64)
            if w.ndim != 1 or w.shape[0] != x.shape[0]:
                raise ValueError(f"weights of {what} {i} have shape {w.shape}, but the {what} "
                                 f"has {x.shape[0]} points; expected shape [{x.shape[0]}].")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"weights of {what} {i} contain NaN or infinite values.")
            if np.any(w < 0):
                raise ValueError(f"weights of {what} {i} contain negative values "
                                 f"(min {w.min():.3g}).")
            total = w.sum()
            if total <= 0:
                raise ValueError(f"weights of {what} {i} are all zero; a {what} needs mass.")
            w = (w / total).astype(np.float32)
        out_points.append(x)
        out_weights.append(w)
    return out_points, out_weights


def pad_clouds(clouds: Sequence[np.ndarray], weights: Sequence[np.ndarray],
               length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack ragged clouds into ``points [N, length, d]`` and ``weights [N, length]``.

    The one padding routine of the package: padding rows have zero weight and zero
    coordinates. ``length`` defaults to the largest cloud and may not be smaller.
    """
    sizes = [len(c) for c in clouds]
    longest = max(sizes)
    length = longest if length is None else length
    if length < longest:
        raise ValueError(f"Cannot pad to {length} points: the largest cloud has {longest}.")
    dim = clouds[0].shape[1]
    points = np.zeros((len(clouds), length, dim), np.float32)
    mass = np.zeros((len(clouds), length), np.float32)
    for i, (x, w) in enumerate(zip(clouds, weights, strict=True)):
        points[i, : len(x)] = x
        mass[i, : len(x)] = w
    return points, mass


@dataclass(frozen=True)
class PointClouds:
    """``N`` weighted point clouds in ``d`` dimensions, padded to a common length.

    Attributes:
      points: ``[N, n, d]`` float32 coordinates, zero on padding: a numpy array, or
        coordinates built on demand: :class:`~wormhole.data.gathered.GatheredPoints` (a row
        table and indices into it, for clouds that share points, such as the niches of a
        tissue) or :class:`~wormhole.data.mapped.MappedPoints` (read from a memory-mapped
        file); methods here keep them on demand.
      weights: ``[N, n]`` float32 probability weights (each row sums to one), zero on padding.
      sizes: ``[N]`` number of real points of each cloud.
      labels: optional ``[N]`` integer labels.
      label_names: optional names of the label values.
      metadata: per-cloud arrays with leading axis ``N`` (e.g. generating parameters).
    """

    points: np.ndarray | GatheredPoints | MappedPoints
    weights: np.ndarray
    sizes: np.ndarray
    labels: np.ndarray | None = None
    label_names: tuple[str, ...] | None = None
    metadata: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        n = self.points.shape[0]
        if self.points.ndim != 3 or self.weights.shape != self.points.shape[:2]:
            raise ValueError(f"points must be [N, n, d] and weights [N, n]; got "
                             f"{self.points.shape} and {self.weights.shape}.")
        if self.sizes.shape != (n,):
            raise ValueError(f"sizes must have shape [{n}], got {self.sizes.shape}.")
        if self.labels is not None and np.shape(self.labels) != (n,):
            raise ValueError(f"labels must have shape [{n}], got {np.shape(self.labels)}.")
        for key, value in self.metadata.items():
            if len(value) != n:
                raise ValueError(f"metadata '{key}' has {len(value)} rows for {n} clouds.")

    @classmethod
    def from_list(cls, clouds: Sequence, weights: Sequence | None = None,
                  labels: Sequence | None = None, label_names: Sequence[str] | None = None,
                  metadata: dict | None = None, length: int | None = None) -> PointClouds:
        """Validate ragged clouds (see :func:`validate_clouds`) and pad them."""
        points_list, weight_list = validate_clouds(clouds, weights)
        points, mass = pad_clouds(points_list, weight_list, length)
        sizes = np.array([len(x) for x in points_list], np.int32)
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(points_list),):
                raise ValueError(f"Got {len(points_list)} clouds but labels of shape "
                                 f"{labels.shape}.")
        meta = {k: np.asarray(v) for k, v in (metadata or {}).items()}
        return cls(points, mass, sizes, labels,
                   tuple(label_names) if label_names is not None else None, meta)

    @classmethod
    def from_padded(cls, points: np.ndarray, weights: np.ndarray | None = None,
                    **kwargs) -> PointClouds:
        """Clouds given as a padded ``[N, n, d]`` array and ``[N, n]`` weights.

        Trailing zero-weight points are treated as padding and dropped before re-padding.
        """
        points = np.asarray(points)
        if points.ndim != 3:
            raise ValueError(f"Padded clouds must have shape [N, n, d], got {points.shape}.")
        if weights is None:
            return cls.from_list(list(points), None, **kwargs)
        weights = np.asarray(weights)
        if weights.shape != points.shape[:2]:
            raise ValueError(f"weights of shape {weights.shape} do not match points of shape "
                             f"{points.shape}; expected {points.shape[:2]}.")
        clouds, masses = [], []
        for x, w in zip(points, weights, strict=True):
            keep = np.nonzero(w)[0]
            size = keep[-1] + 1 if len(keep) else len(w)
            clouds.append(x[:size])
            masses.append(w[:size])
        return cls.from_list(clouds, masses, **kwargs)

    # ------------------------------------------------------------------ views

    def __len__(self) -> int:
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        return self.points.shape[2]

    @property
    def length(self) -> int:
        """Padded length (points per row)."""
        return self.points.shape[1]

    @property
    def gathered(self) -> bool:
        """Whether the coordinates are a :class:`GatheredPoints` table and index."""
        return isinstance(self.points, GatheredPoints)

    @property
    def on_demand(self) -> bool:
        """Whether coordinates are built when indexed (gathered or memory-mapped clouds)."""
        return isinstance(self.points, _ON_DEMAND)

    def cloud(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The real points and weights of cloud ``i`` (padding removed)."""
        size = int(self.sizes[i])
        return self.points[i, :size], self.weights[i, :size]

    def to_list(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        pairs = [self.cloud(i) for i in range(len(self))]
        return [p for p, _ in pairs], [w for _, w in pairs]

    def subset(self, index) -> PointClouds:
        """Clouds at ``index`` (indices, slice or boolean mask), padding trimmed to fit."""
        index = np.arange(len(self))[index]
        sizes = self.sizes[index]
        length = int(sizes.max()) if len(index) else 0
        points = self.points.take(index, length) if self.on_demand else \
            self.points[index, :length]
        return PointClouds(
            points, self.weights[index, :length], sizes,
            None if self.labels is None else self.labels[index], self.label_names,
            {k: v[index] for k, v in self.metadata.items()})

    def with_points(self, points: np.ndarray, weights: np.ndarray | None = None) -> PointClouds:
        """The same clouds (labels, metadata) with new padded coordinates (and weights)."""
        if not isinstance(points, _ON_DEMAND):
            points = np.asarray(points, np.float32)
        return PointClouds(points,
                           self.weights if weights is None else np.asarray(weights, np.float32),
                           self.sizes, self.labels, self.label_names, self.metadata)

    def pad_to(self, length: int) -> PointClouds:
        """The same clouds padded (never cut) to ``length`` points per row."""
        if length == self.length:
            return self
        if length < int(self.sizes.max()):
            raise ValueError(f"Cannot pad to {length} points: the largest cloud has "
                             f"{int(self.sizes.max())}.")
        if self.on_demand:
            points = self.points.pad_to(length)
        elif length < self.length:
            points = self.points[:, :length]
        else:
            points = np.pad(self.points, ((0, 0), (0, length - self.length), (0, 0)))
        if length < self.length:
            return self.with_points(points, self.weights[:, :length])
        return self.with_points(points, np.pad(self.weights, ((0, 0), (0, length - self.length))))

    def real_mask(self) -> np.ndarray:
        """``[N, n]`` booleans: which entries are real points (not padding)."""
        return np.arange(self.length)[None, :] < self.sizes[:, None]

    def bounds(self, positive_weight: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The lowest and highest coordinate ``[d]`` over all real points (with
        ``positive_weight``, over points of positive weight only)."""
        mask = self.weights > 0 if positive_weight else self.real_mask()
        coords = self.points.used_rows(mask) if self.on_demand else self.points[mask]
        return coords.min(axis=0), coords.max(axis=0)

    def map_points(self, fn) -> PointClouds:
        """The clouds with ``fn`` (a map of ``[m, d]`` coordinate rows, applied row by row)
        applied to every real point; padding stays zero. Gathered clouds map their table,
        memory-mapped ones apply ``fn`` whenever they are read."""
        if self.on_demand:
            return self.with_points(self.points.map_rows(fn))
        return self.with_points(np.where(self.real_mask()[..., None], fn(self.points), 0.0))

    def take_points(self, positions: np.ndarray, weights: np.ndarray) -> PointClouds:
        """Cloud ``i`` made of its points ``positions[i]`` (``[N, m]`` positions within each
        cloud, -1 for padding) with new ``weights [N, m]`` (zero on padding)."""
        sizes = (positions >= 0).sum(axis=1).astype(np.int32)
        if self.on_demand:
            points = self.points.take_points(positions)
        else:
            points = np.take_along_axis(self.points, np.maximum(positions, 0)[..., None], 1)
            points = np.where((positions >= 0)[..., None], points, 0.0).astype(np.float32)
        return PointClouds(points, np.asarray(weights, np.float32), sizes, self.labels,
                           self.label_names, self.metadata)

    def summary(self) -> str:
        """A short human-readable description."""
        sizes = self.sizes
        text = (f"{len(self)} clouds in {self.dim}-D, {int(sizes.min())}-{int(sizes.max())} "
                f"points (mean {sizes.mean():.1f}), padded to {self.length}")
        if self.labels is not None:
            values, counts = np.unique(self.labels, return_counts=True)
            names = self.label_names
            shown = ", ".join(f"{names[v] if names else v}: {c}" for v, c in
                              zip(values[:12], counts[:12], strict=True))
            more = ", ..." if len(values) > 12 else ""
            text += f"; {len(values)} labels ({shown}{more})"
        return text


def label_values(labels: Sequence, clouds: PointClouds) -> list[int]:
    """Label values from values or names: ``3``, ``"3"`` or a name such as ``"Bag"``.

    The one mapping from what a user writes (configs, command lines) to the integer labels
    of ``clouds``. Names are looked up in ``clouds.label_names``; integers (or integer
    strings that are not names) are taken as values. Whether a value occurs in ``clouds``
    is left to the caller.

    Raises:
      ValueError: for an item that is neither, listing the data set's labels.
    """
    names = list(clouds.label_names or [])
    values = []
    for item in labels:
        if isinstance(item, str) and item in names:
            values.append(names.index(item))
        elif isinstance(item, str) and item.strip().lstrip("-").isdigit():
            values.append(int(item))
        elif isinstance(item, int | np.integer) and not isinstance(item, bool):
            values.append(int(item))
        else:
            present = [] if clouds.labels is None else np.unique(clouds.labels).tolist()
            shown = ", ".join(names) if names else ", ".join(map(str, present)) or "none"
            raise ValueError(f"Unknown label {item!r}; the data set's labels are: {shown}.")
    return values
