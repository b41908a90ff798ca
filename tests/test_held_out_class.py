"""benchmarks/held_out_class.py: a class removed from training, evaluated on its own."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO


def test_quick_mode_reports_the_held_out_class_next_to_the_seen_ones(tmp_path):
    script = [sys.executable, str(REPO / "benchmarks" / "held_out_class.py"), "--quick",
              "--keep-run", str(tmp_path / "kept")]
    done = subprocess.run([*script, "--output", str(tmp_path / "ood")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "ood.json").read_text())
    assert "data.exclude_labels=[\"8\"]" in result["overrides"]
    held = result["held_out"]
    assert held["labels"] == ["8"] and held["num_clouds"] >= 8
    for key in ("seen_classes_within_class_pairs", "held_out_to_seen_pairs", "seen_pairs"):
        assert held[key]["num_pairs"] == 60 and -1 <= held[key]["pearson"] <= 1
    assert 0 <= held["nearest_neighbor_leave_one_out"] <= 1
    text = (tmp_path / "ood.md").read_text()
    assert "| within 8 |" in text and "| 8 to a seen cloud |" in text
    assert (tmp_path / "ood.agreement.png").read_bytes()[:4] == b"\x89PNG"

    # Scoring the kept run again trains nothing and keeps the recorded training time.
    again = subprocess.run([*script, "--rescore", "--pairs", "30",
                            "--output", str(tmp_path / "again")],
                           capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "== training" not in again.stderr
    rescored = json.loads((tmp_path / "again.json").read_text())
    assert rescored["rescored"] and rescored["train_minutes"] == result["train_minutes"]
    assert rescored["held_out"]["seen_pairs"]["num_pairs"] == 30
    assert "later scoring of that run" in (tmp_path / "again.md").read_text()
