"""Train state, train step, eval step, and ``train_and_evaluate``: the loop of a run.

The shape of the Flax examples: :func:`create_train_state` (and :func:`restore_train_state`),
a pure, jitted ``train_step`` from :func:`make_train_step` (OT targets for all in-batch pairs
are computed inside it, without gradient, then the loss terms of
:data:`wormhole.losses.LOSS_TERMS` and the optimiser update), an ``eval_step``
(:class:`wormhole.held_out.HeldOutPairs`), and :func:`train_and_evaluate`, a short loop over
steps that calls the periodic actions: metrics, held-out evaluation, checkpoint, callbacks.
The run spreads over the devices of a mesh (``train.mesh``, :mod:`wormhole.parallel`): each
device holds its share of the batch's clouds and solves its share of the in-batch OT
problems, parameters are replicated (or sharded) and the compiler reduces the gradients. In a
multi-process run (``train.distributed``) every process builds only its devices' rows of each
batch, and process 0 alone writes the run directory's files (orbax writes checkpoints from
all of them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding
from tqdm.auto import tqdm

from wormhole import parallel
from wormhole.atomic import file_in_the_way
from wormhole.checkpoint import CHECKPOINT_DIR, CheckpointStore, DamagedCheckpoint, RunMeta
from wormhole.config import (
    Config,
    ConfigError,
    LossConfig,
    TrainConfig,
    config_to_dict,
    save_config,
)
from wormhole.data import Dataset, PointClouds, load_dataset, random_rotations, rotate_clouds
from wormhole.data.neighbour_batches import mined_batch, neighbour_table
from wormhole.data.padding import bucket_length
from wormhole.data.sketches import cloud_sketches
from wormhole.held_out import HeldOutPairs
from wormhole.losses import LOSS_TERMS, StepArrays, pearson
from wormhole.metrics_log import (
    DivergenceGuard,
    MetricsWriter,
    RunReport,
    TrainingDiverged,
    truncate_metrics,
)
from wormhole.models import ModelSpec, WormholeModel, build_model, embedding_distance
from wormhole.ot import OTSpec, get_kind, pairwise_distances
from wormhole.run_setup import (
    check_resume,
    data_record,
    resolve_cost_scale,
    resolve_model_spec,
    with_absolute_data_path,
)

__all__ = [
    "Batch",
    "TrainOutput",
    "TrainState",
    "NeighbourMining",
    "TrainingDiverged",
    "batch_indices",
    "create_train_state",
    "device_batch",
    "learning_rate_schedule",
    "make_evaluator",
    "make_optimizer",
    "make_output_check",
    "make_train_step",
    "neighbour_mining",
    "resolve_model_spec",
    "restore_train_state",
    "sample_batch",
    "train_and_evaluate",
]

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
    meta: RunMeta
    workdir: Path
    history: list[dict]


# --------------------------------------------------------------------------- pieces


def warn_of_a_rebuilt_schedule(stored: RunMeta, cfg: TrainConfig, step: int) -> None:
    """Warn when a resume changes ``train.steps``: the warm-up and decay are laid over the new
    length, so the learning rate jumps where the run resumes."""
    trained = stored.config.get("train", {}).get("steps", cfg.steps)
    if trained == cfg.steps or cfg.schedule == "constant":
        return
    before = float(learning_rate_schedule(replace(cfg, steps=trained))(step))
    after = float(learning_rate_schedule(cfg)(step))
    warnings.warn(f"train.steps changed from {trained} to {cfg.steps}: the {cfg.schedule} "
                  f"learning-rate schedule is laid over {cfg.steps} steps, so at step {step} "
                  f"the rate goes from {before:.3g} to {after:.3g} instead of going on from "
                  f"where the run stopped.", stacklevel=3)


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
    """AdamW on :func:`learning_rate_schedule`, after global-norm gradient clipping.

    The schedule is read per step: the ``train.updates_per_batch`` updates of one step share
    its learning rate.
    """
    parts = [optax.clip_by_global_norm(cfg.grad_clip)] if cfg.grad_clip else []
    schedule, per_step = learning_rate_schedule(cfg), cfg.updates_per_batch
    rate = schedule if per_step == 1 else (lambda count: schedule(count // per_step))
    parts.append(optax.adamw(rate, weight_decay=cfg.weight_decay))
    return optax.chain(*parts)


def create_train_state(model: WormholeModel, tx: optax.GradientTransformation,
                       clouds: PointClouds, seed: int, mesh: Mesh | None = None,
                       shard_params: bool = False) -> TrainState:
    """Fresh parameters, optimiser state and run key; laid out on ``mesh`` if given
    (replicated, or with ``shard_params`` split as :func:`wormhole.parallel.state_shardings`
    says)."""
    init_key, run_key = jax.random.split(jax.random.PRNGKey(seed))
    sample = clouds.subset(slice(0, 2))

    def fresh(key, points, weights):
        params = model.init(key, points, weights)["params"]
        return TrainState.create(apply_fn=model.apply, params=params, tx=tx, rng=run_key)

    # One compiled program instead of one small compilation per initialiser and optimiser
    # operation run eagerly (seconds at every start on CPU); the values are the same.
    state = jax.jit(fresh)(init_key, jnp.asarray(sample.points), jnp.asarray(sample.weights))
    if mesh is not None:
        state = jax.device_put(state, parallel.state_shardings(state, mesh, shard_params))
    return state


def restore_train_state(store: CheckpointStore, template: TrainState
                        ) -> tuple[int, TrainState, RunMeta] | None:
    """The newest intact checkpoint, restored with ``template``'s shapes and shardings.

    Damaged newer checkpoints are skipped with a warning naming each; ``None`` when the
    store holds no checkpoint at all.
    """
    if store.latest_step() is None:
        return None
    found = store.restore_latest_intact(template)
    if found is None:
        raise DamagedCheckpoint(f"Every checkpoint in {store.directory} is damaged "
                                f"(steps {store.all_steps()}); delete them or start the run in "
                                f"another train.workdir.")
    newer = [step for step in store.all_steps() if step > found[0]]
    if newer:
        aside = store.directory.parent / "damaged_checkpoints"
        store.set_aside(newer, aside)
        warnings.warn(f"Resuming from step {found[0]}; the damaged checkpoints of steps {newer} "
                      f"were moved to {aside}.", RuntimeWarning, stacklevel=2)
    return found


def batch_indices(clouds: PointClouds, step: int, batch_size: int, seed: int,
                  bucket: int = 0, mining: NeighbourMining | None = None
                  ) -> tuple[np.ndarray, int]:
    """The clouds of ``step``'s batch and its padded length: a function of ``(seed, step)``
    (and the data, through ``mining``'s table) only, so resuming is exact and every process
    of a run draws the same batch.

    Uniformly random clouds, or with ``mining`` partly groups of near neighbours
    (:func:`~wormhole.data.neighbour_batches.mined_batch`). Padding is cropped by
    :func:`~wormhole.data.padding.bucket_length` (a few distinct lengths, hence few
    compilations, and much less padded OT work).
    """
    rng = np.random.default_rng((seed, step))
    if mining is None:
        index = np.sort(rng.choice(len(clouds), batch_size, replace=False))
    else:
        index = mined_batch(rng, mining.table, batch_size, mining.fraction, mining.group)
    return index, bucket_length(int(clouds.sizes[index].max()), bucket, clouds.length)


class NeighbourMining(NamedTuple):
    """How batches take near neighbours: ``table [N, pool]`` of each cloud's nearest clouds,
    the ``fraction`` of a batch drawn as groups, and the ``group`` size."""

    table: np.ndarray
    fraction: float
    group: int


def neighbour_mining(cfg: TrainConfig, clouds: PointClouds, quadratic: bool
                     ) -> NeighbourMining | None:
    """The run's :class:`NeighbourMining` (``train.neighbour_batches`` > 0), else ``None``."""
    if cfg.neighbour_batches <= 0:
        return None
    sketches = cloud_sketches(clouds, quadratic=quadratic, seed=cfg.seed)
    return NeighbourMining(neighbour_table(sketches, cfg.neighbour_pool),
                           cfg.neighbour_batches, cfg.neighbour_group)


def sample_batch(clouds: PointClouds, step: int, batch_size: int, seed: int,
                 bucket: int = 0, mining: NeighbourMining | None = None) -> Batch:
    """The batch of ``step`` (:func:`batch_indices`) as host arrays."""
    index, length = batch_indices(clouds, step, batch_size, seed, bucket, mining)
    return Batch(clouds.points[index, :length], clouds.weights[index, :length])


def device_batch(clouds: PointClouds, step: int, batch_size: int, seed: int, bucket: int,
                 sharding: NamedSharding, mining: NeighbourMining | None = None) -> Batch:
    """The batch of ``step`` laid out as ``sharding`` says; this process reads only the
    clouds of its own devices."""
    index, length = batch_indices(clouds, step, batch_size, seed, bucket, mining)
    shape = (batch_size, length)
    points = parallel.global_rows((*shape, clouds.dim), sharding,
                                  lambda rows: clouds.points[index[rows], :length])
    weights = parallel.global_rows(shape, sharding,
                                   lambda rows: clouds.weights[index[rows], :length])
    return Batch(points, weights)


# --------------------------------------------------------------------------- the steps


def make_train_step(model: WormholeModel, target_spec: OTSpec,
                    reconstruction_spec: OTSpec | None, loss: LossConfig,
                    distance_kind: str, rotate: bool, updates: int = 1) -> Callable:
    """The pure step ``(state, batch) -> (state, metrics)``; jit it with the state donated.

    The batch's OT targets are solved once and serve ``updates`` optimiser updates (each
    with its own dropout draw); ``state.step`` counts steps, not updates. Metrics hold each
    loss term, ``batch_pearson``, ``target_hit_cap`` and ``grad_norm`` of the step's first
    update (the fresh batch), and ``params_finite`` (1 when every parameter after the last
    update is finite), which the divergence rule reads before anything of the step is saved.
    """
    # The input clouds' self terms of the reconstruction divergence are the targets' own
    # when both use the same distance: solve them once.
    reuse_self_terms = reconstruction_spec == target_spec and target_spec.debiased
    weights = {name: getattr(loss, name) for name in LOSS_TERMS}
    active = [name for name, weight in weights.items() if weight > 0 or name == "stress"]

    def step(state: TrainState, batch: Batch):
        key = jax.random.fold_in(state.rng, state.step)
        k_rot, k_drop, k_shift, k_scale = jax.random.split(key, 4)
        points, mass = batch
        size, dim = points.shape[0], points.shape[-1]
        if rotate:
            points = rotate_clouds(points, random_rotations(k_rot, size, dim), mass)
        # Targets need no gradient: they are constants of this step.
        targets = jax.lax.stop_gradient(
            pairwise_distances(points, mass, target_spec, validate=False))
        first, second = np.triu_indices(size, 1)

        def pair_distances(emb):
            return embedding_distance(emb[first], emb[second], distance_kind)

        def loss_fn(params, drop_key):
            def encode(params, x):
                return model.apply({"params": params}, x, mass, deterministic=False,
                                   method=WormholeModel.encode, rngs={"dropout": drop_key})

            def decode(params, emb):
                return model.apply({"params": params}, emb, deterministic=False,
                                   method=WormholeModel.decode, rngs={"dropout": drop_key})

            emb = encode(params, points)
            arrays = StepArrays(params, points, mass, targets, pair_distances(emb), emb,
                                {"shift": k_shift, "scale": k_scale}, encode, decode,
                                pair_distances, reconstruction_spec, reuse_self_terms,
                                target_spec.record.scaling_power, loss)
            terms, extra = {}, {}
            for name in active:
                terms[name], more = LOSS_TERMS[name](arrays)
                extra.update(more)
            total = sum(weights[name] * value for name, value in terms.items())
            return total, (terms, extra, arrays.distances)

        def update(params, opt_state, drop_key):
            (total, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, drop_key)
            changes, opt_state = state.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, changes), opt_state, total, aux, grads

        params, opt_state, total, (terms, extra, dist), grads = update(
            state.params, state.opt_state, k_drop)
        if updates > 1:  # the same targets again: no OT solve, only the network's passes
            def again(i, carry):
                return update(*carry, jax.random.fold_in(k_drop, i))[:2]

            params, opt_state = jax.lax.fori_loop(1, updates, again, (params, opt_state))
        state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf))
                                    for leaf in jax.tree.leaves(state.params)]))
        metrics = {"loss": total, **terms, **extra,
                   "batch_pearson": pearson(dist, targets.values),
                   "target_hit_cap": targets.hit_cap_fraction,
                   "grad_norm": optax.global_norm(grads),
                   "params_finite": finite.astype(jnp.float32)}
        return state, metrics

    return step


def make_output_check(model: WormholeModel) -> Callable:
    """``(params, batch) -> bool``: the network's embeddings (and decoded clouds) of the batch
    are all finite. Run before each checkpoint: finite parameters can still be so large that
    every cloud encodes to NaN."""

    def finite(params, batch: Batch):
        emb = model.apply({"params": params}, batch.points, batch.weights,
                          method=WormholeModel.encode)
        ok = jnp.all(jnp.isfinite(emb))
        if model.spec.decoder_points:
            decoded = model.apply({"params": params}, emb, method=WormholeModel.decode)
            ok &= jnp.all(jnp.isfinite(decoded))
        return ok

    return jax.jit(finite)


def make_evaluator(config: Config, model: WormholeModel, dataset: Dataset,
                   target_spec: OTSpec) -> HeldOutPairs | None:
    """The eval step on the run's test clouds (``None`` without at least two of them)."""
    if dataset.test is None or len(dataset.test) < 2:
        return None
    return HeldOutPairs(model, dataset.test, target_spec, config.eval.num_pairs,
                        config.model.embedding_distance, config.train.seed,
                        bucket=config.train.length_bucket or 32)


# --------------------------------------------------------------------------- the loop


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
    cfg = config.train
    parallel.use_cpu_devices(cfg.mesh.cpu_devices)
    if cfg.distributed.enabled:
        parallel.initialize_distributed(cfg.distributed.coordinator_address,
                                        cfg.distributed.num_processes,
                                        cfg.distributed.process_id)
    primary = jax.process_index() == 0
    workdir = config.workdir.expanduser().resolve()
    blocking = file_in_the_way(workdir)  # before the data are read
    if blocking is not None:
        raise ConfigError(f"train.workdir {workdir}: {blocking} is a file, not a directory; "
                          "name a directory for the run.")
    dataset = dataset if dataset is not None else load_dataset(config.data)
    config = with_absolute_data_path(config)  # the saved run reads it from any directory
    train = dataset.train
    if len(train) < cfg.batch_size:
        raise ConfigError(f"train.batch_size ({cfg.batch_size}) is larger than the "
                          f"{len(train)} training clouds; lower train.batch_size.")
    if config.loss.scaling > 0 and config.ot.cost is not None:
        raise ConfigError("loss.scaling needs a known scaling law, which a custom ot.cost "
                          "does not have; set loss.scaling=0.")
    mesh = parallel.make_mesh(cfg.mesh.data)
    parallel.check_batch_size(cfg.batch_size, mesh)
    sharding = parallel.batch_sharding(mesh)
    record = data_record(config, dataset)
    workdir.mkdir(parents=True, exist_ok=True)
    store = CheckpointStore(workdir / CHECKPOINT_DIR, keep=config.checkpoint.keep) \
        if config.checkpoint.enabled else None
    stored = None
    if store is not None and store.latest_step() is not None:
        intact = store.latest_intact_step(warn=False)  # the restore below warns
        if intact is None:
            raise DamagedCheckpoint(f"Every checkpoint in {store.directory} is damaged (steps "
                                    f"{store.all_steps()}); delete them or start the run in "
                                    f"another train.workdir.")
        if intact > cfg.steps:
            raise ConfigError(f"{workdir} holds a run trained to step {intact}, past "
                              f"train.steps={cfg.steps}; set train.steps to at least {intact} "
                              f"to resume it, or use another train.workdir.")
        stored = store.restore_meta(intact)
        check_resume(stored, config, record, workdir, dataset.normalization)
    cost_scale = stored.cost_scale if stored else resolve_cost_scale(config, train)
    spec = ModelSpec.from_dict(stored.model_spec) if stored else \
        resolve_model_spec(config, train, cost_scale)
    if primary:
        save_config(config, workdir / "config.yaml")

    model = build_model(config.model, spec)
    target_spec = OTSpec.from_config(config.ot, cost_scale=cost_scale)
    rec_spec = OTSpec.from_config(config.ot, cost_scale=cost_scale, decoder=True) \
        if spec.decoder_points else None
    state = create_train_state(model, make_optimizer(cfg), train, cfg.seed, mesh,
                               cfg.mesh.shard_params)
    state_layout = parallel.state_shardings(state, mesh, cfg.mesh.shard_params)
    writer = MetricsWriter(workdir, cfg.tensorboard, enabled=primary)
    restored = restore_train_state(store, state) if stored is not None else None
    if restored is not None:
        latest, state, _ = restored
        if primary:
            truncate_metrics(writer.path, latest)
    else:
        latest = None
        if primary:  # a fresh run: old metrics belong to a run gone
            writer.path.unlink(missing_ok=True)
    meta = RunMeta(config_to_dict(config), dataset.normalization.to_dict(), cost_scale,
                   spec.to_dict(), record)
    step_fn = jax.jit(make_train_step(model, target_spec, rec_spec, config.loss,
                                      config.model.embedding_distance, config.data.rotate,
                                      cfg.updates_per_batch),
                      in_shardings=(state_layout, sharding),
                      out_shardings=(state_layout, parallel.replicated(mesh)),
                      donate_argnums=0)
    # Evaluation runs in each process on its own devices, on full copies of the parameters.
    local = parallel.local_mesh()
    with jax.set_mesh(local):
        evaluator = make_evaluator(config, model, dataset, target_spec)

    def evaluate(params):
        with jax.set_mesh(local):
            return evaluator(parallel.to_local(params, local))

    outputs_finite = make_output_check(model)
    mining = neighbour_mining(cfg, train, get_kind(config.ot.kind).quadratic)

    start = int(state.step)
    bar = tqdm(total=cfg.steps, initial=start, disable=not (progress and primary),
               desc=config.name, dynamic_ncols=True)
    report = RunReport(writer, DivergenceGuard(cfg.divergence_factor), learning_rate_schedule(cfg),
                       store.directory if store else None, latest, bar)
    if latest is not None:
        report.say(f"resuming from the checkpoint of step {latest} of {cfg.steps} "
                   f"({store.step_dir(latest)})")
        warn_of_a_rebuilt_schedule(stored, cfg, latest)
    try:
        for step in range(start, cfg.steps):
            batch = device_batch(train, step, cfg.batch_size, cfg.seed, cfg.length_bucket,
                                 sharding, mining)
            with jax.set_mesh(mesh):  # the OT solves split over the mesh's data axis
                state, metrics = step_fn(state, batch)
            report.pending.append(metrics)
            done = step + 1
            last = done == cfg.steps
            save_now = store is not None and (done % config.checkpoint.every == 0 or last)
            if done % cfg.log_every == 0 or last or save_now:
                report.flush(done)  # checks the steps before anything of them is saved
            if evaluator is not None and (done % cfg.eval_every == 0 or last):
                report.evaluate(evaluate, state.params, done)
            if save_now:
                report.pause(state)
                with jax.set_mesh(mesh):
                    finite = bool(outputs_finite(state.params, batch))
                if not finite:
                    raise TrainingDiverged(
                        f"Training stopped at step {done}: the parameters after it encode the "
                        f"batch to NaN or infinite values, so no checkpoint of it was written. "
                        f"{report.kept()} Try a lower train.learning_rate or train.grad_clip.")
                store.save(done, state, meta)
                report.last_saved = done
                report.resume()
            bar.update(1)
            for callback in callbacks:
                callback(done, metrics)
    finally:
        bar.close()
        writer.close()
        if store is not None:
            store.close()
    return TrainOutput(state, meta, workdir, report.history)
