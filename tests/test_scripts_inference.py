"""A tiny trained run used end to end: the inference API, the scripts and the report."""

from __future__ import annotations

import json
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

import wormhole
from wormhole.config import config_from_dict
from wormhole.data import PointClouds
from wormhole.data.loaders.files import load_files, save_clouds_npz
from wormhole.evaluate import evaluate_run, run_split

from .conftest import REPO, load_script


def _script(name: str):
    return load_script(name).main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A few steps on a slice of the digits, class 3 left out of training."""
    workdir = tmp_path_factory.mktemp("run") / "tiny"
    config = config_from_dict({
        "name": "tiny",
        "data": {"name": "digits", "max_clouds": 200, "test_fraction": 0.3,
                 "exclude_labels": [3]},
        "model": {"emb_dim": 8, "width": 16, "num_layers": 1, "num_heads": 2, "mlp_dim": 32,
                  "decoder_layers": 1, "decoder_points": 12},
        "ot": {"kind": "S2", "epsilon": 0.05, "max_iterations": 50},
        "train": {"steps": 10, "batch_size": 8, "learning_rate": 2e-3, "warmup_steps": 2,
                  "log_every": 10, "eval_every": 10, "length_bucket": 0,
                  "workdir": str(workdir)},
        "checkpoint": {"every": 10},
        "eval": {"num_pairs": 30, "num_plot": 3},
    })
    model = wormhole.train(config, progress=False)
    return workdir, wormhole.load(workdir), model


# --------------------------------------------------------------------------- inference


def test_loaded_model_encodes_like_the_trained_one_in_any_batch(run):
    workdir, model, trained = run
    test = run_split(model.config, "test")
    emb = model.encode(test)
    np.testing.assert_allclose(trained.encode(test), emb, atol=1e-5)
    np.testing.assert_allclose(model.encode(test, batch_size=7), emb, atol=1e-5)
    # A padded array with zero-weight padding is the same clouds.
    padded = model.encode(np.pad(test.points, ((0, 0), (0, 5), (0, 0))),
                          np.pad(test.weights, ((0, 0), (0, 5))))
    np.testing.assert_allclose(padded, emb, atol=1e-5)


def test_barycenter_and_interpolation_decode_embedding_averages(run):
    _, model, _ = run
    clouds = [c for c in run_split(model.config, "test").to_list()[0][:5]]
    emb = model.encode(clouds)
    np.testing.assert_allclose(model.barycenter(clouds), model.decode(emb.mean(0))[0],
                               atol=1e-5)
    weighted = model.barycenter(clouds, coefficients=[1, 0, 0, 0, 3])
    np.testing.assert_allclose(weighted, model.decode(0.25 * emb[0] + 0.75 * emb[4])[0],
                               atol=1e-5)
    path = model.interpolate(clouds[0], clouds[1], t=[0.0, 1.0])
    np.testing.assert_allclose(path, model.decode(emb[:2]), atol=1e-5)
    distance = model.distance(clouds[:2], clouds[2:4])
    np.testing.assert_allclose(distance, model.embedding_distances(emb[:2], emb[2:4]),
                               rtol=1e-5)
    matrix = model.distance_matrix(clouds)
    np.testing.assert_allclose(matrix, model.embedding_distances(emb[:, None], emb[None]),
                               rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(matrix, matrix.T, rtol=1e-6)


def test_inputs_of_the_wrong_dimension_name_the_expected_one(run):
    _, model, _ = run
    with pytest.raises(ValueError, match="clouds are 3-D, but this model expects 2-D"):
        model.encode([np.zeros((4, 3))])
    with pytest.raises(ValueError, match=r"shape \[N, 8\]"):
        model.decode(np.zeros((2, 5)))


def test_bad_inference_arguments_are_named(run, tmp_path):
    _, model, _ = run
    cloud = np.random.default_rng(0).random((6, 2))
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        model.encode([cloud], batch_size=0)
    with pytest.raises(ValueError, match="max_points must be at least 1"):
        model.encode([cloud], max_points=0)
    with pytest.raises(ValueError, match=r"with N >= 1, got \(0, 8\)"):
        model.decode(np.zeros((0, 8)))
    with pytest.raises(ValueError, match="t must be finite numbers"):
        model.interpolate(cloud, cloud, t=[0.0, np.nan])
    with pytest.raises(ValueError, match="Got 1 coefficients for 2 clouds"):
        model.barycenter([cloud, cloud], coefficients=1.0)
    with pytest.raises(ValueError, match="needs at least one cloud"):
        model.barycenter(PointClouds.from_list([cloud]).subset(np.arange(0)))
    with pytest.raises(FileNotFoundError, match="is a file; give the run directory"):
        wormhole.load(model.workdir / "config.yaml")
    with pytest.raises(ValueError, match="config.yaml is a file, not a directory"):
        evaluate_run(model.workdir, output_dir=model.workdir / "config.yaml", progress=False)
    for t in ([], [[0.0, 1.0]], "0.5"):
        with pytest.raises(ValueError, match="t must be a number or a non-empty list"):
            model.interpolate(cloud, cloud, t=t)
    for step in (10.0, "10", True):
        with pytest.raises(TypeError, match="step must be an integer checkpoint step"):
            wormhole.load(model.workdir, step=step)
    assert wormhole.load(model.workdir, step=np.int64(10)).step == 10


def test_clouds_or_embeddings_that_overflow_the_network_are_named_not_nan(run):
    # Finite but far outside the training range: the network's float32 overflows.
    _, model, _ = run
    cloud = np.random.default_rng(0).random((6, 2))
    assert np.all(np.isfinite(model.encode([cloud, cloud * 1e20])))
    for call in (lambda: model.encode([cloud, cloud * 1e25, cloud * 1e26]),
                 lambda: model.distance([cloud, cloud], [cloud, cloud * 1e25]),
                 lambda: model.index([cloud, cloud * 1e25, cloud])):
        with pytest.raises(ValueError, match=r"cloud 1: its embedding is not finite"):
            call()
    with pytest.raises(ValueError, match=r"\(2 clouds in all\)"):
        model.encode([cloud, cloud * 1e25, cloud * 1e26])
    with pytest.raises(ValueError, match="Embedding 1 decodes to NaN or infinite points"):
        model.decode(np.stack([np.zeros(8), np.full(8, 1e30)]))
    # Coefficients whose sum overflows weigh the clouds as their ratios say.
    clouds = [cloud, cloud + 1.0]
    np.testing.assert_allclose(model.barycenter(clouds, coefficients=[1e308, 1e308]),
                               model.barycenter(clouds), atol=1e-6)


# --------------------------------------------------------------------------- scripts


def test_embed_and_decode_scripts_round_trip_through_files(run, tmp_path, capsys):
    workdir, model, _ = run
    test = run_split(model.config, "test")
    assert _script("embed")(["--checkpoint", str(workdir), "--split", "test",
                             "--output", str(tmp_path / "emb.npz")]) == 0
    with np.load(tmp_path / "emb.npz") as saved:
        np.testing.assert_allclose(saved["embeddings"], model.encode(test), atol=1e-5)
        np.testing.assert_array_equal(saved["labels"], test.labels)
    # The same clouds from a user file give the same embeddings.
    save_clouds_npz(tmp_path / "clouds.npz", test)
    assert _script("embed")(["--checkpoint", str(workdir), "--input",
                             str(tmp_path / "clouds.npz"), "--output",
                             str(tmp_path / "emb.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), model.encode(test), atol=1e-5)
    assert _script("decode")(["--checkpoint", str(workdir), "--input", str(tmp_path / "emb.npz"),
                              "--output", str(tmp_path / "dec.npz"), "--plot",
                              str(tmp_path / "dec.png")]) == 0
    decoded = load_files(str(tmp_path / "dec.npz"))
    assert len(decoded) == len(test) and decoded.dim == 2
    np.testing.assert_array_equal(decoded.labels, test.labels)
    np.testing.assert_allclose(decoded.points, model.decode(model.encode(test)), atol=1e-5)
    assert (tmp_path / "dec.png").stat().st_size > 1000
    assert "decoded" in capsys.readouterr().out


def test_barycenter_script_writes_the_class_barycenter_and_its_picture(run, tmp_path, capsys):
    workdir, model, _ = run
    out = tmp_path / "b.npz"
    assert _script("barycenter")(["--checkpoint", str(workdir), "--split", "test", "--label",
                                  "5", "--max-clouds", "6", "--output", str(out),
                                  "--reference"]) == 0
    test = run_split(model.config, "test")
    expected = model.barycenter(test.subset(np.nonzero(test.labels == 5)[0][:6]))
    np.testing.assert_allclose(load_files(str(out)).points[0], expected, atol=1e-5)
    assert out.with_suffix(".png").stat().st_size > 1000
    assert (tmp_path / "b_reference.npz").exists()
    assert "S2(model, ott-jax) = " in capsys.readouterr().out


def test_evaluate_script_prints_the_label_accuracies_of_its_report(run, tmp_path, capsys):
    workdir, _, _ = run
    assert _script("evaluate")(["--checkpoint", str(workdir), "--split", "test", "--num-pairs",
                                "10", "--no-exact", "--stress-clouds", "0",
                                "--barycenter-labels", "none", "--neighbour-clouds", "0",
                                "--interpolations", "0", "--no-plots", "--no-progress",
                                "--output-dir", str(tmp_path), "--label-probe"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    near = report["nearest_neighbor"]
    knn = near["knn_against_train"]
    printed = capsys.readouterr().out.splitlines()
    line = next(x for x in printed if x.startswith("label accuracy"))
    assert (f"against {near['num_reference']} training clouds: 1-NN {knn['1']:.4f}, "
            f"5-NN {knn['5']:.4f}, 10-NN {knn['10']:.4f}") in line
    assert line.endswith(f"label probe {near['probe_against_train']:.4f}")
    # The held-out class's error at its own scale, beside a seen class's.
    held = report["held_out"]
    line = next(x for x in printed if x.startswith("held-out classes"))
    assert f"mean relative error {held['mean_relative_error']:.3f}" in line
    seen = held["seen_classes_within_class_pairs"]
    line = next(x for x in printed if x.startswith("  pairs within one seen class"))
    assert line.endswith(f"mean relative error {seen['mean_relative_error']:.3f}")


@pytest.mark.parametrize("name, args, message", [
    ("embed", ["--input", "missing.npz", "--output", "e.npy"], "No clouds at 'missing.npz'"),
    ("embed", ["--split", "test", "--output", "e.txt"], "must end in .npy or .npz"),
    ("embed", ["--input", "{cube}", "--output", "e.npy"], "3-D, but this model expects 2-D"),
    ("decode", ["--input", "{wide}", "--output", "d.npz"], r"shape \[N, 8\]"),
    ("barycenter", ["--split", "test", "--label", "cat"], "Unknown label 'cat'"),
    ("barycenter", ["--split", "test", "--output", "b.npy"], "--output must end in .npz"),
    ("embed", ["--split", "test", "--output", "{folder}"], r"out\.npy is a directory"),
    ("embed", ["--split", "test", "--output", "{cube}/e.npy"], r"cube\.npz is a file, not a"),
    ("decode", ["--input", "{wide}", "--output", "d.npz", "--plot", "d.xyz"],
     r"--plot must end in \.eps or .*\.png"),
    ("search", ["--index-split", "train", "--query-split", "test", "--output", "{folder}"],
     r"--output must end in \.json"),
    ("evaluate", ["--split", "test", "--barycenter-labels", "42", "--stress-clouds", "0",
                  "--num-pairs", "5", "--no-exact", "--no-plots", "--no-progress"],
     "No test cloud has label 42"),
])
def test_scripts_fail_with_a_clear_message(run, tmp_path, capsys, monkeypatch, name, args,
                                           message):
    workdir, _, _ = run
    monkeypatch.chdir(tmp_path)
    save_clouds_npz(tmp_path / "cube.npz", PointClouds.from_list([np.zeros((4, 3))]))
    np.save(tmp_path / "wide.npy", np.zeros((2, 5)))
    (tmp_path / "out.npy").mkdir()
    args = [a.format(cube=tmp_path / "cube.npz", wide=tmp_path / "wide.npy",
                     folder=tmp_path / "out.npy") for a in args]
    assert _script(name)(["--checkpoint", str(workdir), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.npz", "out.npy", "wide.npy"]


def test_a_write_that_stops_short_keeps_the_earlier_output(run, tmp_path, capsys, monkeypatch):
    # np.save can leave a short file without an error when the disk is full.
    workdir, _, _ = run
    output = tmp_path / "e.npy"
    embed = _script("embed")
    assert embed(["--checkpoint", str(workdir), "--split", "test", "--output", str(output)]) == 0
    before = output.read_bytes()

    def short_save(path, array):
        Path(path).write_bytes(b"\x93NUMPY")

    monkeypatch.setattr(np, "save", short_save)
    assert embed(["--checkpoint", str(workdir), "--split", "train", "--output",
                  str(output)]) == 1
    err = capsys.readouterr().err
    assert "could not write" in err and "stopped short" in err
    assert output.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["e.npy"]  # no temporary file left


@pytest.mark.parametrize("name, args, message", [
    ("barycenter", ["--split", "test", "--max-clouds", "0"],
     "--max-clouds: must be at least 1, got 0"),
    ("barycenter", ["--split", "test", "--max-clouds", "-2"], "must be at least 1, got -2"),
    ("barycenter", ["--split", "test", "--reference", "--reference-epsilon", "-1"],
     "--reference-epsilon: must be a finite number above 0, got -1"),
    ("decode", ["--input", "e.npy", "--output", "d.npz", "--num-plot", "0"], "at least 1, got 0"),
    ("evaluate", ["--interpolations", "-1"], "--interpolations: must be at least 0, got -1"),
    ("search", ["--index-split", "train", "--query-split", "test", "--output", "n.json",
                "--k", "two"], "--k: expected an integer, got 'two'"),
])
def test_counts_out_of_range_are_usage_errors_before_any_work(tmp_path, capsys, monkeypatch,
                                                               name, args, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        _script(name)(["--checkpoint", str(tmp_path / "no-run"), *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_missing_run_exits_1_from_the_command_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["embed.py", "--checkpoint", str(tmp_path / "nothing"),
                                      "--split", "test", "--output", "e.npy"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / "scripts" / "embed.py"), run_name="__main__")
    assert exit_.value.code == 1
    assert capsys.readouterr().err.startswith("error: No run or checkpoint at")


# --------------------------------------------------------------------------- report


def test_evaluate_run_reports_every_section_and_writes_the_plots(run, tmp_path):
    workdir, model, _ = run
    report = evaluate_run(workdir, num_pairs=40, stress_clouds=10, barycenter_labels=["5"],
                          barycenter_clouds=6, interpolations=1, neighbour_clouds=30,
                          neighbour_references=20, output_dir=tmp_path, progress=False,
                          label_probe=True)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    pairs = report["pairs"]
    assert pairs["num_pairs"] == 40 and -1 <= pairs["pearson"] <= 1
    assert report["pairs_exact"]["kind"] == "W2"
    labels = report["nearest_neighbor"]
    assert 0 <= labels["against_train"] <= 1
    assert labels["knn_against_train"]["1"] == labels["against_train"]
    assert set(labels["knn_against_train"]) == {"1", "5", "10"}
    assert 0 <= labels["probe_against_train"] <= 1 and "MLPClassifier" in labels["probe"]
    # Class 3 never reached training; it is reported on its own.
    held = report["held_out"]
    assert held["labels"] == ["3"] and held["num_clouds"] >= 2 and "pearson" in held
    assert held["seen_classes_within_class_pairs"]["num_pairs"] == 40
    assert held["held_out_to_seen_pairs"]["num_pairs"] == held["seen_pairs"]["num_pairs"] == 40
    assert -1 <= held["held_out_to_seen_pairs"]["pearson"] <= 1
    stress = report["stress_analysis"]
    assert stress["num_clouds"] == 10 and stress["dim"] == 8
    assert stress["lower_bound"] <= stress["optimum"] <= stress["upper_bound"] \
        <= stress["classical_mds"]
    assert stress["model"] >= stress["lower_bound"]
    assert report["reconstruction"]["num_clouds"] == 3 and report["reconstruction"]["kind"] == "S2"
    assert set(report["barycenters"]["classes"]) == {"5"}
    near = report["neighbourhoods"]
    assert near["kind"] == "W2" and near["method"] == "exact" and near["clouds"] == 30
    assert set(near["recall"]) == {"1", "10"}  # k = 50 needs more than 51 clouds
    assert near["recall_curve"]["recall"][9] == near["recall"]["10"]
    assert 0 <= near["trustworthiness"] <= 1
    assert near["against_train"]["num_reference"] == 20
    assert set(near["knn_accuracy"]) == {"1", "5"}
    for name in ("agreement.png", "embedding_map.png", "agreement_held_out.png",
                 "neighbourhood_recall.png",
                 "reconstructions.png", "barycenters.png", "interpolations.png"):
        assert name in report["figures"]
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_all_split_is_scored_without_training_references_containing_its_clouds(
        run, tmp_path):
    # 'all' holds the training clouds: 1-NN against them would find each cloud itself.
    workdir, _, _ = run
    report = evaluate_run(workdir, split="all", num_pairs=10, stress_clouds=0,
                          barycenter_labels=[], interpolations=0, num_plot=0, plots=False,
                          output_dir=tmp_path, progress=False)
    assert "against_train" not in report["nearest_neighbor"]
    assert 0 <= report["nearest_neighbor"]["leave_one_out"] < 1


def test_a_split_with_fewer_pairs_than_asked_scores_each_pair_once():
    from wormhole.evaluate.report import _pairs_at_most

    rng = np.random.default_rng(0)
    first, second = _pairs_at_most(rng, 6, 100)
    assert len(first) == 15 and len(set(zip(first, second, strict=True))) == 15
    first, second = _pairs_at_most(rng, 100, 40)
    assert len(first) == 40 and np.all(first != second)


def test_k_nn_labels_by_exact_ot_match_pots_nearest_training_cloud(run, tmp_path):
    # Every test cloud against every training cloud: no random subset, so POT's exact W2 on
    # the raw clouds is an independent oracle (one scalar normalisation keeps the order).
    import ot

    workdir, model, _ = run
    test, train = run_split(model.config, "test"), run_split(model.config, "train")
    report = evaluate_run(workdir, num_pairs=10, stress_clouds=0, barycenter_labels=[],
                          interpolations=0, neighbour_clouds=len(test),
                          neighbour_references=len(train), output_dir=tmp_path,
                          plots=False, progress=False)
    found = report["neighbourhoods"]["against_train"]
    assert found["num_reference"] == len(train)

    def w2(i, j):
        (x, a), (y, b) = test.cloud(i), train.cloud(j)
        return ot.emd2(a / a.sum(), b / b.sum(), ot.dist(x, y))

    nearest = [min(range(len(train)), key=lambda j: w2(i, j)) for i in range(len(test))]
    oracle = float(np.mean(train.labels[nearest] == test.labels))
    assert found["knn_accuracy"]["1"]["exact"] == pytest.approx(oracle)
    embedded = np.asarray(model.embedding_distances(model.encode(test)[:, None],
                                                    model.encode(train)[None]))
    by_embedding = np.mean(train.labels[embedded.argmin(1)] == test.labels)
    assert found["knn_accuracy"]["1"]["embedding"] == pytest.approx(by_embedding)


def test_the_scripts_help_shows_their_examples_line_by_line(capsys):
    # A backslash at a line's end in a docstring joined the example's two lines into one.
    for name in ("barycenter", "decode", "embed", "evaluate", "search"):
        with pytest.raises(SystemExit):
            _script(name)(["--help"])
        text = capsys.readouterr().out
        assert any(line.rstrip().endswith("\\") for line in text.splitlines()), name
