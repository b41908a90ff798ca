"""AnnData as point clouds: the spatial niche of every cell, or every sample's cells.

Two modes (``data.options.mode``):

``niches`` (default)
    Cloud ``i`` is the niche of cell ``i``: the cell and its ``k - 1`` nearest cells in the
    ``spatial_key`` coordinates (``obsm['spatial']``), as points in the feature space
    ``rep_key`` (``X``, dense or sparse, or an ``obsm`` key such as ``X_pca``), each of
    weight ``1/k``. With ``sample_key`` (an ``obs`` column: slide, section, donor) neighbours
    are searched within the cell's own sample only, so no niche crosses two samples. With
    ``neighbours: graph`` the niche is the cell and its neighbours in the graph
    ``obsp[graph_key]`` (squidpy's ``spatial_connectivities``) instead, so niche sizes may
    differ. ``include_self: false`` leaves the centre cell out (its ``k`` nearest other
    cells, as the published ``SpatialWormhole`` does). The cloud's label is the centre
    cell's ``label_key`` value; ``metadata["cell"]`` is its row in the AnnData.
``samples``
    Cloud ``j`` is every cell of the ``j``-th value of ``sample_key`` (donors, patients);
    ``data.max_points`` subsamples large ones. ``label_key`` must be a sample-level column
    (one value per sample); ``metadata["sample"]`` holds the sample names.

Niches share their cells, so the clouds are :class:`~wormhole.data.gathered.GatheredPoints`:
the ``[cells, features]`` table once and a ``[niches, k]`` index into it. Coordinates of a
batch are gathered when it is drawn; no ``[cells, k, features]`` array is ever built.

``path`` is an ``.h5ad`` file, or ``scanpy:NAME`` for a data set of ``scanpy.datasets``
(``scanpy:pbmc68k_reduced`` ships inside scanpy and needs no network). From Python,
:func:`anndata_clouds` takes an AnnData object and the same options.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wormhole.data.clouds import PointClouds
from wormhole.data.gathered import PADDING, GatheredPoints
from wormhole.extras import MissingExtra

__all__ = ["MODES", "anndata_clouds", "cell_table", "load_anndata", "niche_index",
           "read_anndata"]

MODES = ("niches", "samples")
NEIGHBOURS = ("knn", "graph")
_INSTALL = 'pip install -e ".[cell]" (anndata and scanpy)'


def read_anndata(path: str | Path):
    """An AnnData from an ``.h5ad`` file or ``scanpy:NAME`` (a ``scanpy.datasets`` set)."""
    text = str(path)
    if text.startswith("scanpy:"):
        try:
            import scanpy
        except ImportError:
            raise MissingExtra(f"data.path '{text}' needs scanpy: {_INSTALL}.") from None
        name = text.split(":", 1)[1]
        maker = getattr(scanpy.datasets, name, None)
        if maker is None or name.startswith("_"):
            known = [n for n in dir(scanpy.datasets) if not n.startswith("_")]
            raise ValueError(f"data.path '{text}': scanpy.datasets has no '{name}'; it has "
                             f"{', '.join(known)}.")
        return maker()
    try:
        import anndata
    except ImportError:
        raise MissingExtra(f"Reading '{text}' needs anndata: {_INSTALL}.") from None
    file = Path(text).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"No AnnData file at '{text}' (data.path); expected an .h5ad "
                                f"file, or scanpy:NAME for a scanpy data set.")
    return anndata.read_h5ad(file)


def _keys(mapping) -> str:
    return ", ".join(repr(k) for k in mapping.keys()) or "none"


def _dense(values, what: str) -> np.ndarray:
    """A numeric 2-D numpy array from a dense, sparse or DataFrame value."""
    if hasattr(values, "toarray"):
        values = values.toarray()
    elif hasattr(values, "to_numpy"):
        values = values.to_numpy()
    values = np.asarray(values)
    if values.dtype == object or not (np.issubdtype(values.dtype, np.number)
                                      or values.dtype == bool):
        raise ValueError(f"{what} must hold numbers, but its dtype is {values.dtype}.")
    if values.ndim != 2:
        raise ValueError(f"{what} must be a [cells, columns] matrix, got shape {values.shape}.")
    return values


def _checked_rows(adata, values: np.ndarray, what: str) -> np.ndarray:
    """``values`` as float32 after checking one finite row per cell."""
    if values.shape[0] != adata.n_obs:
        raise ValueError(f"{what} has {values.shape[0]} rows, but the AnnData has "
                         f"{adata.n_obs} cells (obs); it must have one row per cell.")
    values = values.astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        cell, column = np.argwhere(bad)[0]
        raise ValueError(f"{what} has {int(bad.sum())} NaN or infinite entries; the first is "
                         f"cell {adata.obs_names[cell]!r} (row {cell}), column {column}. "
                         f"Fill or drop those cells first.")
    return values


def cell_table(adata, rep_key: str = "X") -> np.ndarray:
    """``[cells, features]`` float32: ``adata.X`` (``rep_key="X"``) or ``adata.obsm[rep_key]``.

    Raises:
      ValueError: ``rep_key`` is not in ``obsm`` (the message lists the keys that are),
        non-numeric or non-finite entries, or a row count other than ``n_obs``.
    """
    if rep_key == "X":
        if adata.X is None:
            raise ValueError(f"data.options.rep_key 'X': this AnnData has no X; use an obsm "
                             f"key ({_keys(adata.obsm)}).")
        return _checked_rows(adata, _dense(adata.X, "adata.X"), "adata.X")
    if rep_key not in adata.obsm:
        raise ValueError(f"data.options.rep_key: no obsm['{rep_key}'] in the AnnData; its obsm "
                       f"keys are {_keys(adata.obsm)} (or use 'X').")
    what = f"obsm['{rep_key}']"
    return _checked_rows(adata, _dense(adata.obsm[rep_key], what), what)


def _obs_column(adata, key: str, option: str):
    if key not in adata.obs.columns:
        raise ValueError(f"data.options.{option}: no obs column '{key}' in the AnnData; its obs "
                       f"columns are {_keys(adata.obs)}.")
    column = adata.obs[key]
    missing = np.asarray(column.isna())
    if missing.any():
        first = adata.obs_names[int(np.argmax(missing))]
        raise ValueError(f"data.options.{option}: obs['{key}'] is missing for "
                         f"{int(missing.sum())} cells (the first is {first!r}).")
    return column


def _codes(column) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes ``[cells]`` and the names they stand for (categories keep their order)."""
    if hasattr(column, "cat"):
        return (np.asarray(column.cat.codes, np.int64),
                tuple(str(c) for c in column.cat.categories))
    names, codes = np.unique(np.asarray(column).astype(str), return_inverse=True)
    return codes.astype(np.int64), tuple(str(n) for n in names)


def niche_index(coords: np.ndarray, groups: np.ndarray | None, k: int,
                include_self: bool = True, group_names: tuple[str, ...] = ()) -> np.ndarray:
    """``[cells, k]``: row ``i`` holds cell ``i``'s niche, nearest first.

    With ``include_self`` the niche is cell ``i`` (first) and its ``k - 1`` nearest other
    cells; without, its ``k`` nearest other cells. Neighbours come from the cell's own group
    (``groups [cells]`` integer codes; ``None``: one group). Ties in distance are broken by
    scikit-learn's KD-tree.

    Raises:
      ValueError: a group with too few cells for a niche of ``k``.
    """
    from sklearn.neighbors import NearestNeighbors

    others = k - 1 if include_self else k
    index = np.empty((len(coords), k), np.int64)
    groups = np.zeros(len(coords), np.int64) if groups is None else groups
    for group in np.unique(groups):
        cells = np.flatnonzero(groups == group)
        if len(cells) < others + 1:
            name = group_names[group] if group_names else "all cells"
            raise ValueError(f"Sample {name!r} has {len(cells)} cells, fewer than the "
                             f"{others + 1} a niche of k={k} needs "
                             f"({'with' if include_self else 'without'} the centre cell); "
                             f"lower data.options.k or leave the sample out.")
        near = np.empty((len(cells), 0), np.int64)
        if others:
            # kneighbors() without a query never returns a cell as its own neighbour, even
            # among cells at identical coordinates.
            near = NearestNeighbors(n_neighbors=others).fit(coords[cells]).kneighbors(
                return_distance=False)
        local = np.concatenate([np.arange(len(cells))[:, None], near], 1) if include_self \
            else near
        index[cells] = cells[local]
    return index


def _graph_index(adata, graph_key: str, groups: np.ndarray | None,
                 include_self: bool) -> np.ndarray:
    """``[cells, n]`` niches from the graph ``obsp[graph_key]`` (``PADDING`` after each)."""
    if graph_key not in adata.obsp:
        raise ValueError(f"data.options.graph_key: no obsp['{graph_key}'] in the AnnData; its "
                       f"obsp keys are {_keys(adata.obsp)} (squidpy.gr.spatial_neighbors "
                       f"writes 'spatial_connectivities'; or use neighbours: knn).")
    import scipy.sparse

    graph = scipy.sparse.csr_matrix(adata.obsp[graph_key])
    rows = []
    for cell in range(adata.n_obs):
        near = graph.indices[graph.indptr[cell]:graph.indptr[cell + 1]]
        near = near[near != cell]
        if groups is not None:
            near = near[groups[near] == groups[cell]]
        rows.append(np.concatenate([[cell], near]) if include_self else near)
    sizes = np.array([len(r) for r in rows])
    if sizes.min() == 0:
        cell = adata.obs_names[int(np.argmin(sizes))]
        raise ValueError(f"Cell {cell!r} has no neighbours in obsp['{graph_key}'] (within its "
                         f"sample); its niche would be empty. Use include_self: true.")
    index = np.full((adata.n_obs, sizes.max()), PADDING, np.int64)
    for cell, row in enumerate(rows):
        index[cell, :len(row)] = row
    return index


def anndata_clouds(adata, mode: str = "niches", rep_key: str = "X",
                   spatial_key: str = "spatial", sample_key: str | None = None,
                   label_key: str | None = None, k: int = 11, include_self: bool = True,
                   neighbours: str = "knn",
                   graph_key: str = "spatial_connectivities") -> PointClouds:
    """The clouds of an AnnData object (see the module docstring for each option).

    Returns:
      Gathered :class:`PointClouds`: niches (one per cell, in ``obs`` order) or samples (in
      the order of the ``sample_key`` values), labels from ``label_key``.

    Raises:
      ValueError: a missing ``obsm``, ``obs`` or ``obsp`` key (the message lists those that
        exist), bad features (non-numeric, non-finite, wrong row count), a sample with
        fewer cells than a niche needs, or an invalid option.
    """
    if mode not in MODES:
        raise ValueError(f"data.options.mode must be one of {', '.join(MODES)}, got {mode!r}.")
    if neighbours not in NEIGHBOURS:
        raise ValueError(f"data.options.neighbours must be one of {', '.join(NEIGHBOURS)}, "
                         f"got {neighbours!r}.")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"data.options.k must be a positive integer, got {k!r}.")
    table = cell_table(adata, rep_key)
    groups, group_names = None, ()
    if sample_key is not None:
        groups, group_names = _codes(_obs_column(adata, sample_key, "sample_key"))
    labels, label_names = None, None
    if label_key is not None:
        labels, label_names = _codes(_obs_column(adata, label_key, "label_key"))
    if mode == "samples":
        return _sample_clouds(table, groups, group_names, labels, label_names, label_key)
    if neighbours == "graph":
        index = _graph_index(adata, graph_key, groups, include_self)
    else:
        if spatial_key not in adata.obsm:
            raise ValueError(f"data.options.spatial_key: no obsm['{spatial_key}'] in the "
                           f"AnnData; its obsm keys are {_keys(adata.obsm)}.")
        what = f"obsm['{spatial_key}']"
        coords = _checked_rows(adata, _dense(adata.obsm[spatial_key], what), what)
        index = niche_index(coords, groups, int(k), include_self, group_names)
    sizes = (index != PADDING).sum(axis=1).astype(np.int32)
    weights = np.where(index != PADDING, 1.0 / sizes[:, None], 0.0).astype(np.float32)
    metadata = {"cell": np.arange(adata.n_obs)}
    if groups is not None:
        metadata["sample"] = np.asarray(group_names, dtype=str)[groups]
    return PointClouds(GatheredPoints(table, index), weights, sizes, labels, label_names,
                       metadata)


def _sample_clouds(table, groups, group_names, labels, label_names, label_key) -> PointClouds:
    if groups is None:
        raise ValueError("data.options.mode 'samples' needs data.options.sample_key: the obs "
                         "column whose values (donors, patients, slides) are the clouds.")
    present = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in present]
    sizes = np.array([len(m) for m in members], np.int32)
    index = np.full((len(members), sizes.max()), PADDING, np.int64)
    for row, cells in enumerate(members):
        index[row, :len(cells)] = cells
    weights = np.where(index != PADDING, 1.0 / sizes[:, None], 0.0).astype(np.float32)
    sample_labels = None
    if labels is not None:
        sample_labels = np.empty(len(members), np.int64)
        for row, cells in enumerate(members):
            values = np.unique(labels[cells])
            if len(values) > 1:
                shown = ", ".join(label_names[v] for v in values[:5])
                raise ValueError(f"data.options.label_key: obs['{label_key}'] takes "
                                 f"{len(values)} values within sample "
                                 f"{group_names[present[row]]!r} ({shown}); in samples mode "
                                 f"it must be a sample-level column (one value per sample).")
            sample_labels[row] = values[0]
    names = np.asarray(group_names, dtype=str)[present]
    return PointClouds(GatheredPoints(table, index), weights, sizes, sample_labels,
                       label_names, {"sample": names})


def load_anndata(path: str | None = None, seed: int = 0, mode: str = "niches",
                 rep_key: str = "X", spatial_key: str = "spatial", sample_key: str | None = None,
                 label_key: str | None = None, k: int = 11, include_self: bool = True,
                 neighbours: str = "knn",
                 graph_key: str = "spatial_connectivities") -> PointClouds:
    """The ``anndata`` loader: :func:`anndata_clouds` of the file at ``path`` (the options
    are listed here so that ``data.options`` is checked against them)."""
    if not path:
        raise ValueError("data.path: the 'anndata' loader needs an .h5ad file (or "
                         "scanpy:NAME, e.g. scanpy:pbmc68k_reduced).")
    return anndata_clouds(read_anndata(path), mode, rep_key, spatial_key, sample_key,
                          label_key, k, include_self, neighbours, graph_key)
