"""The trainer end to end: learning, exact resume, divergence handling, API, script."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import wormhole
from wormhole.config import ConfigError, config_from_dict, load_config
from wormhole.data import load_dataset
from wormhole.trainer import TrainingDiverged, sample_batch, train_and_evaluate

from .conftest import REPO


def tiny(workdir, **sections) -> wormhole.Config:
    """A small, fast run on a slice of the digits; ``sections`` override parts of it."""
    raw = {
        "name": "tiny",
        "data": {"name": "digits", "max_clouds": 240, "test_fraction": 0.25},
        "model": {"emb_dim": 16, "width": 32, "num_layers": 1, "num_heads": 2, "mlp_dim": 64,
                  "decoder_layers": 1, "decoder_points": 16},
        "ot": {"kind": "S2", "epsilon": 0.05, "max_iterations": 100},
        "loss": {"reconstruction": 0.1},
        "train": {"steps": 6, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 2,
                  "log_every": 2, "eval_every": 3, "length_bucket": 0,
                  "workdir": str(workdir)},
        "checkpoint": {"every": 3, "keep": 2},
        "eval": {"num_pairs": 60},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return load_dataset(tiny(tmp_path_factory.mktemp("d")).data)


def _params_close(a, b, atol=0.0):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    return all(np.allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)
               for x, y in zip(leaves_a, leaves_b, strict=True))


def test_training_learns_held_out_distances(tmp_path, tiny_data):
    config = tiny(tmp_path / "run", train={"steps": 150, "log_every": 50, "eval_every": 150,
                                           "learning_rate": 2e-3, "warmup_steps": 10},
                  loss={"reconstruction": 0.0}, checkpoint={"enabled": False})
    out = train_and_evaluate(config, tiny_data, progress=False)
    logs = [r for r in out.history if "stress" in r]
    evals = [r for r in out.history if "test_pearson" in r]
    assert logs[-1]["stress"] < logs[0]["stress"]
    assert evals[-1]["test_pearson"] > 0.7, evals
    assert evals[-1]["test_spearman"] > 0.6, evals


def test_exact_1d_targets_by_sorting_train_encoder_and_decoder(tmp_path):
    data = {"name": "synthetic", "normalize": "none", "max_clouds": None,
            "options": {"family": "1d", "num_clouds": 160, "points": 30, "dim": 1}}
    config = tiny(tmp_path / "run", data=data, ot={"kind": "W1", "solver": "sorting"},
                  model={"encoder": "deepsets", "embedding_distance": "euclidean"},
                  train={"steps": 120, "log_every": 40, "eval_every": 120,
                         "learning_rate": 2e-3, "warmup_steps": 10},
                  checkpoint={"enabled": False})
    out = train_and_evaluate(config, progress=False)
    logs = [r for r in out.history if "stress" in r]
    evals = [r for r in out.history if "test_pearson" in r]
    assert all(r["target_hit_cap"] == 0 for r in logs)  # exact solves have no cap
    assert logs[-1]["reconstruction"] < logs[0]["reconstruction"]  # gradients pass the sort
    assert evals[-1]["test_pearson"] > 0.8, evals
    with pytest.raises(ValueError, match=r"sorting solver \(ot.solver\) needs 1-D clouds"):
        train_and_evaluate(tiny(tmp_path / "2d", ot={"kind": "W1", "solver": "sorting"}),
                           progress=False)


def test_interrupted_and_resumed_run_ends_with_identical_parameters(tmp_path, tiny_data):
    straight = train_and_evaluate(tiny(tmp_path / "a"), tiny_data, progress=False)

    def kill_at_step_5(step, metrics):
        if step == 5:  # after the checkpoint at step 3, before the one at step 6
            raise KeyboardInterrupt

    config = tiny(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, tiny_data, callbacks=[kill_at_step_5], progress=False)
    resumed = train_and_evaluate(config, tiny_data, progress=False)
    assert int(resumed.state.step) == 6
    assert _params_close(straight.state.params, resumed.state.params)
    # Metrics of the lost steps 4-5 are logged once, not twice.
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == sorted(set(steps))


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path, tiny_data,
                                                                monkeypatch):
    config = tiny(tmp_path / "run", train={"steps": 3})
    train_and_evaluate(config, tiny_data, progress=False)
    good = wormhole.load(tmp_path / "run")
    # From now on the stress term is NaN: the resumed run must stop at its first step.
    import wormhole.trainer as train_module
    monkeypatch.setattr(train_module, "stress_loss", lambda d, t: jnp.mean(d) * jnp.nan)
    with pytest.raises(TrainingDiverged, match=r"step 4: the loss is nan.*step 3"):
        train_and_evaluate(tiny(tmp_path / "run", train={"steps": 6}), tiny_data,
                           progress=False)
    after = wormhole.load(tmp_path / "run")
    assert after.step == 3
    assert _params_close(good.params, after.params)


def test_resume_with_a_different_model_is_refused(tmp_path, tiny_data):
    train_and_evaluate(tiny(tmp_path / "run", train={"steps": 3}), tiny_data, progress=False)
    with pytest.raises(ConfigError, match=r"model\.width=32.*64"):
        train_and_evaluate(tiny(tmp_path / "run", model={"width": 64}), tiny_data,
                           progress=False)


def test_resume_check_counts_a_setting_missing_from_an_older_run_as_its_default(tmp_path):
    from wormhole.config import config_to_dict
    from wormhole.trainer import _check_same_run

    config = tiny(tmp_path / "run")
    stored = config_to_dict(config)
    del stored["ot"]["solver"]  # as saved by a version without ot.solver
    _check_same_run(stored, config, tmp_path)
    stored["ot"]["solver"] = "sorting"  # a stored value that differs is still refused
    with pytest.raises(ConfigError, match=r"ot\.solver='sorting', but this config has"):
        _check_same_run(stored, config, tmp_path)


def test_run_directory_holds_config_metrics_and_loadable_checkpoint(tmp_path, tiny_data):
    out = train_and_evaluate(tiny(tmp_path / "run"), tiny_data, progress=False)
    assert load_config(tmp_path / "run" / "config.yaml") == tiny(tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "stress", "reconstruction", "batch_pearson", "target_hit_cap",
            "steps_per_s"} <= set(records[0])
    assert any("test_pearson" in r for r in records)
    model = wormhole.load(tmp_path / "run")
    assert model.step == 6 and _params_close(model.params, out.state.params)
    clouds, weights = tiny_data.test.to_list()
    original = [tiny_data.normalization.invert(c) for c in clouds[:5]]
    emb = model.encode(original, weights[:5])
    decoded = model.decode(emb)
    assert emb.shape == (5, 16) and decoded.shape == (5, 16, 2)


def test_batches_depend_only_on_seed_and_step(tiny_data):
    a = sample_batch(tiny_data.train, 7, 8, seed=1, bucket=16)
    b = sample_batch(tiny_data.train, 7, 8, seed=1, bucket=16)
    c = sample_batch(tiny_data.train, 8, 8, seed=1, bucket=16)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points)
    assert a.points.shape[1] % 16 == 0 or a.points.shape[1] == tiny_data.train.length
    real = (a.weights > 0).sum(1)
    assert a.points.shape[1] >= real.max()
    np.testing.assert_allclose(a.weights.sum(1), 1.0, rtol=1e-5)


def test_fit_on_clouds_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    clouds = [rng.normal(loc=rng.uniform(-2, 2, 2), size=(int(rng.integers(10, 20)), 2))
              for _ in range(40)]
    model = wormhole.fit(clouds, config=tiny(tmp_path / "fit"),
                         overrides={"data.test_fraction": 0.0, "train.steps": 4},
                         progress=False)
    emb = model.encode(clouds[:3])
    assert emb.shape == (3, 16) and np.all(np.isfinite(emb))
    with pytest.raises(ValueError, match="3-D, but this model expects 2-D"):
        model.encode([np.zeros((5, 3))])


def test_too_large_batch_is_a_config_error(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="train.batch_size"):
        train_and_evaluate(tiny(tmp_path / "r", train={"batch_size": 1000}), tiny_data,
                           progress=False)


def test_train_script_runs_and_resumes(tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--config", "digits.yaml",
           "--no-progress", "--set", f"train.workdir={tmp_path / 'run'}",
           "--set", "train.steps=2", "--set", "data.max_clouds=64", "--set", "eval.num_pairs=20",
           "--set", "model.width=32", "--set", "model.mlp_dim=32", "--set", "model.num_layers=1",
           "--set", "model.decoder_layers=0"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "run" / "checkpoints").is_dir()
    bad = subprocess.run(cmd + ["--set", "ot.knd=W2"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert bad.returncode == 1 and "Did you mean 'kind'" in bad.stderr


def test_two_devices_give_the_same_step_as_one(tmp_path):
    """Data-parallel sharding of the batch axis must not change the math."""
    script = f"""
import sys, json
sys.path.insert(0, {str(REPO)!r})
from tests.test_train import tiny
from wormhole.trainer import train_and_evaluate
import jax
out = train_and_evaluate(tiny(sys.argv[1], train={{"steps": 2}},
                              checkpoint={{"enabled": False}}), progress=False)
print(json.dumps({{"devices": jax.device_count(), "loss": out.history[0]["loss"]}}))
"""
    results = []
    for count in (1, 2):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}",
                   JAX_PLATFORMS="cpu")
        run = subprocess.run([sys.executable, "-c", script, str(tmp_path / str(count))],
                             capture_output=True, text=True, env=env)
        assert run.returncode == 0, run.stderr[-2000:]
        results.append(json.loads(run.stdout.strip().splitlines()[-1]))
    assert [r["devices"] for r in results] == [1, 2]
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-4)
