"""benchmarks/held_out_class.py: a class removed from training, evaluated on its own."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO


def test_quick_mode_reports_the_held_out_class_next_to_the_seen_ones(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "held_out_class.py"),
                           "--quick", "--output", str(tmp_path / "ood")],
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
