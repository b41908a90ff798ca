"""The Python entry points: train from a config file, or fit on clouds in memory.

    import wormhole
    model = wormhole.train("digits.yaml", overrides=["train.steps=500"])
    model = wormhole.fit(list_of_clouds, labels=labels, overrides={"ot.kind": "W2"})
    emb = model.encode(new_clouds)

Both return a :class:`~wormhole.inference.Wormhole` and write a run directory that
:func:`wormhole.load` reads back; running the same call again resumes the run.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np

from wormhole.checkpoint import CHECKPOINT_DIR, holds_checkpoints
from wormhole.config import (
    Config,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
)
from wormhole.data import Dataset, PointClouds, load_clouds, prepare_dataset
from wormhole.data.dataset import select_splits
from wormhole.data.inputs import as_point_clouds
from wormhole.data.loaders.files import save_clouds_npz
from wormhole.inference import Wormhole, from_meta
from wormhole.parallel import to_local
from wormhole.trainer import train_and_evaluate

__all__ = ["fit", "resolve_config", "train"]


def resolve_config(config: Config | str | Path | None = None,
                   overrides: Mapping | Sequence[str] | None = None) -> Config:
    """A :class:`Config` from an object, a YAML path or bare name, or the defaults.

    ``overrides`` are ``"section.key=value"`` strings or a ``{"section.key": value}`` mapping.
    """
    items = _override_strings(overrides)
    if isinstance(config, Config):
        if not items:
            return config
        return config_from_dict(apply_overrides(config_to_dict(config), items))
    return load_config(config, items)


def _override_strings(overrides) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return list(overrides)


def _finish(output) -> Wormhole:
    # Each process of a multi-process run gets a model of its own, on its own devices.
    return from_meta(output.meta, to_local(output.state.params), output.workdir,
                     int(output.state.step))


def train(config: Config | str | Path | None = "digits.yaml",
          overrides: Mapping | Sequence[str] | None = None, dataset: Dataset | None = None,
          callbacks: Sequence[Callable[[int, dict], None]] = (),
          progress: bool = True) -> Wormhole:
    """Train (or resume) the run a config describes, on its configured data set.

    A run on AnnData (``data.name: anndata``) then writes its cells' embeddings to
    ``<run>/embedded.h5ad`` (see :func:`wormhole.cells.write_run_embeddings`).
    """
    resolved = resolve_config(config, overrides)
    model = _finish(train_and_evaluate(resolved, dataset, callbacks, progress))
    if resolved.data.name == "anndata" and jax.process_index() == 0:
        from wormhole.cells import write_run_embeddings

        write_run_embeddings(model)
    return model


def fit(clouds, weights=None, labels=None, test_clouds=None, test_weights=None,
        test_labels=None, config: Config | str | Path | None = None,
        overrides: Mapping | Sequence[str] | None = None, workdir: str | Path | None = None,
        progress: bool = True) -> Wormhole:
    """Train on clouds held in memory.

    The run keeps its own copy of the clouds: the prepared train and test clouds (after the
    config's caps, subsampling, split and excluded labels, before normalisation) are saved
    to ``<workdir>/data/clouds.npz``, and the run's config reads them back from there
    (``data.name: files``, ``data.split: official``), so evaluation, ``embed.py --split``
    and a resume see exactly these clouds; resuming with other clouds is refused.

    An AnnData object trains on its niches or samples instead (``data.name: anndata``, the
    loader options from ``data.options``, e.g. ``overrides={"data.options.rep_key":
    "X_pca"}``): it is saved to ``<workdir>/data/input.h5ad``, the run reads it from there,
    and the cells' embeddings are written to ``<workdir>/embedded.h5ad`` after training.

    Args:
      clouds: a list of ``[n_i, d]`` arrays (sizes may differ), :class:`PointClouds`, or an
        ``anndata.AnnData``.
      weights: optional per-point weights (default uniform).
      labels: optional per-cloud labels (kept for evaluation and plots).
      test_clouds, test_weights, test_labels: a held-out set; default: a random split of
        ``clouds`` by ``data.test_fraction``.
      config: a config object, YAML path or bare name (default: the built-in defaults).
      overrides: ``"section.key=value"`` strings or a ``{"section.key": value}`` mapping.
      workdir: the run directory (default ``runs/<config name>``).
    """
    resolved = resolve_config(config, overrides)
    if workdir is not None:
        resolved = resolve_config(resolved, {"train.workdir": str(workdir)})
    if _is_anndata(clouds):
        if any(v is not None for v in (weights, labels, test_clouds, test_weights,
                                       test_labels)):
            raise ValueError("With an AnnData, weights, labels and test clouds come from its "
                             "loader options (data.options: label_key, ...), not from fit's "
                             "arguments; the test split is data.test_fraction.")
        return _fit_anndata(clouds, resolved, progress)
    train_set = as_point_clouds(clouds, weights, labels)
    test_set = None if test_clouds is None else as_point_clouds(
        test_clouds, test_weights, test_labels, labels_name="test_labels")
    train_part, test_part = select_splits(train_set, resolved.data, test_set)
    data_file = resolved.workdir.expanduser().resolve() / "data" / "clouds.npz"
    run_config = resolve_config(resolved, {
        "data.name": "files", "data.path": str(data_file), "data.options": {},
        "data.split": "official", "data.max_clouds": None, "data.max_points": None,
        "data.exclude_labels": None})
    # Train on the clouds as read back from the file, so that evaluation and a resume from
    # the command line see the same numbers. A new run keeps the file; an existing run keeps
    # the clouds it was trained on, and the trainer refuses to resume it with other clouds
    # (their fingerprints differ).
    incoming = data_file.with_name("clouds.incoming.npz")
    with _run_data_directory(data_file.parent):
        save_clouds_npz(incoming, _with_split(train_part, test_part))
        dataset = _adopt_data_file(incoming, data_file, run_config)
    return _finish(train_and_evaluate(run_config, dataset, progress=progress))


@contextlib.contextmanager
def _run_data_directory(directory: Path):
    """Make ``directory`` (a run's ``data/``) and its missing parents; when the block fails,
    remove again those this call made that are still empty, so a fit that cannot read its
    data leaves no empty run behind (and never a directory the user made)."""
    made = [p for p in (directory, *directory.parents) if not p.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    try:
        yield directory
    except BaseException:
        for path in made:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def _adopt_data_file(incoming: Path, data_file: Path, run_config: Config) -> Dataset:
    """The run's data set, prepared from ``incoming`` (just written by fit).

    A new run then keeps ``incoming`` as its ``data_file``; an existing run (one with a
    checkpoint) keeps the file it was trained on (the trainer refuses to resume it with data
    of another fingerprint). A run that failed before its first checkpoint is a new run.
    """
    try:
        dataset = prepare_dataset(load_clouds(replace(run_config.data, path=str(incoming))),
                                  run_config.data)
    except BaseException:
        incoming.unlink(missing_ok=True)
        raise
    if holds_checkpoints(data_file.parent.parent / CHECKPOINT_DIR) and data_file.exists():
        incoming.unlink()
    else:
        incoming.replace(data_file)
    return dataset


def _is_anndata(value) -> bool:
    return type(value).__name__ == "AnnData" and type(value).__module__.startswith("anndata")


def _fit_anndata(adata, resolved: Config, progress: bool) -> Wormhole:
    """:func:`fit` on an AnnData: the run keeps it as ``data/input.h5ad`` and reads it."""
    data_file = resolved.workdir.expanduser().resolve() / "data" / "input.h5ad"
    run_config = resolve_config(resolved, {"data.name": "anndata",
                                           "data.path": str(data_file)})
    # As in fit: an existing run keeps the file it was trained on, and a resume with other
    # cells is refused by their fingerprint.
    incoming = data_file.with_name("input.incoming.h5ad")
    with _run_data_directory(data_file.parent):
        adata.write_h5ad(incoming)
        dataset = _adopt_data_file(incoming, data_file, run_config)
    return train(run_config, dataset=dataset, progress=progress)


def _with_split(train: PointClouds, test: PointClouds | None) -> PointClouds:
    """One set of clouds whose ``metadata["split"]`` says which are train and test."""
    parts = [train] if test is None else [train, test]
    if len({p.labels is None for p in parts}) > 1:
        raise ValueError("Give labels for both the training and the test clouds, or for "
                         "neither.")
    xs, ws, labels, split = [], [], [], []
    for name, part in zip(("train", "test"), parts, strict=False):
        points, weights = part.to_list()
        xs += points
        ws += weights
        split += [name] * len(part)
        if part.labels is not None:
            labels += list(part.labels)
    return PointClouds.from_list(xs, ws, labels=labels if train.labels is not None else None,
                                 label_names=train.label_names,
                                 metadata={"split": np.array(split)})
