"""The trainer end to end: learning, exact resume, divergence handling, API, script."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import wormhole
from wormhole.config import ConfigError, config_from_dict, load_config
from wormhole.trainer import (
    TrainingDiverged,
    batch_indices,
    neighbour_mining,
    sample_batch,
    train_and_evaluate,
)

from .conftest import REPO


def tiny(workdir, decoder: bool = False, **sections) -> wormhole.Config:
    """A small, fast run on a slice of the digits; ``sections`` override parts of it.

    Encoder only unless ``decoder``: the decoder's reconstruction term (weight 0.1) more
    than doubles the compile time of the train step, which dominates these runs (a fresh
    6-step run on the 2-core CPU machine, two interleaved runs each: step compile 2.7 and
    3.7 s without it, 9.2 and 6.7 s with it), so only the tests about the decoder, or
    about a whole run with it, pay for it."""
    raw = {
        "name": "tiny",
        "data": {"name": "digits", "max_clouds": 240, "test_fraction": 0.25},
        "model": {"emb_dim": 16, "width": 32, "num_layers": 1, "num_heads": 2, "mlp_dim": 64,
                  "decoder_layers": 1 if decoder else 0, "decoder_points": 16},
        "ot": {"kind": "S2", "epsilon": 0.05, "max_iterations": 100},
        "loss": {"reconstruction": 0.1 if decoder else 0.0},
        "train": {"steps": 6, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 2,
                  "log_every": 2, "eval_every": 3, "length_bucket": 0,
                  "workdir": str(workdir)},
        "checkpoint": {"every": 3, "keep": 2},
        "eval": {"num_pairs": 60},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return config_from_dict(raw)


def _params_close(a, b, atol=0.0):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    return all(np.allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0)
               for x, y in zip(leaves_a, leaves_b, strict=True))


def test_training_learns_held_out_distances(tmp_path, tiny_data):
    config = tiny(tmp_path / "run", train={"steps": 150, "log_every": 50, "eval_every": 150,
                                           "learning_rate": 2e-3, "warmup_steps": 10},
                  checkpoint={"enabled": False})
    out = train_and_evaluate(config, tiny_data, progress=False)
    logs = [r for r in out.history if "stress" in r]
    evals = [r for r in out.history if "test_pearson" in r]
    assert logs[-1]["stress"] < logs[0]["stress"]
    assert evals[-1]["test_pearson"] > 0.7, evals
    assert evals[-1]["test_spearman"] > 0.6, evals


@pytest.mark.parametrize("term", ["local_stress", "log_stress"])
def test_a_relative_stress_alone_trains_and_is_logged(tmp_path, tiny_data, term):
    config = tiny(tmp_path / "run", train={"steps": 60, "log_every": 10, "eval_every": 60,
                                           "learning_rate": 2e-3, "warmup_steps": 5},
                  loss={"stress": 0.0, term: 1.0},
                  checkpoint={"enabled": False})
    out = train_and_evaluate(config, tiny_data, progress=False)
    logs = [r for r in out.history if term in r]
    assert np.mean([r[term] for r in logs[-2:]]) < logs[0][term]
    assert "stress" in logs[0]  # the plain stress is still reported, with weight 0
    assert [r for r in out.history if "test_pearson" in r][-1]["test_pearson"] > 0.5


def test_exact_1d_targets_by_sorting_train_encoder_and_decoder(tmp_path):
    data = {"name": "synthetic", "normalize": "none", "max_clouds": None,
            "options": {"family": "1d", "num_clouds": 160, "points": 30, "dim": 1}}
    config = tiny(tmp_path / "run", decoder=True, data=data,
                  ot={"kind": "W1", "solver": "sorting"},
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
    ran = []
    resumed = train_and_evaluate(config, tiny_data, callbacks=[lambda step, m: ran.append(step)],
                                 progress=False)
    assert int(resumed.state.step) == 6
    # Only the steps after the checkpoint at step 3 ran, and they started from its state:
    # a run restarting from step 0 fails the first check, one from fresh parameters at step 3
    # the second.
    assert ran == [4, 5, 6]
    assert _params_close(straight.state.params, resumed.state.params)
    # Metrics of the lost steps 4-5 are logged once, not twice.
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == sorted(set(steps))


def test_neighbour_batches_hold_sketch_neighbours_and_resume_exactly(tmp_path, tiny_data):
    config = tiny(tmp_path / "a", train={"neighbour_batches": 0.5, "neighbour_pool": 6})
    mining = neighbour_mining(config.train, tiny_data.train, quadratic=False)
    assert mining.table.shape == (len(tiny_data.train), 6)
    index, _ = batch_indices(tiny_data.train, 3, 8, 0, 0, mining)
    members = set(index.tolist())
    assert sum(bool(members & set(mining.table[i].tolist())) for i in index) >= 4
    straight = train_and_evaluate(config, tiny_data, progress=False)

    def kill_at_step_5(step, metrics):
        if step == 5:
            raise KeyboardInterrupt

    again = tiny(tmp_path / "b", train={"neighbour_batches": 0.5, "neighbour_pool": 6})
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(again, tiny_data, callbacks=[kill_at_step_5], progress=False)
    resumed = train_and_evaluate(again, tiny_data, progress=False)
    assert _params_close(straight.state.params, resumed.state.params)


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(tmp_path, tiny_data,
                                                                monkeypatch):
    config = tiny(tmp_path / "run", train={"steps": 3})
    train_and_evaluate(config, tiny_data, progress=False)
    good = wormhole.load(tmp_path / "run")
    # From now on the stress term is NaN: the resumed run must stop at its first step.
    import wormhole.losses as losses_module
    monkeypatch.setattr(losses_module, "stress_loss", lambda d, t: jnp.mean(d) * jnp.nan)
    with pytest.raises(TrainingDiverged, match=r"step 4: the loss is nan.*step 3"):
        train_and_evaluate(tiny(tmp_path / "run", train={"steps": 6}), tiny_data,
                           progress=False)
    after = wormhole.load(tmp_path / "run")
    assert after.step == 3
    assert _params_close(good.params, after.params)


def test_parameters_that_become_nan_stop_the_run_before_any_checkpoint(tmp_path, tiny_data):
    # Finite parameters so large that every cloud encodes to NaN: no checkpoint of them.
    config = tiny(tmp_path / "run", train={"learning_rate": 1e6, "warmup_steps": 0},
                  checkpoint={"every": 1})
    with pytest.raises(TrainingDiverged, match=r"step 1: the parameters after it encode the "
                                               r"batch to NaN"):
        train_and_evaluate(config, tiny_data, progress=False)
    assert not list((tmp_path / "run" / "checkpoints").glob("[0-9]*"))
    # Parameters that are themselves NaN are caught by the step's own check.
    nan_config = tiny(tmp_path / "nan", train={"learning_rate": 1e39, "warmup_steps": 0,
                                               "grad_clip": None}, checkpoint={"every": 1})
    with pytest.raises(TrainingDiverged, match=r"step 1: the updated parameters contain NaN"):
        train_and_evaluate(nan_config, tiny_data, progress=False)
    assert not list((tmp_path / "nan" / "checkpoints").glob("[0-9]*"))


def test_the_divergence_rule_catches_non_finite_values_and_runaway_growth():
    from wormhole.metrics_log import DivergenceGuard

    records = [{"loss": 1.0, "grad_norm": 1.0}, {"loss": 50.0, "grad_norm": 3.0},
               {"loss": 4.7e21, "grad_norm": 1e10}]
    index, reason = DivergenceGuard(1e4).first_failure(records)
    assert index == 2 and "train.divergence_factor=10000" in reason
    assert DivergenceGuard(1e4).first_failure(records[:2]) is None
    assert DivergenceGuard(1e4).first_failure(
        [{"loss": 1.0, "grad_norm": float("inf")}]) == (0, "the gradient norm is inf")
    assert DivergenceGuard(1e4).first_failure(
        [{"loss": 1.0, "grad_norm": 1.0, "params_finite": 0.0}])[0] == 0


def test_a_learning_rate_far_too_large_stops_the_run(tmp_path, tiny_data):
    config = tiny(tmp_path / "run", train={"learning_rate": 4.0, "warmup_steps": 0,
                                           "steps": 40, "log_every": 1},
                  checkpoint={"every": 1, "keep": 50})
    with pytest.raises(TrainingDiverged, match="Training stopped at step"):
        train_and_evaluate(config, tiny_data, progress=False)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text()
               .splitlines() if "loss" in json.loads(x)]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["grad_norm"]) for r in records)
    from wormhole.checkpoint import CheckpointStore
    with CheckpointStore(tmp_path / "run" / "checkpoints", create=False) as store:
        for step in store.all_steps():  # every checkpoint written holds finite parameters
            state, _ = store.restore(step)
            assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state["params"]))


def test_divergence_writes_the_finite_metrics_logged_before_it(tmp_path, tiny_data,
                                                               monkeypatch):
    config = tiny(tmp_path / "run", train={"steps": 3, "log_every": 10},
                  checkpoint={"every": 3})
    train_and_evaluate(config, tiny_data, progress=False)
    import wormhole.losses as losses_module
    monkeypatch.setattr(losses_module, "stress_loss", lambda d, t: jnp.mean(d) * jnp.nan)
    with pytest.raises(TrainingDiverged, match=r"step 4: the loss is nan"):
        train_and_evaluate(tiny(tmp_path / "run", train={"steps": 6, "log_every": 10},
                                checkpoint={"every": 6}), tiny_data, progress=False)
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [3]  # the steps before the failing one; nothing of step 4
    assert wormhole.load(tmp_path / "run").step == 3


def test_steps_per_s_leaves_out_evaluation_and_checkpoint_time(tmp_path, tiny_data,
                                                             monkeypatch):
    import time as time_module

    from wormhole.held_out import HeldOutPairs
    real_call = HeldOutPairs.__call__

    def slow(self, params):
        time_module.sleep(2.0)
        return real_call(self, params)

    monkeypatch.setattr(HeldOutPairs, "__call__", slow)
    config = tiny(tmp_path / "run", train={"steps": 6, "log_every": 2, "eval_every": 2},
                  checkpoint={"enabled": False})
    out = train_and_evaluate(config, tiny_data, progress=False)
    logs = [r for r in out.history if "steps_per_s" in r]
    evals = [r for r in out.history if "eval_seconds" in r]
    assert all(r["eval_seconds"] >= 2.0 for r in evals)
    # Steps 5-6 follow an evaluation of 2 s; counted in, they could not exceed 1 step/s.
    assert logs[-1]["steps_per_s"] > 1.5, logs


def test_targets_at_the_iteration_cap_are_reported_loudly(tmp_path, tiny_data):
    config = tiny(tmp_path / "run", ot={"epsilon": 1e-3, "max_iterations": 5},
                  train={"steps": 2}, checkpoint={"enabled": False})
    with pytest.warns(RuntimeWarning, match=r"\d+% of the OT target solves stopped at the "
                                            r"iteration cap \(ot.max_iterations\)"):
        out = train_and_evaluate(config, tiny_data, progress=False)
    assert out.history[0]["target_hit_cap"] > 0.5


def test_a_run_directory_that_is_a_file_is_named_before_the_data_are_read(tmp_path):
    (tmp_path / "taken").write_text("not a run")
    for workdir in (tmp_path / "taken", tmp_path / "taken" / "run"):
        with pytest.raises(ConfigError, match=r"taken is a file, not a directory"):
            train_and_evaluate(tiny(workdir, data={"name": "files",
                                                   "path": str(tmp_path / "absent.npz")}),
                               progress=False)
    assert (tmp_path / "taken").read_text() == "not a run"


def test_resume_with_a_different_model_is_refused(tmp_path, tiny_data):
    train_and_evaluate(tiny(tmp_path / "run", train={"steps": 3}), tiny_data, progress=False)
    with pytest.raises(ConfigError, match=r"model\.width=32.*64"):
        train_and_evaluate(tiny(tmp_path / "run", model={"width": 64}), tiny_data,
                           progress=False)
    # Fewer steps than the run has taken: refused before its config is rewritten.
    saved = (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(ConfigError, match=r"trained to step 3, past train\.steps=2; set "
                                          r"train\.steps to at least 3"):
        train_and_evaluate(tiny(tmp_path / "run", train={"steps": 2}), tiny_data,
                           progress=False)
    assert (tmp_path / "run" / "config.yaml").read_text() == saved
    # More steps resume, but the decay is laid over the new length: said, with the jump.
    with pytest.warns(UserWarning, match=r"train\.steps changed from 3 to 5: the cosine "
                                         r"learning-rate schedule .* at step 3 the rate goes "
                                         r"from [0-9.e-]+ to [0-9.e-]+"):
        train_and_evaluate(tiny(tmp_path / "run", train={"steps": 5}), tiny_data,
                           progress=False)


def test_resume_check_counts_a_setting_missing_from_an_older_run_as_its_default(tmp_path):
    from wormhole.checkpoint import DataRecord, RunMeta
    from wormhole.config import config_to_dict
    from wormhole.run_setup import check_resume

    config = tiny(tmp_path / "run")
    stored = config_to_dict(config)
    data = DataRecord("digits", None, 10)
    del stored["ot"]["solver"]  # as saved by a version without ot.solver
    check_resume(RunMeta(stored, {}, 1.0, {}, data), config, data, tmp_path)
    stored["ot"]["solver"] = "sorting"  # a stored value that differs is still refused
    with pytest.raises(ConfigError, match=r"ot\.solver='sorting', but this config has"):
        check_resume(RunMeta(stored, {}, 1.0, {}, data), config, data, tmp_path)


def _tensorboard_scalars(directory) -> dict:
    """``{tag: [(step, value), ...]}`` read from the TFRecord-framed event files."""
    import struct

    from tensorboardX.proto import event_pb2

    scalars: dict = {}
    for path in directory.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_run_directory_holds_config_metrics_and_loadable_checkpoint(tmp_path, tiny_data):
    config = tiny(tmp_path / "run", decoder=True, train={"tensorboard": True})
    out = train_and_evaluate(config, tiny_data, progress=False)
    assert load_config(tmp_path / "run" / "config.yaml") == config
    # The same records reach TensorBoard's event files.
    board = _tensorboard_scalars(tmp_path / "run" / "tensorboard")
    logged = [r for r in out.history if "loss" in r]
    assert [step for step, _ in board["loss"]] == [r["step"] for r in logged]
    assert [value for _, value in board["loss"]] == pytest.approx([r["loss"] for r in logged],
                                                                  rel=1e-6)
    assert [step for step, _ in board["test_pearson"]] == [3, 6]
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


def test_mean_split_run_gives_translations_their_exact_distance_in_user_units(tmp_path,
                                                                            tiny_data):
    config = tiny(tmp_path / "run", decoder=True, model={"mean_split": True})
    train_and_evaluate(config, tiny_data, progress=False)
    model = wormhole.load(tmp_path / "run")
    assert model.spec.mean_scale is not None
    clouds, weights = tiny_data.test.to_list()
    original = [tiny_data.normalization.invert(c) for c in clouds[:4]]
    moved = [c + np.array([1.5, -2.0]) for c in original]
    # Through the normalisation and the cost scale, back to the user's squared units.
    np.testing.assert_allclose(model.distance(original, moved, weights[:4], weights[:4],
                                              units="original"), 1.5 ** 2 + 2.0 ** 2,
                               rtol=1e-3)
    decoded = model.decode(model.encode(moved, weights[:4]))
    np.testing.assert_allclose(decoded, model.decode(model.encode(original, weights[:4]))
                               + np.array([1.5, -2.0]), atol=1e-3)


def test_mean_split_needs_room_beside_the_means(tmp_path, tiny_data):
    config = tiny(tmp_path / "run", model={"mean_split": True, "emb_dim": 2})
    with pytest.raises(ConfigError, match=r"model.emb_dim \(2\) must exceed"):
        train_and_evaluate(config, tiny_data, progress=False)


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


def test_an_interrupted_train_script_says_how_to_resume(tmp_path, monkeypatch, capsys):
    from .conftest import load_script

    script = load_script("train")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(script, "train", interrupted)  # Ctrl-C during training
    assert script.main(["--set", f"train.workdir={tmp_path / 'run'}"]) == 130
    err = capsys.readouterr().err
    assert err == (f"interrupted: the run in {tmp_path / 'run'} keeps its last checkpoint; run "
                   f"the same command again to resume from it\n")


def test_train_script_runs_and_resumes(tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "train.py"), "--config", "digits.yaml",
           "--no-progress", "--set", f"train.workdir={tmp_path / 'run'}",
           "--set", "train.steps=2", "--set", "data.max_clouds=64", "--set", "eval.num_pairs=20",
           "--set", "model.width=32", "--set", "model.mlp_dim=32", "--set", "model.num_layers=1",
           "--set", "model.decoder_layers=0"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "run" / "checkpoints").is_dir()
    assert "resuming" not in first.stdout
    again = subprocess.run(cmd + ["--set", "train.steps=3"], capture_output=True, text=True,
                           cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming from the checkpoint of step 2 of 3" in again.stdout
    assert "step 3:" in again.stdout
    bad = subprocess.run(cmd + ["--set", "ot.knd=W2"], capture_output=True, text=True,
                         cwd=tmp_path)
    assert bad.returncode == 1 and "Did you mean 'kind'" in bad.stderr
    assert "digits.yaml with override 'ot.knd=W2': Unknown key" in bad.stderr


def test_updates_per_batch_reuse_the_targets_and_count_as_one_step(tmp_path, tiny_data):
    def run(name, updates):
        config = tiny(tmp_path / name, train={"steps": 20, "log_every": 5, "eval_every": 20,
                                              "updates_per_batch": updates},
                      checkpoint={"enabled": False})
        return train_and_evaluate(config, tiny_data, progress=False)

    once, thrice = run("once", 1), run("thrice", 3)
    assert int(thrice.state.step) == 20
    adam = [s for s in jax.tree.leaves(thrice.state.opt_state, is_leaf=lambda x: isinstance(
        x, optax.ScaleByAdamState)) if isinstance(s, optax.ScaleByAdamState)]
    assert [int(s.count) for s in adam] == [60]  # three optimiser updates per step
    logs = [[r for r in out.history if "stress" in r] for out in (once, thrice)]
    # The schedule is read per step, so both runs log the same learning rates ...
    assert [r["learning_rate"] for r in logs[0]] == [r["learning_rate"] for r in logs[1]]
    # ... and three updates on each batch's targets fit the later batches better.
    assert logs[1][-1]["stress"] < 0.85 * logs[0][-1]["stress"], (logs[0][-1], logs[1][-1])


def test_held_out_targets_in_uneven_chunks_are_each_pairs_own_distance(tiny_data):
    # Ten pairs in chunks of at most four: three chunks of four, the last filled with copies
    # of its first pair that must not reach the targets.
    from wormhole.config import ModelConfig
    from wormhole.held_out import HeldOutPairs
    from wormhole.models import ModelSpec, build_model
    from wormhole.ot import OTSpec, paired_distances

    test = tiny_data.test
    model = build_model(ModelConfig(emb_dim=8, width=16, num_layers=1, num_heads=2,
                                    mlp_dim=32), ModelSpec(2, 0, (0.0, 0.0), (1.0, 1.0)))
    spec = OTSpec(kind="S2", epsilon=0.05, threshold=1e-4, max_iterations=200)
    held = HeldOutPairs(model, test, spec, num_pairs=10, embedding_distance="euclidean",
                        seed=0, chunk=4)
    assert [count for _, _, count in held._chunks()] == [4, 4, 2]
    f, s = held.first, held.second
    expected = paired_distances(test.points[f], test.weights[f], test.points[s],
                                test.weights[s], spec).values
    assert held.targets.shape == (10,)
    np.testing.assert_allclose(held.targets, np.asarray(expected), rtol=1e-5)
