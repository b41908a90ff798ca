"""The clouds a run was trained and tested on, in the user's original coordinate units."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from wormhole.config import Config, ConfigError
from wormhole.data import PointClouds, load_clouds, select_splits
from wormhole.data.clouds import label_values

__all__ = ["SPLITS", "input_clouds", "label_values", "run_split"]

SPLITS = ("train", "test", "all")


def run_split(config: Config, split: str = "test") -> PointClouds:
    """Reload a run's data set and return one split, not normalised.

    The split is the one training used (same loader options, caps, subsampling, seed and
    split rule), so ``test`` holds exactly the clouds the model never trained on. ``all``
    is every cloud after the caps, before splitting. A model's ``encode`` normalises them
    itself.

    Raises:
      ValueError: for an unknown split, or ``test`` when the run has no test split.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split '{split}'; choose one of {', '.join(SPLITS)}.")
    data = config.data
    if split == "all":
        data = replace(data, split="random", test_fraction=0.0, exclude_labels=None)
    try:
        train, test = select_splits(load_clouds(data), data)
    except ConfigError as err:
        raise ValueError(f"Cannot reload the run's data set: {err}") from None
    if split == "test":
        if test is None:
            raise ValueError(f"The run '{config.name}' has no test split (data.test_fraction="
                             f"{config.data.test_fraction}); use split 'train' or 'all'.")
        return test
    return train


def input_clouds(config: Config, path: str | Path | None = None,
                 split: str | None = None) -> PointClouds:
    """Clouds from a user file (``.npz`` or a directory of ``.npy``) or a run's split.

    The scripts' one way to read inputs: ``path`` wins; otherwise ``split`` of the run's
    own data set (default ``test``). See :mod:`wormhole.data.loaders.files` for formats.
    """
    if path is not None:
        from wormhole.data.loaders.files import load_files

        if not Path(path).expanduser().exists():
            raise FileNotFoundError(f"No clouds at '{path}'; expected an .npz file or a "
                                    f"directory of .npy files.")
        return load_files(str(path))
    return run_split(config, split or "test")
