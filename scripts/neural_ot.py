"""Estimate entropic OT or entropic GW between two distributions with a neural potential.

    python scripts/neural_ot.py --config configs/neural_eot_gaussian.yaml
    python scripts/neural_ot.py --config neural_egw_gaussian --set train.steps=500

Writes <out>/results.json (estimate, references, relative errors, marginal check, history)
and <out>/plan.png (learned plan against the reference one); <out> defaults to
runs/<config name>.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wormhole.atomic import replaced_atomically
from wormhole.cli_args import check_output_dir
from wormhole.compile_cache import enable_compile_cache
from wormhole.config import ConfigError, config_to_dict, load_config
from wormhole.neural_ot import NeuralOTConfig
from wormhole.neural_ot.config import check_config
from wormhole.neural_ot.experiment import run_experiment


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="neural_eot_gaussian.yaml",
                        help="YAML file, or a bare name in configs/")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.steps=500")
    parser.add_argument("--out", default=None, help="output directory (default: runs/<name>)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    enable_compile_cache()
    try:
        config = check_config(load_config(args.config, args.set, cls=NeuralOTConfig))
        out = check_output_dir(args.out or Path("runs") / config.name, "--out")
        summary, _ = run_experiment(config, out, progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    summary["config"] = config_to_dict(config)
    try:
        with replaced_atomically(out / "results.json") as temporary:
            temporary.write_text(json.dumps(summary, indent=2))
    except OSError as err:
        print(f"error: could not write {out / 'results.json'}: {err}", file=sys.stderr)
        return 1
    line = f"{config.problem.kind}: {summary['estimate']:.6g} +- {summary['stderr']:.2g}"
    if not summary["reliable"]:
        line += f" (unreliable: reference ESS {summary['reference_ess']:.1f})"
    if summary["closed_form"] is not None:
        line += (f" | closed form {summary['closed_form']:.6g} "
                 f"(rel. error {summary['closed_form_relative_error']:.2%})")
    if "ott" in summary:
        line += (f" | ott-jax on {summary['ott']['points']} points {summary['ott']['cost']:.6g} "
                 f"(the estimate differs from it by {summary['ott']['relative_error']:.2%})")
    print(line)
    plot = f" and {summary['plot']}" if "plot" in summary else ""
    print(f"wrote {out / 'results.json'}{plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
