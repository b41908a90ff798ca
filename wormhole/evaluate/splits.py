"""The clouds a run was trained and tested on, in the user's original coordinate units."""

from __future__ import annotations

from dataclasses import replace

from wormhole.config import Config, ConfigError
from wormhole.data import PointClouds, load_clouds, prepare_dataset

__all__ = ["SPLITS", "run_split"]

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
    data = replace(config.data, normalize="none")
    if split == "all":
        data = replace(data, split="random", test_fraction=0.0)
    try:
        dataset = prepare_dataset(load_clouds(data), data)
    except ConfigError as err:
        raise ValueError(f"Cannot reload the run's data set: {err}") from None
    if split == "test":
        if dataset.test is None:
            raise ValueError(f"The run '{config.name}' has no test split (data.test_fraction="
                             f"{config.data.test_fraction}); use split 'train' or 'all'.")
        return dataset.test
    return dataset.train
