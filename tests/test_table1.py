"""benchmarks/table1.py: the paper's Table 1 rows, and data sets that are absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import REPO


def _run(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "table1.py"), *args],
                          capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, **(env or {})})


def test_quick_mode_trains_then_scores_each_row_against_its_reference(tmp_path):
    # Trained with --train-only (as on a GPU machine without POT), scored by --rescore.
    runs, out = tmp_path / "runs", str(tmp_path / "t1")
    done = _run(tmp_path, "--quick", "--train-only", "--keep-runs", str(runs), "--output", out,
                "--set", "model.emb_dim=12")
    assert done.returncode == 0, done.stderr[-3000:]
    trained = json.loads((tmp_path / "t1.json").read_text())["rows"]
    assert all("pearson" not in r and r["stopped"] is False for r in trained)
    # A --set variant reaches the training and its row says so.
    for r in trained:
        assert r["overrides"][-1] == "model.emb_dim=12"
        assert r["scaled"].startswith(f"--quick smoke run: {r['config']} with train.steps=")
        assert r["scaled"].endswith("; with model.emb_dim=12")
        assert "emb_dim: 12" in (runs / r["name"] / "config.yaml").read_text()
    assert not (tmp_path / "t1.md").exists()
    done = _run(tmp_path, "--quick", "--rescore", "--keep-runs", str(runs), "--output", out)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["name"]: r for r in json.loads((tmp_path / "t1.json").read_text())["rows"]}
    assert all(rows[r["name"]]["train_minutes"] == r["train_minutes"] for r in trained)
    assert set(rows) == {"mnist", "shapes_gw"}
    # S2 rows are scored against exact W2 (POT); GW has no exact solver: converged GW.
    assert rows["mnist"]["reference_kind"] == "W2"
    assert rows["shapes_gw"]["reference_kind"] == "GW"
    for row in rows.values():
        assert -1.0 <= row["pearson"] <= 1.0 and 0.0 <= row["accuracy"] <= 1.0
        assert row["knn_accuracy"]["1"] == row["accuracy"]
        assert 0.0 <= row["knn_accuracy"]["10"] <= 1.0 and 0.0 <= row["probe_accuracy"] <= 1.0
        assert row["train_minutes"] > 0 and row["num_reference"] == 100
        # --quick: 12 held-out clouds also labelled by the reference OT among 20 others.
        by_ot = row["ot_knn"]
        assert (by_ot["num_clouds"], by_ot["num_reference"]) == (12, 20)
        assert all(0 <= v <= 1 for v in by_ot["knn_accuracy"]["1"].values())
        assert 0 <= by_ot["trustworthiness"] <= 1 and set(by_ot["recall"]) == {"1", "10"}
    assert (rows["mnist"]["ot_knn"]["kind"], rows["mnist"]["ot_knn"]["method"]) == ("W2", "exact")
    assert rows["shapes_gw"]["ot_knn"]["kind"] == "GW"
    text = (tmp_path / "t1.md").read_text()
    assert "| MNIST | mnist |" in text and "(100 refs)" in text and "0.98 / 0.98" in text
    assert "| 10-NN | probe | 1-NN, embedding / OT |" in text and "MLPClassifier" in text
    assert "(12 x 20)" in text
    # benchmarks/gw_neighbours.py's smoke test, on the kept GW (and S2) runs.
    from .test_gw_neighbours import check_quick_run

    check_quick_run(runs / "shapes_gw", runs / "mnist", tmp_path)


def test_an_absent_data_set_is_reported_as_not_run_with_the_loaders_reason(tmp_path):
    # No files anywhere the loader looks, and a download that cannot succeed.
    env = {"WORMHOLE_DATA": str(tmp_path / "data"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "WORMHOLE_MNIST_URL": (tmp_path / "no-mirror").as_uri()}
    done = _run(tmp_path, "--datasets", "mnist", "--mnist-dir", str(tmp_path / "none"),
                "--output", str(tmp_path / "t1"), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads((tmp_path / "t1.json").read_text())["rows"]
    assert "MNIST files not found" in row["skipped"] and str(tmp_path / "none") in row["skipped"]
    assert "| MNIST | mnist | not run |" in (tmp_path / "t1.md").read_text()


def test_merged_rows_keep_earlier_data_sets_with_their_own_provenance(tmp_path):
    sys.path.insert(0, str(REPO))
    from benchmarks.table1 import DATASETS, merged_rows

    spec = DATASETS["fashion_mnist"]
    earlier = {"machine": {"cpu": "CPU A"}, "rows": [
        {"name": "shapes_gw", "overrides": ["model.width=8"], "scaled": "old words",
         "paper": {}, "date": "day 1"},
        {"name": "fashion_mnist", "overrides": list(spec["overrides"]), "scaled": "old words",
         "paper": {}, "date": "day 1"},
        {"name": "mnist", "overrides": [], "date": "day 1"}]}
    (tmp_path / "t1.json").write_text(json.dumps(earlier))
    rows = merged_rows(tmp_path / "t1.json", [{"name": "mnist", "date": "day 2", "cpu": "B"}])
    assert [r["name"] for r in rows] == ["mnist", "fashion_mnist", "shapes_gw"]
    assert rows[0] == {"name": "mnist", "date": "day 2", "cpu": "B"}  # the new row wins
    assert all(r["cpu"] == "CPU A" and r["date"] == "day 1" for r in rows[1:])
    # The same overrides as today: today's description; other overrides: their own.
    assert rows[1]["scaled"] == spec["scaled"] and rows[2]["scaled"] == "old words"
    assert merged_rows(tmp_path / "absent.json", rows[:1]) == rows[:1]
