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
import json
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


def _timed(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), seconds)``."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


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
    sketch_index = CloudIndex(model, clouds, index.embeddings, "sketch")
    every = clouds.subset(np.arange(len(clouds)))
    engine = clouds.subset(np.arange(engine_queries))
    index.search(every, k=K + 1, rerank=0)  # compile
    index.search(engine, k=K + 1, rerank=K + 1)
    index.search(every, k=K + 1, certified=True)  # compile the dual bounds' shapes
    plans = [("embedding", 0, "embedding", index, every, {})]
    for rerank in reranks:
        if rerank:
            # One more than k: each query is in the collection and finds itself first.
            width = min(rerank + 1, len(clouds))
            plans.append(("exact", rerank, "embedding", index, every,
                          {"rerank": width, "exact": True}))
            plans.append(("exact", rerank, "sketch", sketch_index, every,
                          {"rerank": width, "exact": True}))
            plans.append((model.kind, rerank, "embedding", index, engine, {"rerank": width}))
    plans.append(("exact (certified)", 0, "lower bounds", index, every, {"certified": True}))
    rows = []
    for measure, rerank, candidates, searcher, queries, options in tqdm(plans,
                                                                        desc="recall"):
        options = {"rerank": 0, **options}
        found, seconds = _timed(searcher.search, queries, k=K + 1, **options)
        others = [row[row != q][:K] for q, row in enumerate(found.indices)]
        rows.append({"rerank": rerank, "measure": measure, "candidates": candidates,
                     "queries": len(queries),
                     "recall_at_10": recall_at_k(others, truth[:len(queries)]),
                     "seconds_per_query": seconds / len(queries),
                     "exact_solves_median": None if found.solved is None
                     else float(np.median(found.solved))})
    return {"clouds": len(clouds), "exact_kind": kind, "exact_matrix_s": matrix_s,
            "mean_points": float(clouds.sizes.mean()), "rows": rows}


def speed_part(model, clouds: PointClouds, num_queries: int, engine_queries: int, reranks,
               seed: int) -> dict:
    """Search against brute-force OT over a large collection, side by side."""
    rng = np.random.default_rng(seed)
    picked = np.zeros(len(clouds), bool)
    picked[rng.choice(len(clouds), num_queries, replace=False)] = True
    queries, collection = clouds.subset(np.flatnonzero(picked)), clouds.subset(~picked)
    index, encode_s = _timed(lambda: model.index(collection))
    sketch_index, sketch_s = _timed(lambda: CloudIndex(model, collection, index.embeddings,
                                                       "sketch"))
    _, bounds_s = _timed(index.build_bounds)
    every = len(collection)
    out = {"collection": every, "queries": num_queries, "engine_queries": engine_queries,
           "reranks": list(reranks), "index_build_s": encode_s, "sketch_build_s": sketch_s,
           "bounds_build_s": bounds_s, "rows": []}
    for q in range(num_queries):  # compile the encoder and dual bounds for each query's shape
        index.search(queries.subset([q]), k=K, rerank=0)
        index.search(queries.subset([q]), k=K, certified=True)
    exact_name = f"exact {exact_kind(model.kind)}"
    methods = [(exact_name, "embedding", r, lambda x, r=r: index.search(
                    x, k=K, rerank=r, exact=True)) for r in reranks]
    methods += [(exact_name, "sketch", r, lambda x, r=r: sketch_index.search(
                    x, k=K, rerank=r, exact=True)) for r in reranks]
    methods += [(exact_name + " (certified)", "lower bounds", 0, lambda x: index.search(
                    x, k=K, certified=True))]
    _measure(out, queries, methods, lambda x: index.search(x, k=K, rerank=every, exact=True))
    _, out["self_terms_s"] = _timed(lambda: index._engine.cached_self_values(
        np.arange(every), index._engine._length(queries)))
    index.search(queries.subset([0]), k=K, rerank=K)  # compile the engine
    methods = [(model.kind, "embedding", r, lambda x, r=r: index.search(x, k=K, rerank=r))
               for r in reranks]
    _measure(out, queries.subset(np.arange(min(engine_queries, num_queries))), methods,
             lambda x: index.search(x, k=K, rerank=every))
    return out


def _measure(out: dict, queries: PointClouds, methods, brute) -> None:
    """Time each method and brute force one query at a time; recall against brute force."""
    times = {i: [] for i in range(len(methods))}
    recalls = {i: [] for i in range(len(methods))}
    solves = {i: [] for i in range(len(methods))}
    brute_times = []
    for q in tqdm(range(len(queries)), desc=f"speed, {methods[0][0]}"):
        query = queries.subset([q])
        found = []
        for i, (_, _, _, search) in enumerate(methods):
            result, seconds = _timed(search, query)
            times[i].append(seconds)
            found.append(result.indices)
            if result.solved is not None:
                solves[i].append(int(result.solved[0]))
        truth, seconds = _timed(brute, query)
        truth = truth.indices
        brute_times.append(seconds)
        for i, indices in enumerate(found):
            recalls[i].append(recall_at_k(indices, truth))
    brute_s = float(np.median(brute_times))
    for i, (measure, candidates, rerank, _) in enumerate(methods):
        search_s = float(np.median(times[i]))
        out["rows"].append({
            "measure": measure, "candidates": candidates, "rerank": rerank,
            "queries": len(queries), "search_s": search_s, "brute_force_s": brute_s,
            "speedup": brute_s / search_s,
            "recall_at_10_vs_brute_force": float(np.mean(recalls[i])),
            "exact_solves_median": float(np.median(solves[i])) if solves[i] else None,
            "exact_solves_max": int(np.max(solves[i])) if solves[i] else None})


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
            certified = {}
            if backend == "brute":  # certified search does not use the candidate backend
                _, certified["bounds_build_s"] = _timed(index.build_bounds)
                index.search(queries.subset([0]), k=K, certified=True)  # compile
                solves, seconds = [], 0.0
                for q in range(len(queries)):
                    result, took = _timed(index.search, queries.subset([q]), k=K,
                                          certified=True)
                    solves.append(int(result.solved[0]))
                    seconds += took
                certified["query_ms_certified"] = seconds / len(queries) * 1e3
                certified["certified_solves_median"] = float(np.median(solves))
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
                         "candidate_recall_vs_brute": recall_at_k(found, exact_candidates),
                         **certified})
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
    parser.add_argument("--speed-queries", type=int, default=20)
    parser.add_argument("--engine-speed-queries", type=int, default=5,
                        help="of those, queries also timed with the run's own kind (slow)")
    parser.add_argument("--scale-sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--scale-points", type=int, default=32)
    parser.add_argument("--backends", nargs="+", default=["brute", "hnsw"])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: 100 recall clouds, a 1,000-cloud collection, "
                             "2 speed queries, a 20,000-cloud scale test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None)
    parser.add_argument("--plot-only", default=None, metavar="JSON",
                        help="redraw the plot of a saved result and exit")
    args = parser.parse_args(argv)
    if args.plot_only:
        saved = Path(args.plot_only)
        plot(json.loads(saved.read_text()), saved.with_suffix(".recall.png"))
        return 0
    if args.quick:
        args.recall_clouds, args.engine_queries = 100, 20
        args.collection, args.speed_queries, args.scale_sizes = 1000, 2, [20_000]
        args.engine_speed_queries = 2
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
                       args.speed_queries, args.engine_speed_queries,
                       [r for r in args.reranks if r in (50, 100)] or [100], args.seed)
    encode = encode_part(model, test)
    scale = scale_part(model, every, args.scale_sizes, args.scale_points, args.backends,
                       args.seed)
    result = {**run.finish(),
              "run": {"path": str(model.workdir), "step": model.step, "kind": model.kind,
                      "epsilon": model.config.ot.epsilon, "config": model.config.name},
              "recall": recall, "speed": speed, "encode": encode, "scale": scale}
    name = "search.quick" if args.quick else "search"
    output = Path(args.output) if args.output else RESULTS / name
    plot(result, output.with_suffix(".recall.png"))
    print(write_result(output, result, "OT nearest-neighbour search", report(result)))
    return 0


def plot(result: dict, path: Path) -> None:
    """Recall@10 against cost: per query on the held-out clouds, and speed-up on the large
    collection, for each candidate source and re-rank, certified search as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = ((axes[0], result["recall"]["rows"], "seconds_per_query", "recall_at_10",
               f"{result['recall']['clouds']} held-out clouds, each against the others",
               "ms per query"),
              (axes[1], result["speed"]["rows"], "search_s", "recall_at_10_vs_brute_force",
               f"{result['speed']['collection']:,}-cloud collection",
               "ms per query (brute force: dashed)"))
    for ax, rows, cost, recall, title, xlabel in panels:
        lines = {}
        for row in rows:
            lines.setdefault((row["measure"], row["candidates"]), []).append(row)
        for (measure, candidates), group in lines.items():
            group = sorted(group, key=lambda r: r["rerank"])
            x = [r[cost] * 1e3 for r in group]
            y = [r[recall] for r in group]
            certified = "certified" in measure
            ax.plot(x, y, marker="*" if certified else "o", markersize=14 if certified else 5,
                    linestyle="none" if certified else "-",
                    label=f"{measure} ({candidates})" if candidates != measure
                    else measure)
            for r, xi, yi in zip(group, x, y, strict=True):
                if r["rerank"]:
                    ax.annotate(str(r["rerank"]), (xi, yi), fontsize=7,
                                textcoords="offset points", xytext=(3, -9))
        if "brute_force_s" in rows[0]:
            for value in {r["brute_force_s"] for r in rows}:
                ax.axvline(value * 1e3, color="grey", linestyle="--", linewidth=0.8)
        ax.set(xscale="log", xlabel=xlabel, ylabel="recall@10 of the exact 10 nearest",
               title=title, ylim=(0, 1.03))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("OT nearest-neighbour search (numbers: rerank)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _solves(row: dict) -> str:
    if row.get("exact_solves_median") is None:
        return "-"
    most = row.get("exact_solves_max")
    return f"{row['exact_solves_median']:.0f}" + ("" if most is None else f", {most}")


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
        ["re-ranked by", "candidates", "rerank", "queries", "recall@10", "ms per query",
         "exact solves (median)"],
        [[row["measure"], row["candidates"], row["rerank"], row["queries"],
          f"{row['recall_at_10']:.3f}", f"{row['seconds_per_query'] * 1e3:.1f}",
          _solves(row)] for row in rec["rows"]])
    lines += ["", f"## Time per query on a {speed['collection']}-cloud collection", "",
              f"{speed['queries']} queries not in the collection, one at a time; median over "
              f"them, the search and brute force (every cloud re-ranked: the same code solving "
              f"all {speed['collection']} pairs) timed one after the other on each query, "
              f"after compilation. Index build (encoding the collection): "
              f"{format_seconds(speed['index_build_s'])}; sliced quantile sketches for the "
              f"sketch candidates: {format_seconds(speed['sketch_build_s'])}; lower-bound "
              f"sketches for certified search: {format_seconds(speed['bounds_build_s'])}. The "
              f"run's own kind is timed on the first {speed['engine_queries']} queries. "
              f"The run kind's self terms of the "
              f"whole collection, solved once before both: "
              f"{format_seconds(speed.get('self_terms_s', 0.0))}.", ""]
    lines += markdown_table(
        ["re-ranked by", "candidates", "rerank", "queries", "search", "brute force",
         "speed-up", "recall@10 vs brute force", "exact solves (median, max)"],
        [[row["measure"], row["candidates"], row["rerank"] or "-", row["queries"],
          f"{row['search_s'] * 1e3:.0f} ms", format_seconds(row["brute_force_s"]),
          f"{row['speedup']:.0f}x", f"{row['recall_at_10_vs_brute_force']:.3f}",
          _solves(row)] for row in speed["rows"]])
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
    proven = [s for s in r["scale"] if "query_ms_certified" in s]
    if proven:
        lines += ["", "Certified exact W2^2 10-nearest on the same collections (lower-bound "
                  "sketches of the collection, then exact solves in bound order; peak RSS "
                  "above includes the sketches):", ""]
        lines += markdown_table(
            ["clouds", "bounds build", "query ms (certified)", "exact solves (median)"],
            [[f"{s['size']:,}", format_seconds(s["bounds_build_s"]),
              f"{s['query_ms_certified']:.0f}", f"{s['certified_solves_median']:.0f}"]
             for s in proven])
    return lines


if __name__ == "__main__":
    sys.exit(main())
