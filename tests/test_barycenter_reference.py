"""benchmarks/barycenter_reference.py: decoded barycenters against ott-jax's."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO


def test_barycenter_reference_quick_run_scores_model_and_ott_per_class(tmp_path):
    """--quick: one ott epsilon, every digit class scored by the barycenter objective, and
    the objectives in the markdown are the JSON's."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "barycenter_reference.py"),
                           "--quick", "--output", str(tmp_path / "br")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "br.json").read_text())
    assert result["epsilons"] == [0.01]
    rows = result["rows"]
    assert [row["label"] for row in rows] == [str(c) for c in range(10)]
    for row in rows:
        assert row["members"] == 6
        assert row["model_objective"] > 0 and len(row["reference_objectives"]) == 1
        assert row["reference_converged"] == [True]
    text = (tmp_path / "br.md").read_text()
    assert f"| 0 | {rows[0]['model_objective']:.4g} | {rows[0]['reference_objectives'][0]:.4g}" \
        in text
    assert (tmp_path / "br.png").read_bytes()[:4] == b"\x89PNG"


def test_barycenter_reference_rejects_a_non_positive_epsilon(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "barycenter_reference.py"),
                           "--run", str(tmp_path), "--epsilon", "0.01", "0"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "--epsilon values must be positive" in done.stderr
