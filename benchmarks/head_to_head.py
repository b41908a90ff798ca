"""Head to head with the published ``wassersteinwormhole`` package at one wall-clock budget.

    python benchmarks/head_to_head.py --mnist-dir DIR --published-python VENV/bin/python
    python benchmarks/head_to_head.py --mnist-dir DIR --install-published /tmp/wwvenv
    python benchmarks/head_to_head.py --quick                  # the smoke test's (digits)

One run, the same clouds (``--config``'s data set and split, default ``mnist.yaml``) and the
same held-out pairs, scored against exact W2^2 (POT) for every side:

- **ours**: ``scripts/train.py --config CONFIG`` as a user runs it, the whole command timed;
  every checkpoint is kept and scored afterwards, at its training clock (time in train
  steps, compilation included; evaluation and checkpoint writing excluded, from
  ``metrics.jsonl``).
- **published, defaults**: the package as a user would run it: ``Wormhole(clouds,
  weights)`` with its ``DefaultConfig`` and ``train``'s defaults (learning rate 1e-4, batch 16).
- **published, matched**: the package with our config's settings where it has them
  (embedding width, layers, heads, MLP, epsilons, iteration cap, decoder points,
  reconstruction weight, learning rate, batch, our cost scale).

Each published side gets as many seconds of training clock as our whole command took, its
held-out pairs scored every ``--eval-every`` seconds. Reported: steps, steps/s, the training
time at which held-out Pearson first reached 0.6, 0.9 and 0.95 ("not reached" with the best
value otherwise), final Pearson and Spearman, and 1-NN label accuracy of the held-out clouds
against ``--references`` training clouds by the final embedding. Writes
benchmarks/results/head_to_head.{md,json,png}. Without the package (no interpreter given or
found, or the install failed) it says why and reports our side only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import numpy as np  # noqa: E402

from benchmarks._harness import (  # noqa: E402
    RESULTS,
    Run,
    markdown_table,
    run_training,
    write_result,
)
from benchmarks._published import ensure_interpreter, run_worker  # noqa: E402

THRESHOLDS = (0.6, 0.9, 0.95)
TITLE = "Head to head: wormhole and the published wassersteinwormhole at one wall-clock budget"

_QUICK = ["train.steps=40", "train.eval_every=20", "checkpoint.every=10", "model.num_layers=1",
          "model.width=32", "model.mlp_dim=64", "model.emb_dim=32", "model.decoder_layers=1",
          "model.decoder_points=16", "loss.reconstruction=0.1", "data.max_clouds=300"]


# --------------------------------------------------------------------------- scoring


def agreement(pred, truth) -> dict:
    """Pearson and Spearman of predicted distances against the exact ones."""
    from wormhole.evaluate.metrics import agreement as held_out_agreement

    scores = held_out_agreement(np.asarray(pred, np.float64), truth)
    return {"pearson": scores.pearson, "spearman": scores.spearman}


def nn_label_accuracy(test_emb, test_labels, reference_emb, reference_labels) -> float:
    """Share of held-out clouds whose nearest training reference has their label."""
    from wormhole.evaluate.metrics import nearest_neighbor_accuracy

    return nearest_neighbor_accuracy(test_emb, test_labels, reference_emb, reference_labels)


def time_to(curve: list[dict], threshold: float) -> float | None:
    """Training seconds of the first score at or above ``threshold`` (``None``: never)."""
    return next((c["train_s"] for c in curve if c["pearson"] >= threshold), None)


# --------------------------------------------------------------------------- our side


def training_clock(metrics_path: Path) -> dict[int, float]:
    """Training seconds at each logged step: each record's window over its steps/s."""
    clock, last, total = {}, 0, 0.0
    for line in metrics_path.read_text().splitlines():
        record = json.loads(line)
        if "steps_per_s" in record:
            total += (record["step"] - last) / record["steps_per_s"]
            last = record["step"]
            clock[last] = total
    return clock


def run_ours(config: str, overrides: list[str], workdir: Path, test, first, second, truth,
             references, train_labels) -> dict:
    """Train with ``scripts/train.py`` (timed), then score every kept checkpoint."""
    import wormhole
    from wormhole.checkpoint import CheckpointStore
    from wormhole.config import config_to_dict

    wall_s, command = run_training(config, [*overrides, "checkpoint.keep=100000"], workdir)
    clock = training_clock(workdir / "metrics.jsonl")
    curve = []
    with CheckpointStore(workdir / "checkpoints", create=False) as store:
        steps = store.all_steps()
    for step in steps:
        model = wormhole.load(workdir, step=step)
        emb = model.encode(test)
        pred = model.embedding_distances(emb[first], emb[second])
        logged = max((s for s in clock if s <= step), default=None)
        curve.append({"step": step, "train_s": clock.get(logged, 0.0),
                      **agreement(pred, truth)})
    final = wormhole.load(workdir)
    reference_emb = final.encode(references)
    final_emb = final.encode(test)
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["steps_per_s"] for r in records if "steps_per_s" in r][1:]
    return {
        "name": "ours", "command": " ".join(command[1:]), "wall_s": wall_s,
        "train_s": max(clock.values()), "steps": max(clock),
        "steps_per_s": float(np.median(rates)) if rates else None,
        "curve": curve,
        "nn_accuracy": nn_label_accuracy(final_emb, np.asarray(test.labels), reference_emb,
                                         train_labels),
        "config": {k: v for k, v in config_to_dict(final.config).items()
                   if k in ("model", "ot", "loss", "train")},
    }


# --------------------------------------------------------------------------- published side


def published_settings(config, cost_scale: float) -> dict[str, dict]:
    """The two published configurations: its defaults, and ours where it has the setting."""
    m, o, loss, t = config.model, config.ot, config.loss, config.train
    matched = {
        # The package has one width for attention, embedding and decoder: our emb_dim.
        "emb_dim": m.emb_dim, "num_layers": m.num_layers, "num_heads": m.num_heads,
        "mlp_dim": m.mlp_dim, "attention_dropout_rate": m.dropout,
        "dist_func_enc": o.kind, "dist_func_dec": o.kind,
        "eps_enc": o.epsilon, "eps_dec": o.decoder_epsilon or o.epsilon,
        # Its solves always run this many iterations; ours stop at the threshold or here.
        "num_sinkhorn_iter": o.max_iterations or 200,
        "num_particles_output": m.decoder_points, "coeff_dec": loss.reconstruction,
    }
    return {
        "published, defaults": {"config": {}, "cost_scale": None, "learning_rate": 1e-4,
                                "batch_size": 16},
        "published, matched": {"config": matched, "cost_scale": cost_scale,
                               "learning_rate": t.learning_rate, "batch_size": t.batch_size},
    }


def run_published(python: str, name: str, side: dict, train, test, first, second, truth,
                  references, train_labels, budget_s: float, eval_every_s: float,
                  seed: int) -> tuple[dict | None, str]:
    settings = {**side, "name": name, "budget_s": budget_s, "eval_every_s": eval_every_s,
                "seed": seed}
    print(f"== {name}: {budget_s:.0f} s of training", file=sys.stderr)
    out, reason = run_worker(python, train, test, first, second, settings,
                             timeout=budget_s * 3 + 1800, race=True, references=references)
    if out is None:
        return None, reason
    arrays = out.pop("arrays")
    curve = [{"step": s["step"], "train_s": s["train_s"], **agreement(s["pred"], truth)}
             for s in out.pop("scores")]
    return {**out, "name": name, "curve": curve,
            "nn_accuracy": nn_label_accuracy(arrays["test"], np.asarray(test.labels),
                                             arrays["references"], train_labels)}, ""


# --------------------------------------------------------------------------- report


def _seconds(value) -> str:
    return "not reached" if value is None else f"{value:.0f} s"


def summary_row(side: dict) -> list:
    curve = side["curve"]
    best = max(curve, key=lambda c: c["pearson"]) if curve else None
    reach = []
    for threshold in THRESHOLDS:
        at = time_to(curve, threshold)
        reach.append(_seconds(at) if at is not None or best is None
                     else f"not reached (best {best['pearson']:.3f})")
    last = curve[-1] if curve else {"pearson": float("nan"), "spearman": float("nan")}
    rate = side.get("steps_per_s")
    return [side["name"], side["steps"], f"{side['train_s']:.0f}",
            "-" if rate is None else f"{rate:.3f}", *reach, f"{last['pearson']:.3f}",
            f"{last['spearman']:.3f}", f"{side['nn_accuracy']:.3f}"]


def report(result: dict) -> list[str]:
    sides = [result["ours"], *result["published"].values()]
    lines = [
        f"Data: {result['data']}; {result['num_train']} training and {result['num_test']} "
        f"held-out clouds ({result['mean_points']:.1f} points on average, the split of "
        f"`{result['config']}`). Every side is scored on the same {result['num_pairs']} random "
        f"held-out pairs against exact W2^2 (POT, `wormhole.evaluate.ground_truth_distances`), "
        f"and by 1-NN label accuracy of the held-out clouds against "
        f"{result['num_references']} training clouds by the final embedding.", "",
        f"Budget: our whole command took {result['ours']['wall_s']:.0f} s (its training clock "
        f"{result['ours']['train_s']:.0f} s); each published side trained for "
        f"{result['budget_s']:.0f} s of training clock (compilation included, held-out "
        f"scoring every {result['eval_every_s']:.0f} s excluded), i.e. at least the time we "
        "took. Times to a Pearson are on each side's training clock and are as coarse as its "
        f"scoring: ours at each checkpoint (every {result['checkpoint_every']} steps), the "
        "package's every scoring interval.", "",
        *markdown_table(["side", "steps", "train s", "steps/s"] +
                        [f"time to Pearson {t}" for t in THRESHOLDS] +
                        ["final Pearson", "final Spearman", "1-NN label acc."],
                        [summary_row(s) for s in sides]),
    ]
    for name, reason in result["published_missing"].items():
        lines += ["", f"**{name}: not measured**: {reason}."]
    lines += ["", "## Settings of each side", "",
              f"- ours: `{result['ours']['command']}`: "
              + "; ".join(f"{k} {v}" for k, v in result["ours_summary"].items()) + "."]
    for name, side in result["published"].items():
        cfg = side.get("config", {})
        keys = ("emb_dim", "num_layers", "num_heads", "mlp_dim", "attention_dropout_rate",
                "dist_func_enc", "eps_enc", "eps_dec", "num_particles_output", "coeff_dec")
        lines.append(
            f"- {name} ({side['version']}, jax {side['jax']}, ott-jax {side['ott']}): "
            + ", ".join(f"{k} {cfg.get(k)}" for k in keys)
            + f"; Sinkhorn iterations {side['sinkhorn_iterations']} (always run), cost scale "
            f"{side['cost_scale']:.4g}, padding to {side['padded_length']} points, decoder "
            f"points {side['decoder_points']}, learning rate "
            f"{result['published_settings'][name]['learning_rate']:g} (0.99 decay every 2000 "
            f"steps), batch {result['published_settings'][name]['batch_size']}; first step "
            f"(compilation) {side['first_step_s']:.0f} s.")
    lines += ["", "Where the package has no such setting, the matched side differs from ours: "
              "one width for encoder, embedding and decoder (ours: `model.width` and "
              "`model.emb_dim`), a decoder as deep as the encoder (ours: "
              "`model.decoder_layers`), no `local_stress` or `log_stress` term, one update per "
              "batch (ours: `train.updates_per_batch`), a learning rate decayed 0.99 every "
              "2000 steps (ours: warm-up then cosine), and Sinkhorn "
              "solves that always run the iteration cap (ours stop at `ot.threshold`).", "",
              "## Held-out Pearson against exact W2^2 over training time", "",
              f"![curves]({result['plot']})" if result.get("plot") else "(no plot)", ""]
    for side in sides:
        lines += [f"- {side['name']}: " + ", ".join(
            f"{c['train_s']:.0f} s / step {c['step']}: {c['pearson']:.3f}"
            for c in side["curve"])]
    return lines


def plot(result: dict, path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for side in [result["ours"], *result["published"].values()]:
        curve = side["curve"]
        ax.plot([c["train_s"] / 60 for c in curve], [c["pearson"] for c in curve], "o-",
                ms=3, label=side["name"])
    for threshold in THRESHOLDS:
        ax.axhline(threshold, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("training clock (min)")
    ax.set_ylabel("held-out Pearson vs exact W2^2")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=1.0)
    ax.legend(loc="lower right")
    ax.set_title(f"{result['config']}: {result['num_pairs']} held-out pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist.yaml")
    parser.add_argument("--mnist-dir", default=os.environ.get("WORMHOLE_MNIST_DIR"),
                        help="MNIST IDX files (data.path); default the config's own search")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an override of --config, for our side and the matched one")
    parser.add_argument("--published-python",
                        default=os.environ.get("WORMHOLE_PUBLISHED_PYTHON", ""),
                        help="python of a venv with wassersteinwormhole installed")
    parser.add_argument("--install-published", default=None, metavar="VENV",
                        help="make VENV with wassersteinwormhole==0.3.7 unless it has it")
    parser.add_argument("--sides", nargs="*", default=None,
                        help="published sides to run (default both: defaults matched)")
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--references", type=int, default=2000)
    parser.add_argument("--eval-every", type=float, default=60.0,
                        help="seconds of the package's training clock between scorings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-run", default=None, help="keep our trained run here")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    from wormhole.api import resolve_config
    from wormhole.evaluate import ground_truth_distances
    from wormhole.evaluate.metrics import distinct_random_pairs
    from wormhole.evaluate.splits import run_split
    from wormhole.run_setup import resolve_cost_scale

    overrides = ([f"data.path={args.mnist_dir}"] if args.mnist_dir else []) + args.set
    if args.quick:
        args.config, overrides = "digits.yaml", _QUICK + args.set
        args.pairs, args.references, args.eval_every = 100, 100, 10.0
    output = Path(args.output) if args.output else (None if args.quick
                                                     else RESULTS / "head_to_head")
    run = Run.start(__file__, argv)
    config = resolve_config(args.config, overrides)
    train, test = run_split(config, "train"), run_split(config, "test")
    rng = np.random.default_rng((args.seed, 11))
    first, second = distinct_random_pairs(rng, len(test), args.pairs)
    references = np.sort(rng.choice(len(train), min(args.references, len(train)),
                                    replace=False))
    train_labels = np.asarray(train.labels)[references]
    truth = ground_truth_distances(test.subset(first), None, test.subset(second), None,
                                   kind="W2", method="exact")

    python, problem = args.published_python, ""
    if args.install_published:
        python, problem = ensure_interpreter(args.install_published)
    sides = published_settings(config, resolve_cost_scale(config, train))
    chosen = args.sides if args.sides is not None else ["defaults", "matched"]
    sides = {k: v for k, v in sides.items() if k.split(", ")[1] in chosen}

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep_run or Path(tmp) / "ours")
        ours = run_ours(args.config, overrides, workdir, test, first, second, truth,
                        train.subset(references), train_labels)
    budget = ours["wall_s"]
    published, missing = {}, {}
    for name, side in sides.items():
        out, reason = (None, problem) if problem else run_published(
            python, name, side, train, test, first, second, truth, references, train_labels,
            budget, args.eval_every, args.seed)
        if out is None:
            missing[name] = reason
            print(f"{name} not measured: {reason}", file=sys.stderr)
        else:
            published[name] = out
    m, o, loss, t = config.model, config.ot, config.loss, config.train
    result = {
        **run.finish(), "config": args.config, "overrides": overrides,
        "data": f"{config.data.name} ({config.data.path or 'the config default path'})",
        "num_train": len(train), "num_test": len(test),
        "mean_points": float(np.mean(np.concatenate([train.sizes, test.sizes]))),
        "num_pairs": args.pairs, "num_references": len(references),
        "budget_s": budget, "eval_every_s": args.eval_every,
        "checkpoint_every": config.checkpoint.every, "thresholds": THRESHOLDS,
        "ours": ours, "published": published, "published_missing": missing,
        "published_settings": sides,
        "ours_summary": {
            "model": f"transformer width {m.width}, embedding {m.emb_dim}, {m.num_layers} "
                     f"layers, {m.num_heads} heads, MLP {m.mlp_dim}, decoder "
                     f"{m.decoder_layers} layers x {m.decoder_points} points"
                     + (f", Fourier features {m.fourier_features} at scale {m.fourier_scale}"
                        if m.fourier_features else ""),
            "targets": f"{o.kind} epsilon {o.epsilon} (reconstruction "
                       f"{o.decoder_epsilon or 'the same'}), "
                       f"threshold {o.threshold}, cap {o.max_iterations}",
            "loss": f"stress {loss.stress}, local_stress {loss.local_stress}, "
                    f"log_stress {loss.log_stress} (offset {loss.local_offset}), "
                    f"reconstruction {loss.reconstruction}"
                    + (" (decoder detached)" if loss.detach_decoder else ""),
            "train": f"{t.steps} steps of {t.updates_per_batch} update(s) each, batch "
                     f"{t.batch_size}, learning rate "
                     f"{t.learning_rate} ({t.schedule}, warm-up {t.warmup_steps}), "
                     f"train.mesh.cpu_devices {t.mesh.cpu_devices} (0: JAX's default, one)",
        },
    }
    for side in [ours, *published.values()]:
        print(json.dumps({"side": side["name"], "steps": side["steps"],
                          "final_pearson": side["curve"][-1]["pearson"] if side["curve"]
                          else None, "nn_accuracy": side["nn_accuracy"]}))
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        result["plot"] = plot(result, Path(f"{output}.png"))
        print(write_result(output, result, TITLE, report(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
