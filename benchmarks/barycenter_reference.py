"""Is the decoded barycenter blurry, or is the W2 barycenter? Decoded class barycenters
against ott-jax's free-support barycenter at several epsilons.

    python benchmarks/barycenter_reference.py --run RUN [--epsilon 1e-2 3e-3 1e-3]
    python benchmarks/barycenter_reference.py --quick --output /tmp/br    # the smoke test's

``RUN`` is a finished training run with a decoder and labelled held-out clouds (for
instance the one ``local_fidelity.py --keep-runs`` keeps). For each class, the model's
barycenter is the decoded mean embedding of its first ``--members`` held-out clouds; ott-jax's
is :func:`wormhole.evaluate.barycenter.free_support_barycenter` of the same clouds, as many
points as the decoder gives, at each ``--epsilon`` (normalised squared units). Every
candidate is scored by the barycenter objective: its mean S2 to the members at the run's
``ot.epsilon`` over its cost scale (:func:`~wormhole.evaluate.barycenter.barycenter_objectives`;
lower is a better barycenter). The PNG draws two members, the model's barycenter and ott's at
each epsilon, one class per row.

Writes benchmarks/results/barycenter_reference.{md,json,png}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import (  # noqa: E402
    RESULTS,
    Run,
    markdown_table,
    scratch_dir,
    write_result,
)
from benchmarks.decoder_probe import quick_run  # noqa: E402


def class_rows(model, clouds, members: int, epsilons: list[float], seed: int = 0):
    """Per class: the members, the model's barycenter and ott's at each epsilon, with the
    objective of every candidate and ott's solve time and convergence."""
    from tqdm import tqdm

    from wormhole.evaluate.barycenter import barycenter_objectives, free_support_barycenter

    rows, cfg = [], model.config
    for label in tqdm(np.unique(clouds.labels), desc="classes"):
        chosen = clouds.subset(np.flatnonzero(clouds.labels == label)[:members])
        normalized = model.prepare(chosen)
        barycenter = model.barycenter(chosen)  # user units; scored in normalised ones
        decoded = model.normalization.apply(barycenter)
        references, seconds, converged = [], [], []
        for epsilon in epsilons:
            start = time.perf_counter()
            points, done = free_support_barycenter(normalized, num_points=len(decoded),
                                                   epsilon=epsilon, seed=seed)
            references.append(points)
            seconds.append(time.perf_counter() - start)
            converged.append(done)
        objective = barycenter_objectives(normalized, [decoded, *references], cfg.ot.epsilon,
                                          model.cost_scale)
        rows.append({"label": str(label), "members": len(chosen),
                     "model_objective": objective[0], "reference_objectives": objective[1:],
                     "reference_seconds": seconds, "reference_converged": converged,
                     "clouds": [chosen.cloud(i) for i in range(min(2, len(chosen)))],
                     "model": barycenter,
                     "references": [model.normalization.invert(p) for p in references]})
    return rows


def report_lines(rows: list[dict], epsilons: list[float], run: str, model,
                 members: int, png: str) -> list[str]:
    heads = [f"ott eps {e:g}" for e in epsilons]
    table = [[r["label"], f"{r['model_objective']:.4g}",
              *[f"{v:.4g}" for v in r["reference_objectives"]],
              f"{r['model_objective'] / min(r['reference_objectives']):.3f}"] for r in rows]
    model_mean = float(np.mean([r["model_objective"] for r in rows]))
    ref_means = np.mean([r["reference_objectives"] for r in rows], axis=0)
    table.append(["mean", f"{model_mean:.4g}", *[f"{v:.4g}" for v in ref_means],
                  f"{model_mean / float(np.min(ref_means)):.3f}"])
    beaten = [sum(r["model_objective"] < r["reference_objectives"][i] for r in rows)
              for i in range(len(epsilons))]
    seconds = np.mean([r["reference_seconds"] for r in rows], axis=0)
    unconverged = [sum(not r["reference_converged"][i] for r in rows)
                   for i in range(len(epsilons))]
    cfg = model.config
    return [
        f"Run `{run}` ({cfg.name}, step {model.step}); each class's first {members} held-out "
        f"clouds. Barycenter objective = mean S2 from a candidate ({model.spec.decoder_points} "
        f"uniform points) to the members at epsilon {cfg.ot.epsilon} over the cost scale "
        f"{model.cost_scale:.4g}, in normalised coordinates; lower is better. ott-jax's "
        f"free-support barycenter at each epsilon (normalised squared units).", "",
        *markdown_table(["class", "model (decoded mean embedding)", *heads,
                         "model / best ott"], table), "",
        *[f"- ott eps {e:g}: the model's objective is lower on {b} of {len(rows)} classes; "
          f"{s:.1f} s per class barycenter; {u} did not converge." for e, b, s, u in
          zip(epsilons, beaten, seconds, unconverged, strict=True)],
        "", f"Barycenters (two members, the model's, ott's at each epsilon with its "
        f"objective): `{png}`.", "", f"![barycenters]({png})"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=None, help="a finished run with a decoder")
    parser.add_argument("--members", type=int, default=50, help="held-out clouds per class")
    parser.add_argument("--epsilon", type=float, nargs="+", default=[1e-2, 3e-3, 1e-3],
                        help="ott-jax barycenter epsilons (normalised squared units)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    with scratch_dir("bary_ref_") as scratch:  # --quick trains its run here
        if args.quick:
            args.run = args.run or quick_run(scratch / "run")
            args.members, args.epsilon = 6, [1e-2]
        if args.run is None:
            parser.error("--run is required (or --quick)")
        if any(e <= 0 for e in args.epsilon):
            parser.error(f"--epsilon values must be positive, got {args.epsilon}")
        from wormhole.evaluate.plots import plot_barycenters
        from wormhole.evaluate.splits import run_split
        from wormhole.inference import load

        run = Run.start(__file__, argv)
        model = load(args.run)
        model.spec.require_decoder()
        clouds = run_split(model.config, "test")
        if clouds.labels is None:
            raise SystemExit(f"{args.run}: the held-out clouds carry no labels.")
        rows = class_rows(model, clouds, args.members, args.epsilon)
        out = Path(args.output) if args.output else RESULTS / "barycenter_reference"
        out.parent.mkdir(parents=True, exist_ok=True)
        png = out.with_suffix(".png")
        plot_barycenters([{"title": r["label"], "members": r["clouds"], "model": r["model"],
                           "model_note": f"model {r['model_objective']:.4f}",
                           "references": [(p, f"eps {e:g}: {v:.4f}") for p, e, v in zip(
                               r["references"], args.epsilon, r["reference_objectives"],
                               strict=True)]} for r in rows], png, members=2)
        lines = report_lines(rows, args.epsilon, str(args.run), model, args.members, png.name)
        figures = [{k: v for k, v in r.items() if k not in ("clouds", "model", "references")}
                   for r in rows]
        result = {**run.finish(), "run": str(args.run), "epsilons": args.epsilon,
                  "members": args.members, "rows": figures}
        print(write_result(out, result, "Decoded barycenters against ott-jax's at several "
                           "epsilons", lines))
        return 0


if __name__ == "__main__":
    sys.exit(main())
