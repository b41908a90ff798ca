r"""The barycenter of point clouds, decoded from their mean embedding.

    python scripts/barycenter.py --checkpoint runs/digits --split train --label 3
    python scripts/barycenter.py --checkpoint runs/digits --input clouds.npz \
        --output bary.npz --reference

Writes the decoded cloud as .npz (ragged format of wormhole/data/loaders/files.py, in the
run's units) and as a PNG beside it. --label keeps one class (a value or a label name);
--reference also computes ott-jax's free-support W2 barycenter of the same clouds and
reports the S2 distance between the two (in the run's target units).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from wormhole.checkpoint import DamagedCheckpoint
from wormhole.cli_args import check_output_path, integer_at_least, positive_number
from wormhole.compile_cache import enable_compile_cache
from wormhole.config import ConfigError
from wormhole.data import PointClouds
from wormhole.data.loaders.files import save_clouds_npz
from wormhole.evaluate.barycenter import compare_barycenter
from wormhole.evaluate.plots import MODEL_COLOR, REFERENCE_COLOR, label_name, plot_clouds
from wormhole.evaluate.splits import SPLITS, input_clouds, label_values
from wormhole.extras import MissingExtra
from wormhole.inference import load


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", help=".npz file or directory of .npy clouds")
    source.add_argument("--split", choices=SPLITS, default=None,
                        help="a split of the run's data set (default: train)")
    parser.add_argument("--label", default=None, help="only clouds with this label")
    parser.add_argument("--max-clouds", type=integer_at_least(1), default=None,
                        help="average at most this many clouds (the first ones)")
    parser.add_argument("--output", default=None,
                        help="output .npz (default: barycenter[_<label>].npz)")
    parser.add_argument("--reference", action="store_true",
                        help="compare with ott-jax's free-support barycenter")
    parser.add_argument("--reference-epsilon", type=positive_number, default=1e-2,
                        help="its entropic regularisation (normalised squared units)")
    parser.add_argument("--step", type=integer_at_least(0), default=None,
                        help="checkpoint step (default latest)")
    args = parser.parse_args(argv)
    enable_compile_cache()
    suffix = "" if args.label is None else f"_{args.label}"
    output = Path(args.output or f"barycenter{suffix}.npz")
    try:
        check_output_path(output, (".npz",))
        model = load(args.checkpoint, args.step)
        clouds = input_clouds(model.config, args.input, args.split or "train", model.data)
        name = "all clouds"
        if args.label is not None:
            if clouds.labels is None:
                raise ValueError("--label was given but these clouds have no labels.")
            (value,) = label_values([args.label], clouds)
            keep = np.nonzero(clouds.labels == value)[0]
            if len(keep) == 0:
                raise ValueError(f"No cloud has label {args.label!r}.")
            clouds = clouds.subset(keep)
            name = f"label {label_name(value, clouds.label_names)}"
        if args.max_clouds is not None:
            clouds = clouds.subset(slice(0, args.max_clouds))
        if args.reference:
            result = compare_barycenter(model, clouds, epsilon=args.reference_epsilon)
            barycenter = result.model
        else:
            barycenter = model.barycenter(clouds)
    except (ConfigError, FileNotFoundError, ValueError, DamagedCheckpoint,
            MissingExtra) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    reference = output.with_name(output.stem + "_reference.npz")
    try:
        save_clouds_npz(output, PointClouds.from_list([barycenter]))
        if args.reference:
            save_clouds_npz(reference, PointClouds.from_list([result.reference]))
    except OSError as err:
        print(f"error: could not write {output}: {err}", file=sys.stderr)
        return 1
    title = f"barycenter of {len(clouds)} clouds ({name})"
    if args.reference:
        picture = plot_clouds([barycenter, result.reference], output.with_suffix(".png"),
                              titles=["model", "ott-jax"], title=title,
                              colors=[MODEL_COLOR, REFERENCE_COLOR])
        print(f"S2(model, ott-jax) = {result.s2_model_reference:.4g}; mean S2(member, "
              f"ott-jax) = {result.s2_members_reference:.4g} (target units); "
              f"reference -> {reference}")
    else:
        picture = plot_clouds([barycenter], output.with_suffix(".png"), title=title)
    print(f"{title} -> {output}, {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
