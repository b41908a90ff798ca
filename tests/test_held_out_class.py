"""benchmarks/held_out_class.py: a class removed from training, evaluated on its own."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO))

from benchmarks import held_out_class  # noqa: E402
from benchmarks.held_out_class import one_nn_accuracy  # noqa: E402


def test_one_nn_accuracy_never_counts_a_query_as_its_own_neighbour():
    labels = np.array([0, 0, 1, 1])
    queries, references = np.array([0, 2]), np.array([0, 1, 2, 3])
    # Each query is nearest to itself (distance 0); its next neighbour decides.
    distances = np.array([[0.0, 5.0, 1.0, 9.0],     # cloud 0: nearest other is 2 (class 1)
                          [4.0, 8.0, 0.0, 2.0]])    # cloud 2: nearest other is 3 (class 1)
    assert one_nn_accuracy(distances, queries, references, labels) == 0.5
    # Without itself among the references a query's nearest is the smallest distance.
    assert one_nn_accuracy(distances[:, 1:], queries, references[1:], labels) == 0.5
    assert one_nn_accuracy(distances[:, [1, 3]], queries, references[[1, 3]], labels) == 1.0


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
        assert held[key]["target_mean"] > 0
    # Pairs within one class are closer than pairs across classes, on average.
    assert held["target_mean"] < held["held_out_to_seen_pairs"]["target_mean"]
    assert 0 <= held["nearest_neighbor_leave_one_out"] <= 1
    found = result["exact_neighbours"]
    assert found["kind"] == "W2" and found["method"] == "exact"
    assert found["num_queries"] == 6 and found["num_reference"] == 60
    for group in ("held_out", "seen"):
        for judge in ("embedding", "exact"):
            assert found[group][judge] * 6 == pytest.approx(round(found[group][judge] * 6))
    text = (tmp_path / "ood.md").read_text()
    assert "by exact W2^2 (POT) on the same references" in text
    assert "| within 8 |" in text and "| 8 to a seen cloud |" in text
    within, seen = held, held["seen_classes_within_class_pairs"]
    relative = within["mean_relative_error"] / seen["mean_relative_error"]
    assert f"Mean relative error ratio, held-out / seen: within-class pairs {relative:.2f}" in text
    scaled = (within["stress"] / within["target_mean"] ** 2) / (
        seen["stress"] / seen["target_mean"] ** 2)
    assert f"Normalised MSE ratio, held-out / seen: within-class pairs {scaled:.2f}" in text
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
    assert rescored["exact_neighbours"] == found  # same seed, same clouds, same answers
    assert "later scoring of that run" in (tmp_path / "again.md").read_text()

    # --render rewrites the report from the saved result alone: the same text.
    (tmp_path / "ood.md").unlink()
    assert held_out_class.main(["--render", "--output", str(tmp_path / "ood")]) == 0
    assert (tmp_path / "ood.md").read_text() == text
    assert json.loads((tmp_path / "ood.json").read_text()) == result
    with pytest.raises(SystemExit, match="no saved result at"):
        held_out_class.main(["--render", "--output", str(tmp_path / "absent")])
    # Mean targets from another result: only one of the same class, split and pair counts.
    render = ["--render", "--output", str(tmp_path / "ood"), "--targets-from"]
    with pytest.raises(SystemExit, match="not the same config"):
        held_out_class.main([*render, str(tmp_path / "again.json")])
    (tmp_path / "same.json").write_text((tmp_path / "ood.json").read_text())
    assert held_out_class.main([*render, str(tmp_path / "same.json")]) == 0
    assert json.loads((tmp_path / "ood.json").read_text())["held_out"] == held
    assert "Mean targets of these pairs from" in (tmp_path / "ood.md").read_text()
    # A result without mean targets (an older one) takes the source's ...
    groups = ("seen_classes_within_class_pairs", "held_out_to_seen_pairs", "seen_pairs")
    older = json.loads(json.dumps(result))
    for part in (older["held_out"], *(older["held_out"][g] for g in groups)):
        del part["target_mean"]
    (tmp_path / "older.json").write_text(json.dumps(older))
    source = json.loads(json.dumps(result))
    source["held_out"]["target_mean"] *= 2  # only the random test pairs can be checked
    (tmp_path / "source.json").write_text(json.dumps(source))
    assert held_out_class.main(["--render", "--output", str(tmp_path / "older.json"),
                                "--targets-from", str(tmp_path / "source.json")]) == 0
    adopted = json.loads((tmp_path / "older.json").read_text())["held_out"]
    assert adopted["target_mean"] == 2 * held["target_mean"]
    assert adopted["seen_pairs"]["target_mean"] == held["seen_pairs"]["target_mean"]
    # ... but never overwrites its own, nor comes from other random test pairs.
    with pytest.raises(SystemExit, match="target_mean has its own mean target"):
        held_out_class.main([*render, str(tmp_path / "source.json")])
    source["all_test_pairs"]["target_mean"] *= 1.01
    (tmp_path / "source.json").write_text(json.dumps(source))
    with pytest.raises(SystemExit, match="random test pairs"):
        held_out_class.main(["--render", "--output", str(tmp_path / "older"),
                             "--targets-from", str(tmp_path / "source.json")])
