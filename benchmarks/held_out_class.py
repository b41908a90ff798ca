"""Out of distribution: Fashion-MNIST trained without one class, evaluated on that class.

    python benchmarks/held_out_class.py                  # Fashion-MNIST without 'Bag'
    python benchmarks/held_out_class.py --held-out Sandal
    python benchmarks/held_out_class.py --quick          # digits without 8: the smoke test's

The Wormhole paper's out-of-distribution experiment (Haviv et al., 2024): the class never
reaches training (``data.exclude_labels``), so its clouds are new to the encoder. Training is
``scripts/train.py`` with Table 1's Fashion-MNIST row (``benchmarks/table1.py``:
``fashion_mnist.yaml`` as shipped, one evaluation at the end) plus the exclusion; the held-out
figures are the ``held_out`` section of ``wormhole.evaluate.evaluate_run`` on the official
test split, against the training target (S2):

- pairs within the held-out class, next to pairs within one seen class;
- pairs of a held-out and a seen cloud, next to random pairs of seen clouds;
- 1-NN label accuracy, leave-one-out within the test split: does a held-out cloud's nearest
  test cloud share its class (held-out clouds, and seen clouds for comparison)?
- the same 1-NN question answered by exact OT (POT; W2^2 for an S2 run) for a sample of
  held-out and seen clouds among random test clouds, next to the embedding's answer on the
  same references: how much of a miss is the embedding's, and how much the OT geometry's.

MSE is the stress (mean squared difference of the model's distance and the target, in the
run's target units); the paper's MSE is in its own units, so only the held-out / seen ratio
compares. Writes benchmarks/results/held_out_class.{md,json} and the held-out agreement plot.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import (  # noqa: E402
    ENCODER_ONLY,
    RESULTS,
    Run,
    markdown_table,
    recorded_training,
    result_stem,
    run_training,
    training_command,
    write_result,
)
from benchmarks.table1 import DATASETS  # noqa: E402
from wormhole.evaluate.neighbours import knn_label_accuracy  # noqa: E402

# As quoted in the benchmark-suite issue: Fashion-MNIST without 'Bag'.
PAPER = {"held_out": "Bag", "pearson": 0.995, "accuracy": 0.97,
         "mse_held_out": 4.38e-5, "mse_seen": 3.37e-5}

# Every figure here reads the encoder: the quick run trains without digits.yaml's decoder
# (the full run keeps fashion_mnist.yaml's, as the paper's).
_QUICK = ("digits.yaml", ["train.steps=40", "train.eval_every=40", "model.num_layers=1",
                          "model.width=32", "model.mlp_dim=64", "model.emb_dim=16",
                          *ENCODER_ONLY, "data.max_clouds=400", "data.test_fraction=0.4"])


def one_nn_accuracy(distances, queries, references, labels) -> float:
    """1-NN label accuracy of test clouds ``queries`` among test clouds ``references`` from
    ``distances[len(queries), len(references)]``; a query is never its own neighbour."""
    masked = np.where(np.asarray(queries)[:, None] == np.asarray(references)[None, :],
                      np.inf, np.asarray(distances, dtype=float))
    return knn_label_accuracy(masked, labels[queries], 1, labels[references])


def exact_neighbours(model, queries: int, references: int, seed: int = 0) -> dict | None:
    """1-NN of ``queries`` held-out and as many seen test clouds among ``references`` random
    test clouds, by the embedding and by OT on the same references: exact OT (the run kind's
    unregularised counterpart, POT's network simplex) where it applies, else the run kind
    itself by converged Sinkhorn. ``None`` when either group is empty."""
    from wormhole.evaluate.ground_truth import cross_ground_truth, neighbour_judge
    from wormhole.evaluate.splits import label_values, run_split

    config = model.config
    clouds = run_split(config, "test")
    held = np.isin(clouds.labels, label_values(list(config.data.exclude_labels), clouds))
    rng = np.random.default_rng((seed, 17))
    refs = np.sort(rng.choice(len(clouds), min(references, len(clouds)), replace=False))
    count = min(queries, int(held.sum()), int((~held).sum()))
    if count == 0:
        return None
    picked = {"held_out": rng.choice(np.nonzero(held)[0], count, replace=False),
              "seen": rng.choice(np.nonzero(~held)[0], count, replace=False)}
    kind, method = neighbour_judge(config.ot.kind, int(clouds.sizes.max()),
                                   config.eval.max_exact_points, config.eval.ground_truth)
    normalized = model.prepare(clouds)
    embeddings = np.asarray(model.encode(clouds))
    result = {"kind": kind, "method": method,
              "num_queries": count, "num_reference": len(refs),
              "reference_held_out": int(held[refs].sum())}
    for name, index in picked.items():
        exact = cross_ground_truth(
            normalized.subset(index), normalized.subset(refs), kind=kind, method=method,
            epsilon=None if method == "exact" else config.ot.epsilon,
            max_exact_points=config.eval.max_exact_points, cost=config.ot.cost,
            cost_scale=model.cost_scale, progress=True)
        predicted = np.array(model.embedding_distances(embeddings[index][:, None],
                                                       embeddings[refs][None]))
        result[name] = {
            "embedding": one_nn_accuracy(predicted, index, refs, clouds.labels),
            "exact": one_nn_accuracy(exact, index, refs, clouds.labels)}
    return result


def measure(model, pairs: int) -> dict:
    """The held-out section of the run's evaluation, plus where its plots were written."""
    from wormhole.evaluate import evaluate_run

    report = evaluate_run(model, num_pairs=pairs, exact=False, stress_clouds=0,
                          barycenter_labels=[], interpolations=0, num_plot=0,
                          neighbour_clouds=0, max_reference=2000, progress=False)
    held = report["held_out"]
    if "pearson" not in held:
        raise RuntimeError(f"no held-out figures: {held.get('skipped')}")
    return {"step": report["step"], "kind": report["kind"], "all_test_pairs": report["pairs"],
            "held_out": held, "plots": report["output_dir"]}


def normalised_mse(fig: dict | None) -> float | None:
    """MSE over the squared mean target: the error's size at the pairs' own scale (absolute
    MSE grows with the square of the distances, so far-apart clouds score a larger MSE at the
    same relative error). ``None`` where the mean target was not recorded."""
    if not fig or not fig.get("target_mean"):
        return None
    return fig["stress"] / fig["target_mean"] ** 2


def _ratio(numerator: float | None, denominator: float | None) -> str:
    return "-" if numerator is None or not denominator else f"{numerator / denominator:.2f}"


def _row(name: str, fig: dict | None, paper: str = "-") -> list:
    if fig is None:
        return [name, *["-"] * 7, paper]
    scaled = normalised_mse(fig)
    return [name, fig["num_pairs"], f"{fig['pearson']:.4f}", f"{fig['spearman']:.4f}",
            f"{fig['stress']:.3g}",
            "-" if fig.get("target_mean") is None else f"{fig['target_mean']:.3g}",
            "-" if scaled is None else f"{scaled:.3g}",
            f"{fig['mean_relative_error']:.3f}", paper]


def report_lines(result: dict) -> list[str]:
    held = result["held_out"]
    within, seen_within = held, held["seen_classes_within_class_pairs"]
    cross, seen = held["held_out_to_seen_pairs"], held["seen_pairs"]
    paper_ratio = PAPER["mse_held_out"] / PAPER["mse_seen"]

    def ratios(name: str, value) -> str:
        return (f"- {name}, held-out / seen: within-class pairs "
                f"{_ratio(value(within), seen_within and value(seen_within))}, "
                f"mixed pairs {_ratio(cross and value(cross), seen and value(seen))}")
    label = ", ".join(held["labels"])
    minutes = result["train_minutes"]
    trained = ("training time not recorded" if minutes is None else f"{minutes:.1f} min")
    scored = "; this is a later scoring of that run" if result.get("rescored") else ""
    return [
        f"Held out of training: **{label}** ({held['num_clouds']} test clouds). "
        f"Trained {result['step']} steps ({trained}{scored}): "
        f"`{result['train_command']}`. Figures against the training target "
        f"({result['kind']}) on the official test split.", "",
        *markdown_table(
            ["pairs", "count", "Pearson", "Spearman", "MSE", "mean target",
             "MSE / mean target^2", "mean relative error", "paper"],
            [_row(f"within {label}", within, f"Pearson {PAPER['pearson']}, "
                  f"MSE {PAPER['mse_held_out']:.3g}"),
             _row("within one seen class", seen_within, f"MSE {PAPER['mse_seen']:.3g}"),
             _row(f"{label} to a seen cloud", cross),
             _row("two seen clouds", seen)]),
        "",
        ratios("MSE ratio", lambda f: f["stress"]) + f" (paper {paper_ratio:.2f}).",
        ratios("Mean relative error ratio", lambda f: f["mean_relative_error"])
        + ": the error at each pair's own scale.",
        *([ratios("Normalised MSE ratio", normalised_mse) + "."]
          if normalised_mse(within) is not None else []),
        f"- 1-NN label accuracy, leave-one-out in the test split: {label} clouds "
        f"{held['nearest_neighbor_leave_one_out']:.3f} (paper {PAPER['accuracy']}), seen "
        f"classes {held['nearest_neighbor_leave_one_out_seen']:.3f}.",
        *_exact_lines(result.get("exact_neighbours"), label),
        f"- All random test pairs: Pearson {result['all_test_pairs']['pearson']:.4f} "
        f"({result['all_test_pairs']['num_pairs']} pairs).",
        f"- Plot: `{result['name']}.agreement.png` (model distance against the target on the "
        "pairs within the held-out class).",
        *_target_source_lines(result.get("target_means_from")),
        "- The paper's figures are as quoted in the benchmark-suite issue; its MSE is in its "
        "own units, so compare the ratio, not the values.",
    ]


def _target_source_lines(source: dict | None) -> list[str]:
    if not source:
        return []
    return [f"- Mean targets of these pairs from `{source['file']}` (`{source['command']}`, "
            f"{source['date']}): the same class, split, seeds and pair counts, so the same "
            "pairs and targets (they do not depend on the model)."]


def _exact_lines(found: dict | None, label: str) -> list[str]:
    if not found:
        return []
    kind = "W2^2" if found["kind"] == "W2" else found["kind"]
    judge = (f"exact {kind} (POT)" if found.get("method", "exact") == "exact"
             else f"converged {kind} (ott-jax)")
    return [f"- 1-NN label accuracy among {found['num_reference']} random test clouds "
            f"({found['reference_held_out']} of them {label}), {found['num_queries']} clouds "
            f"each, by the embedding / by {judge} on the same references: "
            f"{label} {found['held_out']['embedding']:.3f} / {found['held_out']['exact']:.3f}, "
            f"seen classes {found['seen']['embedding']:.3f} / {found['seen']['exact']:.3f}."]


TITLE = "Out of distribution: a class held out of training"


_GROUPS = ("seen_classes_within_class_pairs", "held_out_to_seen_pairs", "seen_pairs")
_TRAINING_ONLY = ("train.steps=", "train.eval_every=", "train.log_every=", "train.workdir=",
                  "checkpoint.")


def adopt_target_means(result: dict, source: dict, where: str) -> dict:
    """``result`` with each group's mean target taken from ``source``, another result on the
    same split, seeds and pair counts: the pairs and their targets do not depend on the
    model, so a short run gives a long run's mean targets without scoring it again.

    Refused unless both were trained with the same config and the same non-training
    overrides, their held-out sections have the same class, clouds and pair counts, and the
    random test pairs both scored have the same mean target (same pairs, same units)."""
    held, other = result["held_out"], source["held_out"]

    def setting(found: dict) -> list:  # what decides the pairs and targets: not the training
        words = shlex.split(found["train_command"])
        sets = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--set"]
        config = words[words.index("--config") + 1] if "--config" in words else None
        return [config, *(o for o in sets if not o.startswith(_TRAINING_ONLY))]

    def counts(found: dict) -> list:
        return [found["num_pairs"], *((found[g] or {}).get("num_pairs") for g in _GROUPS)]

    mine, theirs = result["all_test_pairs"], source["all_test_pairs"]
    same = (setting(result) == setting(source) and held["labels"] == other["labels"]
            and held["num_clouds"] == other["num_clouds"] and counts(held) == counts(other)
            and mine["num_pairs"] == theirs["num_pairs"]
            and np.isclose(mine["target_mean"], theirs["target_mean"], rtol=1e-6, atol=0))
    if not same:
        sys.exit(f"--targets-from {where}: not the same config, held-out class, split, pair "
                 f"counts and random test pairs (their mean targets "
                 f"{mine['target_mean']:.6g} and {theirs['target_mean']:.6g})")
    # (name, this result's part, the source's part): the held-out pairs, then each group.
    parts = [("target_mean", held, other),
             *((g, held[g], other[g]) for g in _GROUPS if held[g] is not None)]
    for name, part, theirs_part in parts:
        own, new = part.get("target_mean"), theirs_part["target_mean"]
        if own is not None and not np.isclose(own, new, rtol=1e-6, atol=0):
            sys.exit(f"--targets-from {where}: {name} has its own mean target {own:.6g}, "
                     f"not {new:.6g}")
    adopted = {**held, "target_mean": other["target_mean"],
               **{g: {**held[g], "target_mean": other[g]["target_mean"]}
                  for g in _GROUPS if held[g] is not None}}
    return {**result, "held_out": adopted,
            "target_means_from": {"file": where, "command": source["command"],
                                  "date": source["date"]}}


def render(output: Path, targets_from: str | None = None) -> int:
    """The report of a saved result, in this script's current layout (same figures and
    provenance: the run that measured them), optionally with the mean targets of its pairs
    from another result (:func:`adopt_target_means`)."""
    output = result_stem(output)
    saved = output.parent / f"{output.name}.json"
    if not saved.exists():
        sys.exit(f"--render: no saved result at {saved}")
    result = {**json.loads(saved.read_text()), "name": output.name}  # where it now lies
    if targets_from:
        result = adopt_target_means(result, json.loads(Path(targets_from).read_text()),
                                    targets_from)
    print(write_result(output, result, TITLE, report_lines(result)))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held-out", default=None,
                        help="class removed from training (default Bag; 8 with --quick)")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="more training overrides")
    parser.add_argument("--keep-run", default=None, help="keep the trained run here")
    parser.add_argument("--rescore", action="store_true",
                        help="score the run kept in --keep-run again instead of training")
    parser.add_argument("--exact-queries", type=int, default=None,
                        help="held-out (and as many seen) clouds whose 1-NN is also found by "
                        "exact OT (default 100; 6 with --quick; 0 skips)")
    parser.add_argument("--exact-references", type=int, default=None,
                        help="random test clouds they are matched against (default 1000; "
                        "60 with --quick)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    parser.add_argument("--render", action="store_true",
                        help="rewrite the report (.md) from the result's saved .json "
                        "(default results/held_out_class): no training, no scoring")
    parser.add_argument("--targets-from", default=None, metavar="RESULT.json",
                        help="with --render: take each group's mean target from this result "
                        "of a run on the same class, split and pair counts (the targets do "
                        "not depend on the model; e.g. a 10-step run with --exact-queries 0)")
    args = parser.parse_args(argv)
    if args.targets_from and not args.render:
        parser.error("--targets-from goes with --render")
    if args.render:
        return render(Path(args.output) if args.output else RESULTS / "held_out_class",
                      args.targets_from)
    if args.rescore and not (args.keep_run and Path(args.keep_run, "run").exists()):
        parser.error("--rescore needs --keep-run with a trained run in it")
    if args.quick:
        config, overrides = _QUICK
        held_out, args.pairs = args.held_out or "8", min(args.pairs, 60)
        queries, references = 6, 60
    else:
        config, overrides = "fashion_mnist.yaml", list(DATASETS["fashion_mnist"]["overrides"])
        held_out = args.held_out or PAPER["held_out"]
        queries, references = 100, 1000
    queries = queries if args.exact_queries is None else args.exact_queries
    references = references if args.exact_references is None else args.exact_references
    overrides = [*overrides, f"data.exclude_labels=[{json.dumps(held_out)}]", *args.set]
    output = Path(args.output) if args.output else (None if args.quick
                                                    else RESULTS / "held_out_class")
    run = Run.start(__file__, argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.keep_run or tmp) / "run"
        if args.rescore:
            seconds, command = (recorded_training(workdir)
                                or (None, training_command(config, overrides, workdir)))
        else:
            seconds, command = run_training(config, overrides, workdir)
        from wormhole.inference import load

        model = load(workdir)  # once, for the evaluation and the exact neighbours
        figures = measure(model, args.pairs)
        if queries > 0:
            figures["exact_neighbours"] = exact_neighbours(model, queries, references)
        result = {**run.finish(), "name": output.name if output else "", "config": config,
                  "overrides": overrides, "rescored": args.rescore,
                  "train_minutes": None if seconds is None else seconds / 60,
                  "train_command": shlex.join(command[1:]),
                  "paper": PAPER, **figures}
        if output is None:
            print(json.dumps(result, indent=1, default=str))
            return 0
        output.parent.mkdir(parents=True, exist_ok=True)
        plot = Path(figures["plots"]) / "agreement_held_out.png"
        if plot.exists():
            shutil.copyfile(plot, output.parent / f"{output.name}.agreement.png")
        print(write_result(output, result, TITLE, report_lines(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
