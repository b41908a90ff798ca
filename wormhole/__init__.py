"""wormhole: Wasserstein embedding spaces for point clouds and distributions, in JAX.

Top-level names are imported on first use, so ``import wormhole.data`` stays light.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "wormhole.config",
    "ConfigError": "wormhole.config",
    "load_config": "wormhole.config",
    "Dataset": "wormhole.data",
    "PointClouds": "wormhole.data",
    "load_dataset": "wormhole.data",
    "Wormhole": "wormhole.inference",
    "load": "wormhole.inference",
    "CloudIndex": "wormhole.search",
    "load_index": "wormhole.search",
    "fit": "wormhole.api",
    "train": "wormhole.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'wormhole' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + __all__)
