"""Train a Wormhole embedding: python scripts/train.py --config configs/digits.yaml"""

from __future__ import annotations

import argparse

from wormhole.config import load_config, save_config
from wormhole.data import load_dataset


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="digits.yaml",
                        help="YAML file, or a bare name in configs/ (default: digits.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.steps=200")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.set)
    dataset = load_dataset(config.data)
    print(dataset.summary())
    print(f"resolved config: {save_config(config, config.workdir / 'config.yaml')}")


if __name__ == "__main__":
    main()
