r"""Embed point clouds with a trained run.

    python scripts/embed.py --checkpoint runs/digits --input clouds.npz --output emb.npy
    python scripts/embed.py --checkpoint runs/digits --split test --output test_emb.npz

Inputs are an .npz file (or a directory of .npy files; see wormhole/data/loaders/files.py)
in the units the run was trained on, or a split of the run's own data set. A .npy output
holds the [N, emb_dim] embeddings; an .npz output also holds the clouds' labels, if any.

A run trained on AnnData (data.name: anndata) embeds an .h5ad file into an .h5ad file:
niches go to obsm[--key] (one row per cell), samples to uns[--key] (a table keyed by
sample); --set data.options.KEY=VALUE changes the run's loader options for the new file:

    python scripts/embed.py --checkpoint runs/pbmc_niches --input new.h5ad \
        --output new_embedded.h5ad --set data.options.spatial_key=spatial
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml
from tqdm.auto import tqdm

from wormhole.atomic import replaced_atomically, save_npy_atomically
from wormhole.checkpoint import DamagedCheckpoint
from wormhole.cli_args import check_output_path, integer_at_least
from wormhole.compile_cache import enable_compile_cache
from wormhole.config import ConfigError
from wormhole.evaluate.splits import SPLITS, input_clouds
from wormhole.extras import MissingExtra
from wormhole.inference import load

_CHUNK = 2048  # clouds per progress update


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run directory or checkpoint")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help=".npz file or directory of .npy clouds")
    source.add_argument("--split", choices=SPLITS, help="a split of the run's data set")
    parser.add_argument("--output", required=True, help=".npy (embeddings) or .npz "
                        "(embeddings and labels)")
    parser.add_argument("--batch-size", type=integer_at_least(1), default=None,
                        help="clouds per network call (default 16 on CPU, 256 on GPU/TPU)")
    parser.add_argument("--max-points", type=integer_at_least(1), default=None,
                        help="subsample larger clouds to this many points (default: all)")
    parser.add_argument("--step", type=integer_at_least(0), default=None,
                        help="checkpoint step (default latest)")
    parser.add_argument("--key", default="X_wormhole",
                        help="obsm (niches) or uns (samples) key of an .h5ad output")
    parser.add_argument("--set", action="append", default=[], metavar="data.options.KEY=VALUE",
                        help="with an .h5ad input: override one of the run's loader options")
    args = parser.parse_args(argv)
    enable_compile_cache()
    output = Path(args.output)
    if args.input is not None and Path(args.input).suffix.lower() == ".h5ad":
        return _embed_h5ad(args, output)
    if args.set:
        print("error: --set changes AnnData loader options; it needs an .h5ad --input",
              file=sys.stderr)
        return 1
    try:
        check_output_path(output, (".npy", ".npz"))
        model = load(args.checkpoint, args.step)
        clouds = input_clouds(model.config, args.input, args.split, model.data)
        parts = [model.encode(clouds.subset(slice(s, s + _CHUNK)), batch_size=args.batch_size,
                              max_points=args.max_points)
                 for s in tqdm(range(0, len(clouds), _CHUNK), desc="embedding", unit="chunk",
                               disable=len(clouds) <= _CHUNK)]
    except (ConfigError, FileNotFoundError, ValueError, DamagedCheckpoint,
            MissingExtra) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    embeddings = np.concatenate(parts)
    try:
        if output.suffix == ".npy":
            save_npy_atomically(output, embeddings)
        else:
            extra = {} if clouds.labels is None else {"labels": clouds.labels}
            if clouds.label_names is not None:
                extra["label_names"] = np.array(clouds.label_names, dtype=str)
            with replaced_atomically(output) as temporary:
                np.savez_compressed(temporary, embeddings=embeddings, **extra)
    except OSError as err:
        print(f"error: could not write {output}: {err}", file=sys.stderr)
        return 1
    print(f"embedded {len(embeddings)} clouds -> {output} {embeddings.shape}")
    return 0


def _options(settings: list[str]) -> dict:
    """``data.options.KEY=VALUE`` strings as ``{KEY: value}`` (values parsed as YAML)."""
    options = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("data.options.") or key == "data.options.":
            raise ValueError(f"--set {item!r}: only data.options.KEY=VALUE may be set when "
                             f"embedding an .h5ad file.")
        options[key.removeprefix("data.options.")] = yaml.safe_load(value)
    return options


def _embed_h5ad(args, output: Path) -> int:
    if output.suffix.lower() != ".h5ad":
        print(f"error: an .h5ad --input needs an .h5ad --output, got '{output}'",
              file=sys.stderr)
        return 1
    try:
        check_output_path(output, (output.suffix,))  # .h5ad in any case
        model = load(args.checkpoint, args.step)
        adata = model.embed_anndata(args.input, args.key, _options(args.set),
                                    batch_size=args.batch_size, max_points=args.max_points)
    except (ConfigError, FileNotFoundError, ValueError, DamagedCheckpoint,
            MissingExtra) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        with replaced_atomically(output) as temporary:
            adata.write_h5ad(temporary)
    except OSError as err:
        print(f"error: could not write {output}: {err}", file=sys.stderr)
        return 1
    where = "uns" if args.key in adata.uns else "obsm"
    print(f"embedded {args.input} -> {output} {where}['{args.key}'] "
          f"{tuple(np.shape(adata.uns[args.key] if where == 'uns' else adata.obsm[args.key]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
