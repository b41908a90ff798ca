"""Screen training variants for local fidelity in short runs, on held-out and training clouds.

    python benchmarks/neighbour_probe.py --mnist-dir DIR --steps 1000 \\
        --variant "as shipped:" --variant "fourier: model.fourier_features=32"
    python benchmarks/neighbour_probe.py --quick                          # the smoke test's

``local_fidelity.py`` judges a config at its full length (tens of minutes per variant, most
of it exact OT for the evaluation). This probe trains each variant for ``--steps`` steps by
``scripts/train.py`` and scores it on exact W2 matrices (POT) of ``--clouds`` held-out and as
many training clouds, solved once and cached in ``--cache``: Pearson over all pairs of the
subset, recall@1/10/50 of the exact neighbours among the embedding's, and leave-one-out 1-NN
label accuracy by the embedding and by exact W2. Held-out figures close to the training ones
say the model underfits rather than overfits. ``--ceiling`` adds what points fitted directly to
the held-out matrix reach (no encoder): the best a Euclidean embedding of the same dimension
could do. ``--append`` keeps earlier rows of other names.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import (  # noqa: E402
    RESULTS,
    Run,
    markdown_table,
    recorded_training,
    run_training,
    write_result,
)
from benchmarks.local_fidelity import parse_variant  # noqa: E402

SPLITS = ("test", "train")
_QUICK_SETTINGS = ["model.num_layers=1", "model.width=32", "model.mlp_dim=64",
                   "model.emb_dim=16", "model.decoder_layers=1", "data.max_clouds=300"]


def _subset(config, split: str, count: int):
    from wormhole.evaluate.splits import run_split

    clouds = run_split(config, split)
    return clouds.subset(np.arange(min(count, len(clouds))))


def exact_matrices(config, count: int, cache: Path) -> dict:
    """``{split: (W2 matrix [N, N], labels [N])}`` for the first ``count`` clouds of each
    split, read from ``cache`` when the same data settings were solved before."""
    from wormhole.config import config_to_dict
    from wormhole.evaluate.ground_truth import pairwise_ground_truth

    key = json.dumps([config_to_dict(config)["data"], count], sort_keys=True)
    folder = cache / hashlib.sha256(key.encode()).hexdigest()[:16]
    out = {}
    for split in SPLITS:
        path = folder / f"{split}.npz"
        if not path.exists():
            clouds = _subset(config, split, count)
            matrix = pairwise_ground_truth(clouds, kind="W2", method="exact", progress=True)
            folder.mkdir(parents=True, exist_ok=True)
            np.savez(path, exact=matrix, labels=np.asarray(clouds.labels))
        stored = np.load(path, allow_pickle=False)
        out[split] = (stored["exact"], stored["labels"])
    return out


def score(workdir: Path, matrices: dict) -> dict:
    """Agreement of a trained run's embedding with the cached exact matrices."""
    import wormhole

    model = wormhole.load(workdir)
    row = {}
    for split, (exact, labels) in matrices.items():
        embeddings = model.encode(_subset(model.config, split, len(exact)))
        predicted = np.asarray(model.embedding_distance_matrix(embeddings), np.float64)
        row[split] = _agreement(predicted, exact, embeddings, labels)
    return row


def _agreement(predicted: np.ndarray, exact: np.ndarray, embeddings, labels) -> dict:
    """Pearson over all pairs, then the evaluation's own neighbourhood figures."""
    from wormhole.evaluate.neighbours import neighbourhood_agreement

    upper = np.triu_indices(len(exact), 1)
    near = neighbourhood_agreement(predicted, exact, embeddings, labels, label_ks=(1,))
    nn_embedding, nn_exact = near.knn_accuracy[1]
    return {"pearson": float(np.corrcoef(predicted[upper], exact[upper])[0, 1]),
            "recall": {str(k): v for k, v in near.recall.items()},
            "trustworthiness": near.trustworthiness,
            "nn_embedding": nn_embedding, "nn_exact": nn_exact}


def free_fit(exact: np.ndarray, dim: int, offset: float, steps: int = 2000) -> np.ndarray:
    """Points ``[N, dim]`` fitted directly to an exact matrix (no encoder): classical MDS,
    then Adam on the stress plus the log-ratio term of ``wormhole.losses``, all pairs at
    once. What a ``dim``-D Euclidean embedding of these clouds can reach at best."""
    import jax
    import jax.numpy as jnp
    import optax

    from wormhole.evaluate.stress import classical_mds
    from wormhole.losses import log_stress_loss, stress_loss

    target = exact / exact.mean()
    start = classical_mds(target, dim)
    upper = np.triu_indices(len(exact), 1)
    goal = jnp.asarray(target[upper])

    def loss(points):
        squared = jnp.sum(points * points, axis=1)
        dist = jnp.maximum(squared[:, None] + squared[None] - 2 * points @ points.T, 0.0)
        return stress_loss(dist[upper], goal) + log_stress_loss(dist[upper], goal, offset)

    opt = optax.adam(1e-2)

    @jax.jit
    def step(points, state):
        grads = jax.grad(loss)(points)
        changes, state = opt.update(grads, state)
        return optax.apply_updates(points, changes), state

    points = jnp.asarray(start, jnp.float32)
    state = opt.init(points)
    for _ in range(steps):
        points, state = step(points, state)
    return np.asarray(points, np.float64)


def ceiling_rows(matrices: dict, dim: int, offset: float) -> list[dict]:
    """Classical MDS and the direct fit, scored like a trained run on held-out clouds."""
    from wormhole.evaluate.stress import classical_mds, squared_distances

    exact, labels = matrices["test"]
    rows = []
    for name, points in [(f"classical MDS, {dim}-D", classical_mds(exact, dim)),
                         (f"direct fit, {dim}-D (stress + log-ratio)",
                          free_fit(exact, dim, offset))]:
        rows.append({"name": name, **_agreement(squared_distances(points), exact, points,
                                                labels)})
    return rows


def _cells(scores: dict) -> list[str]:
    """Pearson, recall@1/10/50 and 1-NN (embedding / exact) of one set of scores."""
    recall = "/".join("-" if k not in scores["recall"] else f"{scores['recall'][k]:.2f}"
                      for k in ("1", "10", "50"))
    return [f"{scores['pearson']:.3f}", recall,
            f"{scores['nn_embedding']:.3f} / {scores['nn_exact']:.3f}"]


def report_lines(rows: list[dict], args) -> list[str]:
    return [
        f"Each variant trained by `scripts/train.py --config {args.config}` for its steps, then "
        f"scored on the exact W2 matrix (POT) of the first {rows[0]['clouds']} held-out and "
        f"{rows[0]['clouds']} training clouds: Pearson over all pairs, recall@1/10/50 of the "
        f"exact neighbours among the embedding's, leave-one-out 1-NN label accuracy by the "
        f"embedding and by exact W2. Training time is the whole command on this machine.", "",
        *markdown_table(
            ["variant", "overrides", "steps", "train min", "held-out Pearson",
             "held-out recall@1/10/50", "held-out 1-NN emb / exact", "train Pearson",
             "train recall@1/10/50", "train 1-NN emb / exact"],
            [[r["name"], ", ".join(r["overrides"]) or "(as shipped)", r["steps"],
              f"{r['train_minutes']:.1f}", *_cells(r["test"]), *_cells(r["train"])]
             for r in rows]),
    ]


def ceiling_lines(ceiling: list[dict]) -> list[str]:
    if not ceiling:
        return []
    return ["", "## What a Euclidean embedding of the same held-out clouds can reach", "",
            "No encoder: points fitted to the held-out exact matrix itself (`--ceiling`), "
            "scored the same way.", "",
            *markdown_table(["fit", "Pearson", "recall@1/10/50", "1-NN emb / exact"],
                            [[r["name"], *_cells(r)] for r in ceiling])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist.yaml")
    parser.add_argument("--mnist-dir", default=os.environ.get("WORMHOLE_MNIST_DIR"))
    parser.add_argument("--variant", action="append", default=[],
                        help='"NAME: key=value, ..." (default: the config as shipped)')
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--clouds", type=int, default=500)
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "wormhole" /
                                               "neighbour_probe"))
    parser.add_argument("--keep-runs", default=None)
    parser.add_argument("--append", action="store_true")
    parser.add_argument("--ceiling", action="store_true",
                        help="also fit points directly to the held-out exact matrix")
    parser.add_argument("--rescore", action="store_true",
                        help="score the variants' runs kept in --keep-runs again instead of "
                             "training (their recorded training time and command are kept)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.rescore and not args.keep_runs:
        parser.error("--rescore needs --keep-runs")
    from wormhole.config import load_config

    variants = [parse_variant(v) for v in args.variant] or [("as shipped", [])]
    base = [f"data.path={args.mnist_dir}"] if args.mnist_dir else []
    if args.quick:
        args.config, base, args.steps, args.clouds = "digits.yaml", list(_QUICK_SETTINGS), 20, 40
    output = args.output or (None if args.quick else str(RESULTS / "neighbour_probe"))
    run = Run.start(__file__, argv)
    config = load_config(args.config, base)
    matrices = exact_matrices(config, args.clouds, Path(args.cache))
    ceiling = ceiling_rows(matrices, config.model.emb_dim, config.loss.local_offset) \
        if args.ceiling else []
    old = []
    if args.append and output and Path(output + ".json").is_file():
        previous = json.loads(Path(output + ".json").read_text())
        old, ceiling = previous.get("rows", []), ceiling or previous.get("ceiling", [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep_runs or tmp)
        for name, overrides in variants:
            workdir = root / name.replace(" ", "_").replace("/", "_")
            settings = [*base, f"train.steps={args.steps}", f"train.eval_every={args.steps}",
                        f"checkpoint.every={args.steps}", *overrides]
            if args.rescore:
                recorded = recorded_training(workdir)
                if recorded is None:
                    parser.error(f"--rescore: no finished run of {name!r} in {workdir}")
                seconds, command = recorded
            else:
                seconds, command = run_training(args.config, settings, workdir)
            row = {"name": name, "overrides": overrides, "steps": args.steps,
                   "clouds": len(matrices["test"][0]), "train_minutes": seconds / 60,
                   "command": command, **score(workdir, matrices)}
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("name", "train_minutes", *SPLITS)}))
            if output:
                names = {r["name"] for r in rows}
                kept = [r for r in old if r["name"] not in names] + rows
                write_result(Path(output), {**run.finish(), "rows": kept, "ceiling": ceiling},
                             "Neighbourhood probe: short runs of training variants",
                             report_lines(kept, args) + ceiling_lines(ceiling))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
