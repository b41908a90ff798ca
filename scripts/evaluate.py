r"""Evaluate a trained run: agreement with ground-truth OT, 1-NN accuracy, stress bounds,
reconstructions, class barycenters against ott-jax's, interpolations.

    python scripts/evaluate.py --checkpoint runs/digits
    python scripts/evaluate.py --checkpoint runs/digits --num-pairs 1000 --stress-clouds 200 \
        --barycenter-labels 3,8 --output-dir eval_digits

Also neighbourhoods (recall@k of exact-OT neighbours, trustworthiness, k-NN accuracy).
Writes report.json and PNG plots (default: <run>/eval/<split>-step<step>/). The same from
Python: wormhole.evaluate.evaluate_run(path, ...).
"""

from __future__ import annotations

import argparse
import sys

from wormhole.checkpoint import DamagedCheckpoint
from wormhole.cli_args import integer_at_least
from wormhole.compile_cache import enable_compile_cache
from wormhole.config import ConfigError
from wormhole.evaluate import SPLITS, evaluate_run
from wormhole.extras import MissingExtra


def _labels(text: str | None):
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    return [item.strip() for item in text.split(",") if item.strip()]


def _summary(report: dict) -> str:
    lines = []
    pairs = report["pairs"]
    lines.append(f"{report['split']} pairs vs {pairs['kind']} ({pairs['num_pairs']}): "
                 f"Pearson {pairs['pearson']:.4f}, Spearman {pairs['spearman']:.4f}, "
                 f"stress {pairs['stress']:.3g}, mean rel. error "
                 f"{pairs['mean_relative_error']:.3f}")
    if "pairs_exact" in report:
        exact = report["pairs_exact"]
        lines.append(f"  vs exact {exact['kind']}: Pearson {exact['pearson']:.4f}, "
                     f"Spearman {exact['spearman']:.4f}")
    if "model" in report.get("gaussian_closed_form", {}):
        closed = report["gaussian_closed_form"]
        lines.append(f"  vs closed-form W2^2 of the generating Gaussians ({closed['num_pairs']}): "
                     f"Pearson {closed['model']['pearson']:.4f} (the targets themselves: "
                     f"{closed['target']['pearson']:.4f})")
    if "skipped" in report.get("nearest_neighbor", {}):
        lines.append(f"label accuracy: skipped ({report['nearest_neighbor']['skipped']})")
    elif "nearest_neighbor" in report:
        nn = report["nearest_neighbor"]
        line = f"label accuracy: 1-NN leave-one-out {nn['leave_one_out']:.4f}"
        if "against_train" in nn:
            knn = ", ".join(f"{k}-NN {v:.4f}" for k, v in nn["knn_against_train"].items())
            line += f"; against {nn['num_reference']} training clouds: {knn}"
        if "probe_against_train" in nn:
            line += f"; label probe {nn['probe_against_train']:.4f}"
        lines.append(line)
    if "neighbourhoods" in report:
        nb = report["neighbourhoods"]
        recall = ", ".join(f"@{k} {v:.3f}" for k, v in nb["recall"].items())
        lines.append(f"neighbourhoods of {nb['clouds']} clouds vs {nb['kind']}: recall {recall}"
                     f", trustworthiness {nb['trustworthiness']:.3f}")
        for k, acc in nb.get("knn_accuracy", {}).items():
            line = (f"  {k}-NN label accuracy (leave-one-out): embedding "
                    f"{acc['embedding']:.3f}, {nb['kind']} {acc['exact']:.3f}")
            train = nb.get("against_train", {}).get("knn_accuracy", {}).get(k)
            if train:
                line += (f"; against {nb['against_train']['num_reference']} training clouds: "
                         f"embedding {train['embedding']:.3f}, {nb['kind']} {train['exact']:.3f}")
            lines.append(line)
    if "held_out" in report and "pearson" in report["held_out"]:
        held = report["held_out"]
        lines.append(f"held-out classes {held['labels']}: Pearson {held['pearson']:.4f}, "
                     f"Spearman {held['spearman']:.4f}, mean relative error "
                     f"{held['mean_relative_error']:.3f}, 1-NN (leave-one-out) "
                     f"{held['nearest_neighbor_leave_one_out']:.4f}")
        within_seen = held.get("seen_classes_within_class_pairs")
        if within_seen:
            lines.append(f"  pairs within one seen class: Pearson {within_seen['pearson']:.4f}, "
                         f"mean relative error {within_seen['mean_relative_error']:.3f}")
        if held.get("held_out_to_seen_pairs"):
            cross, seen = held["held_out_to_seen_pairs"], held["seen_pairs"]
            lines.append(f"  held-out to seen pairs: Pearson {cross['pearson']:.4f}, MSE "
                         f"{cross['stress']:.3g}, mean relative error "
                         f"{cross['mean_relative_error']:.3f}; seen pairs: Pearson "
                         f"{seen['pearson']:.4f}, MSE {seen['stress']:.3g}, mean relative "
                         f"error {seen['mean_relative_error']:.3f}")
    if "stress_analysis" in report:
        s = report["stress_analysis"]
        lines.append(f"stress over {s['num_clouds']} clouds (dim {s['dim']}): lower bound "
                     f"(paper L) {s['lower_bound']:.3g} <= optimum {s['optimum']:.3g} <= upper "
                     f"bound {s['upper_bound']:.3g} <= classical MDS {s['classical_mds']:.3g}; "
                     f"paper U {s['paper_upper_bound']:.3g} (not a bound on the optimum); "
                     f"model {s['model']:.3g}")
    if "barycenters" in report and "classes" in report["barycenters"]:
        for name, b in report["barycenters"]["classes"].items():
            lines.append(f"barycenter {name}: S2(model, ott-jax) {b['s2_model_reference']:.3g}"
                         f" vs mean S2(member, ott-jax) {b['s2_members_reference']:.3g}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint")
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--num-pairs", type=integer_at_least(2), default=None,
                        help="pairs compared with ground truth (default eval.num_pairs)")
    parser.add_argument("--no-exact", action="store_true",
                        help="skip the comparison of S1/S2 runs with exact W1/W2")
    parser.add_argument("--stress-clouds", type=integer_at_least(0), default=100,
                        help="clouds in the stress analysis (all pairs solved; 0 skips)")
    parser.add_argument("--barycenter-labels", default=None,
                        help="comma-separated classes (values or names), 'none' to skip "
                             "(default: every class)")
    parser.add_argument("--barycenter-clouds", type=integer_at_least(1), default=50,
                        help="at most this many clouds per class barycenter")
    parser.add_argument("--reference-epsilon", type=float, default=1e-2,
                        help="entropic regularisation of ott-jax's barycenter; larger draws "
                             "its points onto thinner strokes at a higher W2 objective, "
                             "smaller is closer to the exact barycenter and slower")
    parser.add_argument("--neighbour-clouds", type=integer_at_least(0), default=200,
                        help="clouds with a full OT matrix for recall@k, trustworthiness and "
                             "k-NN accuracy (0 skips)")
    parser.add_argument("--neighbour-references", type=integer_at_least(1), default=200,
                        help="training clouds those are classified against, by embedding and "
                             "by OT")
    parser.add_argument("--interpolations", type=integer_at_least(0), default=3,
                        help="interpolation strips")
    parser.add_argument("--num-plot", type=integer_at_least(0), default=None,
                        help="reconstructions drawn (default eval.num_plot)")
    parser.add_argument("--output-dir", default=None,
                        help="default <run>/eval/<split>-step<step>")
    parser.add_argument("--label-probe", action="store_true",
                        help="also fit a small classifier on the training embeddings and "
                             "report its label accuracy")
    parser.add_argument("--no-plots", action="store_true", help="write report.json only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step", type=integer_at_least(0), default=None,
                        help="checkpoint step (default latest)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    args = parser.parse_args(argv)
    enable_compile_cache()
    try:
        report = evaluate_run(
            args.checkpoint, split=args.split, num_pairs=args.num_pairs,
            exact=not args.no_exact, stress_clouds=args.stress_clouds,
            barycenter_labels=_labels(args.barycenter_labels),
            barycenter_clouds=args.barycenter_clouds,
            reference_epsilon=args.reference_epsilon, interpolations=args.interpolations,
            num_plot=args.num_plot, neighbour_clouds=args.neighbour_clouds,
            neighbour_references=args.neighbour_references,
            output_dir=args.output_dir, plots=not args.no_plots, label_probe=args.label_probe,
            seed=args.seed, progress=not args.no_progress, step=args.step)
    except (ConfigError, FileNotFoundError, ValueError, DamagedCheckpoint,
            MissingExtra) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(_summary(report))
    print(f"report -> {report['output_dir']}/report.json ({len(report['figures'])} plots, "
          f"{report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
