"""The Wormhole paper's Table 1 at 2-core scale: OT correlation and label accuracy.

    python benchmarks/table1.py --mnist-dir DIR                      # every data set found
    python benchmarks/table1.py --datasets mnist shapes_gw           # some of them
    python benchmarks/table1.py --quick                              # the smoke test's
    python benchmarks/table1.py --datasets fashion_mnist --set data.options.threshold=0.1
        # a variant: the paper's ~356 points per garment (each row names its --set)
    python benchmarks/table1.py --gpu --train-only --time-limit 200  # on a GPU; score later
        with --rescore --keep-runs (no POT needed where it trains)

Each data set is trained from scratch by ``scripts/train.py`` with its shipped config
(sized for 2 CPU cores) and the overrides of :data:`DATASETS` (the whole command timed),
then evaluated on its held-out clouds by ``wormhole.evaluate.evaluate_run``:

- OT correlation: Pearson between the model's distance and the reference on ``--pairs``
  random held-out pairs: exact W2^2 (POT) for the S2 runs on images, the GW objective of
  ott-jax's converged entropic GW plan (an upper bound on GW) for the GW shapes and converged
  debiased entropic GW (GS) for the GS ones (neither has an exact solver);
- label accuracy: 1-NN and 10-NN label of each held-out cloud among ``--references``
  training clouds by the embedding, and a small classifier fit on those references'
  embeddings (``wormhole.evaluate.metrics.PROBE``); the paper does not say which
  classifier it used;
- the same 1-NN label of ``--ot-clouds`` held-out clouds among a random subset of
  ``--ot-references`` training clouds, by the embedding and by the reference OT itself: how
  much of the gap to the paper's accuracy the OT has too, and the embedding does not add.

Next to the paper's figures (Haviv et al., 2024, Table 1). Our 3-D shapes (sphere, cube,
torus, ... under random rotations) stand in for ShapeNet, which cannot be downloaded here:
at random scales with GW targets (``shapes_gw.yaml``), and at one size with GS targets
(``shapes_gs.yaml``), the closer to the paper's normalised shapes. A data set whose files
are absent is reported as not run, with the loader's reason. Writes
benchmarks/results/table1.{md,json}.

``--gpu`` trains the larger settings of each data set's ``gpu`` entry (the published
package's model size, batches of 32 or 64) into ``table1_gpu``; ``--time-limit`` stops a
training after so many seconds (its last checkpoint is scored, and the row says so), and
``--train-only`` leaves the scoring to a later ``--rescore`` on another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import (  # noqa: E402
    ENCODER_ONLY,
    RESULTS,
    Run,
    cpu_model,
    describe_accelerator,
    markdown_table,
    run_training,
    training_stopped,
    write_result,
)

# The published package's model size (its DefaultConfig: emb_dim 128, num_layers 3,
# num_heads 4, mlp_dim 512; benchmarks/results/head_to_head.md reads them from its source).
_PAPER_MODEL = ["model.emb_dim=128", "model.width=128", "model.num_layers=3",
                "model.num_heads=4", "model.mlp_dim=512"]
# Every GPU run: frequent, single checkpoints (a time-limited run keeps its last one, and the
# run folder stays small enough to copy back), one held-out evaluation, at the end, and every
# batch padded to the data set's largest cloud: one compilation of the step instead of one
# per padded length (a GPU compiles for minutes, and pads cheaply).
_GPU_RUN = ["checkpoint.every=100", "checkpoint.keep=1", "train.eval_every=100000",
            "train.length_bucket=0"]

# Both shape stand-ins against the paper's ShapeNet row, and their GPU runs: more clouds, the
# published package's model size, batches of 32.
_SHAPENET = {"set": "ShapeNet, rotated (GW)", "pearson": 0.98, "accuracy": 0.82}
_SHAPES_GPU = ["data.options.num_clouds=4000", *_PAPER_MODEL, "train.batch_size=32",
               "train.steps=1500", *_GPU_RUN]

# config, the paper's row, what sizes the run for 2 CPU cores, and the larger GPU run.
DATASETS = {
    "mnist": {
        "config": "mnist.yaml", "paper": {"set": "MNIST", "pearson": 0.98, "accuracy": 0.98},
        "overrides": [], "data_path": "mnist",
        "scaled": "the t10k split alone (9,000 training / 1,000 held-out clouds), "
                  "mnist.yaml as shipped; the paper's 70,000 need the train-images files "
                  "too (then data.split=official), which this machine lacks",
        "gpu": {"overrides": [*_PAPER_MODEL, "train.batch_size=64", "train.steps=1500",
                              "train.learning_rate=1e-3", *_GPU_RUN],
                "scaled": "the t10k split alone (9,000 / 1,000), mnist.yaml's losses with the "
                          "published package's model size (128 wide, 3 layers, MLP 512) and "
                          "batches of 64 (2,016 pairs), 1,500 steps"},
    },
    "fashion_mnist": {
        "config": "fashion_mnist.yaml",
        "paper": {"set": "Fashion-MNIST", "pearson": 0.99, "accuracy": 0.87},
        # fashion_mnist.yaml as shipped (mnist.yaml's model and losses, 1,000 steps), with one
        # evaluation, at the end.
        "overrides": ["train.eval_every=1000"],
        "scaled": "all 70,000 images (60,000 / 10,000 official split), fashion_mnist.yaml as "
                  "shipped: pixels above a tenth of the maximum (354 points on average), "
                  "mnist.yaml's model, losses and learning rate, 1,000 steps of 3 updates",
        "gpu": {"overrides": [*_PAPER_MODEL, "train.batch_size=32",
                              "train.steps=1500", "train.learning_rate=1e-3",
                              "train.warmup_steps=100", *_GPU_RUN],
                "scaled": "all 70,000 images (60,000 / 10,000), mnist.yaml's losses and "
                          "1-layer decoder with the published package's model size (128 "
                          "wide, 3 layers, MLP 512), batches of 32 (496 pairs), 1,500 steps"},
    },
    "shapes_gw": {
        "config": "shapes_gw.yaml",
        "paper": _SHAPENET,
        "overrides": [],
        "scaled": "stand-in: 1,200 synthetic 3-D shape surfaces of 8 classes, 64 points, "
                  "random rotations and scales; shapes_gw.yaml as shipped",
        "gpu": {"overrides": _SHAPES_GPU,
                "scaled": "stand-in: 4,000 synthetic 3-D shape surfaces of 8 classes, 64 "
                          "points, random rotations and scales; shapes_gw.yaml with the "
                          "published package's model size and batches of 32"},
    },
    "shapes_gs": {
        "config": "shapes_gs.yaml",
        "paper": _SHAPENET,
        "overrides": [],
        "scaled": "stand-in: 1,200 synthetic 3-D shape surfaces of 8 classes, 64 points, "
                  "random rotations, one size; debiased entropic GW (GS) targets; "
                  "shapes_gs.yaml as shipped",
        "gpu": {"overrides": _SHAPES_GPU,
                "scaled": "stand-in: 4,000 synthetic 3-D shape surfaces of 8 classes, 64 "
                          "points, random rotations, one size, GS targets; shapes_gs.yaml "
                          "with the published package's model size and batches of 32"},
    },
}

_QUICK = {
    # The rows score the encoder only: the quick S2 row trains without digits.yaml's decoder.
    "mnist": ("digits.yaml", ["train.steps=30", "train.eval_every=30", "model.num_layers=1",
                              "model.width=32", "model.mlp_dim=64", "model.emb_dim=16",
                              *ENCODER_ONLY, "data.max_clouds=300"]),
    "shapes_gw": ("shapes_gw.yaml", ["train.steps=20", "train.eval_every=20",
                                     "data.options.num_clouds=120", "model.num_layers=1",
                                     "model.width=32", "model.mlp_dim=64",
                                     "model.emb_dim=16"]),
}


def measure(workdir: Path, pairs: int, references: int, ot_clouds: int = 0,
            ot_references: int = 0) -> dict:
    """The row's figures from the run in ``workdir``; with ``ot_clouds``, also the k-NN
    labels of that many held-out clouds among ``ot_references`` training clouds by the
    reference OT itself, next to the embedding's on the same references: the accuracy a
    perfect embedding of that OT would reach there."""
    from wormhole.checkpoint import CHECKPOINT_DIR, CheckpointStore
    from wormhole.evaluate import evaluate_run

    saved = Path(workdir, CHECKPOINT_DIR)
    if saved.is_dir():
        store = CheckpointStore(saved, create=False)
        latest = store.latest_step()
        store.close()
    if not saved.is_dir() or latest is None:
        # a training stopped by --time-limit before its first checkpoint
        return {"skipped": "stopped by the time limit before its first checkpoint"}
    report = evaluate_run(workdir, num_pairs=pairs, stress_clouds=0, barycenter_labels=[],
                          interpolations=0, neighbour_clouds=ot_clouds,
                          neighbour_references=ot_references, max_reference=references,
                          plots=False, progress=False, label_probe=True)
    exact = report.get("pairs_exact") or report["pairs"]
    near = report.get("nearest_neighbor", {})
    by_ot = {}
    hood = report.get("neighbourhoods", {})
    if "against_train" in hood:
        # with the recall@k of OT neighbours and trustworthiness on the same held-out clouds
        by_ot = {"ot_knn": {"num_clouds": hood["clouds"], "kind": hood["kind"],
                            "method": hood["method"], "recall": hood["recall"],
                            "trustworthiness": hood["trustworthiness"],
                            **hood["against_train"]}}
    return {**by_ot, "pearson": exact["pearson"], "num_pairs": exact["num_pairs"],
            "reference_kind": exact["kind"],
            "reference_method": exact.get("method", ""),
            "pearson_training_kind": report["pairs"]["pearson"],
            "accuracy": near.get("against_train"), "num_reference": near.get("num_reference"),
            "knn_accuracy": near.get("knn_against_train"),
            "probe_accuracy": near.get("probe_against_train"), "probe": near.get("probe"),
            "step": report["step"]}


def merged_rows(previous: Path, rows: list[dict]) -> list[dict]:
    """``rows``, plus the rows of ``previous`` (a table1 JSON) for data sets not in them.

    Rows keep their own command, date and CPU, so a table assembled over several
    invocations says when and where each row was measured; a kept row trained with the
    overrides :data:`DATASETS` has now takes its current description. Order:
    :data:`DATASETS`'.
    """
    names = {r["name"] for r in rows}
    before = json.loads(previous.read_text()) if previous.exists() else {"rows": []}
    kept = [r for r in before["rows"] if r["name"] not in names]
    for r in kept:
        r.setdefault("cpu", before.get("machine", {}).get("cpu"))
        spec = DATASETS.get(r["name"])
        trained_as = [o for o in r["overrides"] if not o.startswith("data.path=")]
        if spec and trained_as == spec["overrides"]:  # the same run: today's description
            r.update(paper=spec["paper"], scaled=spec["scaled"])
    order = list(DATASETS)
    return sorted(kept + rows, key=lambda r: order.index(r["name"]))


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _by_ot(found: dict | None) -> str:
    """'embedding / OT (clouds x references)' of a row's k-NN labels by the reference OT."""
    if not found:
        return "-"
    one = found["knn_accuracy"]["1"]
    return (f"{_fmt(one['embedding'])} / {_fmt(one['exact'])} "
            f"({found['num_clouds']} x {found['num_reference']:,})")


def report_lines(rows: list[dict], args) -> list[str]:
    table = []
    for r in rows:
        paper = r["paper"]
        if r.get("skipped"):
            table.append([paper["set"], r["name"], "not run", "-", "-", "-", "-", "-",
                          f"{paper['pearson']} / {paper['accuracy']}", "-", r["skipped"]])
            continue
        scaled = r["scaled"] + ("; stopped by the time limit, its last checkpoint scored"
                                if r.get("stopped") else "")
        table.append([paper["set"], r["name"], f"{_fmt(r['pearson'])} (vs {r['reference_kind']})",
                      f"{_fmt(r['accuracy'])} ({r['num_reference']:,} refs)",
                      _fmt((r.get("knn_accuracy") or {}).get("10")),
                      _fmt(r.get("probe_accuracy")), _by_ot(r.get("ot_knn")),
                      f"{r['train_minutes']:.1f}",
                      f"{paper['pearson']} / {paper['accuracy']}", r["step"], scaled])
    pairs = sorted({r.get("num_pairs", args.pairs) for r in rows if not r.get("skipped")})
    probe_name = next((r["probe"] for r in rows if r.get("probe")),
                      "wormhole.evaluate.metrics.PROBE")
    return [
        f"OT correlation: Pearson of the model's distance against the reference on "
        f"{' / '.join(str(n) for n in pairs) or args.pairs} random held-out pairs (exact W2^2 "
        "by POT for S2 runs; for GW runs the GW objective of ott-jax's converged entropic GW "
        "plan, an upper bound on GW; converged debiased entropic GW for GS runs). Label "
        "accuracy (the paper does not say which classifier it used): "
        "1-NN of each held-out cloud among random training clouds (refs) by the embedding; "
        "10-NN: the majority of its 10 nearest among the same refs; probe: a "
        f"small classifier fit on the refs' embeddings ({probe_name}; a dash: the row was "
        "scored before these existed). 1-NN, embedding / OT: the 1-NN label of some held-out "
        "clouds among a random subset of the training clouds, by the embedding and by the "
        "reference OT itself (exact W2^2 by POT, converged entropic GW or GS), on the same "
        "clouds: OT's is what a perfect embedding of that OT would reach there. Train min: the "
        "whole `scripts/train.py` command on the machine its row names.", "",
        *markdown_table(["paper's set", "ours", "OT correlation", "label accuracy 1-NN",
                         "10-NN", "probe", "1-NN, embedding / OT", "train min",
                         "paper (corr. / acc.)", "steps", "what was run"], table),
        "", "Each row's training command, with the start of the invocation that trained it and its "
        "CPU (and GPU):", "",
        *[f"- {r['name']} ({r.get('date', 'date not recorded')}, {r.get('cpu') or '-'}"
          f"{', ' + r['accelerator'] if r.get('accelerator') else ''}"
          f"{'; scored again ' + r['rescored'] if r.get('rescored') else ''}): "
          f"`{r['command']}`" for r in rows if not r.get("skipped")],
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--mnist-dir", default=os.environ.get("WORMHOLE_MNIST_DIR"),
                        help="MNIST IDX files (data.path of the mnist row)")
    parser.add_argument("--fashion-dir", default=os.environ.get("WORMHOLE_FASHION_MNIST_DIR"),
                        help="Fashion-MNIST IDX files (default: the loader's search path)")
    parser.add_argument("--gpu", action="store_true",
                        help="the larger settings of DATASETS' gpu entries (output table1_gpu)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="stop each training after so many seconds and score its last "
                             "checkpoint")
    parser.add_argument("--train-only", action="store_true",
                        help="train and record, score later with --rescore (e.g. on a "
                             "machine without POT)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a further scripts/train.py override for each data set trained "
                             "(a variant: its row says so), e.g. data.options.threshold=0.1")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--references", type=int, default=2000)
    parser.add_argument("--ot-clouds", type=int, default=None,
                        help="held-out clouds also classified by the reference OT itself "
                             "(default none; 12 with --quick)")
    parser.add_argument("--ot-references", type=int, default=None,
                        help="training clouds those are classified among, by OT and by the "
                             "embedding (--ot-clouds x --ot-references solves; default 500, "
                             "20 with --quick)")
    parser.add_argument("--keep-runs", default=None, help="keep the trained runs here")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of data sets not run now from the existing output")
    parser.add_argument("--rescore", action="store_true",
                        help="score the runs kept in --keep-runs again (other --pairs or "
                             "--references) instead of training; their training time and "
                             "command come from the existing output")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets = [d for d in args.datasets if d in _QUICK]
        args.pairs, args.references = 60, 100
    if args.ot_clouds is None:
        args.ot_clouds = 12 if args.quick else 0
    if args.ot_references is None:
        args.ot_references = 20 if args.quick else 500
    output = args.output or (None if args.quick else
                             str(RESULTS / ("table1_gpu" if args.gpu else "table1")))
    trained = {}
    if args.rescore:
        if not (args.keep_runs and output and Path(output).with_suffix(".json").exists()):
            parser.error("--rescore needs --keep-runs and an existing output to rescore")
        trained = {r["name"]: r for r in
                   json.loads(Path(output).with_suffix(".json").read_text())["rows"]}
    run = Run.start(__file__, argv)
    # Where rows train; no JAX backend is asked (on a GPU it would take the device's memory
    # from the training processes).
    trained_on = {"cpu": cpu_model(), "accelerator": describe_accelerator()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            spec = DATASETS[name]
            sized = spec["gpu"] if args.gpu else spec
            config, overrides = (_QUICK[name] if args.quick
                                 else (spec["config"], list(sized["overrides"])))
            data_dir = {"mnist": args.mnist_dir, "fashion_mnist": args.fashion_dir}.get(name)
            overrides = [*overrides, *args.set]
            if data_dir and not args.quick:
                overrides.append(f"data.path={data_dir}")
            scaled = (f"--quick smoke run: {config} with {', '.join(_QUICK[name][1])}"
                      if args.quick else sized["scaled"])
            scaled += f"; with {', '.join(args.set)}" if args.set else ""
            row = {"name": name, "config": config, "overrides": overrides,
                   "paper": spec["paper"], "scaled": scaled, "date": run.date,
                   **trained_on}
            workdir = Path(args.keep_runs or tmp) / name
            if args.rescore:
                before = trained.get(name)
                if before is None or before.get("skipped") or not workdir.exists():
                    parser.error(f"--rescore: no trained {name} row and run ({workdir})")
                row.update({k: before[k] for k in ("date", "cpu", "accelerator", "scaled",
                                                   "train_minutes", "command", "stopped",
                                                   "overrides") if k in before},
                           rescored=run.date,
                           **measure(workdir, args.pairs, args.references, args.ot_clouds,
                                     args.ot_references))
                rows.append(row)
                continue
            try:
                seconds, command = run_training(config, overrides, workdir, args.time_limit)
            except RuntimeError as err:
                lines = str(err).splitlines()
                start = next((i for i, line in enumerate(lines) if "files not found" in line),
                             None)
                if start is None:
                    raise
                # The loader's own words: what was searched, and why nothing was downloaded.
                row["skipped"] = " ".join(x.strip() for x in lines[start:])[:600]
                print(f"{name}: not run: {row['skipped']}", file=sys.stderr)
                rows.append(row)
                continue
            row.update(train_minutes=seconds / 60, command=" ".join(command[1:]),
                       stopped=training_stopped(workdir))
            if not args.train_only:
                row.update(measure(workdir, args.pairs, args.references, args.ot_clouds,
                                   args.ot_references))
            print(json.dumps({k: row.get(k) for k in ("name", "pearson", "accuracy",
                                                      "train_minutes", "stopped")}))
            rows.append(row)
    if output and args.train_only:  # JSON only: the report needs the scores
        path = Path(output).with_suffix(".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**run.finish(), "rows": rows}, indent=1) + "\n")
        print(json.dumps({"rows": rows}, default=str))
    elif output:
        if args.merge:
            rows = merged_rows(Path(output).with_suffix(".json"), rows)
        result = {**run.finish(), "rows": rows}
        print(write_result(Path(output), result,
                           "Table 1 of the Wormhole paper: OT correlation and label accuracy",
                           report_lines(rows, args)))
    else:
        print(json.dumps({"rows": rows}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
