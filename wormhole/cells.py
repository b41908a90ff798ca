"""Embeddings of AnnData niches and samples, written back into AnnData.

A run trained with the ``anndata`` loader (:mod:`wormhole.data.loaders.anndata`) embeds a new
AnnData with its own loader options (:func:`embed_anndata`): one embedding per cell in
``adata.obsm[key]`` for niches, a table keyed by sample in ``adata.uns[key]`` for samples.
After training, :func:`write_run_embeddings` writes the run's own cells back the same way to
``<run>/embedded.h5ad``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from wormhole.data import select_splits
from wormhole.data.dataset import check_loader_options
from wormhole.data.loaders.anndata import anndata_clouds, read_anndata

__all__ = ["EMBEDDED_FILE", "SPLIT_COLUMN", "embed_anndata", "loader_options",
           "write_run_embeddings"]

EMBEDDED_FILE = "embedded.h5ad"  # in the run directory, written after training
SPLIT_COLUMN = "wormhole_split"  # obs column of that file: train, test or unused


def loader_options(config, options: Mapping | None = None) -> dict:
    """The run's ``data.options``, updated with ``options`` (e.g. another ``rep_key``),
    each checked against the ``anndata`` loader's options."""
    if config.data.name != "anndata":
        raise ValueError(f"This run was trained on the '{config.data.name}' loader, not on "
                         f"AnnData; embed its kind of clouds with encode() or embed.py.")
    check_loader_options("anndata", options or {})
    return {**config.data.options, **(options or {})}


def _encode(model, adata, options: dict, labels: bool = False, batch_size: int | None = None,
            max_points: int | None = None) -> tuple:
    """The clouds of ``adata`` under ``options`` and their ``[N, emb_dim]`` embeddings
    (``max_points`` default: the run's ``data.max_points``)."""
    # Labels play no part in an embedding: a new file need not carry the training column.
    clouds = anndata_clouds(adata, **(options if labels else {**options, "label_key": None}))
    expected = model.spec.data_dim
    if clouds.dim != expected:
        rep = options.get("rep_key", "X")
        raise ValueError(f"data.options.rep_key {rep!r} gives {clouds.dim} features per cell, "
                         f"but the run was trained on {expected}; choose the matching "
                         f"representation (e.g. --set data.options.rep_key=X_pca).")
    if max_points is None:
        max_points = model.config.data.max_points
    return clouds, model.encode(clouds, batch_size=batch_size, max_points=max_points)


def _put(adata, clouds, embeddings: np.ndarray, key: str, mode: str) -> None:
    if mode == "samples":
        import pandas as pd

        adata.uns[key] = pd.DataFrame(embeddings, index=list(clouds.metadata["sample"]),
                                      columns=[str(i) for i in range(embeddings.shape[1])])
    else:
        adata.obsm[key] = embeddings


def embed_anndata(model, adata, key: str = "X_wormhole", options: Mapping | None = None,
                  batch_size: int | None = None, max_points: int | None = None):
    """Embed the niches (or samples) of ``adata`` and store them in it.

    Args:
      model: a :class:`~wormhole.inference.Wormhole` trained with the ``anndata`` loader.
      adata: an AnnData object, or a path to an ``.h5ad`` file (read, then returned).
      key: where the embeddings go: ``adata.obsm[key]`` ``[cells, emb_dim]`` for niches
        (row ``i``: the niche of cell ``i``), ``adata.uns[key]`` for samples (a DataFrame,
        one row per sample, indexed by the sample name, columns ``"0"``..``emb_dim - 1``).
      options: loader options that replace the run's ones for this data (``rep_key``,
        ``spatial_key``, ``sample_key``, ``k``, ...).
      batch_size, max_points: as in :meth:`~wormhole.inference.Wormhole.encode`
        (``max_points`` default: the run's ``data.max_points``).

    Returns:
      The AnnData, with the embeddings added.

    Raises:
      ValueError: ``key`` is the representation or the coordinates the niches are read from
        (writing there would replace them).
    """
    if isinstance(adata, str | Path):
        adata = read_anndata(adata)
    options = loader_options(model.config, options)
    if options.get("mode", "niches") == "niches":
        for option, default in (("rep_key", "X"), ("spatial_key", "spatial")):
            if key == options.get(option, default):
                raise ValueError(f"key {key!r} is where the cells' {option} is read from; "
                                 "writing the embeddings there would replace it. Choose "
                                 "another key (default X_wormhole).")
    clouds, embeddings = _encode(model, adata, options, batch_size=batch_size,
                                 max_points=max_points)
    _put(adata, clouds, embeddings, key, options.get("mode", "niches"))
    return adata


def write_run_embeddings(model, key: str = "X_wormhole") -> Path:
    """Write ``<run>/embedded.h5ad``: the run's cells with their embeddings.

    It holds the training file's ``obs`` (plus ``obs['wormhole_split']``: ``train``,
    ``test``, or ``unused`` for cells left out by ``data.max_clouds``), its spatial
    coordinates and the embeddings as :func:`embed_anndata` writes them, but not ``X`` or
    the other representations (the training file has them): copy ``obsm[key]`` back with
    ``adata.obsm[key] = embedded[adata.obs_names].obsm[key]``.
    """
    import anndata
    import pandas as pd

    config = model.config
    options = loader_options(config)
    source = read_anndata(config.data.path)
    clouds, embeddings = _encode(model, source, options, labels=True)
    mode = options.get("mode", "niches")
    # The niches or samples of each split, as training selected them.
    train, test = select_splits(clouds, replace(config.data, max_points=None))
    by = "sample" if mode == "samples" else "cell"
    split = np.full(len(clouds), "unused", dtype=object)
    position = {value: i for i, value in enumerate(clouds.metadata[by].tolist())}
    for name, part in (("train", train), ("test", test)):
        if part is not None:
            split[[position[v] for v in part.metadata[by].tolist()]] = name
    out = anndata.AnnData(obs=source.obs.copy())
    if mode == "samples":
        cell_samples = source.obs[options["sample_key"]].astype(str).to_numpy()
        split = split[[position[v] for v in cell_samples]]
    else:
        spatial = options.get("spatial_key", "spatial")
        if spatial in source.obsm:
            out.obsm[spatial] = np.asarray(source.obsm[spatial])
    out.obs[SPLIT_COLUMN] = pd.Categorical(split.astype(str),
                                           categories=["train", "test", "unused"])
    _put(out, clouds, embeddings, key, mode)
    path = Path(model.workdir) / EMBEDDED_FILE
    out.write_h5ad(path)
    return path
