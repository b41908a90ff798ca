"""Nearest neighbours under entropic GW, under its debiased form and by a trained embedding.

    python benchmarks/gw_neighbours.py --run RUN            # a GW or GS run, e.g. shapes_gw
    python benchmarks/gw_neighbours.py --quick --output /tmp/gn      # the smoke test's run

The reference GW value of the evaluation (``wormhole.evaluate.ground_truth``, kind ``GW``: the
GW objective at ott-jax's entropic plan) is not a divergence: a cloud's value with itself is
positive (the entropic plan is blurred) and differs from cloud to cloud, so another cloud can
be nearer to ``x`` than ``x`` itself is, and a few clouds can be the nearest of many.
Debiasing it as the Sinkhorn divergence debiases OT, ``GW(x, y) - (GW(x, x) + GW(y, y)) / 2``,
removes the self terms. (Kind ``GS`` debiases the regularised cost, entropy included; this is
the same construction on the evaluation's reference.) For ``--queries`` held-out clouds of the
run against ``--references`` random training clouds, at the run's epsilon and cost scale,
this reports k-NN label accuracy by GW, by debiased GW (the same cross solves, plus one self
solve per cloud) and by the run's embedding; how many distinct references are some query's
nearest (few: hubs); how often a query's GW with itself exceeds its GW with its nearest
reference; and, where the data set records each cloud's scale (the 3-D shapes), the nearest
reference's scale over the query's.

Writes benchmarks/results/gw_neighbours.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import (  # noqa: E402
    Run,
    markdown_table,
    run_training,
    scratch_dir,
    write_result,
)
from benchmarks.table1 import _QUICK as _TABLE1_QUICK  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "gw_neighbours"
# --quick without --run trains table1.py's quick GW shapes run (the smoke test reuses that one).
_QUICK = _TABLE1_QUICK["shapes_gw"]
KS = (1, 5)


def debiased(cross: np.ndarray, self_queries: np.ndarray, self_refs: np.ndarray) -> np.ndarray:
    """``GW(x, y) - (GW(x, x) + GW(y, y)) / 2`` from the cross and self values."""
    return cross - 0.5 * (self_queries[:, None] + self_refs[None, :])


def neighbour_figures(distances: np.ndarray, labels: np.ndarray, ref_labels: np.ndarray,
                      scale: np.ndarray | None = None,
                      ref_scale: np.ndarray | None = None) -> dict:
    """k-NN label accuracy, distinct nearest references and scale ratio of one matrix."""
    from wormhole.evaluate.neighbours import knn_label_accuracy

    nearest = distances.argmin(1)
    out = {"knn_accuracy": {str(k): knn_label_accuracy(distances, labels, k, ref_labels)
                            for k in KS if k <= distances.shape[1]},
           "distinct_nearest": len(set(nearest.tolist()))}
    if scale is not None:
        out["nearest_scale_ratio"] = float(np.median(ref_scale[nearest] / scale))
    return out


def measure(run: Path, queries: int, references: int, seed: int) -> dict:
    import wormhole
    from wormhole.evaluate import run_split
    from wormhole.evaluate.ground_truth import cross_ground_truth, ground_truth_distances

    model = wormhole.load(run)
    config = model.config
    if config.ot.kind not in ("GW", "GS"):
        raise SystemExit(f"error: {run} trains kind {config.ot.kind}; this benchmark compares "
                         "GW neighbours and needs a GW or GS run.")
    test, train = run_split(config, "test"), run_split(config, "train")
    if test.labels is None:
        raise SystemExit(f"error: {run}'s data set has no labels to classify.")
    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(len(test), min(queries, len(test)), replace=False))
    r = np.sort(rng.choice(len(train), min(references, len(train)), replace=False))
    clouds, refs = test.subset(q), train.subset(r)
    solve = dict(kind="GW", method="sinkhorn", epsilon=config.ot.epsilon,
                 cost=config.ot.cost, cost_scale=model.cost_scale, batch_size=64)
    # The run's clouds as the model sees them (normalised), as training's targets are.
    clouds_n, refs_n = model.prepare(clouds), model.prepare(refs)
    cross = cross_ground_truth(clouds_n, refs_n, **solve)
    self_q = ground_truth_distances(clouds_n, None, clouds_n, None, **solve)
    self_r = ground_truth_distances(refs_n, None, refs_n, None, **solve)
    embedded = np.asarray(model.embedding_distances(model.encode(clouds)[:, None],
                                                    model.encode(refs)[None]))
    scales = test.metadata.get("scale"), train.metadata.get("scale")
    scale, ref_scale = (None, None) if scales[0] is None else (scales[0][q], scales[1][r])
    labels, ref_labels = test.labels[q], train.labels[r]
    by = {name: neighbour_figures(d, labels, ref_labels, scale, ref_scale)
          for name, d in (("GW", cross), ("GW, debiased", debiased(cross, self_q, self_r)),
                          ("embedding", embedded))}
    return {"run": str(run), "kind": config.ot.kind, "epsilon": config.ot.epsilon,
            "cost_scale": model.cost_scale, "step": model.step, "num_queries": len(q),
            "num_references": len(r), "query_index": q.tolist(), "reference_index": r.tolist(),
            "num_classes": int(len(np.unique(train.labels))),
            "self_farther_than_nearest": float(np.mean(self_q > cross.min(1))),
            "by": by}


def report(result: dict) -> list[str]:
    m = result["measured"]
    rows = []
    for name, f in m["by"].items():
        rows.append([name, *[f"{f['knn_accuracy'][str(k)]:.3f}" for k in KS],
                     f"{f['distinct_nearest']} of {m['num_queries']}",
                     f"{f['nearest_scale_ratio']:.2f}" if "nearest_scale_ratio" in f else "-"])
    return [
        f"{m['num_queries']} held-out clouds of the run `{m['run']}` (kind {m['kind']}, step "
        f"{m['step']}) against {m['num_references']} random training clouds "
        f"({m['num_classes']} classes: chance {1 / m['num_classes']:.3f}); entropic GW at the "
        f"run's epsilon {m['epsilon']} on costs over its cost scale {m['cost_scale']:.4g}: "
        "the GW objective at ott-jax's entropic plan (converged: threshold 1e-5), the "
        "evaluation's reference; debiased: GW(x, y) - (GW(x, x) + GW(y, y)) / 2 from the "
        "same cross solves and one self solve per cloud. Distinct nearest: references that "
        "are some query's nearest (few: hubs). Scale ratio: median of the nearest "
        "reference's scale over the query's.", "",
        *markdown_table(["neighbours by", *[f"{k}-NN label accuracy" for k in KS],
                         "distinct nearest", "nearest / query scale"], rows),
        "", f"A query's GW to itself exceeds its GW to its nearest reference for "
        f"{m['self_farther_than_nearest']:.0%} of the queries.",
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=None, help="a trained GW or GS run directory")
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--references", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="train a tiny shapes_gw run, 12 queries against 30 references")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if not (args.run or args.quick):
        parser.error("--run is required (or --quick)")
    run = Run.start(__file__, argv, watch=("wormhole", "benchmarks"))
    with scratch_dir("gw_neighbours_") as scratch:  # --quick trains its run here
        if args.quick:
            args.queries, args.references = min(args.queries, 12), min(args.references, 30)
            if args.run is None:
                args.run = scratch / "run"
                run_training(*_QUICK, args.run)
        measured = measure(Path(args.run), args.queries, args.references, args.seed)
        result = {**run.finish(), "measured": measured}
        output = args.output or (None if args.quick else RESULTS)
        if output is None:
            print("--quick writes nothing without --output", file=sys.stderr)
            return 0
        print(write_result(Path(output), result, "Nearest neighbours under GW, debiased GW and "
                           "the embedding", report(result)))
        return 0


if __name__ == "__main__":
    sys.exit(main())
