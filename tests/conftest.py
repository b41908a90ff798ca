"""Shared test fixtures: locations of real data used as test inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real MNIST test split lives beside the checkout in this workplace; elsewhere point
# WORMHOLE_TEST_MNIST at a directory holding t10k-images-idx3-ubyte.gz and the labels.
MNIST_DIR = Path(os.environ.get("WORMHOLE_TEST_MNIST", REPO.parent / "shared" / "data" / "mnist"))
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

# Many tests compile the same train step (one per fresh run, resumed run, subprocess); JAX's
# persistent compilation cache lets them share the compiled programs. Set before JAX loads
# so that subprocesses inherit it. Every program is kept, however quick to compile: the
# small ones (parameter init, encoder chunks, checks) recur in every run, and keeping them
# made tests/test_train.py, test_run_format.py and test_scripts_inference.py 1.07x faster
# from an empty cache (median of 2 interleaved runs each, 147.4 s vs 138.3 s).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".pytest_cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The tests' programs are tiny, so compiling them costs more than running them: compile with
# XLA's backend (LLVM) optimisation at level 1 instead of the default 3 (a fresh tiny training
# run, step compile 6.1 s instead of 9.1 s). Not level 0: there the sorting-solver train step
# of tests/test_train.py gave a NaN gradient that neither level 3 nor the unjitted step gives.
# Fast-math stays off; values may differ from the default build in the last bits.
# Subprocesses inherit it; a level already set in XLA_FLAGS is kept.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=1").strip()


def load_script(name: str):
    """``scripts/<name>.py`` as a module, imported fresh (the scripts are no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST test split not found in {MNIST_DIR}; set WORMHOLE_TEST_MNIST")
    return MNIST_DIR


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not any(FASHION_DIR.glob("*idx3-ubyte*")):
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    return FASHION_DIR


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """The prepared clouds of ``tests.test_train.tiny`` (a slice of the digits)."""
    from wormhole.data import load_dataset

    from .test_train import tiny

    return load_dataset(tiny(tmp_path_factory.mktemp("d")).data)
