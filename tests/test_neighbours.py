"""Neighbourhood metrics of wormhole/evaluate/neighbours.py against sklearn and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from wormhole.evaluate.neighbours import (
    knn_label_accuracy,
    knn_predict,
    majority_vote,
    nearest_indices,
    neighbourhood_agreement,
    recall_at_k,
)


def _distances(points):
    return np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))


def test_nearest_indices_skip_self_and_sort_by_distance():
    d = np.array([[0, 3, 1, 2], [3, 0, 5, 4], [1, 5, 0, 9], [2, 4, 9, 0]], float)
    np.testing.assert_array_equal(nearest_indices(d, 2), [[2, 3], [0, 3], [0, 1], [0, 1]])
    np.testing.assert_array_equal(nearest_indices(d, 1, exclude_self=False)[:, 0], range(4))
    with pytest.raises(ValueError, match="between 1 and 3"):
        nearest_indices(d, 4)


def test_a_tied_vote_goes_to_the_nearest_neighbours_label():
    np.testing.assert_array_equal(majority_vote([[2, 1, 1, 2], [3, 1, 1, 0], [5, 5, 4, 4]]),
                                  [2, 1, 5])


def test_recall_counts_the_shared_neighbours():
    assert recall_at_k([[1, 2, 3], [4, 5, 6]], [[3, 2, 9], [7, 8, 9]]) == pytest.approx(1 / 3)


def test_knn_accuracy_matches_sklearn_against_references():
    rng = np.random.default_rng(0)
    refs, queries = rng.normal(size=(60, 3)), rng.normal(size=(25, 3))
    ref_labels, query_labels = rng.integers(3, size=60), rng.integers(3, size=25)
    d = np.sqrt(((queries[:, None] - refs[None]) ** 2).sum(-1))
    sk = KNeighborsClassifier(1).fit(refs, ref_labels).predict(queries)
    assert knn_label_accuracy(d, query_labels, 1, ref_labels) == np.mean(sk == query_labels)
    # With k = 5, sklearn breaks a tied vote by the smallest label and we by the nearest
    # neighbour: the votes agree on every query without a tie.
    sk = KNeighborsClassifier(5).fit(refs, ref_labels).predict(queries)
    mine = knn_predict(d, ref_labels, 5)
    near = ref_labels[np.argsort(d, axis=1)[:, :5]]
    untied = [np.sort(np.bincount(row, minlength=3))[-2] < np.bincount(row).max()
              for row in near]
    assert sum(untied) > 10
    np.testing.assert_array_equal(mine[untied], sk[untied])


def test_an_embedding_that_keeps_the_geometry_agrees_fully_and_a_shuffled_one_does_not():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(80, 4))
    labels = (points[:, 0] > 0).astype(int)
    exact = _distances(points) ** 2  # a monotone transform keeps every neighbourhood
    same = neighbourhood_agreement(_distances(points), exact, points, labels, ks=(1, 10))
    assert same.recall == {1: 1.0, 10: 1.0} and same.trustworthiness == pytest.approx(1.0)
    e, x = same.knn_accuracy[1]
    assert e == x
    shuffled = rng.permutation(80)
    other = neighbourhood_agreement(_distances(points[shuffled]), exact, points[shuffled],
                                    labels, ks=(1, 10))
    assert other.recall[10] < 0.4 and other.trustworthiness < 0.7


def test_local_fidelity_benchmark_quick_mode_reports_every_target(tmp_path):
    """benchmarks/local_fidelity.py --quick: trains, evaluates against exact W2 and checks
    each of issue 13's targets for the variant, with its barycenter plot."""
    import json
    import subprocess
    import sys

    from .conftest import REPO

    out = tmp_path / "fidelity"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "local_fidelity.py"),
                           "--quick", "--output", str(out),
                           "--variant", "weighted: loss.local_stress=1.0"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "fidelity.json").read_text())
    (row,) = result["rows"]
    assert row["name"] == "weighted" and row["overrides"] == ["loss.local_stress=1.0"]
    assert row["pearson_kind"] == "W2" and row["neighbour_kind"] == "W2"
    assert set(row["verdicts"]) == {"pearson", "recall_10", "nn_gap", "barycenters", "minutes"}
    assert 0.0 <= row["recall"]["10"] <= 1.0 and 0.0 <= row["nn_exact"] <= 1.0
    assert row["barycenter_classes"] >= 2 and (tmp_path / "fidelity.barycenters.png").is_file()
    text = (tmp_path / "fidelity.md").read_text()
    assert "| weighted | loss.local_stress=1.0 |" in text and "## Targets" in text


def test_local_fidelity_rescore_names_the_variant_without_a_kept_run(tmp_path):
    import subprocess
    import sys

    from .conftest import REPO

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "local_fidelity.py"),
                           "--quick", "--rescore", "--keep-runs", str(tmp_path / "none"),
                           "--output", str(tmp_path / "f"), "--variant", "weighted: a.b=1"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2
    assert "no finished run of 'weighted'" in done.stderr and "== training" not in done.stderr
    assert not (tmp_path / "f.json").exists()
