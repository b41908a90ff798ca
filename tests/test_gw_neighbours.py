"""benchmarks/gw_neighbours.py: neighbours by GW, by its debiased form and by a model (its
--quick smoke test runs inside tests/test_table1.py, on that test's kept runs)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO))


def test_gw_self_terms_differ_between_clouds_and_debiasing_removes_them():
    # The premise of the benchmark: the evaluation's GW is no divergence. A cloud's value
    # with itself is positive and differs from cloud to cloud (here a sphere and the same
    # sphere at 0.7 its size), so plain GW ranks neighbours with a per-cloud offset.
    from benchmarks.gw_neighbours import debiased
    from wormhole.evaluate.ground_truth import ground_truth_distances

    x = np.random.default_rng(0).normal(size=(40, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # a sphere's surface
    solve = dict(kind="GW", method="sinkhorn", epsilon=0.01, cost_scale=4.0, progress=False)
    self_xx, cross, self_yy = ground_truth_distances([x, x, 0.7 * x], None,
                                                     [x, 0.7 * x, 0.7 * x], None, **solve)
    assert self_xx > 1e-3 and self_yy > 1e-3 and abs(self_xx - self_yy) > 0.2 * self_xx
    gone = debiased(np.array([[cross]]), np.array([self_xx]), np.array([self_yy]))
    assert gone[0, 0] == pytest.approx(cross - (self_xx + self_yy) / 2)
    assert 0 < gone[0, 0] < cross


def test_neighbour_figures_count_hubs_and_the_nearest_scale():
    from benchmarks.gw_neighbours import neighbour_figures

    # The first two queries share their nearest reference (index 2, the smallest): a hub.
    distances = np.array([[3.0, 2.0, 1.0, 4.0], [2.0, 3.0, 0.5, 4.0], [5.0, 2.0, 1.0, 0.9]])
    labels, ref_labels = np.array([0, 1, 1]), np.array([0, 1, 1, 1])
    found = neighbour_figures(distances, labels, ref_labels, np.array([1.0, 2.0, 1.0]),
                              np.array([1.0, 1.0, 0.5, 2.0]))
    assert found["distinct_nearest"] == 2  # refs 2 and 3
    assert found["knn_accuracy"]["1"] == pytest.approx(2 / 3)
    # Scale ratios 0.5, 0.25 and 2.0: median 0.5.
    assert found["nearest_scale_ratio"] == pytest.approx(0.5)


def check_quick_run(run, s2_run, tmp_path):
    """``gw_neighbours.py --quick`` on a kept GW run (tests/test_table1.py's quick shapes run,
    which saves this module a training of its own), and its refusal of an S2 run."""
    from benchmarks.gw_neighbours import main, measure

    assert main(["--quick", "--run", str(run), "--output", str(tmp_path / "gn")]) == 0
    measured = json.loads((tmp_path / "gn.json").read_text())["measured"]
    assert (measured["num_queries"], measured["num_references"]) == (12, 30)
    assert set(measured["by"]) == {"GW", "GW, debiased", "embedding"}
    for found in measured["by"].values():
        assert set(found["knn_accuracy"]) == {"1", "5"}
        assert all(0 <= v <= 1 for v in found["knn_accuracy"].values())
        assert 1 <= found["distinct_nearest"] <= 12 and found["nearest_scale_ratio"] > 0
    assert 0 <= measured["self_farther_than_nearest"] <= 1
    # The embedding's figure, again from the saved run through the public API.
    import wormhole
    from wormhole.evaluate import run_split

    model = wormhole.load(measured["run"])
    test, train = run_split(model.config, "test"), run_split(model.config, "train")
    q, r = measured["query_index"], measured["reference_index"]
    distances = np.asarray(model.embedding_distances(model.encode(test.subset(q))[:, None],
                                                     model.encode(train.subset(r))[None]))
    nearest = train.labels[r][distances.argmin(1)]
    assert measured["by"]["embedding"]["knn_accuracy"]["1"] == pytest.approx(
        np.mean(nearest == test.labels[q]))
    text = (tmp_path / "gn.md").read_text()
    assert "| GW, debiased |" in text and "chance 0.125" in text
    with pytest.raises(SystemExit, match="trains kind S2.*needs a GW or GS run"):
        measure(s2_run, 4, 4, 0)
