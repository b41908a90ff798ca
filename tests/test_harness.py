"""benchmarks/_harness.py: what every benchmark's training goes through."""

from __future__ import annotations

import sys

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO))

from benchmarks._harness import (  # noqa: E402
    recorded_training,
    run_training,
    scratch_dir,
    training_stopped,
)


def test_training_into_a_kept_run_starts_afresh_instead_of_resuming(tmp_path):
    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "benchmark_training.json").write_text('{"seconds": 1.0, "command": ["old"]}\n')
    # A bad key fails in train.py before any training; the old run must already be gone.
    with pytest.raises(RuntimeError, match="train.no_such_key"):
        run_training("digits.yaml", ["train.no_such_key=1"], workdir)
    assert not (workdir / "checkpoints").exists()
    assert recorded_training(workdir) is None


def test_a_training_stopped_at_its_time_limit_is_recorded_and_not_scored(tmp_path):
    from benchmarks.table1 import measure

    workdir = tmp_path / "run"
    seconds, _ = run_training("digits.yaml", ["train.steps=100000"], workdir, time_limit=3)
    assert 3 <= seconds < 60
    assert training_stopped(workdir) and recorded_training(workdir)[0] == seconds
    # Stopped before its first checkpoint: table1 says so instead of scoring.
    assert measure(workdir, 10, 10) == {
        "skipped": "stopped by the time limit before its first checkpoint"}


def test_scratch_runs_are_removed_unless_kept_even_when_the_benchmark_fails(tmp_path):
    with scratch_dir("bench_") as scratch:
        (scratch / "run").mkdir()
        assert scratch.name.startswith("bench_")
    assert not scratch.exists()
    with pytest.raises(SystemExit), scratch_dir("bench_") as failed:
        (failed / "run").mkdir()
        raise SystemExit("a scoring error")
    assert not failed.exists()
    with scratch_dir("bench_", tmp_path / "kept" / "runs") as kept:
        (kept / "run").mkdir()
    assert kept == tmp_path / "kept" / "runs" and (kept / "run").is_dir()


def test_a_run_records_the_commit_it_started_with_and_the_one_it_ended_at(monkeypatch):
    # A long benchmark outlives commits: the result names the code it started with.
    import benchmarks._harness as harness

    versions = iter([{"commit": "aaaaaaa", "modified": []},
                     {"commit": "bbbbbbb", "modified": []}])
    monkeypatch.setattr(harness, "code_version", lambda watch: next(versions))
    result = harness.Run("python benchmarks/x.py").finish()
    assert result["code"] == {"commit": "aaaaaaa", "modified": [], "ended_at": "bbbbbbb"}
    assert "commit aaaaaaa (HEAD bbbbbbb when it ended)" in " ".join(
        harness.provenance_lines(result))
    monkeypatch.setattr(harness, "code_version", lambda watch: {"commit": "c", "modified": []})
    assert harness.Run("python benchmarks/x.py").finish()["code"] == {"commit": "c",
                                                                       "modified": []}


def test_changed_result_files_are_not_reported_as_changed_code(tmp_path, monkeypatch):
    import subprocess

    from benchmarks import _harness as harness

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "bench.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results" / "bench.md").write_text("old\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    monkeypatch.setattr(harness, "REPO", tmp_path)
    monkeypatch.setattr(harness, "RESULTS", tmp_path / "benchmarks" / "results")
    (tmp_path / "benchmarks" / "results" / "bench.md").write_text("new\n")
    assert harness.code_version(("benchmarks",))["modified"] == []
    (tmp_path / "benchmarks" / "bench.py").write_text("x = 2\n")
    assert harness.code_version(("benchmarks",))["modified"] == ["benchmarks"]
