"""Train a Wormhole embedding.

    python scripts/train.py --config configs/digits.yaml
    python scripts/train.py --config mnist.yaml --set train.steps=200 --set ot.kind=S2

Running the same command again resumes from the run's latest checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from wormhole.api import resolve_config, train
from wormhole.checkpoint import DamagedCheckpoint
from wormhole.compile_cache import enable_compile_cache
from wormhole.config import ConfigError
from wormhole.extras import MissingExtra
from wormhole.trainer import TrainingDiverged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="digits.yaml",
                        help="YAML file, or a bare name in configs/ (default: digits.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.steps=200")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    enable_compile_cache()
    config = None
    try:
        config = resolve_config(args.config, args.set)
        print(f"run directory: {config.workdir}")
        model = train(config, progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError, TrainingDiverged,
            DamagedCheckpoint, MissingExtra) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        where = f"the run in {config.workdir}" if config is not None else "a run"
        print(f"interrupted: {where} keeps its last checkpoint; run the same command again "
              f"to resume from it", file=sys.stderr)
        return 130
    print(f"trained {model} -> {model.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
