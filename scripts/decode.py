r"""Decode embeddings to point clouds with a trained run.

    python scripts/decode.py --checkpoint runs/digits --input emb.npy --output clouds.npz
    python scripts/decode.py --checkpoint runs/digits --input emb.npz --output clouds.npz \
        --plot decoded.png

The input is an [N, emb_dim] .npy array, or an .npz file with an 'embeddings' array (what
scripts/embed.py writes; its labels are carried over). Decoded clouds are in the units the
run was trained on, with uniform weights, saved in the ragged .npz format that
wormhole/data/loaders/files.py reads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from wormhole.checkpoint import DamagedCheckpoint
from wormhole.cli_args import check_output_path, integer_at_least, picture_suffixes
from wormhole.compile_cache import enable_compile_cache
from wormhole.config import ConfigError
from wormhole.data import PointClouds
from wormhole.data.loaders.files import save_clouds_npz
from wormhole.extras import MissingExtra
from wormhole.inference import load


def read_embeddings(path: Path) -> tuple[np.ndarray, dict]:
    """Embeddings and, from an .npz file, labels and label names."""
    if not path.exists():
        raise FileNotFoundError(f"No embeddings at '{path}'.")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False), {}
    if path.suffix != ".npz":
        raise ValueError(f"--input must be an .npy or .npz file, got '{path}'.")
    with np.load(path, allow_pickle=False) as archive:
        if "embeddings" not in archive.files:
            raise ValueError(f"{path} has no 'embeddings' array (it has: "
                             f"{', '.join(archive.files) or 'nothing'}).")
        extra = {k: archive[k] for k in ("labels", "label_names") if k in archive.files}
        return archive["embeddings"], extra


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint")
    parser.add_argument("--input", required=True, help="embeddings (.npy or .npz)")
    parser.add_argument("--output", required=True, help="decoded clouds (.npz)")
    parser.add_argument("--plot", default=None, help="also draw the first clouds to this PNG")
    parser.add_argument("--num-plot", type=integer_at_least(1), default=8, help="clouds in --plot")
    parser.add_argument("--step", type=integer_at_least(0), default=None,
                        help="checkpoint step (default latest)")
    args = parser.parse_args(argv)
    enable_compile_cache()
    output = Path(args.output)
    try:
        check_output_path(output, (".npz",))
        if args.plot:
            check_output_path(args.plot, picture_suffixes(), "--plot")
        model = load(args.checkpoint, args.step)
        embeddings, extra = read_embeddings(Path(args.input))
        decoded = model.decode(embeddings)
        labels = extra.get("labels")
        names = extra.get("label_names")
        clouds = PointClouds.from_list(list(decoded), labels=labels,
                                       label_names=None if names is None else names.tolist())
    except (ConfigError, FileNotFoundError, ValueError, DamagedCheckpoint,
            MissingExtra) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        save_clouds_npz(output, clouds)
    except OSError as err:
        print(f"error: could not write {output}: {err}", file=sys.stderr)
        return 1
    print(f"decoded {len(decoded)} clouds of {decoded.shape[1]} points -> {output}")
    if args.plot:
        from wormhole.evaluate.plots import plot_clouds

        count = min(args.num_plot, len(decoded))
        path = plot_clouds(list(decoded[:count]), args.plot,
                           title=f"decoded clouds (first {count} of {len(decoded)})")
        print(f"plot -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
