"""benchmarks/neighbour_probe.py: short variant runs scored on cached exact W2 matrices."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import ot

from .conftest import REPO


def test_quick_probe_scores_both_splits_against_cached_exact_w2(tmp_path):
    cache = tmp_path / "cache"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "neighbour_probe.py"),
                           "--quick", "--cache", str(cache), "--output", str(tmp_path / "np")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads((tmp_path / "np.json").read_text())["rows"]
    for split in ("test", "train"):
        s = row[split]
        assert -1.0 <= s["pearson"] <= 1.0 and set(s["recall"]) == {"1", "10"}
        assert 0.0 <= s["nn_embedding"] <= 1.0 and 0.0 <= s["nn_exact"] <= 1.0
    # The cached matrices are POT's exact W2^2 of the first clouds of each split (the
    # quick run's 300 digits hold 30 held-out clouds).
    from wormhole.config import load_config
    from wormhole.evaluate.splits import run_split

    config = load_config("digits.yaml", ["data.max_clouds=300"])
    (test_file,) = cache.glob("*/test.npz")
    exact = np.load(test_file)["exact"]
    clouds = run_split(config, "test").to_list()
    assert exact.shape == (30, 30) and np.allclose(exact, exact.T)
    for i, j in [(0, 1), (5, 29)]:
        (x, a), (y, b) = (clouds[0][i], clouds[1][i]), (clouds[0][j], clouds[1][j])
        assert np.isclose(exact[i, j], ot.emd2(a / a.sum(), b / b.sum(), ot.dist(x, y)),
                          rtol=1e-6)
    assert "| as shipped | (as shipped) | 20 |" in (tmp_path / "np.md").read_text()
