"""Training throughput on MNIST-style clouds: our trainer against the published package.

    python benchmarks/train_throughput.py --mnist-dir /path/to/mnist
    python benchmarks/train_throughput.py --published-python /path/to/venv/bin/python

Both trainers learn the same thing on the same clouds, in one run on one machine: MNIST digits
as pixel clouds (intensity > 127, coordinates in [0, 1], about 105 points each), batches of 16
clouds, S2 Sinkhorn divergence targets with epsilon 0.01 on one shared cost scale, at most 200
Sinkhorn iterations, the same transformer sizes, decoder size, reconstruction weight and
learning rate. Steady-state steps/s is measured after compilation; compile time is reported
apart. Quality is the held-out Pearson correlation, after the same number of steps, between
each model's embedding distances and one ground truth: S2 solved to convergence by ott-jax on
the same held-out pairs.

The published ``wassersteinwormhole`` pins its own jax and flax, so it runs in its own virtual
environment (``--published-python``, default ``$WORMHOLE_PUBLISHED_PYTHON``) through
``benchmarks/_published_worker.py``. Without it the benchmark reports our trainer only and
says so. Results go to ``benchmarks/results/train_throughput.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
from _machine import describe_machine, package_version
from ott.geometry import pointcloud
from ott.solvers import linear
from tqdm.auto import tqdm

from wormhole.api import resolve_config
from wormhole.data import PointClouds, train_test_split
from wormhole.evaluate.metrics import agreement
from wormhole.models import WormholeModel, build_model, embedding_distance
from wormhole.ot import OTSpec, estimate_cost_scale, pairwise_distances
from wormhole.trainer import (
    create_train_state,
    make_optimizer,
    make_train_step,
    resolve_model_spec,
    sample_batch,
)

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_published_worker.py"
RESULTS = HERE / "results" / "train_throughput"
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
    rng = np.random.default_rng((seed, 3))
    first = rng.integers(0, count, num_pairs)
    second = (first + rng.integers(1, count, num_pairs)) % count  # never a cloud with itself
    return first, second


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
                                      config.model.embedding_distance, config.data.rotate),
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
    emb = np.concatenate([np.asarray(encode(state.params, test.points[s:s + 256],
                                            test.weights[s:s + 256]))
                          for s in range(0, len(test), 256)])
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
        config.model.embedding_distance, False), donate_argnums=0)
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


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (robust to other users' load)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- published package


def run_published(python: str, train: PointClouds, test: PointClouds, first, second,
                  settings: dict, timeout: float) -> tuple[dict | None, str]:
    """The worker's JSON, or ``None`` and the reason it could not run."""
    if not python:
        return None, ("no interpreter with wassersteinwormhole given (--published-python or "
                      "$WORMHOLE_PUBLISHED_PYTHON)")
    if not Path(python).exists():
        return None, f"{python} does not exist"
    check = subprocess.run([python, "-c", "import wassersteinwormhole"], capture_output=True,
                           text=True)
    if check.returncode:
        return None, f"{python} cannot import wassersteinwormhole: {check.stderr.strip()[-300:]}"
    with tempfile.TemporaryDirectory() as tmp:
        data, config = Path(tmp) / "clouds.npz", Path(tmp) / "settings.json"
        np.savez(data, train_points=train.points, train_weights=train.weights,
                 test_points=test.points, test_weights=test.weights, first=first,
                 second=second)
        config.write_text(json.dumps(settings))
        # stderr (the package's progress bar and prints) passes through to the terminal.
        proc = subprocess.run([python, str(WORKER), str(data), str(config)], stdout=subprocess.PIPE,
                              text=True, timeout=timeout)
    if proc.returncode:
        return None, f"the published worker failed (exit {proc.returncode}); see its stderr"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print("[published] " + json.dumps({k: v for k, v in out.items() if k != "pred"}),
          file=sys.stderr)
    return out, ""


# --------------------------------------------------------------------------- report


def write_report(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    s, m, ours, theirs = (result["settings"], result["machine"], result["ours"],
                          result.get("published"))
    rows = [("", "wormhole (ours)", "wassersteinwormhole (published)")]

    def cell(side, fmt, key):
        return fmt.format(side[key]) if side and side.get(key) is not None else "n/a"

    for label, fmt, key in [
        ("steps/s (after compilation)", "{:.3f}", "steps_per_s"),
        (f"wall time of {s['steps']} steps (s)", "{:.1f}", "train_s"),
        ("CPU seconds per step (all threads)", "{:.2f}", "cpu_s_per_step"),
        ("compilation + first steps (s)", "{:.1f}", "warmup_s"),
        ("held-out Pearson vs converged S2", "{:.4f}", "pearson"),
        ("held-out Spearman vs converged S2", "{:.4f}", "spearman"),
        ("package version", "{}", "version"),
        ("jax / ott-jax", "{}", "stack"),
    ]:
        rows.append((label, cell(ours, fmt, key), cell(theirs, fmt, key)))
    table = "\n".join("| " + " | ".join(r) + " |" for r in rows[:1]) + "\n|---|---|---|\n" + \
        "\n".join("| " + " | ".join(r) + " |" for r in rows[1:])
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
        "# Training throughput: wormhole vs wassersteinwormhole",
        "",
        "Made by `benchmarks/train_throughput.py` with:",
        "",
        f"    {result['command']}",
        "",
        f"Run at {result['date']} on {m['cpu']} ({m['cpus_usable']} usable cores, "
        f"{m['backend']}; {m['platform']}). Load average before / after: "
        f"{result['load_before']} / {result['load_after']}. The machine is shared, so wall-clock "
        f"figures carry other users' load; CPU time per step (user + system, all threads of "
        f"each trainer's process) is much less sensitive to it. Both trainers ran in this one "
        f"run, one after the other.",
        "",
        verdict,
        "",
        table,
        "",
        "## Setting (identical for both)",
        "",
        f"- Data: {result['data']}; {s['num_train']} training clouds, {s['num_test']} "
        f"held-out clouds, {s['mean_points']:.1f} points per cloud on average "
        f"(max {s['max_points']}); intensity weights.",
        f"- Batch {s['batch_size']}; all {s['batch_size'] * (s['batch_size'] - 1) // 2} "
        f"in-batch pairs; {s['kind']} Sinkhorn divergence, epsilon {s['epsilon']} on costs "
        f"divided by one shared cost scale {s['cost_scale']:.4g}; at most "
        f"{s['max_iterations']} Sinkhorn iterations, log-domain.",
        f"- Transformer encoder and decoder: width/embedding {s['emb_dim']}, {s['num_layers']} "
        f"blocks each, {s['num_heads']} heads, MLP {s['mlp_dim']}, dropout {s['dropout']}; "
        f"decoder of {s['decoder_points']} points; loss = stress + {s['reconstruction_weight']} "
        f"x S2 reconstruction; embedding distance = mean squared difference; Adam, constant "
        f"learning rate {s['learning_rate']}.",
        f"- Quality: {s['num_pairs']} random held-out pairs; ground truth S2 by ott-jax "
        f"{result['ground_truth']['ott']} run to threshold {s['gt_threshold']:g} "
        f"({result['ground_truth']['converged_fraction']:.1%} of pairs converged within "
        f"{s['gt_max_iterations']} iterations).",
        "",
        "## How each side runs",
        "",
        "- Published: the loop of its `Wormhole.train` (same sampling, jitted train step "
        "and progress bookkeeping), in its own virtual environment, run twice from one fresh "
        "train state: a few steps to compile, then the timed steps (calling `Wormhole.train` "
        "twice would compile twice, as each call makes a new optimiser). Its Sinkhorn runs "
        "a fixed number of iterations (`min_iterations = max_iterations`), batches are "
        "padded to the largest cloud of the data set, and each of the three terms of every "
        "pair's divergence is solved separately. Its cost-scale estimate is replaced by the "
        "shared value.",
        "- Ours: `wormhole.trainer.make_train_step` in the loop `train_and_evaluate` runs "
        "(checkpoints and held-out evaluation off). Sinkhorn stops at marginal error "
        f"{result['our_threshold']:g} or at the cap; the self terms OT(x, x) are solved once "
        "per cloud with symmetric updates; batch padding is cropped to a multiple of "
        "`train.length_bucket`, each length compiled before timing "
        f"(lengths {ours['compiled_lengths']}, mean {ours['mean_padded_length']:.0f}). "
        f"Fraction of target solves that hit the iteration cap: "
        f"{ours['target_hit_cap_fraction']:.1%}; of reconstruction solves: "
        f"{ours['reconstruction_hit_cap_fraction']:.1%}.",
        "- Optimiser on both: Adam at a constant learning rate (the published default; its "
        "0.99 decay every 2000 steps does not start within the run), so ours runs with "
        "`train.schedule=constant`, no warm-up and no gradient clipping.",
    ]
    if theirs:
        lines.append(f"- Published padded length: {theirs['padded_length']}; Sinkhorn "
                     f"iterations per solve: {theirs['sinkhorn_iterations']}.")
    if "profile" in ours:
        p = ours["profile"]
        lines += ["", "## Where our step spends its time (ms per step)", "",
                  "| full step | OT targets | encoder + grad | decoder + reconstruction OT + "
                  "grad |", "|---|---|---|---|",
                  f"| {p['full_step_ms']:.0f} | {p['ot_targets_ms']:.0f} | "
                  f"{p['encoder_and_grad_ms']:.0f} | "
                  f"{p['decoder_reconstruction_and_grad_ms']:.0f} |"]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- main


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
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="result path without suffix (.md and .json are written)")
    args = parser.parse_args(argv)

    load_before = [round(v, 2) for v in os.getloadavg()]
    clouds, data_name = load_clouds(args.mnist_dir)
    if len(clouds) > args.max_clouds:
        keep = np.random.default_rng(args.seed).choice(len(clouds), args.max_clouds,
                                                       replace=False)
        clouds = clouds.subset(np.sort(keep))
    train, test = train_test_split(clouds, args.test_fraction, args.seed)
    print(f"{data_name}\ntrain: {train.summary()}\ntest:  {test.summary()}", file=sys.stderr)
    cost_scale = estimate_cost_scale(train.points, train.weights, "S2", seed=args.seed)
    defaults = our_config({"emb_dim": 128, "num_layers": 3, "num_heads": 4, "mlp_dim": 512,
                           "dropout": 0.0, "decoder_points": 1, "kind": "S2",
                           "epsilon": args.epsilon, "cost_scale": cost_scale,
                           "max_iterations": args.max_iterations,
                           "reconstruction_weight": args.reconstruction_weight,
                           "steps": args.steps, "batch_size": args.batch_size,
                           "learning_rate": 1e-4, "seed": args.seed})
    settings = {
        "kind": "S2", "epsilon": args.epsilon, "max_iterations": args.max_iterations,
        "cost_scale": cost_scale, "batch_size": args.batch_size, "steps": args.steps,
        "warmup_steps": 2, "seed": args.seed, "learning_rate": defaults.train.learning_rate,
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
    print(f"ground truth: S2 on {args.num_pairs} held-out pairs, Sinkhorn to "
          f"{args.gt_threshold:g}", file=sys.stderr)
    truth, converged = ground_truth_s2(test, first, second, args.epsilon, cost_scale,
                                       args.gt_threshold, args.gt_max_iterations)

    published, reason = None, "skipped (--skip-published)"
    if not args.skip_published:
        print("== published package ==", file=sys.stderr)
        published, reason = run_published(args.published_python, train, test, first, second,
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
    result = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": describe_machine(),
        "load_before": load_before,
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "data": data_name,
        "settings": settings,
        "our_threshold": defaults.ot.threshold,
        "ground_truth": {"ott": package_version("ott-jax"),
                         "converged_fraction": float(np.mean(converged))},
        "ours": ours,
        "published": published,
        "published_reason": reason if published is None else "",
        "ratio": ours["steps_per_s"] / published["steps_per_s"] if published else None,
        "cpu_ratio": published["cpu_s_per_step"] / ours["cpu_s_per_step"] if published
        else None,
    }
    write_report(result, args.out)
    print(args.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
