"""benchmarks/head_to_head.py: the race against the published package at one budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO))

from benchmarks import head_to_head  # noqa: E402


def test_training_clock_adds_each_logged_window_over_its_rate(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [{"step": 50, "loss": 1.0, "steps_per_s": 0.5},   # 100 s, compilation in it
               {"step": 100, "loss": 0.5, "steps_per_s": 2.0},  # 25 s
               {"step": 100, "pearson": 0.9},                   # an eval record: no rate
               {"step": 150, "loss": 0.4, "steps_per_s": 5.0}]  # 10 s
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert head_to_head.training_clock(path) == {50: 100.0, 100: 125.0, 150: 135.0}


def test_time_to_a_pearson_is_the_first_score_reaching_it():
    curve = [{"train_s": t, "pearson": p, "spearman": p} for t, p in
             [(10.0, 0.5), (20.0, 0.93), (30.0, 0.91), (40.0, 0.96)]]
    assert head_to_head.time_to(curve, 0.6) == 20.0
    assert head_to_head.time_to(curve, 0.95) == 40.0
    assert head_to_head.time_to(curve, 0.99) is None
    row = head_to_head.summary_row({"name": "x", "steps": 4, "train_s": 40.0,
                                    "steps_per_s": 0.1, "nn_accuracy": 0.5, "curve": curve})
    assert row[4:7] == ["20 s", "20 s", "40 s"]
    row = head_to_head.summary_row({"name": "x", "steps": 4, "train_s": 40.0,
                                    "steps_per_s": None, "nn_accuracy": 0.5,
                                    "curve": curve[:3]})
    assert row[6] == "not reached (best 0.930)"


def test_nn_label_accuracy_matches_scikit_learn():
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    reference, test = rng.normal(size=(60, 5)), rng.normal(size=(40, 5))
    ref_labels, test_labels = rng.integers(0, 3, 60), rng.integers(0, 3, 40)
    knn = KNeighborsClassifier(n_neighbors=1).fit(reference, ref_labels)
    expected = float(np.mean(knn.predict(test) == test_labels))
    assert head_to_head.nn_label_accuracy(test, test_labels, reference, ref_labels) == \
        pytest.approx(expected)


def test_published_matched_settings_come_from_our_config():
    from wormhole.api import resolve_config

    config = resolve_config("mnist.yaml")
    sides = head_to_head.published_settings(config, cost_scale=0.97)
    defaults, matched = sides["published, defaults"], sides["published, matched"]
    assert defaults == {"config": {}, "cost_scale": None, "learning_rate": 1e-4,
                        "batch_size": 16}
    m = matched["config"]
    assert (m["emb_dim"], m["num_layers"], m["mlp_dim"]) == (
        config.model.emb_dim, config.model.num_layers, config.model.mlp_dim)
    assert (m["eps_enc"], m["eps_dec"]) == (config.ot.epsilon, config.ot.decoder_epsilon)
    assert m["num_particles_output"] == config.model.decoder_points
    assert m["coeff_dec"] == config.loss.reconstruction
    assert matched["cost_scale"] == 0.97
    assert matched["learning_rate"] == config.train.learning_rate


def test_quick_mode_without_the_package_reports_our_side_and_why(tmp_path):
    missing = tmp_path / "no-venv" / "bin" / "python"
    out = tmp_path / "h2h"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "head_to_head.py"),
                           "--quick", "--published-python", str(missing),
                           "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "h2h.json").read_text())
    ours = result["ours"]
    assert result["published"] == {}
    assert set(result["published_missing"]) == {"published, defaults", "published, matched"}
    assert all(str(missing) in why for why in result["published_missing"].values())
    # Every kept checkpoint is scored, at a training clock that grows with the step.
    assert [c["step"] for c in ours["curve"]] == [10, 20, 30, 40]
    clock = [c["train_s"] for c in ours["curve"]]
    assert clock == sorted(clock) and clock[0] > 0 and ours["wall_s"] >= clock[-1]
    assert all(-1.0 <= c["pearson"] <= 1.0 for c in ours["curve"])
    assert 0.0 <= ours["nn_accuracy"] <= 1.0
    text = (tmp_path / "h2h.md").read_text()
    assert "**published, defaults: not measured**" in text and "| ours | 40 |" in text
    assert (tmp_path / "h2h.png").is_file()


@pytest.mark.skipif(not os.environ.get("WORMHOLE_PUBLISHED_PYTHON"),
                    reason="needs a venv with wassersteinwormhole (WORMHOLE_PUBLISHED_PYTHON)")
def test_the_published_side_races_its_budget(tmp_path):
    python = os.environ["WORMHOLE_PUBLISHED_PYTHON"]
    out = tmp_path / "h2h"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "head_to_head.py"),
                           "--quick", "--published-python", python, "--sides", "matched",
                           "--output", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "h2h.json").read_text())
    side = result["published"]["published, matched"]
    assert side["train_s"] >= result["budget_s"] and side["steps"] > 1
    assert side["config"]["emb_dim"] == 32 and side["cost_scale"] == pytest.approx(
        result["published_settings"]["published, matched"]["cost_scale"])
