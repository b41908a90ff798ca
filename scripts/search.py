r"""Find each query cloud's nearest clouds under OT with a trained run.

    python scripts/search.py --checkpoint runs/mnist --index-split train --query-split test \
        --k 10 --rerank 100 --output neighbours.json --plot neighbours.png
    python scripts/search.py --checkpoint runs/mnist --index clouds.npz --query q.npz \
        --save-index runs/mnist/index --output neighbours.json
    python scripts/search.py --checkpoint runs/mnist --index runs/mnist/index --query q.npz ...

The collection (``--index``: an .npz file, a directory of .npy clouds, or an index saved by
``--save-index``; or ``--index-split`` of the run's own data) is embedded once; each query's
``--rerank`` nearest embeddings are re-ranked by the run's OT kind (``--exact``: exact
unregularised OT by POT; ``--certified``: the proven exact W2^2 nearest, solving exact OT in
the order of a lower bound until none can win) and the ``--k`` nearest are written to a JSON
file with their distances (target units unless ``--units original``) and labels.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from wormhole.atomic import replaced_atomically
from wormhole.checkpoint import DamagedCheckpoint
from wormhole.cli_args import check_output_path, integer_at_least, picture_suffixes
from wormhole.compile_cache import enable_compile_cache
from wormhole.config import ConfigError
from wormhole.evaluate.plots import label_name, plot_clouds
from wormhole.evaluate.splits import SPLITS, input_clouds
from wormhole.extras import MissingExtra
from wormhole.inference import load
from wormhole.search import BACKENDS, check_index_target, load_index

_PLOTTED_QUERIES = 6


def _collection(model, args):
    if args.index and (Path(args.index) / "index.json").is_file():
        return load_index(args.index, model, args.backend)
    clouds = input_clouds(model.config, args.index, args.index_split, model.data)
    return model.index(clouds, backend=args.backend or "brute")


def _plot(index, queries, found, path: Path, k: int) -> None:
    names = index.clouds.label_names
    clouds, titles, colors = [], [], []
    for q in range(min(_PLOTTED_QUERIES, len(queries))):
        clouds.append(queries.cloud(q))
        label = "" if queries.labels is None else f" ({label_name(queries.labels[q], names)})"
        titles.append(f"query {q}{label}")
        colors.append("#1f77b4")
        for rank in range(k):
            clouds.append(index.clouds.cloud(int(found.indices[q, rank])))
            titles.append(f"#{rank + 1}: {found.distances[q, rank]:.3g}")
            colors.append("#d62728")
    plot_clouds(clouds, path, titles, f"nearest clouds by {found.measure}", columns=k + 1,
                colors=colors)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint")
    collection = parser.add_mutually_exclusive_group(required=True)
    collection.add_argument("--index", help=".npz, directory of .npy clouds, or a saved index")
    collection.add_argument("--index-split", choices=SPLITS, help="a split of the run's data")
    queries = parser.add_mutually_exclusive_group(required=True)
    queries.add_argument("--query", help=".npz file or directory of .npy query clouds")
    queries.add_argument("--query-split", choices=SPLITS, help="a split of the run's data")
    parser.add_argument("--max-queries", type=integer_at_least(1), default=None,
                        help="use the first N queries")
    parser.add_argument("--k", type=integer_at_least(1), default=10, help="neighbours per query")
    parser.add_argument("--rerank", type=integer_at_least(0), default=100,
                        help="embedding candidates re-ranked by OT (0: embedding only)")
    parser.add_argument("--exact", action="store_true",
                        help="re-rank by exact unregularised OT (POT) instead of the run's kind")
    parser.add_argument("--certified", action="store_true",
                        help="the proven exact W2^2 k nearest (W2/S2 runs; --rerank unused)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="candidate search (default brute; hnsw needs faiss)")
    parser.add_argument("--units", choices=("target", "original"), default="target")
    parser.add_argument("--output", required=True, help="neighbours as JSON")
    parser.add_argument("--save-index", default=None, help="also save the index here")
    parser.add_argument("--plot", default=None, help="PNG of queries and their neighbours")
    parser.add_argument("--step", type=integer_at_least(0), default=None,
                        help="checkpoint step (default latest)")
    args = parser.parse_args(argv)
    enable_compile_cache()
    if args.max_queries is not None and args.max_queries < 1:
        print(f"error: --max-queries must be at least 1, got {args.max_queries}",
              file=sys.stderr)
        return 1
    try:
        check_output_path(args.output, (".json",))
        if args.plot:
            check_output_path(args.plot, picture_suffixes(), "--plot")
        if args.save_index:  # before any work: a save never replaces a run or other files
            check_index_target(Path(args.save_index))
        model = load(args.checkpoint, args.step)
        start = time.perf_counter()
        index = _collection(model, args)
        build_s = time.perf_counter() - start
        query_set = input_clouds(model.config, args.query, args.query_split, model.data)
        if args.max_queries is not None:
            query_set = query_set.subset(slice(0, args.max_queries))
        start = time.perf_counter()
        found = index.search(query_set, k=args.k, rerank=args.rerank, exact=args.exact,
                             units=args.units, certified=args.certified)
        search_s = time.perf_counter() - start
        if args.save_index:
            index.save(args.save_index)
    except (ConfigError, FileNotFoundError, ValueError, DamagedCheckpoint,
            MissingExtra) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    rows = []
    for q in range(len(query_set)):
        row = {"query": q, "neighbours": found.indices[q].tolist(),
               "distances": [float(v) for v in found.distances[q]]}
        if query_set.labels is not None:
            row["query_label"] = np.asarray(query_set.labels[q]).item()
        if found.labels is not None:
            row["labels"] = np.asarray(found.labels[q]).tolist()
        if found.solved is not None:
            row["exact_solves"] = int(found.solved[q])
        rows.append(row)
    report = {"run": str(model.workdir), "step": model.step, "collection": len(index),
              "k": args.k, "rerank": args.rerank, "measure": found.measure,
              "units": found.units, "backend": index.backend_name,
              "seconds": {"index": build_s, "search": search_s,
                          "per_query": search_s / len(query_set)},
              "queries": rows}
    output = Path(args.output)
    try:
        with replaced_atomically(output) as temporary:
            temporary.write_text(json.dumps(report, indent=1))
    except OSError as err:
        print(f"error: could not write {output}: {err}", file=sys.stderr)
        return 1
    if args.plot:
        _plot(index, query_set, found, Path(args.plot), args.k)
    print(f"{len(query_set)} queries against {len(index)} clouds by {found.measure}: "
          f"{search_s / len(query_set) * 1e3:.1f} ms per query -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
