"""The package's top-level names stay what they say after every submodule is imported."""

import importlib
import inspect
import pkgutil

import wormhole


def test_top_level_names_are_not_shadowed_by_submodules():
    for info in pkgutil.walk_packages(wormhole.__path__, prefix="wormhole."):
        importlib.import_module(info.name)
    for name in wormhole.__all__:
        value = getattr(wormhole, name)
        assert not inspect.ismodule(value), f"wormhole.{name} is the module {value.__name__}"
    assert callable(wormhole.train) and callable(wormhole.load)
