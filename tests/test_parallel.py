"""Scale-out on simulated CPU devices: the sharded step is the one-device step, the batch and
the pair solves are really split, parameters can be sharded, and a run resumes on another
device count. Each part runs in a subprocess, since the device count is fixed when JAX starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from jax.sharding import PartitionSpec

from wormhole.config import ConfigError, config_from_dict
from wormhole.parallel import _leaf_spec, check_batch_size, make_mesh, state_shardings

from .conftest import REPO

sys.path.insert(0, str(REPO))
from benchmarks.multihost import device_env  # noqa: E402

_SCRIPT = """
import sys, json
sys.path.insert(0, {repo!r})
import jax, numpy as np
import wormhole.ot.batched as batched
import wormhole.trainer as trainer
from tests.test_train import tiny
from wormhole.config import ConfigError

mode, root = sys.argv[1], sys.argv[2]
solves, batch_devices = [], []
here = batched._map_here

def recording(solve, x, *rest):
    solves.append(int(x.shape[0]))  # the problems one device solves
    return here(solve, x, *rest)

batched._map_here = recording
placed = trainer.device_batch

def recorded(*args, **kwargs):  # the devices each training batch is laid out over
    batch = placed(*args, **kwargs)
    batch_devices.append(len(batch.points.sharding.device_set))
    return batch

trainer.device_batch = recorded

def run(name, mesh, callbacks=(), **sections):
    cfg = tiny(root + "/" + name, decoder=True, train={{"steps": 4, "mesh": mesh, **sections}},
               checkpoint={{"every": 2}}, eval={{"num_pairs": 20}})
    return trainer.train_and_evaluate(cfg, callbacks=callbacks, progress=False)

def leaves(state):
    return [np.asarray(x).tolist() for x in jax.tree.leaves(state.params)]

out = {{"devices": jax.device_count()}}
if mode == "four":
    one = run("one", {{"data": 1}})
    out["one_solves"] = sorted(set(solves)); solves.clear()
    four = run("four", {{"data": -1}})
    out["four_solves"] = sorted(set(solves))
    out["batch_devices"] = sorted(set(batch_devices))
    sharded = run("sharded", {{"data": -1, "shard_params": True}})
    specs = [str(leaf.sharding.spec) for leaf in jax.tree.leaves(sharded.state.params)]
    out["split_params"] = sum("data" in spec for spec in specs)
    out["params"] = {{"one": leaves(one.state), "four": leaves(four.state),
                     "sharded": leaves(sharded.state)}}
    out["loss"] = [one.history[0]["loss"], four.history[0]["loss"]]
    out["test_pearson"] = [one.history[-1].get("test_pearson"),
                           four.history[-1].get("test_pearson")]
    # Inference on the same devices: encoding and OT re-ranking split over all four.
    import wormhole
    from wormhole.evaluate import run_split
    model = wormhole.load(root + "/four")
    clouds = run_split(model.config, "test").subset(slice(0, 12))
    solves.clear()
    found = model.index(clouds).search(clouds.subset(slice(0, 2)), k=3, rerank=5)
    out["rerank_solves"] = sorted(set(solves))
    out["self_found"] = found.indices[:, 0].tolist()
    def stop(step, metrics):
        if step == 3:
            raise KeyboardInterrupt
    try:
        run("moved", {{"data": -1}}, callbacks=[stop])
    except KeyboardInterrupt:
        pass
    try:
        run("bad", {{"data": -1}}, batch_size=10)
    except ConfigError as err:
        out["error"] = str(err)
else:
    moved = run("moved", {{"data": -1}})
    out["resumed_step"] = int(moved.state.step)
    out["params"] = {{"moved": leaves(moved.state)}}
    # A run saved on 4 devices loads for inference in a process with 2.
    import wormhole
    loaded = wormhole.load(root + "/four")
    out["loaded_step"] = loaded.step
    out["loaded_params"] = [np.asarray(x).tolist() for x in jax.tree.leaves(loaded.params)]
print(json.dumps(out))
"""


def _run(mode: str, devices: int, root) -> dict:
    # A persistent compilation cache of this test's own: the resumed runs read the programs
    # their first runs compiled, whatever the cache of the rest of the suite holds.
    env = device_env(devices, JAX_COMPILATION_CACHE_DIR=str(root / "jax_cache"))
    done = subprocess.run([sys.executable, "-c", _SCRIPT.format(repo=str(REPO)), mode,
                           str(root)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _close(a, b, tol=2e-5) -> bool:
    return all(np.allclose(np.asarray(x), np.asarray(y), atol=tol, rtol=1e-4)
               for x, y in zip(a, b, strict=True))


def test_sharded_training_on_four_devices_matches_one_and_resumes_on_two(tmp_path):
    four = _run("four", 4, tmp_path)
    assert four["devices"] == 4
    # Batch 8: 28 cross pairs and 8 self terms; on 4 devices each solves 7 and 2. The
    # held-out evaluation (20 pairs) uses every local device in both runs: 5 each.
    assert four["one_solves"] == [5, 8, 28] and four["four_solves"] == [2, 5, 7]
    assert four["batch_devices"] == [1, 4]  # the train.mesh.data=1 run, then all four
    params = four["params"]
    assert _close(params["one"], params["four"]), "4-device step differs from 1 device"
    assert _close(params["one"], params["sharded"]), "sharded parameters change the math"
    assert four["split_params"] > 0
    assert four["loss"][0] == pytest.approx(four["loss"][1], rel=1e-5)
    assert four["test_pearson"][0] == pytest.approx(four["test_pearson"][1], abs=1e-4)
    assert four["rerank_solves"] == [16]  # 64 pairs per call, 16 per device
    assert four["self_found"] == [0, 1]  # each query's nearest cloud is itself
    assert "train.batch_size (10)" in four["error"]
    assert "divisible by the number of devices (4)" in four["error"]
    # The run interrupted after step 3 on 4 devices (checkpoint at step 2) resumes on 2.
    two = _run("two", 2, tmp_path)
    assert two["devices"] == 2 and two["resumed_step"] == 4
    assert _close(params["one"], two["params"]["moved"])
    assert two["loaded_step"] == 4 and _close(params["four"], two["loaded_params"], tol=0)


def test_mesh_settings_are_checked_with_the_key_named():
    with pytest.raises(ConfigError, match=r"train.mesh.data \(5\)"):
        make_mesh(5)  # this process has fewer devices
    with pytest.raises(ConfigError, match="train.mesh.data"):
        config_from_dict({"train": {"mesh": {"data": -2}}})
    with pytest.raises(ConfigError, match="Did you mean 'shard_params'"):
        config_from_dict({"train": {"mesh": {"shard_param": True}}})
    mesh = make_mesh()
    check_batch_size(16, mesh)  # one device: any batch splits
    layout = state_shardings({"w": np.zeros((64, 64)), "b": np.zeros(3)}, mesh, True)
    assert layout["w"].spec == PartitionSpec() == layout["b"].spec  # one device: no split
    assert _leaf_spec((64, 96), 4) == PartitionSpec(None, "data")  # the largest that divides
    assert _leaf_spec((64, 30), 4) == PartitionSpec("data")
    assert _leaf_spec((6, 10), 4) == PartitionSpec()  # too small to be worth a collective


def test_two_processes_on_loopback_train_one_run_that_resumes_on_one_device(tmp_path):
    """benchmarks/multihost.py --quick: 2 processes x 2 devices joined by jax.distributed,
    one run directory written once, resumed on 1 device as if trained there."""
    out = tmp_path / "multihost"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "multihost.py"), "--quick",
                           "--output", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "multihost.json").read_text())
    assert result["global_devices"] == 4 and result["processes"] == 2
    assert result["duplicate_records"] == 0 and result["logged_steps"] == [2, 4]
    assert result["checkpoints"] == [2, 4] and result["steps"] == [6, 6]
    assert result["param_max_diff"] < 1e-3
    assert result["embedding_max_diff"] < 0.05 * result["embedding_scale"]


def test_the_lock_step_path_compiles_the_step_once_per_size_bucket(tmp_path):
    """The accelerator path (ot.batching=vmap) compiles the train step once per padded
    length that the batches' size buckets give, and never again for a length seen before."""
    import logging

    import jax

    from tests.test_train import tiny
    from wormhole.data import load_dataset
    from wormhole.trainer import batch_indices, train_and_evaluate

    config = tiny(tmp_path / "run", train={"steps": 12, "length_bucket": 2},
                  ot={"batching": "vmap"}, checkpoint={"enabled": False},
                  eval={"num_pairs": 20})
    messages = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler, logger = Collect(), logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            train_and_evaluate(config, progress=False)
    finally:
        logger.removeHandler(handler)
    train = load_dataset(config.data).train
    lengths = {batch_indices(train, step, 8, config.train.seed, 2)[1] for step in range(12)}
    compiled = [m for m in messages if m.startswith("Compiling jit(step)")]
    assert len(lengths) > 1  # the test means something only with several buckets
    assert len(compiled) == len(lengths)


_CPU_DEVICES = """
import sys, json, warnings
sys.path.insert(0, {repo!r})
import jax
from tests.test_train import tiny
from wormhole.trainer import train_and_evaluate
cfg = tiny(sys.argv[1] + "/a", train={{"steps": 2, "mesh": {{"cpu_devices": 2}}}},
           checkpoint={{"enabled": False}}, eval={{"num_pairs": 20}})
train_and_evaluate(cfg, progress=False)
first = jax.device_count()
again = tiny(sys.argv[1] + "/b", train={{"steps": 2, "mesh": {{"cpu_devices": 4}}}},
             checkpoint={{"enabled": False}}, eval={{"num_pairs": 20}})
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    train_and_evaluate(again, progress=False)
print(json.dumps({{"first": first, "after": jax.device_count(),
                  "warnings": [str(w.message) for w in caught]}}))
"""


def test_cpu_devices_split_the_cpu_before_jax_starts_and_warn_after(tmp_path):
    # Without XLA's own device-count flag (which would set the count before the config
    # could); the suite's other XLA flags stay.
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if "xla_force_host_platform_device_count" not in f]
    env = dict(os.environ, XLA_FLAGS=" ".join(flags))
    done = subprocess.run([sys.executable, "-c", _CPU_DEVICES.format(repo=str(REPO)),
                           str(tmp_path)], capture_output=True, text=True,
                          env=dict(env, JAX_PLATFORMS="cpu"))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["first"] == 2 and out["after"] == 2
    assert any("train.mesh.cpu_devices=4 has no effect" in w and "2 device(s)" in w
               for w in out["warnings"])
