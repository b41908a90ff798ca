"""The run format: a run knows its data, damaged checkpoints are named and skipped."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

import wormhole
from wormhole.checkpoint import DamagedCheckpoint, RunMeta
from wormhole.config import ConfigError
from wormhole.data import PointClouds
from wormhole.data.loaders.files import save_clouds_npz
from wormhole.evaluate.splits import run_split
from wormhole.trainer import train_and_evaluate

from .conftest import load_script
from .test_train import _params_close, tiny


def _gaussian_clouds(seed: int, count: int, dim: int = 3):
    rng = np.random.default_rng(seed)
    clouds = [rng.normal(loc=rng.uniform(-2, 2, dim), size=(int(rng.integers(8, 16)), dim))
              for _ in range(count)]
    return clouds, rng.integers(0, 2, count)


def test_a_fit_run_keeps_its_clouds_and_evaluation_reads_exactly_them(tmp_path):
    clouds, labels = _gaussian_clouds(0, 40)
    test_clouds, test_labels = _gaussian_clouds(1, 12)
    model = wormhole.fit(clouds, labels=labels, test_clouds=test_clouds,
                         test_labels=test_labels, config=tiny(tmp_path / "fit"),
                         overrides={"train.steps": 3}, progress=False)
    assert (tmp_path / "fit" / "data" / "clouds.npz").is_file()
    assert model.config.data.name == "files"  # not the config's default data set (digits)
    held_out = run_split(model.config, "test")
    assert len(held_out) == 12 and held_out.dim == 3
    for given, (points, _) in zip(test_clouds, (held_out.cloud(i) for i in range(12)),
                                  strict=True):
        np.testing.assert_allclose(points, given, rtol=1e-6)
    np.testing.assert_array_equal(held_out.labels, test_labels)
    assert len(run_split(model.config, "train")) == 40
    # The evaluation report runs on the same 12 held-out clouds.
    from wormhole.evaluate import evaluate_run

    report = evaluate_run(tmp_path / "fit", num_pairs=10, stress_clouds=0,
                          barycenter_labels=[], interpolations=0, num_plot=0, plots=False,
                          progress=False)
    assert report["num_clouds"] == 12


def test_label_accuracy_of_one_label_is_skipped_not_reported_as_perfect(tmp_path):
    from wormhole.evaluate import evaluate_run

    clouds, _ = _gaussian_clouds(0, 30)
    wormhole.fit(clouds, labels=np.zeros(30, int), config=tiny(tmp_path / "one"),
                 overrides={"train.steps": 2}, progress=False)
    report = evaluate_run(tmp_path / "one", num_pairs=5, stress_clouds=0,
                          barycenter_labels=[], interpolations=0, num_plot=0, plots=False,
                          progress=False)
    assert report["nearest_neighbor"] == {"skipped": "every test cloud has the same label"}


def test_a_moved_fit_run_reads_its_own_clouds_and_refuses_changed_ones(tmp_path, capsys):
    clouds, labels = _gaussian_clouds(0, 30)
    test_clouds, test_labels = _gaussian_clouds(1, 8)
    wormhole.fit(clouds, labels=labels, test_clouds=test_clouds, test_labels=test_labels,
                 config=tiny(tmp_path / "a"),
                 overrides={"train.steps": 2}, progress=False)
    shutil.move(tmp_path / "a", tmp_path / "b")
    model = wormhole.load(tmp_path / "b")
    assert model.config.data.path == str((tmp_path / "b" / "data" / "clouds.npz").absolute())
    held_out = run_split(model.config, "test", model.data)
    np.testing.assert_allclose(held_out.cloud(3)[0], test_clouds[3], rtol=1e-6)
    # A copy beside the original reads its own file, and other clouds there are refused.
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    other, other_labels = _gaussian_clouds(5, 30)
    save_clouds_npz(tmp_path / "c" / "data" / "clouds.npz", PointClouds.from_list(
        other + test_clouds, labels=np.concatenate([other_labels, test_labels]),
        metadata={"split": np.array(["train"] * 30 + ["test"] * 8)}))
    copy = wormhole.load(tmp_path / "c")
    with pytest.raises(ValueError, match=r"not those it was trained on: fingerprint "
                                         r"[0-9a-f]{16} \(30 train / 8 test clouds\)"):
        run_split(copy.config, "test", copy.data)
    assert len(run_split(model.config, "all", model.data)) == 38  # the original is intact
    embed = load_script("embed").main
    assert embed(["--checkpoint", str(tmp_path / "c"), "--split", "test",
                  "--output", str(tmp_path / "e.npy")]) == 1
    assert "not those it was trained on" in capsys.readouterr().err
    assert not (tmp_path / "e.npy").exists()


def test_resuming_a_fit_run_with_other_clouds_is_refused_naming_both_fingerprints(tmp_path):
    clouds, _ = _gaussian_clouds(0, 40)
    clouds = [np.round(c * 8) / 8 for c in clouds]  # moved by 0.5 or doubled, exactly
    config = tiny(tmp_path / "fit", train={"steps": 3})
    first = wormhole.fit(clouds, config=config, progress=False)
    saved = (tmp_path / "fit" / "data" / "clouds.npz").read_bytes()
    other, _ = _gaussian_clouds(5, 40)
    with pytest.raises(ConfigError, match=r"data fingerprint [0-9a-f]{16} .*fingerprint "
                                          r"[0-9a-f]{16}"):
        wormhole.fit(other, config=tiny(tmp_path / "fit", train={"steps": 6}), progress=False)
    # Nothing of the run was lost: its clouds and checkpoint are as they were.
    assert (tmp_path / "fit" / "data" / "clouds.npz").read_bytes() == saved
    assert wormhole.load(tmp_path / "fit").step == 3
    # The same shapes moved or rescaled normalise to the same clouds, but they are not the
    # run's clouds: decoding would answer in the run's coordinates.
    for moved in ([c + 0.5 for c in clouds], [c * 2.0 for c in clouds]):
        with pytest.raises(ConfigError, match=r"normalised by shift .* and scale .*, but "
                                              r"these clouds give shift"):
            wormhole.fit(moved, config=tiny(tmp_path / "fit", train={"steps": 6}),
                         progress=False)
    assert wormhole.load(tmp_path / "fit").step == 3
    # The same clouds resume.
    again = wormhole.fit(clouds, config=tiny(tmp_path / "fit", train={"steps": 6}),
                         progress=False)
    assert again.step == 6 and first.step == 3


def test_resuming_a_config_run_whose_data_changed_is_refused(tmp_path, tiny_data):
    train_and_evaluate(tiny(tmp_path / "run", train={"steps": 3}), tiny_data, progress=False)
    shifted = type(tiny_data)(tiny_data.train.with_points(tiny_data.train.points * 0.5),
                              tiny_data.test, tiny_data.normalization)
    with pytest.raises(ConfigError, match="trained on other clouds"):
        train_and_evaluate(tiny(tmp_path / "run", train={"steps": 6}), shifted, progress=False)


def test_run_meta_reads_the_older_format_without_a_data_record():
    old = {"config": {}, "normalization": {"shift": [0.0], "scale": 1.0}, "cost_scale": 2.0,
           "model_spec": {"data_dim": 2}, "num_train": 7, "format": 1}
    meta = RunMeta.from_dict(old)
    assert meta.cost_scale == 2.0 and meta.data.num_train == 7 and meta.data.fingerprint is None
    with pytest.raises(DamagedCheckpoint, match="newer wormhole"):
        RunMeta.from_dict({**old, "format": 99})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_data):
    workdir = tmp_path_factory.mktemp("damage") / "run"
    out = train_and_evaluate(tiny(workdir), tiny_data, progress=False)  # checkpoints 3 and 6
    return workdir, out


def _copy(run, tmp_path):
    workdir, _ = run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    return copy


def _largest_state_file(step_dir):
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate", "zero", "no_metadata", "no_meta"])
def test_a_damaged_checkpoint_is_named_and_the_newest_intact_one_is_used(
        finished_run, tmp_path, damage):
    run = _copy(finished_run, tmp_path)
    step_dir = run / "checkpoints" / "6"
    if damage == "truncate":
        target = _largest_state_file(step_dir)
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "zero":
        target = _largest_state_file(step_dir)
        target.write_bytes(bytes(target.stat().st_size))
    elif damage == "no_metadata":
        target = step_dir / "state" / "_METADATA"
        target.unlink()
    else:
        target = step_dir / "meta"
        shutil.rmtree(target)
    with pytest.raises(DamagedCheckpoint) as caught:
        wormhole.load(step_dir)
    message = str(caught.value)
    assert str(target) in message and len(message.splitlines()) == 1 and len(message) < 600
    with pytest.warns(RuntimeWarning, match=r"checkpoints/6 is damaged"):
        model = wormhole.load(run)
    assert model.step == 3
    # Resuming trains the lost steps again from step 3 and sets the damaged one aside,
    # saying each once.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = train_and_evaluate(tiny(run), progress=False)
    said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert sum("checkpoints/6 is damaged" in m for m in said) == 1, said
    assert sum("moved to" in m for m in said) == 1, said
    assert int(resumed.state.step) == 6
    assert _params_close(resumed.state.params, finished_run[1].state.params)
    assert (run / "damaged_checkpoints" / "6").is_dir()
    assert wormhole.load(run).step == 6


def test_every_checkpoint_damaged_is_one_clear_error(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path)
    for step in (3, 6):
        shutil.rmtree(run / "checkpoints" / str(step) / "meta")
    with pytest.raises(DamagedCheckpoint, match="Every checkpoint"), \
            pytest.warns(RuntimeWarning):
        wormhole.load(run)


def test_the_manifest_lists_every_file_of_a_checkpoint(finished_run):
    workdir, _ = finished_run
    step_dir = workdir / "checkpoints" / "6"
    manifest = json.loads((step_dir / "manifest.json").read_text())
    on_disk = {str(p.relative_to(step_dir)) for p in step_dir.rglob("*")
               if p.is_file() and p.name != "manifest.json"}
    assert set(manifest) == on_disk


def test_a_fit_refused_before_training_leaves_no_run_behind(tmp_path):
    clouds, labels = _gaussian_clouds(0, 20)
    test_clouds, _ = _gaussian_clouds(1, 6)
    with pytest.raises(ValueError, match="labels for both the training and the test clouds"):
        wormhole.fit(clouds, labels=labels, test_clouds=test_clouds,
                     config=tiny(tmp_path / "runs" / "fit"), progress=False)
    assert not (tmp_path / "runs").exists()
    # Labels the run cannot store are named by their argument, before anything is written.
    for bad, message in (({"labels": [-1] + [0] * 19}, "labels: cloud 0 has label -1"),
                         ({"labels": [0.5] * 20}, "labels: cloud 0 has label 0.5"),
                         ({"labels": labels, "test_clouds": test_clouds,
                           "test_labels": [0, 1, 2, 3, 4, -5]},
                          "test_labels: cloud 5 has label -5")):
        with pytest.raises(ValueError, match=message):
            wormhole.fit(clouds, config=tiny(tmp_path / "runs" / "fit"), progress=False, **bad)
        assert not (tmp_path / "runs").exists()


def test_a_fit_that_failed_before_any_checkpoint_does_not_keep_its_clouds(tmp_path):
    # Identical clouds give no cost to scale by: the fit fails after making the run's
    # folders. The next fit in the same workdir is a new run and keeps its own clouds.
    with pytest.raises(ValueError, match="scale"):
        wormhole.fit([np.full((5, 2), 7.0)] * 12, config=tiny(tmp_path / "fit"),
                     progress=False)
    clouds, _ = _gaussian_clouds(0, 40)
    model = wormhole.fit(clouds, config=tiny(tmp_path / "fit", train={"steps": 2}),
                         progress=False)
    kept = [run_split(model.config, split).to_list()[0] for split in ("train", "test")]
    kept = kept[0] + kept[1]
    assert sorted(len(c) for c in kept) == sorted(len(c) for c in clouds)
    np.testing.assert_allclose(sum(np.abs(c).sum() for c in kept),
                               sum(np.abs(c).sum() for c in clouds),
                               rtol=1e-5)


def test_a_relative_data_path_is_saved_absolute_and_resumes_by_either_spelling(
        tmp_path, monkeypatch):
    clouds, labels = _gaussian_clouds(2, 30)
    from wormhole.data.loaders.files import save_clouds_npz

    save_clouds_npz(tmp_path / "mine.npz", wormhole.PointClouds.from_list(clouds, labels=labels))
    monkeypatch.chdir(tmp_path)
    data = {"name": "files", "path": "mine.npz", "max_clouds": None}
    train_and_evaluate(tiny("run", data=data, train={"steps": 2}), progress=False)
    saved = wormhole.load_config(tmp_path / "run" / "config.yaml")
    assert saved.data.path == str(tmp_path / "mine.npz")
    # From another directory the run reads its clouds, and resumes with the absolute path.
    monkeypatch.chdir(tmp_path.parent)
    config = wormhole.load(tmp_path / "run").config
    assert sum(len(run_split(config, split)) for split in ("train", "test")) == 30
    absolute = {**data, "path": str(tmp_path / "mine.npz")}
    train_and_evaluate(tiny(tmp_path / "run", data=absolute, train={"steps": 3}),
                       progress=False)
    # Another file is still another file.
    save_clouds_npz(tmp_path / "other.npz", wormhole.PointClouds.from_list(clouds))
    with pytest.raises(ConfigError, match=r"data\.path="):
        train_and_evaluate(tiny(tmp_path / "run", data={**data, "path": str(
            tmp_path / "other.npz")}, train={"steps": 4}), progress=False)
