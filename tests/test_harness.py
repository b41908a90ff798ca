"""benchmarks/_harness.py: what every benchmark's training goes through."""

from __future__ import annotations

import sys

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO))

from benchmarks._harness import recorded_training, run_training  # noqa: E402


def test_training_into_a_kept_run_starts_afresh_instead_of_resuming(tmp_path):
    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "benchmark_training.json").write_text('{"seconds": 1.0, "command": ["old"]}\n')
    # A bad key fails in train.py before any training; the old run must already be gone.
    with pytest.raises(RuntimeError, match="train.no_such_key"):
        run_training("digits.yaml", ["train.no_such_key=1"], workdir)
    assert not (workdir / "checkpoints").exists()
    assert recorded_training(workdir) is None
