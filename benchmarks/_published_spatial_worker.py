"""Train the published package's ``SpatialWormhole`` on an ``.h5ad`` tissue; print JSON.

Run by ``benchmarks/spatial_niches.py`` with the interpreter of a separate virtual
environment (the package pins its own jax and flax), never imported by ``wormhole``:

    /path/to/venv/bin/python benchmarks/_published_spatial_worker.py TISSUE.h5ad SETTINGS.json

``SETTINGS.json`` holds ``k``, ``steps``, ``batch_size``, ``learning_rate``, the model sizes,
``eps``, ``num_sinkhorn_iter``, the ``sample_key`` and ``out`` (where the embeddings of the
cells listed in ``encode_cells`` go, as ``.npy``). Building the object (its niche indices,
cost scale) is timed as niche building; ``train`` runs twice, a few steps to compile its
jitted step and then the measured steps. Stdout carries one JSON object; the package's
prints and progress bars go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from importlib import metadata

import numpy as np


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str]) -> int:
    import anndata
    import jax
    from wassersteinwormhole import SpatialWormhole

    data, settings = argv
    s = json.loads(open(settings).read())
    adata = anndata.read_h5ad(data)
    loaded_gib = _peak_rss_gib()
    with contextlib.redirect_stdout(sys.stderr):
        start = time.perf_counter()
        model = SpatialWormhole(
            adata, s["k"], batch_key=s["sample_key"], spatial_key="spatial", rep_key=None,
            eps_enc=s["eps"], eps_dec=s["eps"], num_sinkhorn_iter=s["num_sinkhorn_iter"],
            coeff_dec=-1.0, emb_dim=s["emb_dim"], num_heads=s["num_heads"],
            num_layers=s["num_layers"], mlp_dim=s["mlp_dim"], attention_dropout_rate=0.0)
        build_s = time.perf_counter() - start
        key = jax.random.key(s["seed"])
        model.train(training_steps=3, batch_size=s["batch_size"], init_lr=s["learning_rate"],
                    key=key)
        start = time.perf_counter()
        model.train(training_steps=s["steps"], batch_size=s["batch_size"],
                    init_lr=s["learning_rate"], key=key)
        train_s = time.perf_counter() - start
        cells = np.asarray(s["encode_cells"])
        start = time.perf_counter()
        np.save(s["out"], np.asarray(model.encode(cells), np.float32))
        encode_s = time.perf_counter() - start
    print(json.dumps({"version": metadata.version("wassersteinwormhole"), "build_s": build_s,
                      "train_s": train_s, "steps_per_s": s["steps"] / train_s,
                      "encode_s": encode_s, "num_sinkhorn_iter": int(model.num_sinkhorn_iter),
                      "niche_size": int(model.max_niche_size),
                      "peak_rss_after_load_gib": loaded_gib,
                      "peak_rss_gib": _peak_rss_gib()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
