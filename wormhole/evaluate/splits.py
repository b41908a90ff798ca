"""The clouds a run was trained and tested on, in the user's original coordinate units."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from wormhole.checkpoint import DataRecord
from wormhole.config import Config, ConfigError
from wormhole.data import PointClouds, load_clouds, select_splits
from wormhole.data.clouds import label_values
from wormhole.data.dataset import normalised_dataset

__all__ = ["SPLITS", "input_clouds", "label_values", "run_split"]

SPLITS = ("train", "test", "all")


def run_split(config: Config, split: str = "test", record: DataRecord | None = None
              ) -> PointClouds:
    """Reload a run's data set and return one split, not normalised.

    The split is the one training used (same loader options, caps, subsampling, seed and
    split rule), so ``test`` holds exactly the clouds the model never trained on. ``all``
    is every cloud after the caps, before splitting. A model's ``encode`` normalises them
    itself. With ``record`` (a loaded model's ``data``), the reloaded clouds must have the
    fingerprint the run was trained on.

    Raises:
      ValueError: for an unknown split, ``test`` when the run has no test split, or clouds
        other than the run's (the files at ``data.path`` changed).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split '{split}'; choose one of {', '.join(SPLITS)}.")
    try:
        clouds = load_clouds(config.data)  # the loader reads no split setting: load once
        train, test = select_splits(clouds, config.data)
        if record is not None and record.fingerprint is not None:
            _check_fingerprint(config, train, test, record)
        if split == "all":
            every = replace(config.data, split="random", test_fraction=0.0,
                            exclude_labels=None)
            train, test = select_splits(clouds, every)
    except ConfigError as err:
        raise ValueError(f"Cannot reload the run's data set: {err}") from None
    if split == "test":
        if test is None:
            raise ValueError(f"The run '{config.name}' has no test split (data.test_fraction="
                             f"{config.data.test_fraction}); use split 'train' or 'all'.")
        return test
    return train


def _check_fingerprint(config: Config, train: PointClouds, test: PointClouds | None,
                      record: DataRecord) -> None:
    """Refuse clouds whose fingerprint is not the one the run was trained on."""
    from wormhole.run_setup import data_fingerprint

    found = data_fingerprint(normalised_dataset(train, test, config.data.normalize))
    if found != record.fingerprint:
        raise ValueError(
            f"The clouds read from the run's data ({config.data.name}"
            + (f", {config.data.path}" if config.data.path else "")
            + f") are not those it was trained on: fingerprint {found} "
            f"({len(train)} train / {0 if test is None else len(test)} test clouds), but the "
            f"run's is {record.fingerprint} ({record.num_train} / {record.num_test}). The "
            "files changed since training; give the clouds with --input instead.")


def input_clouds(config: Config, path: str | Path | None = None,
                 split: str | None = None, record: DataRecord | None = None) -> PointClouds:
    """Clouds from a user file (``.npz`` or a directory of ``.npy``) or a run's split.

    The scripts' one way to read inputs: ``path`` wins; otherwise ``split`` of the run's
    own data set (default ``test``), checked against ``record`` (see :func:`run_split`).
    See :mod:`wormhole.data.loaders.files` for formats.
    """
    if path is not None:
        from wormhole.data.loaders.files import load_files

        if not Path(path).expanduser().exists():
            raise FileNotFoundError(f"No clouds at '{path}'; expected an .npz file or a "
                                    f"directory of .npy files.")
        return load_files(str(path))
    return run_split(config, split or "test", record)
