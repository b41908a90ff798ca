"""From a data config to normalised train and test clouds: the one data entry point."""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wormhole.config import ConfigError, DataConfig, _closest
from wormhole.data.clouds import PointClouds, label_values
from wormhole.data.transforms import Normalization, subsample_clouds, train_test_split

__all__ = ["LOADERS", "CoordinateScaleWarning", "Dataset", "get_loader", "load_clouds",
           "load_dataset", "normalised_dataset", "prepare_dataset", "select_splits"]

# name -> "module:function"; imported lazily so one loader's optional dependency never
# stops another from loading.
LOADERS: dict[str, str] = {
    "digits": "wormhole.data.loaders.digits:load_digits",
    "mnist": "wormhole.data.loaders.idx:load_mnist",
    "fashion_mnist": "wormhole.data.loaders.idx:load_fashion_mnist",
    "synthetic": "wormhole.data.loaders.synthetic:load_synthetic",
    "shapes": "wormhole.data.loaders.shapes:load_shapes",
    "files": "wormhole.data.loaders.files:load_files",
    "anndata": "wormhole.data.loaders.anndata:load_anndata",
}


def get_loader(name: str) -> Callable[..., PointClouds]:
    """The loader function registered under ``name``."""
    if name not in LOADERS:
        raise ConfigError(f"data.name: unknown data set '{name}'.{_closest(name, LOADERS)} "
                          f"Available: {', '.join(LOADERS)}.")
    module, function = LOADERS[name].split(":")
    return getattr(importlib.import_module(module), function)


def check_loader_options(name: str, options) -> None:
    """Refuse an option the loader ``name`` does not take, naming it and the valid ones."""
    loader = get_loader(name)
    allowed = [p for p in inspect.signature(loader).parameters if p not in ("path", "seed")]
    for key in options:
        if key not in allowed:
            raise ConfigError(f"data.options.{key}: not an option of the '{name}' loader."
                              f"{_closest(key, allowed)} Valid options: "
                              f"{', '.join(allowed) or 'none'}.")


def load_clouds(config: DataConfig) -> PointClouds:
    """Call the configured loader with ``path``, ``seed`` and the checked ``options``."""
    check_loader_options(config.name, config.options)
    return get_loader(config.name)(path=config.path, seed=config.seed, **config.options)


@dataclass(frozen=True)
class Dataset:
    """Normalised train clouds, optional test clouds, and the normalisation applied to both."""

    train: PointClouds
    test: PointClouds | None
    normalization: Normalization

    def summary(self) -> str:
        lines = [f"train: {self.train.summary()}"]
        if self.test is not None:
            lines.append(f"test:  {self.test.summary()}")
        norm = self.normalization
        lines.append(f"normalisation: x -> (x - {np.round(norm.shift, 4).tolist()}) / "
                     f"{norm.scale:.4g}")
        return "\n".join(lines)


def _split(clouds: PointClouds, config: DataConfig) -> tuple[PointClouds, PointClouds | None]:
    if config.split == "random":
        return train_test_split(clouds, config.test_fraction, config.seed)
    split = clouds.metadata.get("split")
    if split is None:
        raise ConfigError(f"data.split: the '{config.name}' data set has no official train/test "
                          f"split; use data.split=random.")
    train, test = split == "train", split == "test"
    if not train.any():
        raise ConfigError(f"data.split=official: no training split of '{config.name}' was found; "
                          f"only {sorted(set(split.tolist()))}.")
    return clouds.subset(train), (clouds.subset(test) if test.any() else None)


def _exclude_labels(train: PointClouds, config: DataConfig) -> PointClouds:
    """Drop the classes of ``data.exclude_labels`` (values or names) from the training split."""
    if train.labels is None:
        raise ConfigError(f"data.exclude_labels: the '{config.name}' data set has no labels.")
    present = set(train.labels.tolist())
    values = []
    for item in config.exclude_labels:
        try:
            (value,) = label_values([item], train)
        except ValueError:
            value = None
        if value not in present:
            known = ", ".join(train.label_names) if train.label_names else ", ".join(
                str(v) for v in sorted(present))
            raise ConfigError(f"data.exclude_labels: no class {item!r} in the training split "
                              f"of '{config.name}'; its classes are: {known}.")
        values.append(value)
    keep = ~np.isin(train.labels, values)
    if keep.sum() < 2:
        raise ConfigError("data.exclude_labels: fewer than two training clouds are left.")
    return train.subset(keep)


class CoordinateScaleWarning(UserWarning):
    """Training coordinates are far from the unit scale the networks work in."""


# The networks see coordinates as they are after data.normalize. The encoder lifts each
# point linearly into a token and its pre-norm blocks add updates of size ~1: with |x| >> 1
# the token dwarfs every update, and the final LayerNorm keeps little more than the token's
# direction, i.e. the direction of x from the origin (at x1e6, scaling every cloud by 1.3
# moves an initialised encoder's embeddings by 2e-5 of their typical spacing; at x1, by
# 1.3 spacings). Tokens far below 1 meet LayerNorm's epsilon instead. Digits after 300
# steps, held-out Pearson by coordinate factor: 1e-5: 0.88, 1e-3: 0.92, 1: 0.93, 3: 0.95,
# 10: 0.85, 30: 0.63, 100: 0.54, 1e6: 0.52.
_LARGEST_UNIT_COORDINATE = 5.0
_SMALLEST_UNIT_EXTENT = 1e-4


def _check_scale(train: PointClouds) -> None:
    low, high = train.bounds()
    largest = float(max(np.max(np.abs(low)), np.max(np.abs(high))))
    extent = float(np.max(high - low))
    if largest > _LARGEST_UNIT_COORDINATE:
        what = (f"reach |x| = {largest:.3g} (extent {extent:.3g}): the encoder's transformer "
                f"blocks add updates of size ~1 to tokens of that size, so it keeps little "
                f"more than each point's direction from the origin (digits scaled by 10 and "
                f"100: held-out Pearson 0.85 and 0.54 instead of 0.93 after 300 steps)")
    elif extent < _SMALLEST_UNIT_EXTENT:
        what = (f"span only {extent:.3g}: tokens that small are flattened by LayerNorm's "
                f"epsilon (digits scaled by 1e-5: held-out Pearson 0.88 instead of 0.93 "
                f"after 300 steps)")
    else:
        return
    warnings.warn(
        f"data.normalize is 'none' and the training coordinates {what}. Set data.normalize: "
        f"minmax, or rescale the coordinates to about [0, 1] before training (the networks "
        f"work in units of about 1; OT targets are computed on the coordinates as given).",
        CoordinateScaleWarning, stacklevel=3)


def select_splits(clouds: PointClouds, config: DataConfig, test: PointClouds | None = None
                  ) -> tuple[PointClouds, PointClouds | None]:
    """The train and test clouds ``config`` selects, in the clouds' own units (not normalised).

    Caps (``max_clouds``, ``max_points``), then splits by ``config.split`` unless an explicit
    ``test`` set is given, then removes the classes of ``config.exclude_labels`` from the
    training split (the test split keeps them). ``config.normalize`` is not used: this is
    the selection :func:`prepare_dataset` normalises, for callers that want the clouds as
    they are (a run's split for evaluation, clouds to store with a run).
    """
    if config.max_clouds is not None and len(clouds) > config.max_clouds:
        keep = np.random.default_rng(config.seed).choice(len(clouds), config.max_clouds,
                                                         replace=False)
        clouds = clouds.subset(np.sort(keep))
    if config.max_points is not None:
        clouds = subsample_clouds(clouds, config.max_points, config.seed)
        if test is not None:
            test = subsample_clouds(test, config.max_points, config.seed + 1)
    if test is not None:
        if test.dim != clouds.dim:
            raise ValueError(f"Test clouds are {test.dim}-D but training clouds are "
                             f"{clouds.dim}-D.")
        train = clouds
    else:
        train, test = _split(clouds, config)
    if config.exclude_labels:
        train = _exclude_labels(train, config)
    return train, test


def prepare_dataset(clouds: PointClouds, config: DataConfig,
                    test: PointClouds | None = None) -> Dataset:
    """Select (:func:`select_splits`) and normalise clouds as ``config`` says.

    The normalisation is fitted on the training clouds only and applied to both splits.
    Warns (:class:`CoordinateScaleWarning`) when ``config.normalize`` is ``none`` and the
    training coordinates are far from unit scale: larger than 5 in absolute value, or
    spanning less than 1e-4.
    """
    train, test = select_splits(clouds, config, test)
    if config.normalize == "none":
        _check_scale(train)
    return normalised_dataset(train, test, config.normalize)


def normalised_dataset(train: PointClouds, test: PointClouds | None,
                       normalize: str) -> Dataset:
    """The normalisation ``normalize`` fitted on ``train``, applied to both splits."""
    norm = Normalization.fit(train, normalize)
    return Dataset(norm.apply_to(train), None if test is None else norm.apply_to(test), norm)


def load_dataset(config: DataConfig) -> Dataset:
    """Load the configured data set and prepare it (see :func:`prepare_dataset`)."""
    return prepare_dataset(load_clouds(config), config)
