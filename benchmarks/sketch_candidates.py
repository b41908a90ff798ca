"""Which ranking finds a cloud's exact OT neighbours: a trained embedding or a sliced sketch?

    python benchmarks/sketch_candidates.py --checkpoint RUN            # e.g. a mnist.yaml run
    python benchmarks/sketch_candidates.py --checkpoint RUN --clouds 60 --output /tmp/sc

On ``--clouds`` held-out clouds of a run, with their full exact OT matrix (W2^2 for W2/S2
runs, W1 for W1/S1; POT), the share of each cloud's exact ``k`` nearest neighbours found among
its ``m`` nearest by (a) the run's embedding and (b) sliced quantile sketches of the clouds
(:mod:`wormhole.data.sketches`, the ``sketch`` search backend) at 32 and 64
directions. That share at ``m`` = the search's ``rerank`` is the recall an exact re-rank of
those candidates can reach.

Writes benchmarks/results/sketch_candidates.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import Run, markdown_table, write_result  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sketch_candidates"


def recall_at(ranking: np.ndarray, exact: np.ndarray, k: int, pools) -> dict:
    """Mean share of each row's exact ``k`` nearest (self excluded) among its ``m`` nearest
    by ``ranking``, for each ``m`` in ``pools``."""
    n = len(exact)
    off = ~np.eye(n, dtype=bool)
    truth = [np.argsort(np.where(off[i], exact[i], np.inf), kind="stable")[:k] for i in range(n)]
    order = [np.argsort(np.where(off[i], ranking[i], np.inf), kind="stable") for i in range(n)]
    return {m: float(np.mean([len(set(t) & set(o[:m])) / k for t, o in zip(truth, order,
                                                                             strict=True)]))
            for m in pools}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--clouds", type=int, default=500)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--pools", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    run = Run.start(__file__, argv)
    import wormhole
    from wormhole.data.sketches import cloud_sketches
    from wormhole.evaluate import run_split
    from wormhole.evaluate.ground_truth import pairwise_ground_truth
    from wormhole.ot import get_kind
    from wormhole.search.rerank import exact_kind

    model = wormhole.load(args.checkpoint)
    clouds = run_split(model.config, "test")
    clouds = clouds.subset(slice(0, min(args.clouds, len(clouds))))
    prepared = model.prepare(clouds)
    kind = exact_kind(model.kind)
    exact = np.asarray(pairwise_ground_truth(prepared, kind=kind, progress=True))
    emb = model.encode(clouds)
    rankings = {"embedding": ((emb[:, None] - emb[None]) ** 2).sum(-1)}
    quadratic = get_kind(model.kind).quadratic
    for directions in (32, 64):
        sketch = cloud_sketches(prepared, quadratic=quadratic, directions=directions)
        rankings[f"sketch, {directions} directions x 32 levels"] = \
            ((sketch[:, None] - sketch[None]) ** 2).sum(-1)
    rows = {name: recall_at(r, exact, args.k, args.pools) for name, r in rankings.items()}
    result = {**run.finish(), "checkpoint": args.checkpoint, "clouds": len(clouds),
              "exact_kind": kind, "k": args.k, "recall": rows}
    lines = [f"{len(clouds)} held-out clouds of `{args.checkpoint}` (kind {model.kind}); "
             f"exact {kind} matrix by POT. Share of each cloud's exact {args.k} nearest among "
             f"its m nearest by each ranking:", ""]
    lines += markdown_table(["ranking"] + [f"m = {m}" for m in args.pools],
                            [[name] + [f"{v[m]:.3f}" for m in args.pools]
                             for name, v in rows.items()])
    out = Path(args.output) if args.output else RESULTS
    print(write_result(out, result, "Candidates for OT neighbours: embedding or sketch",
                       lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
