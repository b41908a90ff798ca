r"""The Wormhole paper's Table 2: how close a trained embedding comes to the best possible.

    python benchmarks/stress_table.py --mnist-dir /work/shared/data/mnist [--mnist-run RUN] \
        [--in-sample-steps 1000]
    python benchmarks/stress_table.py --quick --output /tmp/st      # the smoke test's run

For a small set of held-out clouds whose full OT matrix is computable (128 random 2-D
Gaussians of ``configs/gaussians.yaml``, 256 MNIST digits of ``configs/mnist.yaml``), the
stress of the trained model's embedding next to what any embedding could do
(:func:`wormhole.evaluate.stress.stress_analysis`): the paper's lower bound ``L`` and upper
figure ``U``, a provable upper bound (shrunk classical MDS), the optimum found by projected
gradient descent (PGD) and classical MDS, all in the model's embedding dimension.

Normalisation: every stress is the mean over pairs ``i < j`` of ``(delta_ij - D_ij)^2`` with
``delta`` the run's OT targets (S2 in target units) and ``D`` squared embedding distances; the
paper's absolute values depend on units it does not state, so the comparison with it is by
ratios to ``L``, which do not. A second, scale-free column divides by ``mean(delta^2)``.

A run directory (``--gaussians-run``, ``--mnist-run``) is evaluated as it is; without one the
config is trained first (``wormhole.train``, ``--steps`` overrides its length), in a temporary
directory removed at the end unless ``--keep-runs DIR`` names one. Those rows score
held-out clouds; ``--in-sample-steps`` adds, per set, a model trained on exactly its stress
clouds and scored on them, as PGD and classical MDS are fitted to that matrix.

Writes benchmarks/results/stress_table.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import (  # noqa: E402
    ENCODER_ONLY,
    Run,
    markdown_table,
    scratch_dir,
    write_result,
)

RESULTS = Path(__file__).resolve().parent / "results" / "stress_table"
COLUMNS = ("lower_bound", "paper_upper_bound", "optimum", "classical_mds", "model")
# The paper's Table 2 (Haviv et al., 2024): L, U, PGD, classical MDS, Wormhole.
PAPER = {"gaussians": (0.129, 2.552, 0.168, 0.401, 2.681),
         "mnist": (0.042, 0.616, 0.058, 0.100, 0.657)}


def trained_run(config: str, overrides: list[str], steps: int | None, workdir: Path) -> Path:
    import wormhole

    extra = [f"train.workdir={workdir}"] + ([f"train.steps={steps}"] if steps else [])
    wormhole.train(config, overrides=overrides + extra)
    return workdir


def stress_row(run: Path, clouds: int, scratch: Path, split: str = "test") -> dict:
    """The stress analysis of ``run`` on ``clouds`` clouds of ``split`` (its evaluation's
    files written under ``scratch``)."""
    from wormhole.evaluate import evaluate_run

    report = evaluate_run(run, split=split, num_pairs=20, exact=False, stress_clouds=clouds,
                          barycenter_labels=[], interpolations=0, num_plot=1,
                          max_reference=50, neighbour_clouds=0, plots=False,
                          output_dir=Path(tempfile.mkdtemp(prefix="eval_", dir=scratch)))
    stress = report["stress_analysis"]
    from wormhole.config import load_config

    config = load_config(Path(run) / "config.yaml")
    return {"run": str(run), "config_name": config.name, "steps": config.train.steps,
            "split": split, "stress": stress}


def in_sample_row(name: str, config: str, overrides: list[str], clouds: int, steps: int,
                  workdir: Path) -> dict:
    """A model trained on exactly ``clouds`` clouds, scored on them: fit to the same matrix
    as PGD and classical MDS, where the held-out row asks the model to generalise."""
    fit = ["data.split=random", f"data.max_clouds={clouds}", "data.test_fraction=0"]
    run = trained_run(config, overrides + fit, steps, workdir / f"{name}_in_sample")
    return {**stress_row(run, clouds, workdir, split="train"), "paper_key": name,
            "note": f"trained on these {clouds} clouds only"}


def report(result: dict) -> list[str]:
    lines = ["Stress = mean over pairs of (OT target - squared embedding distance)^2, in the "
             "run's target units (S2 over its cost scale), for the model's embedding "
             "dimension; `/ L` columns divide by the lower bound (comparable with the "
             "paper, whose units are not stated).", ""]
    rows = []
    for name, entry in result["sets"].items():
        s = entry["stress"]
        values = [s[c] for c in COLUMNS]
        paper = PAPER[entry.get("paper_key", name)]
        rows.append([f"{name} ({s['num_clouds']} clouds, ours)"]
                    + [f"{v:.3g}" for v in values] + [f"{s['negative_mass']:.3f}"])
        rows.append([f"{name}: ours / L"] + [f"{v / values[0]:.2f}" for v in values] + [""])
        rows.append([f"{name}: ours / mean(delta^2)"]
                    + [f"{v / s['mean_delta_squared']:.3g}" for v in values] + [""])
        rows.append([f"{name}: paper"] + [f"{v:g}" for v in paper] + [""])
        rows.append([f"{name}: paper / L"] + [f"{v / paper[0]:.2f}" for v in paper] + [""])
    lines += markdown_table(["set", "lower bound L", "paper's U", "PGD optimum",
                             "classical MDS", "trained model", "negative eigenvalue mass"],
                            rows)
    lines += ["", "Runs:"]
    for name, entry in result["sets"].items():
        s = entry["stress"]
        gone = " (removed after scoring; --keep-runs DIR keeps it)" if entry.get("removed") \
            else ""
        lines.append(f"- {name}: `{entry['run']}`{gone} ({entry['config_name']}, {entry['steps']} "
                     f"steps{', ' + entry['note'] if entry.get('note') else ''}); provable "
                     f"upper bound {s['upper_bound']:.3g}; PGD "
                     f"{'converged' if s['optimum_converged'] else 'stopped'} after "
                     f"{s['optimum_iterations']} iterations; embedding dimension {s['dim']}.")
    lines += ["", "L <= PGD optimum <= provable upper bound holds for every matrix; the paper's "
              "U is not a bound on the optimum (see `wormhole/evaluate/stress.py`)."]
    return lines


def table_sets(args, scratch: Path) -> dict:
    """Every set's stress row, training in ``scratch`` the runs not given."""
    sets = {}
    if args.quick:
        args.steps, args.gaussian_clouds, args.mnist_clouds = args.steps or 40, 24, 24
    # --quick: fewer clouds to draw from, and no decoder (stress reads the encoder alone;
    # without its OT loss the two train steps compiled in 7.5 s instead of 13.3 s).
    no_decoder = list(ENCODER_ONLY) if args.quick else []
    quick_data = ["data.options.num_clouds=200"] if args.quick else []
    gaussians = args.gaussians_run or trained_run("gaussians.yaml", quick_data + no_decoder,
                                                  args.steps, scratch / "gaussians")
    sets["gaussians"] = stress_row(Path(gaussians), args.gaussian_clouds, scratch)
    if args.mnist_run or args.mnist_dir:
        overrides = [f"data.path={args.mnist_dir}"] if args.mnist_dir else []
        if args.quick:
            overrides += ["data.max_clouds=300", "train.mesh.cpu_devices=0"]
        mnist = args.mnist_run or trained_run("mnist.yaml", overrides, args.steps,
                                              scratch / "mnist")
        sets["mnist"] = {**stress_row(Path(mnist), args.mnist_clouds, scratch),
                         "note": args.mnist_note}
    if args.in_sample_steps:
        sets["gaussians, in-sample"] = in_sample_row(
            "gaussians", "gaussians.yaml", no_decoder, args.gaussian_clouds,
            args.in_sample_steps, scratch)
        if args.mnist_dir:
            sets["mnist, in-sample"] = in_sample_row(
                "mnist", "mnist.yaml", [f"data.path={args.mnist_dir}"]
                + (["train.mesh.cpu_devices=0"] if args.quick else []), args.mnist_clouds,
                args.in_sample_steps, scratch)
    return sets


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist-dir", default=None, help="MNIST IDX files (data.path)")
    parser.add_argument("--gaussians-run", default=None)
    parser.add_argument("--mnist-run", default=None)
    parser.add_argument("--mnist-note", default="", help="what the given MNIST run is")
    parser.add_argument("--steps", type=int, default=None, help="training steps of new runs")
    parser.add_argument("--gaussian-clouds", type=int, default=128)
    parser.add_argument("--mnist-clouds", type=int, default=256)
    parser.add_argument("--in-sample-steps", type=int, default=0,
                        help="also train each config on exactly its stress clouds for this "
                             "many steps and score it on them (0: skip)")
    parser.add_argument("--keep-runs", default=None,
                        help="train the runs in this directory and keep them (default: a "
                             "temporary one, removed at the end)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    run = Run.start(__file__, argv)
    with scratch_dir("stress_table_", args.keep_runs) as scratch:
        sets = table_sets(args, scratch)
    for entry in sets.values():  # the runs it trained in a temporary directory are gone
        entry["removed"] = not Path(entry["run"]).exists()
    result = {**run.finish(), "sets": sets, "paper": PAPER}
    out = Path(args.output) if args.output else RESULTS
    print(write_result(out, result, "Stress against its bounds (the paper's Table 2)",
                       report(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
