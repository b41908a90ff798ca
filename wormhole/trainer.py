"""Train state, train step, and the training loop with evaluation and checkpoints.

The train step is a pure function of ``(state, batch)``: OT targets for all in-batch pairs
are computed inside it (no gradient), then the loss terms and the optimiser update. The
batch's leading axis is the one to shard for data-parallel training (see
:func:`batch_sharding`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from scipy import stats
from tqdm.auto import tqdm

from wormhole.checkpoint import CHECKPOINT_DIR, CheckpointStore
from wormhole.config import (
    Config,
    ConfigError,
    LossConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    save_config,
)
from wormhole.data import Dataset, PointClouds, load_dataset, random_rotations, rotate_clouds
from wormhole.losses import (
    pearson,
    reconstruction_loss,
    scaling_loss,
    stress_loss,
    translation_loss,
)
from wormhole.models import ModelSpec, WormholeModel, build_model, embedding_distance
from wormhole.ot import OTSpec, estimate_cost_scale, paired_distances, pairwise_distances

__all__ = [
    "Batch",
    "TrainOutput",
    "TrainState",
    "TrainingDiverged",
    "batch_sharding",
    "create_train_state",
    "learning_rate_schedule",
    "make_optimizer",
    "make_train_step",
    "resolve_model_spec",
    "sample_batch",
    "train_and_evaluate",
]

# How each OT kind scales when both clouds are scaled by a: W ~ |a|^p for a cost |x-y|^p,
# GW with squared intra-cloud distances ~ a^4.
_SCALING_EXPONENT = {"W1": 1, "S1": 1, "W2": 2, "S2": 2, "GW": 4, "GS": 4}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainState(train_state.TrainState):
    """Flax train state plus the run's PRNG key (raw ``uint32[2]`` data, storable as is)."""

    rng: jax.Array


class Batch(NamedTuple):
    """A batch of clouds: ``points [B, n, d]``, ``weights [B, n]``."""

    points: jax.Array
    weights: jax.Array


@dataclass(frozen=True)
class TrainOutput:
    """What a finished (or resumed-and-finished) run returns."""

    state: TrainState
    meta: dict
    workdir: Path
    history: list[dict]


# --------------------------------------------------------------------------- pieces


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    """Linear warm-up to ``learning_rate``, then constant, cosine or exponential decay."""
    peak, warm = cfg.learning_rate, min(cfg.warmup_steps, max(cfg.steps - 1, 0))
    decay_steps = max(cfg.steps - warm, 1)
    if cfg.schedule == "constant":
        after = optax.constant_schedule(peak)
    elif cfg.schedule == "cosine":
        after = optax.cosine_decay_schedule(peak, decay_steps, alpha=cfg.final_lr_fraction)
    else:
        after = optax.exponential_decay(peak, decay_steps,
                                        decay_rate=max(cfg.final_lr_fraction, 1e-8))
    if warm == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warm), after], [warm])


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """AdamW on :func:`learning_rate_schedule`, after global-norm gradient clipping."""
    parts = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip else []
    parts.append(optax.adamw(learning_rate_schedule(cfg), weight_decay=cfg.weight_decay))
    return optax.chain(*parts)


def resolve_model_spec(config: Config, train: PointClouds) -> ModelSpec:
    """Data-dependent model facts: dimension, decoder size, decoder output box."""
    if config.loss.reconstruction > 0:
        points = config.model.decoder_points or max(int(np.median(train.sizes)), 1)
    else:
        points = 0
    low = high = None
    if config.ot.kind not in ("GW", "GS"):
        real = train.points[train.weights > 0]
        low = tuple(float(v) for v in real.min(axis=0))
        high = tuple(float(v) for v in real.max(axis=0))
    return ModelSpec(train.dim, points, low, high)


def create_train_state(model: WormholeModel, tx: optax.GradientTransformation,
                       clouds: PointClouds, seed: int) -> TrainState:
    init_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    sample = clouds.subset(slice(0, 2))
    params = model.init(init_key, jnp.asarray(sample.points), jnp.asarray(sample.weights))
    return TrainState.create(apply_fn=model.apply, params=params["params"], tx=tx, rng=run_key)


def sample_batch(clouds: PointClouds, step: int, batch_size: int, seed: int,
                 bucket: int = 0) -> Batch:
    """The batch of ``step``: a function of ``(seed, step)`` only, so resuming is exact.

    Padding is cropped to the batch's largest cloud rounded up to a multiple of ``bucket``
    (a few distinct lengths, hence few compilations, and much less padded OT work).
    """
    rng = np.random.default_rng((seed, step))
    index = np.sort(rng.choice(len(clouds), batch_size, replace=False))
    length = clouds.length
    if bucket:
        length = min(length, int(math.ceil(clouds.sizes[index].max() / bucket)) * bucket)
    return Batch(clouds.points[index, :length], clouds.weights[index, :length])


def batch_sharding(batch_size: int) -> jax.sharding.NamedSharding | None:
    """Shard the batch axis over all devices (``None`` on one device).

    Parameters stay replicated; XLA inserts the collectives the in-batch pairs need.
    """
    devices = jax.devices()
    if len(devices) == 1:
        return None
    if batch_size % len(devices):
        raise ConfigError(f"train.batch_size ({batch_size}) must be divisible by the number "
                          f"of devices ({len(devices)}) for data-parallel training.")
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))


# --------------------------------------------------------------------------- the step


def _translated(points, weights, shift):
    return jnp.where(weights[..., None] > 0, points + shift, 0.0)


def make_train_step(model: WormholeModel, target_spec: OTSpec,
                    reconstruction_spec: OTSpec | None, loss: LossConfig,
                    distance_kind: str, rotate: bool) -> Callable:
    """The pure step ``(state, batch) -> (state, metrics)``; jit it with the state donated."""
    scale_power = _SCALING_EXPONENT.get(target_spec.kind, 2)
    # The input clouds' self terms of the reconstruction divergence are the targets' own
    # when both use the same distance: solve them once.
    reuse_self_terms = reconstruction_spec == target_spec and target_spec.debiased

    def step(state: TrainState, batch: Batch):
        key = jax.random.fold_in(state.rng, state.step)
        k_rot, k_drop, k_shift, k_scale = jax.random.split(key, 4)
        points, weights = batch
        size, dim = points.shape[0], points.shape[-1]
        if rotate:
            points = rotate_clouds(points, random_rotations(k_rot, size, dim), weights)
        # Targets need no gradient: they are constants of this step.
        targets = jax.lax.stop_gradient(
            pairwise_distances(points, weights, target_spec, validate=False))
        first, second = np.triu_indices(size, 1)

        def encode(params, x):
            return model.apply({"params": params}, x, weights, deterministic=False,
                               method=WormholeModel.encode, rngs={"dropout": k_drop})

        def pair_distances(emb):
            return embedding_distance(emb[first], emb[second], distance_kind)

        def loss_fn(params):
            emb = encode(params, points)
            dist = pair_distances(emb)
            terms = {"stress": stress_loss(dist, targets.values)}
            aux = {}
            if loss.reconstruction > 0:
                decoded = model.apply({"params": params}, emb, deterministic=False,
                                      method=WormholeModel.decode, rngs={"dropout": k_drop})
                uniform = jnp.full(decoded.shape[:2], 1.0 / decoded.shape[1])
                reuse = targets.self_values if reuse_self_terms else None
                rec = paired_distances(points, weights, decoded, uniform, reconstruction_spec,
                                       validate=False, x_self=reuse)
                terms["reconstruction"] = reconstruction_loss(rec.values)
                aux["reconstruction_hit_cap"] = rec.hit_cap_fraction
            if loss.translation > 0:
                shift = 0.1 * jax.random.normal(k_shift, (dim,))
                moved = pair_distances(encode(params, _translated(points, weights, shift)))
                terms["translation"] = translation_loss(dist, moved)
            if loss.scaling > 0:
                factor = jax.random.uniform(k_scale, (), minval=0.5, maxval=1.5)
                scaled = pair_distances(encode(params, points * factor))
                terms["scaling"] = scaling_loss(dist, scaled, factor ** scale_power)
            total = sum(getattr(loss, name) * value for name, value in terms.items())
            return total, (terms, aux, dist)

        (total, (terms, aux, dist)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params)
        state = state.apply_gradients(grads=grads)
        metrics = {"loss": total, **terms, **aux,
                   "batch_pearson": pearson(dist, targets.values),
                   "target_hit_cap": targets.hit_cap_fraction,
                   "grad_norm": optax.global_norm(grads)}
        return state, metrics

    return step


# --------------------------------------------------------------------------- evaluation


class HeldOutPairs:
    """Fixed random pairs of test clouds with OT targets computed once, at the start."""

    def __init__(self, model: WormholeModel, test: PointClouds, spec: OTSpec, num_pairs: int,
                 distance_kind: str, seed: int, chunk: int = 256):
        rng = np.random.default_rng((seed, 7))
        n = len(test)
        first = rng.integers(0, n, num_pairs)
        second = (first + rng.integers(1, n, num_pairs)) % n  # never a cloud with itself
        self.first, self.second = first, second
        self.test, self.model, self.kind, self.chunk = test, model, distance_kind, chunk
        solve = jax.jit(lambda x, a, y, b: paired_distances(x, a, y, b, spec).values)
        self.targets = np.concatenate([
            np.asarray(solve(test.points[first[s:s + chunk]], test.weights[first[s:s + chunk]],
                             test.points[second[s:s + chunk]], test.weights[second[s:s + chunk]]))
            for s in range(0, num_pairs, chunk)])
        self._encode = jax.jit(lambda params, x, a: model.apply(
            {"params": params}, x, a, method=WormholeModel.encode))

    def embed(self, params) -> np.ndarray:
        return np.concatenate([
            np.asarray(self._encode(params, self.test.points[s:s + self.chunk],
                                    self.test.weights[s:s + self.chunk]))
            for s in range(0, len(self.test), self.chunk)])

    def __call__(self, params) -> dict:
        emb = self.embed(params)
        pred = np.asarray(embedding_distance(emb[self.first], emb[self.second], self.kind))
        return {"test_pearson": float(np.corrcoef(pred, self.targets)[0, 1]),
                "test_spearman": float(stats.spearmanr(pred, self.targets).statistic),
                "test_stress": float(np.mean((pred - self.targets) ** 2))}


# --------------------------------------------------------------------------- the loop


_RUN_SECTIONS = ("data", "model", "ot", "loss")


def _check_same_run(stored: dict, config: Config, workdir: Path) -> None:
    """Resuming is only sound when what defines the network and its targets is unchanged.

    A key missing from the stored config (a setting added in a later version) counts as its
    default.
    """
    current, defaults = config_to_dict(config), config_to_dict(config_from_dict({}))
    for section in _RUN_SECTIONS:
        for key, value in current[section].items():
            old = stored.get(section, {}).get(key, defaults[section][key])
            if old != value:
                raise ConfigError(
                    f"{workdir} holds a run with {section}.{key}={old!r}, but this config has "
                    f"{value!r}. Resume with the same {section} settings, or start a new run "
                    f"with a different train.workdir (or delete the old run).")
    seed = stored.get("train", {}).get("seed")
    if seed != config.train.seed:
        raise ConfigError(f"{workdir} holds a run with train.seed={seed}, but this config has "
                          f"{config.train.seed}; use another train.workdir.")


def _append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records logged after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= last_step]
    path.write_text("".join(line + "\n" for line in kept))


def _mean_metrics(records: Sequence[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in records])) for k in records[0]}


def _check_finite(records: Sequence[dict], first_step: int, last_good: int | None,
                  store_dir: Path | None) -> None:
    for offset, record in enumerate(records):
        if not math.isfinite(record["loss"]):
            terms = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k != "loss")
            kept = (f"The last good checkpoint (step {last_good}) is kept in {store_dir}."
                    if last_good is not None else "No checkpoint had been written yet.")
            raise TrainingDiverged(
                f"Training stopped at step {first_step + offset + 1}: the loss is "
                f"{record['loss']} ({terms}). {kept} Try a lower train.learning_rate, "
                f"train.grad_clip, or a larger ot.epsilon.")


def train_and_evaluate(config: Config, dataset: Dataset | None = None,
                       callbacks: Sequence[Callable[[int, dict], None]] = (),
                       progress: bool = True) -> TrainOutput:
    """Train (or resume) the run described by ``config`` in ``config.workdir``.

    Args:
      config: the resolved run config.
      dataset: prepared clouds; default loads ``config.data``.
      callbacks: called as ``fn(step, metrics)`` after every step (e.g. to stop a run).
      progress: show a progress bar.

    Returns:
      The final state, the run metadata (as stored with checkpoints), the run directory
      and the logged metric records.
    """
    workdir = config.workdir.expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_train = config.train
    dataset = dataset if dataset is not None else load_dataset(config.data)
    train = dataset.train
    if len(train) < cfg_train.batch_size:
        raise ConfigError(f"train.batch_size ({cfg_train.batch_size}) is larger than the "
                          f"{len(train)} training clouds; lower train.batch_size.")
    if config.loss.scaling > 0 and config.ot.cost is not None:
        raise ConfigError("loss.scaling needs a known scaling law, which a custom ot.cost "
                          "does not have; set loss.scaling=0.")

    store = None
    if config.checkpoint.enabled:
        store = CheckpointStore(workdir / CHECKPOINT_DIR, keep=config.checkpoint.keep)
    latest = store.latest_step() if store else None
    if latest is not None:
        stored = store.restore_meta(latest)
        _check_same_run(stored["config"], config, workdir)
        cost_scale = float(stored["cost_scale"])
        spec = ModelSpec.from_dict(stored["model_spec"])
    else:
        cost_scale = config.ot.cost_scale or estimate_cost_scale(
            train.points, train.weights, config.ot.kind, cost=config.ot.cost,
            seed=config.data.seed)
        spec = resolve_model_spec(config, train)
    save_config(config, workdir / "config.yaml")

    model = build_model(config.model, spec)
    target_spec = OTSpec.from_config(config.ot, cost_scale=cost_scale)
    rec_spec = OTSpec.from_config(config.ot, cost_scale=cost_scale, decoder=True) \
        if spec.decoder_points else None
    state = create_train_state(model, make_optimizer(cfg_train), train, cfg_train.seed)
    metrics_path = workdir / "metrics.jsonl"
    if latest is not None:
        state, _ = store.restore(latest, target=state)
        _truncate_metrics(metrics_path, latest)
    elif metrics_path.exists():
        metrics_path.unlink()  # a fresh run: old metrics belong to a run that is gone

    meta = {"config": config_to_dict(config), "normalization": dataset.normalization.to_dict(),
            "cost_scale": cost_scale, "model_spec": spec.to_dict(),
            "num_train": len(train), "format": 1}
    step_fn = jax.jit(make_train_step(model, target_spec, rec_spec, config.loss,
                                      config.model.embedding_distance, config.data.rotate),
                      donate_argnums=0)
    sharding = batch_sharding(cfg_train.batch_size)
    evaluator = None
    if dataset.test is not None and len(dataset.test) >= 2:
        evaluator = HeldOutPairs(model, dataset.test, target_spec, config.eval.num_pairs,
                                 config.model.embedding_distance, cfg_train.seed)

    schedule = learning_rate_schedule(cfg_train)
    start = int(state.step)
    history: list[dict] = []
    pending: list[dict] = []
    last_good = latest
    tick, tick_step = time.perf_counter(), start
    bar = tqdm(total=cfg_train.steps, initial=start, disable=not progress, desc=config.name,
               dynamic_ncols=True)
    try:
        for step in range(start, cfg_train.steps):
            batch = sample_batch(train, step, cfg_train.batch_size, cfg_train.seed,
                                 cfg_train.length_bucket)
            if sharding is not None:
                batch = jax.device_put(batch, sharding)
            state, metrics = step_fn(state, batch)
            pending.append(metrics)
            done = step + 1
            save_now = store is not None and (done % config.checkpoint.every == 0
                                              or done == cfg_train.steps)
            if done % cfg_train.log_every == 0 or done == cfg_train.steps or save_now:
                records = [{k: float(v) for k, v in m.items()} for m in jax.device_get(pending)]
                _check_finite(records, done - len(records), last_good,
                              store.directory if store else None)
                now = time.perf_counter()
                record = {"step": done, **_mean_metrics(records),
                          "learning_rate": float(schedule(done - 1)),
                          "steps_per_s": (done - tick_step) / max(now - tick, 1e-9)}
                tick, tick_step, pending = now, done, []
                _append_jsonl(metrics_path, record)
                history.append(record)
                bar.set_postfix({k: f"{record[k]:.3g}" for k in
                                 ("loss", "stress", "reconstruction", "batch_pearson",
                                  "steps_per_s") if k in record}, refresh=False)
            if evaluator is not None and (done % cfg_train.eval_every == 0
                                          or done == cfg_train.steps):
                record = {"step": done, **evaluator(state.params)}
                _append_jsonl(metrics_path, record)
                history.append(record)
                bar.write(f"step {done}: " + ", ".join(
                    f"{k}={v:.4g}" for k, v in record.items() if k != "step"))
            if save_now:
                store.save(done, state, meta)
                last_good = done
            bar.update(1)
            for callback in callbacks:
                callback(done, metrics)
    finally:
        bar.close()
        if store is not None:
            store.close()
    return TrainOutput(state, meta, workdir, history)
