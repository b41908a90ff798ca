"""wormhole: Wasserstein embedding spaces for point clouds and distributions, in JAX."""

from wormhole.config import Config, ConfigError, load_config
from wormhole.data import Dataset, PointClouds, load_dataset

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "Dataset", "PointClouds", "load_config", "load_dataset"]
