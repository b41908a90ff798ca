"""benchmarks/deepsets_paper.py: its exact references and a smoke run of every claim."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import ot as pot

from .conftest import REPO

sys.path.insert(0, str(REPO))

from benchmarks.deepsets_paper import exact_w, winding_number  # noqa: E402


def test_exact_1d_distances_match_pot():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 1)), rng.gamma(2.0, 1.0, (50, 1))
    uniform = np.full(50, 1 / 50)
    assert np.isclose(exact_w(x, y, 1), pot.emd2(uniform, uniform, pot.dist(x, y, "euclidean")))
    assert np.isclose(exact_w(x, y, 2) ** 2, pot.emd2(uniform, uniform, pot.dist(x, y)))


def test_winding_number_counts_turns_around_the_centre():
    theta = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    circle = np.stack([np.cos(theta), np.sin(theta)], 1)
    assert np.isclose(winding_number(circle, np.zeros(2)), 1.0)
    assert np.isclose(winding_number(circle[::-1], np.zeros(2)), -1.0)
    assert np.isclose(winding_number(circle, np.array([3.0, 0.0])), 0.0)
    twice = np.stack([np.cos(2 * theta), np.sin(2 * theta)], 1)
    assert np.isclose(winding_number(twice, np.zeros(2)), 2.0)


def test_quick_run_reports_every_claim(tmp_path):
    out = tmp_path / "dsp"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "deepsets_paper.py"),
                           "--quick", "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "dsp.json").read_text())
    for kind in ("W1", "W2"):
        part = result["kinds"][kind]
        assert -1.0 <= part["fidelity"]["test"]["pearson"] <= 1.0
        assert {"dirac", "binomial"} <= set(part["unseen"])
        assert len(part["scaling"]["rows"]) == 6 and len(part["barycenters"]["rows"]) == 3
        assert np.isfinite([r["median_defect"] for r in part["translation"]["rows"]]).all()
    assert np.isfinite(result["circle"]["winding_number"])
    assert [r["points"] for r in result["sample_size"]["rows"]] == [20, 60]
    for figure in result["figures"]:
        assert (tmp_path / figure).is_file()
    assert "## The claims" in (tmp_path / "dsp.md").read_text()
