"""OT nearest-neighbour search: recall against brute-force exact OT, speed, and scale.

    python benchmarks/search.py --checkpoint runs/mnist              # the figures of the issue
    python benchmarks/search.py --checkpoint runs/mnist --quick      # a few minutes

Four parts, on a trained run's own clouds (MNIST: its held-out split and all 10,000):

1. Recall. On ``--recall-clouds`` held-out clouds, the full exact OT matrix (POT's network
   simplex on the run kind's unregularised counterpart, e.g. W2^2 for S2) gives every
   cloud's true 10 nearest among the others. Each cloud is then a query against the rest:
   recall@10 of the search for each ``--reranks`` value, re-ranked by exact OT and by the
   run's own kind (the ott-jax engine), with the time per query.
2. Speed. On a collection of ``--collection`` clouds (the run's clouds without the
   queries), time per query of the search (rerank 100, exact) against brute-force exact OT
   over the whole collection (``rerank`` = the collection size: the same code solving every
   pair), measured side by side on the same queries; also for the run's own kind, with the
   collection's self terms solved beforehand (reported as index build cost) for both.
3. Encoding throughput, which bounds index building: clouds/s on the held-out clouds.
4. Scale: synthetic clouds (random subsets of the run's clouds, jittered) indexed at
   ``--scale-sizes``: build time, memory, and query latency for the brute-force and the
   HNSW (faiss) candidate backends.

Writes benchmarks/results/search.{md,json}.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from benchmarks._harness import (  # noqa: E402
    RESULTS,
    Run,
    format_seconds,
    markdown_table,
    write_result,
)
from wormhole.data import PointClouds  # noqa: E402
from wormhole.evaluate import pairwise_ground_truth, run_split  # noqa: E402
from wormhole.evaluate.neighbours import nearest_indices, recall_at_k  # noqa: E402
from wormhole.inference import load  # noqa: E402
from wormhole.search import CloudIndex, exact_kind  # noqa: E402

K = 10


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def recall_part(model, clouds: PointClouds, reranks, engine_queries: int) -> dict:
    """Recall@10 against brute-force exact OT, each cloud a query against the others."""
    data = model.prepare(clouds)
    kind = exact_kind(model.kind)
    start = time.perf_counter()
    exact = pairwise_ground_truth(data, kind=kind, method="exact", cost=model.config.ot.cost,
                                  cost_scale=model.cost_scale, progress=True)
    matrix_s = time.perf_counter() - start
    truth = nearest_indices(exact, K)
    index = model.index(clouds)
    rows = []
    for measure, exact_rerank, count in (("exact", True, len(clouds)),
                                         (model.kind, False, engine_queries)):
        queries = clouds.subset(np.arange(count))
        index.search(queries, k=K + 1, rerank=0 if exact_rerank else K + 1)  # compile
        for rerank in tqdm(reranks, desc=f"recall, {measure} re-rank"):
            if rerank == 0 and not exact_rerank:
                continue  # the embedding's own ranking: one row is enough
            width = min(rerank + 1, len(clouds)) if rerank else 0
            start = time.perf_counter()
            # One more than k: each query is in the collection and finds itself first.
            found = index.search(queries, k=K + 1, rerank=width, exact=exact_rerank)
            seconds = (time.perf_counter() - start) / count
            others = [row[row != q][:K] for q, row in enumerate(found.indices)]
            rows.append({"rerank": rerank, "measure": "embedding" if not rerank else measure,
                         "queries": count, "recall_at_10": recall_at_k(others, truth[:count]),
                         "seconds_per_query": seconds})
    return {"clouds": len(clouds), "exact_kind": kind, "exact_matrix_s": matrix_s,
            "mean_points": float(clouds.sizes.mean()), "rows": rows}


def speed_part(model, clouds: PointClouds, num_queries: int, reranks, seed: int) -> dict:
    """Search against brute-force OT over a large collection, side by side."""
    rng = np.random.default_rng(seed)
    picked = np.zeros(len(clouds), bool)
    picked[rng.choice(len(clouds), num_queries, replace=False)] = True
    queries, collection = clouds.subset(np.flatnonzero(picked)), clouds.subset(~picked)
    start = time.perf_counter()
    index = model.index(collection)
    encode_s = time.perf_counter() - start
    every = len(collection)
    out = {"collection": every, "queries": num_queries, "reranks": list(reranks),
           "index_build_s": encode_s, "rows": []}
    for q in range(num_queries):  # compile the encoder for each query's shape
        index.search(queries.subset([q]), k=K, rerank=0)
    for exact, name in ((True, f"exact {exact_kind(model.kind)}"), (False, model.kind)):
        if not exact:
            start = time.perf_counter()
            index._engine.cached_self_values(np.arange(every), index._engine._length(queries))
            out["self_terms_s"] = time.perf_counter() - start
            index.search(queries.subset([0]), k=K, rerank=K)  # compile the engine
        times = {rerank: [] for rerank in reranks}
        brute_times, found = [], {rerank: [] for rerank in reranks}
        for q in tqdm(range(num_queries), desc=f"speed, {name}"):
            query = queries.subset([q])
            for rerank in reranks:
                start = time.perf_counter()
                found[rerank].append(index.search(query, k=K, rerank=rerank,
                                                  exact=exact).indices)
                times[rerank].append(time.perf_counter() - start)
            start = time.perf_counter()
            brute = index.search(query, k=K, rerank=every, exact=exact).indices
            brute_times.append(time.perf_counter() - start)
            for rerank in reranks:
                found[rerank][-1] = recall_at_k(found[rerank][-1], brute)
        brute_s = float(np.median(brute_times))
        for rerank in reranks:
            search_s = float(np.median(times[rerank]))
            out["rows"].append({"measure": name, "rerank": rerank, "search_s": search_s,
                                "brute_force_s": brute_s, "speedup": brute_s / search_s,
                                "recall_at_10_vs_brute_force": float(np.mean(found[rerank]))})
    return out


def encode_part(model, clouds: PointClouds) -> dict:
    model.encode(clouds)  # compile every padded length
    start = time.perf_counter()
    model.encode(clouds)
    seconds = time.perf_counter() - start
    return {"clouds": len(clouds), "seconds": seconds, "clouds_per_s": len(clouds) / seconds,
            "mean_points": float(clouds.sizes.mean())}


def synthetic(clouds: PointClouds, count: int, points: int, seed: int) -> PointClouds:
    """``count`` clouds of ``points`` points: random subsets of ``clouds``, jittered."""
    rng = np.random.default_rng(seed)
    base = rng.integers(len(clouds), size=count)
    sizes = clouds.sizes[base]
    pick = (rng.random((count, points)) * sizes[:, None]).astype(np.int64)
    xs = clouds.points[base[:, None], pick]  # [count, points, d], no padded copy
    xs += rng.normal(scale=0.3, size=xs.shape).astype(np.float32)
    weights = np.full((count, points), 1.0 / points, np.float32)
    return PointClouds(xs.astype(np.float32), weights, np.full(count, points, np.int32))


def scale_part(model, clouds: PointClouds, sizes, points: int, backends, seed: int) -> list:
    rows = []
    queries = synthetic(clouds, 20, points, seed + 1)
    for size in sizes:
        collection = synthetic(clouds, size, points, seed)
        start = time.perf_counter()
        embeddings = model.encode(collection)
        encode_s = time.perf_counter() - start
        for backend in backends:
            start = time.perf_counter()
            index = CloudIndex(model, collection, embeddings, backend)
            backend_s = time.perf_counter() - start
            index.search(queries.subset([0]), k=K, rerank=0)  # compile
            latency = {}
            for rerank in (0, 100):
                start = time.perf_counter()
                for q in range(len(queries)):
                    index.search(queries.subset([q]), k=K, rerank=rerank, exact=True)
                latency[rerank] = (time.perf_counter() - start) / len(queries)
            truth = CloudIndex(model, collection, embeddings, "brute") if backend != "brute" \
                else index
            found = index.search(queries, k=K, rerank=0).indices
            exact_candidates = truth.search(queries, k=K, rerank=0).indices
            rows.append({"size": size, "points": points, "backend": backend,
                         "encode_s": encode_s, "backend_build_s": backend_s,
                         "clouds_gb": (collection.points.nbytes + collection.weights.nbytes)
                         / 2**30, "embeddings_gb": embeddings.nbytes / 2**30,
                         "peak_rss_gb": peak_rss_gb(),
                         "query_ms_candidates_only": latency[0] * 1e3,
                         "query_ms_rerank_100_exact": latency[100] * 1e3,
                         "candidate_recall_vs_brute": recall_at_k(found, exact_candidates)})
            del index, truth
        del collection, embeddings
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a trained run (e.g. mnist.yaml)")
    parser.add_argument("--recall-clouds", type=int, default=500)
    parser.add_argument("--reranks", type=int, nargs="+", default=[0, 20, 50, 100, 200])
    parser.add_argument("--engine-queries", type=int, default=100,
                        help="queries re-ranked by the run's own kind in the recall part")
    parser.add_argument("--collection", type=int, default=None,
                        help="collection size in the speed part (default: every cloud of the "
                             "run but the queries: 9,995 for MNIST t10k)")
    parser.add_argument("--speed-queries", type=int, default=5)
    parser.add_argument("--scale-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--scale-points", type=int, default=32)
    parser.add_argument("--backends", nargs="+", default=["brute", "hnsw"])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: 100 recall clouds, a 1,000-cloud collection, "
                             "2 speed queries, a 20,000-cloud scale test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.recall_clouds, args.engine_queries = 100, 20
        args.collection, args.speed_queries, args.scale_sizes = 1000, 2, [20_000]
    run = Run.start(__file__, argv)
    model = load(args.checkpoint)
    test = run_split(model.config, "test")
    every = run_split(model.config, "all")
    if args.collection is None:
        args.collection = len(every) - args.speed_queries
    if args.recall_clouds > len(test) or args.collection + args.speed_queries > len(every):
        print(f"error: the run has {len(test)} held-out and {len(every)} clouds in all; lower "
              f"--recall-clouds or --collection.", file=sys.stderr)
        return 1
    recall = recall_part(model, test.subset(np.arange(args.recall_clouds)), args.reranks,
                         args.engine_queries)
    speed = speed_part(model, every.subset(np.arange(args.collection + args.speed_queries)),
                       args.speed_queries, [r for r in args.reranks if r in (50, 100)] or [100],
                       args.seed)
    encode = encode_part(model, test)
    scale = scale_part(model, every, args.scale_sizes, args.scale_points, args.backends,
                       args.seed)
    result = {**run.finish(),
              "run": {"path": str(model.workdir), "step": model.step, "kind": model.kind,
                      "epsilon": model.config.ot.epsilon, "config": model.config.name},
              "recall": recall, "speed": speed, "encode": encode, "scale": scale}
    name = "search.quick" if args.quick else "search"
    output = Path(args.output) if args.output else RESULTS / name
    print(write_result(output, result, "OT nearest-neighbour search", report(result)))
    return 0


def report(r: dict) -> list[str]:
    rec, speed, enc = r["recall"], r["speed"], r["encode"]
    run = r["run"]
    lines = [f"Model: `{run['path']}` step {run['step']} ({run['config']}, {run['kind']} "
             f"epsilon {run['epsilon']}).", "",
             f"## Recall@10 against brute-force exact {rec['exact_kind']}", "",
             f"{rec['clouds']} held-out clouds (mean {rec['mean_points']:.0f} points); their "
             f"full exact matrix took {format_seconds(rec['exact_matrix_s'])}. Each cloud is "
             f"a query against the other {rec['clouds'] - 1}.", ""]
    lines += markdown_table(
        ["rerank", "re-ranked by", "queries", "recall@10", "ms per query"],
        [[row["rerank"], row["measure"], row["queries"], f"{row['recall_at_10']:.3f}",
          f"{row['seconds_per_query'] * 1e3:.1f}"] for row in rec["rows"]])
    lines += ["", f"## Time per query on a {speed['collection']}-cloud collection", "",
              f"{speed['queries']} queries not in the collection, one at a time; median over "
              f"them, the search and brute force (every cloud re-ranked: the same code solving "
              f"all {speed['collection']} pairs) timed one after the other on each query, "
              f"after compilation. Index build (encoding the collection): "
              f"{format_seconds(speed['index_build_s'])}; the run kind's self terms of the "
              f"whole collection, solved once before both: "
              f"{format_seconds(speed.get('self_terms_s', 0.0))}.", ""]
    lines += markdown_table(
        ["re-ranked by", "rerank", "search", "brute force", "speed-up",
         "recall@10 vs brute force"],
        [[row["measure"], row["rerank"], f"{row['search_s'] * 1e3:.0f} ms",
          format_seconds(row["brute_force_s"]), f"{row['speedup']:.0f}x",
          f"{row['recall_at_10_vs_brute_force']:.3f}"] for row in speed["rows"]])
    lines += ["", "## Encoding throughput", "",
              f"{enc['clouds']} held-out clouds (mean {enc['mean_points']:.0f} points), after "
              f"compilation: {enc['clouds_per_s']:.0f} clouds/s.", "",
              "## Scale (synthetic clouds)", ""]
    lines += markdown_table(
        ["clouds", "points", "backend", "encode", "backend build", "clouds GB",
         "peak RSS GB", "query ms (candidates)", "query ms (rerank 100 exact)",
         "candidate recall vs brute"],
        [[f"{s['size']:,}", s["points"], s["backend"], format_seconds(s["encode_s"]),
          format_seconds(s["backend_build_s"]), f"{s['clouds_gb']:.2f}",
          f"{s['peak_rss_gb']:.2f}", f"{s['query_ms_candidates_only']:.1f}",
          f"{s['query_ms_rerank_100_exact']:.1f}", f"{s['candidate_recall_vs_brute']:.3f}"]
         for s in r["scale"]])
    return lines


if __name__ == "__main__":
    sys.exit(main())
