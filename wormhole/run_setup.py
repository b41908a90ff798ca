"""Setting up a run before its first step: data facts, cost scale, model spec, resume checks.

Each is a named function so that benchmarks and the API reuse them instead of rebuilding
them (see :func:`wormhole.trainer.train_and_evaluate` for the order they are called in).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np

from wormhole.checkpoint import DataRecord, RunMeta
from wormhole.config import Config, ConfigError, config_from_dict, config_to_dict
from wormhole.data import Dataset, Normalization, PointClouds
from wormhole.models import ModelSpec, mean_scale
from wormhole.ot import estimate_cost_scale, get_kind
from wormhole.ot.costs import lookup_cost

__all__ = ["RUN_SECTIONS", "check_resume", "data_fingerprint", "data_record",
           "resolve_cost_scale", "resolve_model_spec"]

# What defines the network and its targets: a resume must not change any of it.
RUN_SECTIONS = ("data", "model", "ot", "loss")


def _update_with_clouds(digest, clouds: PointClouds) -> None:
    # Gathered clouds are hashed by their table and index, never made dense; memory-mapped
    # ones a chunk of clouds at a time.
    if clouds.gathered:
        points = (clouds.points.table, clouds.points.index)
    elif clouds.on_demand:
        points = clouds.points.chunks()
    else:
        points = (clouds.points,)
    for array in itertools.chain(points, (clouds.weights, clouds.sizes)):
        digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(str(array.shape).encode())
    if clouds.labels is not None:
        digest.update(np.ascontiguousarray(clouds.labels).tobytes())


def data_fingerprint(dataset: Dataset) -> str:
    """A short SHA-256 of the prepared train and test clouds (coordinates, weights, labels)."""
    digest = hashlib.sha256()
    _update_with_clouds(digest, dataset.train)
    digest.update(b"|test|")
    if dataset.test is not None:
        _update_with_clouds(digest, dataset.test)
    return digest.hexdigest()[:16]


def data_record(config: Config, dataset: Dataset) -> DataRecord:
    """What the run's metadata says about its data."""
    data = config.data
    where = f"loader '{data.name}'" + (f" reading {data.path}" if data.path else "")
    return DataRecord(f"{where}, split {data.split}", data_fingerprint(dataset),
                      len(dataset.train), 0 if dataset.test is None else len(dataset.test))


def resolve_cost_scale(config: Config, train: PointClouds) -> float:
    """``ot.cost_scale`` when set, else estimated once from the training clouds."""
    if config.ot.cost_scale:
        return float(config.ot.cost_scale)
    return float(estimate_cost_scale(train.points, train.weights, config.ot.kind,
                                     cost=config.ot.cost, seed=config.data.seed))


def resolve_model_spec(config: Config, train: PointClouds,
                       cost_scale: float | None = None) -> ModelSpec:
    """Data-dependent model facts: dimension, decoder size, decoder output box, mean factor
    and whether each cloud is centred before encoding (:func:`centres_clouds`).

    GW embeddings are defined up to rigid motions, so their decoder gets no output box.
    ``cost_scale`` (the run's, estimated when ``None``) sets the mean factor of
    ``model.mean_split``.
    """
    if config.loss.reconstruction > 0:
        points = config.model.decoder_points or max(int(np.median(train.sizes)), 1)
    else:
        points = 0
    low = high = None
    if not get_kind(config.ot.kind).quadratic:
        lowest, highest = train.bounds(positive_weight=True)
        low = tuple(float(v) for v in lowest)
        high = tuple(float(v) for v in highest)
    factor = None
    if config.model.mean_split:
        if config.model.emb_dim <= train.dim:
            raise ConfigError(f"model.mean_split: model.emb_dim ({config.model.emb_dim}) must "
                              f"exceed the data dimension ({train.dim}), which the means take.")
        scale = resolve_cost_scale(config, train) if cost_scale is None else cost_scale
        factor = mean_scale(config.model.emb_dim, scale)
    return ModelSpec(train.dim, points, low, high, factor, centres_clouds(config))


def centres_clouds(config: Config) -> bool:
    """Whether the run encodes each cloud moved to its weighted mean: GW and GS targets with a
    shift-invariant named cost do not change when a cloud moves, so neither may the
    embedding (a custom cost may depend on where the points are: not centred)."""
    if not get_kind(config.ot.kind).quadratic:
        return False
    cost = config.ot.cost or get_kind(config.ot.kind).default_cost
    entry = lookup_cost(cost) if isinstance(cost, str) else None
    return entry is not None and entry.shift_invariant


def with_absolute_data_path(config: Config) -> Config:
    """``config`` with an existing ``data.path`` made absolute (against the current
    directory), so that the run's saved config reads the same files from any directory.
    A path that names no file (``scanpy:NAME``, a loader's own spelling) is kept as given."""
    path = config.data.path
    if not path or not Path(path).expanduser().exists():
        return config
    return replace(config, data=replace(config.data, path=str(Path(path).expanduser().resolve())))


def _same_setting(key: str, old, new) -> bool:
    """Equal values; for ``data.path``, also two spellings of the same existing file."""
    if old == new:
        return True
    if key != "data.path" or not (old and new):
        return False
    first, second = Path(old).expanduser(), Path(new).expanduser()
    return first.exists() and second.exists() and first.resolve() == second.resolve()


def check_resume(stored: RunMeta, config: Config, record: DataRecord, workdir: Path,
                 normalization: Normalization | None = None) -> None:
    """Refuse to resume when what defines the network, its targets or its data changed.

    A key missing from the stored config (a setting added in a later version) counts as its
    default. A run written before data fingerprints were stored is resumed without that check.
    The fingerprint is of the normalised clouds, so ``normalization`` (the new data's) is
    also compared with the run's: the same shapes moved or rescaled are other clouds.
    """
    current, defaults = config_to_dict(config), config_to_dict(config_from_dict({}))
    for section in RUN_SECTIONS:
        for key, value in current[section].items():
            old = stored.config.get(section, {}).get(key, defaults[section][key])
            if not _same_setting(f"{section}.{key}", old, value):
                raise ConfigError(
                    f"{workdir} holds a run with {section}.{key}={old!r}, but this config has "
                    f"{value!r}. Resume with the same {section} settings, or start a new run "
                    f"with a different train.workdir (or delete the old run).")
    seed = stored.config.get("train", {}).get("seed")
    if seed != config.train.seed:
        raise ConfigError(f"{workdir} holds a run with train.seed={seed}, but this config has "
                          f"{config.train.seed}; use another train.workdir.")
    old = stored.data
    if old.fingerprint is not None and old.fingerprint != record.fingerprint:
        raise ConfigError(
            f"{workdir} holds a run trained on other clouds: data fingerprint {old.fingerprint} "
            f"({old.num_train} train / {old.num_test} test clouds, {old.description}), but "
            f"these clouds have fingerprint {record.fingerprint} ({record.num_train} train / "
            f"{record.num_test} test). Resume with the same clouds, or use another "
            f"train.workdir.")
    if normalization is not None:
        before = Normalization.from_dict(stored.normalization)
        if not (np.isclose(before.scale, normalization.scale, rtol=1e-6, atol=0)
                and np.allclose(before.shift, normalization.shift, rtol=1e-6,
                                atol=1e-6 * before.scale)):
            raise ConfigError(
                f"{workdir} holds a run trained on clouds normalised by shift "
                f"{np.round(before.shift, 6).tolist()} and scale {before.scale:.6g}, but "
                f"these clouds give shift {np.round(normalization.shift, 6).tolist()} and "
                f"scale {normalization.scale:.6g}: the same shapes in other coordinates are "
                f"other clouds (decoding would return the run's units). Resume with the same "
                f"clouds, or use another train.workdir.")
