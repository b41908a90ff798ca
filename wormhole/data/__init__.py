"""Point-cloud sets: the padded data type, loaders, and preparation."""

from wormhole.data.clouds import PointClouds, label_values, pad_clouds, validate_clouds
from wormhole.data.dataset import (
    LOADERS,
    CoordinateScaleWarning,
    Dataset,
    get_loader,
    load_clouds,
    load_dataset,
    prepare_dataset,
    select_splits,
)
from wormhole.data.transforms import (
    Normalization,
    distinct_random_pairs,
    random_rotations,
    rotate_clouds,
    subsample_clouds,
    train_test_split,
)

__all__ = [
    "LOADERS",
    "CoordinateScaleWarning",
    "Dataset",
    "Normalization",
    "PointClouds",
    "distinct_random_pairs",
    "get_loader",
    "label_values",
    "load_clouds",
    "load_dataset",
    "pad_clouds",
    "prepare_dataset",
    "random_rotations",
    "rotate_clouds",
    "select_splits",
    "subsample_clouds",
    "train_test_split",
    "validate_clouds",
]
