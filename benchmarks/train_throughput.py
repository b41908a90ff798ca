"""Training throughput on MNIST-style clouds: our trainer against the published package.

    python benchmarks/train_throughput.py --mnist-dir /path/to/mnist
    python benchmarks/train_throughput.py --published-python /path/to/venv/bin/python
    python benchmarks/train_throughput.py --published-python ... --settings-only

Both trainers learn the same thing on the same clouds, in one run on one machine: MNIST digits
as pixel clouds (intensity > 127, coordinates in [0, 1], about 105 points each), batches of 16
clouds, S2 Sinkhorn divergence targets with epsilon 0.01 on one shared cost scale, at most 200
Sinkhorn iterations, the same transformer sizes, decoder size, reconstruction weight and
learning rate. Steady-state steps/s is measured after compilation; compile time is reported
apart. Quality is the held-out Pearson correlation, after the same number of steps, between
each model's embedding distances and one ground truth: S2 solved to convergence by ott-jax on
the same held-out pairs.

The report shows each side's OT setting (coordinate scaling, cost scale, epsilon, iteration
rule, padding) as read from its code: ours from the config and ``wormhole.ot``, the published
one by building its ``Wormhole`` on the same clouds (``_published_worker.py --describe``).
``--settings-only`` regenerates just that table into an existing result, without training.

The published ``wassersteinwormhole`` pins its own jax and flax, so it runs in its own virtual
environment (``--published-python``, default ``$WORMHOLE_PUBLISHED_PYTHON``) through
``benchmarks/_published_worker.py``. Without it the benchmark reports our trainer only and
says so. Results go to ``benchmarks/results/train_throughput.{md,json}``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import jax  # noqa: E402
import numpy as np  # noqa: E402
from ott.geometry import pointcloud  # noqa: E402
from ott.solvers import linear  # noqa: E402
from ott.solvers.linear import sinkhorn  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks._harness import (  # noqa: E402
    RESULTS,
    Run,
    cpu_seconds,
    markdown_table,
    package_version,
    write_result,
)
from benchmarks._published import run_worker, setting_cells  # noqa: E402
from wormhole.api import resolve_config  # noqa: E402
from wormhole.data import PointClouds, train_test_split  # noqa: E402
from wormhole.evaluate.metrics import agreement, distinct_random_pairs  # noqa: E402
from wormhole.models import WormholeModel, build_model, embedding_distance  # noqa: E402
from wormhole.models.encoding import encode_in_chunks  # noqa: E402
from wormhole.ot import OTSpec, pairwise_distances  # noqa: E402
from wormhole.ot.solvers import linear_geometry  # noqa: E402
from wormhole.run_setup import resolve_cost_scale, resolve_model_spec  # noqa: E402
from wormhole.trainer import (  # noqa: E402
    create_train_state,
    make_optimizer,
    make_train_step,
    sample_batch,
)

TARGET_RATIO = 5.0


# --------------------------------------------------------------------------- data


def load_clouds(mnist_dir: str | None) -> tuple[PointClouds, str]:
    """MNIST pixel clouds (intensity > 127 of 255), or upsampled 8x8 digits when absent."""
    from wormhole.data.loaders.idx import load_mnist

    try:
        clouds = load_mnist(path=mnist_dir, threshold=0.5, download=False)
        return clouds, "MNIST (IDX files; pixels with intensity > 127, coordinates in [0, 1])"
    except FileNotFoundError as err:
        print(f"MNIST is unavailable, falling back to scikit-learn digits:\n{err}",
              file=sys.stderr)
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    from wormhole.data.images import images_to_clouds

    digits = load_digits()
    # 8x8 images have ~33 points; upsampling to 16x16 gives clouds of MNIST-like size.
    images = np.clip(zoom(digits.images, (1, 2, 2), order=1), 0, None)
    return (images_to_clouds(images, digits.target, threshold=0.5),
            "FALLBACK, NOT MNIST: scikit-learn 8x8 digits upsampled to 16x16")


def effective_points(weights: np.ndarray) -> int:
    """Mean exp-entropy of the weights: the published package's decoder size, used by both."""
    w = weights / weights.sum(axis=1, keepdims=True)
    entropy = -np.sum(np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0), axis=1)
    return int(np.mean(np.exp(entropy)))


def held_out_pairs(count: int, num_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return distinct_random_pairs(np.random.default_rng((seed, 3)), count, num_pairs)


def ground_truth_s2(test: PointClouds, first, second, epsilon: float, cost_scale: float,
                    threshold: float, max_iterations: int, chunk: int = 50):
    """S2 on the held-out pairs, Sinkhorn run to ``threshold``; values and converged flags.

    Written on ott-jax directly (not on our OT engine) so the reference is independent of the
    code being measured.
    """

    def solve(x, a, y, b):
        geom = pointcloud.PointCloud(x, y, epsilon=epsilon, scale_cost=cost_scale)
        out = linear.solve(geom, a=a, b=b, lse_mode=True, threshold=threshold,
                           max_iterations=max_iterations)
        return out.reg_ot_cost, out.converged

    @jax.jit
    def s2(x, a, y, b):
        xy, c1 = jax.vmap(solve)(x, a, y, b)
        xx, c2 = jax.vmap(solve)(x, a, x, a)
        yy, c3 = jax.vmap(solve)(y, b, y, b)
        return xy - 0.5 * (xx + yy), c1 & c2 & c3

    points, weights = test.points, test.weights / test.weights.sum(axis=1, keepdims=True)
    values, converged = [], []
    for s in tqdm(range(0, len(first), chunk), desc="ground-truth S2", leave=False):
        i, j = first[s:s + chunk], second[s:s + chunk]
        v, c = s2(points[i], weights[i], points[j], weights[j])
        values.append(np.asarray(v))
        converged.append(np.asarray(c))
    return np.concatenate(values), np.concatenate(converged)


# --------------------------------------------------------------------------- our trainer


def our_config(settings: dict):
    s = settings
    return resolve_config(None, {
        "name": "train_throughput",
        "model.encoder": "transformer", "model.emb_dim": s["emb_dim"],
        "model.width": s["emb_dim"], "model.num_layers": s["num_layers"],
        "model.num_heads": s["num_heads"], "model.mlp_dim": s["mlp_dim"],
        "model.dropout": s["dropout"], "model.decoder_layers": s["num_layers"],
        "model.decoder_points": s["decoder_points"], "model.embedding_distance": "mse",
        "ot.kind": s["kind"], "ot.epsilon": s["epsilon"], "ot.cost_scale": s["cost_scale"],
        "ot.max_iterations": s["max_iterations"],
        "loss.stress": 1.0, "loss.reconstruction": s["reconstruction_weight"],
        "train.steps": s["steps"], "train.batch_size": s["batch_size"],
        "train.seed": s["seed"],
        # The published optimiser: Adam at a constant 1e-4 (its 0.99 decay every 2000 steps
        # never starts within a benchmark run), no warm-up, no clipping.
        "train.learning_rate": s["learning_rate"], "train.schedule": "constant",
        "train.warmup_steps": 0, "train.grad_clip": None, "train.weight_decay": 0.0})


def run_ours(train: PointClouds, test: PointClouds, first, second, settings: dict,
             profile: bool) -> dict:
    """Our train step (``wormhole.trainer``) in the loop ``train_and_evaluate`` runs.

    Every padded batch length the measured steps will meet is compiled first (the trainer
    crops padding to a multiple of ``train.length_bucket``, so there are a few), then the
    steps run from fresh parameters.
    """
    config = our_config(settings)
    cfg = config.train
    model = build_model(config.model, resolve_model_spec(config, train))
    target_spec = OTSpec.from_config(config.ot, cost_scale=settings["cost_scale"])
    rec_spec = OTSpec.from_config(config.ot, cost_scale=settings["cost_scale"], decoder=True)
    step_fn = jax.jit(make_train_step(model, target_spec, rec_spec, config.loss,
                                      config.model.embedding_distance, config.data.rotate,
                                      cfg.updates_per_batch),
                      donate_argnums=0)
    tx = make_optimizer(cfg)

    def batch(step):
        return sample_batch(train, step, cfg.batch_size, cfg.seed, cfg.length_bucket)

    first_step_of_length: dict[int, int] = {}
    for step in range(cfg.steps):
        first_step_of_length.setdefault(batch(step).points.shape[1], step)
    lengths = sorted(first_step_of_length)
    print(f"[ours] compiling the train step for padded lengths {lengths}", file=sys.stderr)
    start = time.perf_counter()
    for length in lengths:
        state = create_train_state(model, tx, train, cfg.seed)
        state, metrics = step_fn(state, batch(first_step_of_length[length]))
        jax.block_until_ready(metrics)
    warmup_s = time.perf_counter() - start

    state = create_train_state(model, tx, train, cfg.seed)
    records, pending = [], []
    bar = tqdm(total=cfg.steps, desc="[ours] train", dynamic_ncols=True)
    cpu, start = cpu_seconds(), time.perf_counter()
    for step in range(cfg.steps):
        state, metrics = step_fn(state, batch(step))
        pending.append(metrics)
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            records += [{k: float(v) for k, v in m.items()} for m in jax.device_get(pending)]
            pending = []
            bar.set_postfix(loss=f"{records[-1]['loss']:.3g}",
                            batch_pearson=f"{records[-1]['batch_pearson']:.3f}", refresh=False)
        bar.update(1)
    jax.block_until_ready(state.params)
    train_s, train_cpu_s = time.perf_counter() - start, cpu_seconds() - cpu
    bar.close()

    encode = jax.jit(lambda params, x, a: model.apply({"params": params}, x, a,
                                                      method=WormholeModel.encode))
    emb = encode_in_chunks(lambda x, a: encode(state.params, x, a), test.points, test.weights,
                           test.sizes, config.model.emb_dim)
    pred = np.asarray(embedding_distance(emb[first], emb[second], "mse"))
    lengths_used = [batch(step).points.shape[1] for step in range(cfg.steps)]
    out = {
        "package": "wormhole (this repository)",
        "jax": jax.__version__,
        "ott": package_version("ott-jax"),
        "flax": package_version("flax"),
        "device": str(jax.devices()[0]),
        "steps": cfg.steps,
        "steps_per_s": cfg.steps / train_s,
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "cpu_s_per_step": train_cpu_s / cfg.steps,
        "warmup_s": warmup_s,
        "compiled_lengths": lengths,
        "mean_padded_length": float(np.mean(lengths_used)),
        "target_hit_cap_fraction": float(np.mean([r["target_hit_cap"] for r in records])),
        "reconstruction_hit_cap_fraction": float(np.mean(
            [r.get("reconstruction_hit_cap", 0.0) for r in records])),
        "final_batch_pearson": float(np.mean([r["batch_pearson"] for r in records[-20:]])),
        "pred": pred.tolist(),
    }
    if profile:
        out["profile"] = profile_ours(model, config, target_spec, tx, batch,
                                      cfg.steps, out["steps_per_s"])
    return out


def profile_ours(model, config, target_spec, tx, batch, steps: int,
                 steps_per_s: float, repeats: int = 30) -> dict:
    """Where one step's time goes: OT targets alone, and a step without the decoder term.

    The same ``repeats`` batches (drawn across the run) go through each program after it is
    compiled for every length among them; encoder and decoder costs are the differences.
    """
    chosen = [batch(s) for s in np.linspace(0, steps - 1, repeats).astype(int)]
    targets = jax.jit(lambda p, w: pairwise_distances(p, w, target_spec).values)
    without_decoder = jax.jit(make_train_step(
        model, target_spec, None, replace(config.loss, reconstruction=0.0),
        config.model.embedding_distance, False, config.train.updates_per_batch),
        donate_argnums=0)
    state = create_train_state(model, tx, PointClouds.from_padded(
        np.asarray(chosen[0].points), np.asarray(chosen[0].weights)), 0)

    def timed(fn):
        for b in {b.points.shape[1]: b for b in chosen}.values():
            jax.block_until_ready(fn(b))
        start = time.perf_counter()
        for b in chosen:
            jax.block_until_ready(fn(b))
        return (time.perf_counter() - start) / len(chosen)

    def encoder_step(b):
        nonlocal state
        state, metrics = without_decoder(state, b)
        return metrics

    targets_s = timed(lambda b: targets(b.points, b.weights))
    encoder_step_s = timed(encoder_step)
    full_s = 1.0 / steps_per_s
    return {
        "full_step_ms": 1e3 * full_s,
        "ot_targets_ms": 1e3 * targets_s,
        "step_without_decoder_ms": 1e3 * encoder_step_s,
        "encoder_and_grad_ms": 1e3 * max(encoder_step_s - targets_s, 0.0),
        "decoder_reconstruction_and_grad_ms": 1e3 * max(full_s - encoder_step_s, 0.0),
    }


# --------------------------------------------------------------------------- each side's setting


def ott_sinkhorn_defaults() -> dict:
    """ott-jax's ``Sinkhorn`` defaults that our solves do not override."""
    params = inspect.signature(sinkhorn.Sinkhorn.__init__).parameters
    return {k: params[k].default for k in ("threshold", "inner_iterations", "min_iterations")}


def our_setting(train: PointClouds, settings: dict) -> dict:
    """Our OT setting, read from the config ``run_ours`` trains with and from ``wormhole.ot``."""
    config = our_config(settings)
    spec = OTSpec.from_config(config.ot, cost_scale=settings["cost_scale"])
    decoder = OTSpec.from_config(config.ot, cost_scale=settings["cost_scale"], decoder=True)
    real = train.weights > 0
    geometry = linear_geometry(train.points[0], train.points[1], spec)
    return {"ott": package_version("ott-jax"),
            "coordinate_range": [float(train.points[real].min()),
                                 float(train.points[real].max())],
            "cost_scale": spec.cost_scale, "epsilon": spec.epsilon,
            "decoder_epsilon": decoder.epsilon, "geometry_epsilon": float(geometry.epsilon),
            "lse_mode": spec.lse_mode, "threshold": spec.threshold,
            "max_iterations": spec.max_iterations, "decoder_threshold": decoder.threshold,
            "ott_sinkhorn_defaults": ott_sinkhorn_defaults(),
            "batch_bucket": config.train.length_bucket, "solve_bucket": spec.length_bucket,
            "sequential": spec.sequential}


def our_setting_cells(o: dict, ours: dict) -> dict[str, str]:
    """:func:`our_setting` in words, with our run's figures ``ours``, citing the code."""
    d = o["ott_sinkhorn_defaults"]
    lengths = ours.get("compiled_lengths")
    padding = (f"each batch cropped to its largest cloud rounded up to {o['batch_bucket']} "
               "(`wormhole.trainer.sample_batch`"
               + (f"; lengths in the run {lengths}, mean {ours['mean_padded_length']:.0f})"
                  if lengths else ")"))
    if o["sequential"]:
        padding += (f"; on CPU each solve is further cropped to its pair's multiple of "
                    f"{o['solve_bucket']} (sequential batching, `wormhole/ot/batched.py: "
                    "map_pairs`)")
    hit = ours.get("target_hit_cap_fraction")
    return {
        "coordinate scaling":
            "none: `run_ours` trains on the clouds `load_clouds` returns (`wormhole.data."
            "loaders.idx.load_mnist`: pixel grid positions divided by 27, `wormhole/data/"
            "images.py: images_to_clouds`); the trainer's `data.normalize` step "
            "(`prepare_dataset`) is not on this path. Real points span "
            f"[{o['coordinate_range'][0]:.3g}, {o['coordinate_range'][1]:.3g}]",
        "cost scale":
            f"{o['cost_scale']:.4g}: `wormhole/ot/scale.py: estimate_cost_scale`, the largest "
            "squared Euclidean cost between real points over 256 seeded random pairs of "
            "training clouds; costs are divided by it (`wormhole/ot/solvers.py: "
            "linear_geometry`, `scale_cost`)",
        "epsilon":
            f"{o['epsilon']} targets, {o['decoder_epsilon']} reconstruction, absolute on the "
            f"scaled cost (the geometry's epsilon: {o['geometry_epsilon']:g}; "
            "`OTSpec.from_config`)",
        "log domain": f"{o['lse_mode']} (`ot.lse_mode`)",
        "stopping threshold":
            f"{o['threshold']} marginal error (reconstruction: {o['decoder_threshold']}) "
            "(`ot.threshold`; `wormhole/ot/solvers.py: _sinkhorn_kwargs`)",
        "min / max iterations":
            f"{d['min_iterations']} (ott-jax {o['ott']} default) / {o['max_iterations']} "
            "(`ot.max_iterations`)",
        "inner iterations (error checked every)":
            f"{d['inner_iterations']} (ott-jax {o['ott']} default, not overridden)",
        "iterations run":
            "until the threshold or the cap: "
            + (f"{hit:.1%} of target solves hit the cap in the run" if hit is not None
               else "not measured"),
        "self terms OT(x, x)":
            "once per cloud, symmetric updates (parallel, momentum 1/2) (`wormhole/ot/"
            "batched.py: self_terms`, `solvers.py: solve_linear_self`)",
        "padding": padding,
    }


def describe_settings(args, train, test, first, second, settings, ours: dict) -> dict:
    """Both sides' OT settings as read from their code, and the report's table rows."""
    mine = our_setting(train, settings)
    theirs, reason = run_worker(args.published_python, train, test, first, second, settings,
                                args.published_timeout, describe=True)
    published = setting_cells(theirs) if theirs else {}
    rows = [[name, cell, published.get(name, f"n/a ({reason})")]
            for name, cell in our_setting_cells(mine, ours).items()]
    return {"ours": mine, "published": theirs,
            "published_version": theirs["version"] if theirs else "not run", "rows": rows}


# --------------------------------------------------------------------------- report


def report(result: dict) -> list[str]:
    s, ours, theirs = result["settings"], result["ours"], result.get("published")

    def cell(side, fmt, key):
        return fmt.format(side[key]) if side and side.get(key) is not None else "n/a"

    table = markdown_table(["", "wormhole (ours)", "wassersteinwormhole (published)"], [
        (label, cell(ours, fmt, key), cell(theirs, fmt, key)) for label, fmt, key in [
            ("steps/s (after compilation)", "{:.3f}", "steps_per_s"),
            (f"wall time of {s['steps']} steps (s)", "{:.1f}", "train_s"),
            ("CPU seconds per step (all threads)", "{:.2f}", "cpu_s_per_step"),
            ("compilation + first steps (s)", "{:.1f}", "warmup_s"),
            ("held-out Pearson vs converged S2", "{:.4f}", "pearson"),
            ("held-out Spearman vs converged S2", "{:.4f}", "spearman"),
            ("package version", "{}", "version"),
            ("jax / ott-jax", "{}", "stack")]])
    if theirs:
        verdict = (f"**Ratio (ours / published): {result['ratio']:.1f}x steps/s** "
                   f"(target >= {TARGET_RATIO:g}x: "
                   f"{'met' if result['ratio'] >= TARGET_RATIO else 'NOT met'}); "
                   f"{result['cpu_ratio']:.1f}x by CPU time per step; held-out "
                   f"Pearson {ours['pearson']:.4f} vs {theirs['pearson']:.4f} after the same "
                   f"{s['steps']} steps.")
    else:
        verdict = (f"**The published package did not run: {result['published_reason']}.** "
                   f"Only our trainer was measured; no ratio.")
    lines = [
        "Both trainers ran in this one run, one after the other. Wall-clock figures carry "
        "other users' load; CPU time per step (user + system, all threads of each trainer's "
        "process) is much less sensitive to it.", "",
        verdict, "", *table, "",
        "## Shared settings", "",
        f"- Data: {result['data']}; {s['num_train']} training clouds, {s['num_test']} "
        f"held-out clouds, {s['mean_points']:.1f} points per cloud on average "
        f"(max {s['max_points']}); intensity weights.",
        f"- Batch {s['batch_size']}; all {s['batch_size'] * (s['batch_size'] - 1) // 2} "
        f"in-batch pairs; {s['kind']} Sinkhorn divergence targets and reconstruction loss.",
        f"- Transformer encoder and decoder: width/embedding {s['emb_dim']}, {s['num_layers']} "
        f"blocks each, {s['num_heads']} heads, MLP {s['mlp_dim']}, dropout {s['dropout']}; "
        f"decoder of {s['decoder_points']} points; loss = stress + {s['reconstruction_weight']} "
        f"x S2 reconstruction; embedding distance = mean squared difference; Adam, constant "
        f"learning rate {s['learning_rate']} (the published default; its 0.99 decay every "
        "2000 steps does not start within the run), so ours runs with "
        "`train.schedule=constant`, no warm-up and no gradient clipping.",
        f"- Quality: {s['num_pairs']} random held-out pairs; ground truth S2 by ott-jax "
        f"{result['ground_truth']['ott']} run to threshold {s['gt_threshold']:g} "
        f"({result['ground_truth']['converged_fraction']:.1%} of pairs converged within "
        f"{s['gt_max_iterations']} iterations).",
    ]
    setting = result.get("setting")
    if setting:
        lines += [
            "", "## The OT setting of each side, as its code runs it", "",
            "Ours read from the config `run_ours` trains with and from `wormhole.ot`; the "
            f"published package's ({setting['published_version']}) read from its `Wormhole` "
            "built on the same clouds and settings (`_published_worker.py --describe`), one "
            "solve by its own helper, and its installed source (files and functions named "
            "are the package's).", "",
            *markdown_table(["setting", "wormhole (ours)", "wassersteinwormhole (published)"],
                            setting["rows"])]
        if setting.get("regenerated"):
            g = setting["regenerated"]
            lines += ["", f"This table was regenerated on {g['date']} by `{g['command']}`, "
                      "without training; every other figure in this file is from the run "
                      f"above ({result.get('date', '?')}) and was not re-measured."]
    lines += [
        "", "## How each side runs", "",
        "- Published: the loop of its `Wormhole.train` (same sampling, jitted train step "
        "and progress bookkeeping), in its own virtual environment, run twice from one fresh "
        "train state: a few steps to compile, then the timed steps (calling `Wormhole.train` "
        "twice would compile twice, as each call makes a new optimiser).",
        "- Ours: `wormhole.trainer.make_train_step` in the loop `train_and_evaluate` runs "
        "(checkpoints and held-out evaluation off), each padded length compiled before timing. "
        f"Fraction of reconstruction solves that hit the iteration cap: "
        f"{ours['reconstruction_hit_cap_fraction']:.1%}.",
    ]
    if "profile" in ours:
        p = ours["profile"]
        lines += ["", "## Where our step spends its time (ms per step)", "",
                  *markdown_table(["full step", "OT targets", "encoder + grad",
                                   "decoder + reconstruction OT + grad"],
                                  [[f"{p['full_step_ms']:.0f}", f"{p['ot_targets_ms']:.0f}",
                                    f"{p['encoder_and_grad_ms']:.0f}",
                                    f"{p['decoder_reconstruction_and_grad_ms']:.0f}"]])]
    return lines


TITLE = "Training throughput: wormhole vs wassersteinwormhole"


# --------------------------------------------------------------------------- main


def prepare(args) -> tuple[PointClouds, PointClouds, np.ndarray, np.ndarray, dict, str]:
    """The clouds, held-out pairs and shared settings of a run with ``args``."""
    clouds, data_name = load_clouds(args.mnist_dir)
    if len(clouds) > args.max_clouds:
        keep = np.random.default_rng(args.seed).choice(len(clouds), args.max_clouds,
                                                       replace=False)
        clouds = clouds.subset(np.sort(keep))
    train, test = train_test_split(clouds, args.test_fraction, args.seed)
    print(f"{data_name}\ntrain: {train.summary()}\ntest:  {test.summary()}", file=sys.stderr)
    cost_scale = resolve_cost_scale(
        resolve_config(None, {"ot.kind": "S2", "data.seed": args.seed}), train)
    settings = {
        "kind": "S2", "epsilon": args.epsilon, "max_iterations": args.max_iterations,
        "cost_scale": cost_scale, "batch_size": args.batch_size, "steps": args.steps,
        "warmup_steps": 2, "seed": args.seed, "learning_rate": 1e-4,
        "emb_dim": 128, "num_layers": 3, "num_heads": 4, "mlp_dim": 512,
        # The published model drops attention weights only, ours also activations: no
        # dropout on either side keeps the networks the same.
        "dropout": 0.0,
        "decoder_points": effective_points(train.weights),
        "reconstruction_weight": args.reconstruction_weight,
        "num_train": len(train), "num_test": len(test),
        "mean_points": float(clouds.sizes.mean()), "max_points": int(clouds.sizes.max()),
        "num_pairs": args.num_pairs, "gt_threshold": args.gt_threshold,
        "gt_max_iterations": args.gt_max_iterations,
    }
    first, second = held_out_pairs(len(test), args.num_pairs, args.seed)
    return train, test, first, second, settings, data_name


def regenerate_settings(args, run: Run) -> int:
    """``--settings-only``: the setting table into the existing result at ``args.out``."""
    path = args.out.parent / (args.out.name + ".json")
    if not path.exists():
        print(f"error: --settings-only needs an existing result at {path}; run the benchmark "
              f"first.", file=sys.stderr)
        return 1
    result = json.loads(path.read_text())
    train, test, first, second, settings, _ = prepare(args)
    if not np.isclose(settings["cost_scale"], result["settings"]["cost_scale"]):
        print(f"error: these options give cost scale {settings['cost_scale']:.6g}, the result "
              f"file's run had {result['settings']['cost_scale']:.6g}: not the same setting. "
              f"Pass the options of its command: {result['command']}", file=sys.stderr)
        return 1
    setting = describe_settings(args, train, test, first, second, settings, result["ours"])
    done = run.finish()
    setting["regenerated"] = {key: done[key] for key in ("command", "date", "machine")}
    result["setting"] = setting
    print(write_result(args.out, result, TITLE, report(result)))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", default=None,
                        help="directory of the MNIST IDX files (default: $WORMHOLE_DATA/mnist, "
                             "then the download cache; never downloads)")
    parser.add_argument("--published-python",
                        default=os.environ.get("WORMHOLE_PUBLISHED_PYTHON", ""),
                        help="python of a venv with wassersteinwormhole installed")
    parser.add_argument("--steps", type=int, default=300, help="measured training steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epsilon", type=float, default=0.01)
    parser.add_argument("--max-iterations", type=int, default=200)
    parser.add_argument("--reconstruction-weight", type=float, default=1.0,
                        help="decoder loss weight, both sides (the published default is 1)")
    parser.add_argument("--max-clouds", type=int, default=10000,
                        help="use at most this many clouds (train + held-out)")
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--num-pairs", type=int, default=500, help="held-out pairs")
    parser.add_argument("--gt-threshold", type=float, default=1e-6)
    parser.add_argument("--gt-max-iterations", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="also break our step time into OT targets, encoder, decoder")
    parser.add_argument("--skip-published", action="store_true")
    parser.add_argument("--published-timeout", type=float, default=4 * 3600)
    parser.add_argument("--settings-only", action="store_true",
                        help="only regenerate the table of each side's OT setting in the "
                             "existing result file (no training, no timing)")
    parser.add_argument("--out", type=Path, default=RESULTS / "train_throughput",
                        help="result path without suffix (.md and .json are written)")
    args = parser.parse_args(argv)
    run = Run.start(__file__, argv)
    if args.settings_only:
        return regenerate_settings(args, run)

    train, test, first, second, settings, data_name = prepare(args)
    print(f"ground truth: S2 on {args.num_pairs} held-out pairs, Sinkhorn to "
          f"{args.gt_threshold:g}", file=sys.stderr)
    truth, converged = ground_truth_s2(test, first, second, args.epsilon,
                                       settings["cost_scale"], args.gt_threshold,
                                       args.gt_max_iterations)

    published, reason = None, "skipped (--skip-published)"
    if not args.skip_published:
        print("== published package ==", file=sys.stderr)
        published, reason = run_worker(args.published_python, train, test, first, second,
                                       settings, args.published_timeout)
        if published is None:
            print(f"published package not measured: {reason}", file=sys.stderr)
    print("== our trainer ==", file=sys.stderr)
    ours = run_ours(train, test, first, second, settings, args.profile)

    for side in (ours, published):
        if side is not None:
            scores = agreement(np.asarray(side.pop("pred")), truth)
            side.update(pearson=scores.pearson, spearman=scores.spearman)
            side["stack"] = f"{side['jax']} / {side['ott']}"
    ours["version"] = package_version("wormhole")
    setting = describe_settings(args, train, test, first, second, settings, ours)
    result = {
        **run.finish(),
        "data": data_name,
        "settings": settings,
        "our_threshold": setting["ours"]["threshold"],
        "ground_truth": {"ott": package_version("ott-jax"),
                         "converged_fraction": float(np.mean(converged))},
        "ours": ours,
        "published": published,
        "published_reason": reason if published is None else "",
        "ratio": ours["steps_per_s"] / published["steps_per_s"] if published else None,
        "cpu_ratio": published["cpu_s_per_step"] / ours["cpu_s_per_step"] if published
        else None,
        "setting": setting,
    }
    print(write_result(args.out, result, TITLE, report(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
