"""The AnnData loader (niches, samples, the sample boundary, each error), gathered clouds,
training on AnnData and the embeddings written back (wormhole/data/loaders/anndata.py,
wormhole/data/gathered.py, wormhole/cells.py)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

anndata = pytest.importorskip(
    "anndata", reason='anndata is not installed (pip install -e ".[cell]" or ".[dev]")')

import ot  # noqa: E402
import scipy.sparse  # noqa: E402
from sklearn.neighbors import kneighbors_graph  # noqa: E402

import wormhole  # noqa: E402
from wormhole.cells import EMBEDDED_FILE, SPLIT_COLUMN  # noqa: E402
from wormhole.config import ConfigError, config_from_dict  # noqa: E402
from wormhole.data import Normalization, PointClouds, subsample_clouds  # noqa: E402
from wormhole.data.gathered import GatheredPoints  # noqa: E402
from wormhole.data.loaders.anndata import anndata_clouds, load_anndata  # noqa: E402
from wormhole.data.loaders.tissue import synthetic_tissue  # noqa: E402
from wormhole.evaluate import nearest_neighbor_accuracy  # noqa: E402
from wormhole.run_setup import resolve_cost_scale, resolve_model_spec  # noqa: E402
from wormhole.trainer import sample_batch  # noqa: E402

from .conftest import load_script  # noqa: E402


def _tissue(**kwargs):
    args = {"num_cells": 600, "num_samples": 3, "num_features": 12, "num_cell_types": 6,
            "num_niche_types": 3, "regions_per_sample": 4, "seed": 1}
    return synthetic_tissue(**{**args, **kwargs})


def _brute_niche(coords, samples, cell, k, include_self=True):
    """The k nearest cells of ``cell`` within its sample, by sorting all distances."""
    same = np.flatnonzero(samples == samples[cell])
    dist = ((coords[same] - coords[cell]) ** 2).sum(1)
    order = same[np.argsort(dist, kind="stable")]
    if include_self:
        return np.concatenate([[cell], order[order != cell][:k - 1]])
    return order[order != cell][:k]


# --------------------------------------------------------------------------- the loader


@pytest.mark.parametrize("include_self", [True, False])
def test_niches_are_the_nearest_cells_of_the_same_sample(include_self):
    adata = _tissue()
    k = 7
    clouds = anndata_clouds(adata, sample_key="sample", label_key="niche_type", k=k,
                            include_self=include_self)
    coords, samples = adata.obsm["spatial"], adata.obs["sample"].to_numpy()
    assert isinstance(clouds.points, GatheredPoints) and len(clouds) == adata.n_obs
    assert np.all(clouds.sizes == k) and np.allclose(clouds.weights, 1 / k)
    for cell in range(0, adata.n_obs, 7):
        expected = _brute_niche(coords, samples, cell, k, include_self)
        index = clouds.points.index[cell]
        assert set(index.tolist()) == set(expected.tolist())
        assert (index[0] == cell) == include_self
        np.testing.assert_array_equal(clouds.cloud(cell)[0], adata.X[index])
        assert set(samples[index]) == {samples[cell]}
    labels = adata.obs["niche_type"].cat.codes.to_numpy()
    np.testing.assert_array_equal(clouds.labels, labels)
    assert clouds.label_names == tuple(adata.obs["niche_type"].cat.categories)
    np.testing.assert_array_equal(clouds.metadata["sample"], samples.astype(str))


def test_without_sample_key_niches_cross_samples():
    # The slides share one coordinate frame, so the sample boundary is what keeps niches apart.
    adata = _tissue()
    index = anndata_clouds(adata, k=7).points.index
    samples = adata.obs["sample"].to_numpy()
    crossing = [len(set(samples[row])) > 1 for row in index]
    assert np.mean(crossing) > 0.5


def test_graph_niches_follow_the_connectivity_graph_within_samples():
    adata = _tissue()
    graph = kneighbors_graph(adata.obsm["spatial"], 5, include_self=False)
    adata.obsp["spatial_connectivities"] = graph.tocsr()
    clouds = anndata_clouds(adata, sample_key="sample", neighbours="graph")
    samples = adata.obs["sample"].to_numpy()
    for cell in range(0, adata.n_obs, 11):
        near = graph[cell].indices
        expected = {cell, *near[samples[near] == samples[cell]].tolist()}
        size = clouds.sizes[cell]
        assert set(clouds.points.index[cell, :size].tolist()) == expected
        assert np.allclose(clouds.weights[cell, :size], 1 / size)
        assert np.all(clouds.weights[cell, size:] == 0)
        assert np.all(clouds.points[cell, size:] == 0)
    assert clouds.sizes.min() < clouds.sizes.max()  # boundary cells lose neighbours


def test_sparse_and_dense_features_give_the_same_niches():
    dense = _tissue()
    sparse = dense.copy()
    sparse.X = scipy.sparse.csr_matrix(dense.X)
    a = anndata_clouds(dense, sample_key="sample", k=5)
    b = anndata_clouds(sparse, sample_key="sample", k=5)
    np.testing.assert_array_equal(a.points[:], b.points[:])


def test_samples_mode_takes_every_cell_of_a_sample():
    adata = _tissue()
    adata.obs["donor_group"] = adata.obs["sample"].map(
        {"slide_0": "a", "slide_1": "b", "slide_2": "a"}).astype("category")
    clouds = anndata_clouds(adata, mode="samples", sample_key="sample",
                            label_key="donor_group")
    samples = adata.obs["sample"].to_numpy()
    assert clouds.metadata["sample"].tolist() == ["slide_0", "slide_1", "slide_2"]
    for row, name in enumerate(clouds.metadata["sample"]):
        points, weights = clouds.cloud(row)
        np.testing.assert_array_equal(points, adata.X[samples == name])
        assert np.allclose(weights, 1 / len(points))
    assert [clouds.label_names[v] for v in clouds.labels] == ["a", "b", "a"]
    sub = subsample_clouds(clouds, 50, seed=0)
    assert sub.gathered and np.all(sub.sizes == 50) and np.allclose(sub.weights.sum(1), 1)
    dense = subsample_clouds(PointClouds(clouds.points[:], clouds.weights, clouds.sizes), 50)
    np.testing.assert_array_equal(sub.points[:], dense.points)


# --------------------------------------------------------------------------- the errors


def _error(adata, match, **options):
    with pytest.raises(ValueError, match=match):
        anndata_clouds(adata, **options)


def test_missing_keys_name_the_keys_that_exist():
    adata = _tissue()
    adata.obsm["X_pca"] = adata.X[:, :4]
    _error(adata, r"no obsm\['X_scvi'\].*'spatial', 'X_pca'", rep_key="X_scvi")
    _error(adata, r"no obsm\['coords'\].*'spatial', 'X_pca'", spatial_key="coords")
    _error(adata, r"no obs column 'slide'.*'sample', 'cell_type', 'niche_type'",
           sample_key="slide")
    _error(adata, r"label_key: no obs column 'celltype'.*'cell_type'", label_key="celltype")
    _error(adata, r"no obsp\['spatial_connectivities'\].*obsp keys are none",
           neighbours="graph")


def test_a_sample_smaller_than_a_niche_is_named():
    adata = _tissue()
    adata = adata[(adata.obs["sample"] != "slide_2") | (np.arange(adata.n_obs) % 50 == 0)]
    _error(adata.copy(), r"Sample 'slide_2' has 4 cells, fewer than the 11", k=11,
           sample_key="sample")


def test_bad_features_are_refused():
    adata = _tissue()
    adata.X[17, 3] = np.nan
    _error(adata, r"NaN or infinite.*'cell_17' \(row 17\), column 3")
    adata = _tissue()
    adata.obsm["names"] = np.full((adata.n_obs, 2), "a", dtype=object)
    _error(adata, r"obsm\['names'\] must hold numbers", rep_key="names")
    adata = _tissue()
    adata.obsm["spatial"][5, 0] = np.inf
    _error(adata, r"obsm\['spatial'\] has 1 NaN or infinite.*'cell_5'")


def test_a_representation_with_the_wrong_row_count_is_refused():
    # AnnData itself checks obsm shapes; the loader takes any object with AnnData's fields
    # (obs, obsm, obsp, X, n_obs, obs_names) and checks them too.
    adata = _tissue()
    like = SimpleNamespace(obs=adata.obs, obsm={**adata.obsm, "X_short": adata.X[:-3]},
                           obsp={}, X=adata.X, n_obs=adata.n_obs, obs_names=adata.obs_names)
    _error(like, r"obsm\['X_short'\] has 597 rows, but the AnnData has 600 cells",
           rep_key="X_short")
    assert len(anndata_clouds(like, k=3)) == 600


def test_invalid_options_and_missing_path_are_refused(tmp_path):
    adata = _tissue()
    _error(adata, "mode must be one of niches, samples", mode="cells")
    _error(adata, "needs data.options.sample_key", mode="samples")
    _error(adata, "sample-level column", mode="samples", sample_key="sample",
           label_key="cell_type")
    with pytest.raises(FileNotFoundError, match="No AnnData file"):
        load_anndata(str(tmp_path / "missing.h5ad"))
    with pytest.raises(ValueError, match="unknown data set|not an option"):
        wormhole.data.load_clouds(config_from_dict(
            {"data": {"name": "anndata", "path": "x.h5ad", "options": {"rep": "X"}}}).data)


# --------------------------------------------------------------------------- gathered clouds


def test_gathered_clouds_prepare_like_their_dense_copy():
    adata = _tissue()
    gathered = anndata_clouds(adata, sample_key="sample", k=6)
    dense = PointClouds(gathered.points[:], gathered.weights, gathered.sizes, gathered.labels)
    config = config_from_dict({"data": {"name": "anndata", "path": "x.h5ad"},
                               "loss": {"reconstruction": 0.0}})
    norm_g, norm_d = Normalization.fit(gathered), Normalization.fit(dense)
    np.testing.assert_array_equal(norm_g.shift, norm_d.shift)
    assert norm_g.scale == norm_d.scale
    applied = norm_g.apply_to(gathered)
    assert applied.gathered
    np.testing.assert_allclose(applied.points[:], norm_d.apply_to(dense).points, atol=1e-6)
    batch_g = sample_batch(applied.subset(slice(100, 400)), 3, 16, seed=0)
    batch_d = sample_batch(norm_d.apply_to(dense).subset(slice(100, 400)), 3, 16, seed=0)
    np.testing.assert_allclose(batch_g.points, batch_d.points, atol=1e-6)
    assert resolve_cost_scale(config, gathered) == pytest.approx(
        resolve_cost_scale(config, dense), rel=1e-6)
    assert resolve_model_spec(config, gathered) == resolve_model_spec(config, dense)


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small niche model fitted on an AnnData object, and every dense copy it made."""
    adata = synthetic_tissue(num_cells=1500, num_samples=3, num_features=16,
                             num_cell_types=8, num_niche_types=4, regions_per_sample=6,
                             noise=0.3, seed=3)
    workdir = tmp_path_factory.mktemp("cells") / "run"
    config = config_from_dict({
        "name": "cells",
        "data": {"name": "anndata", "path": "unused.h5ad", "test_fraction": 0.2,
                 "options": {"sample_key": "sample", "label_key": "niche_type", "k": 8}},
        "model": {"emb_dim": 16, "width": 32, "num_layers": 1, "num_heads": 2,
                  "mlp_dim": 64},
        "ot": {"kind": "S2", "epsilon": 0.05, "max_iterations": 300},
        "loss": {"reconstruction": 0.0},
        "train": {"steps": 200, "batch_size": 16, "learning_rate": 2e-3, "warmup_steps": 10,
                  "log_every": 100, "eval_every": 200},
        "checkpoint": {"every": 200},
        "eval": {"num_pairs": 100}})
    copies = []
    original = GatheredPoints.__array__

    def recording(self, dtype=None, copy=None):
        copies.append(self.shape[0])
        return original(self, dtype, copy)

    GatheredPoints.__array__ = recording
    try:
        model = wormhole.fit(adata, config=config, workdir=workdir, progress=False)
    finally:
        GatheredPoints.__array__ = original
    return model, adata, copies


def test_training_never_makes_all_niches_dense(trained):
    model, adata, copies = trained
    assert max(copies, default=0) <= 16  # a few clouds at most (the init sample)


def test_niche_embeddings_match_exact_ot_and_separate_niche_types(trained):
    model, adata, _ = trained
    embedded = anndata.read_h5ad(model.workdir / EMBEDDED_FILE)
    test = np.flatnonzero(embedded.obs[SPLIT_COLUMN] == "test")
    train = np.flatnonzero(embedded.obs[SPLIT_COLUMN] == "train")
    assert len(test) == 300 and len(train) == 1200
    emb = embedded.obsm["X_wormhole"]
    clouds = anndata_clouds(adata, sample_key="sample", k=8)
    rng = np.random.default_rng(0)
    first, second = rng.choice(test, 60), rng.choice(test, 60)
    exact = [ot.emd2(clouds.cloud(i)[1], clouds.cloud(j)[1],
                     ot.dist(clouds.cloud(i)[0], clouds.cloud(j)[0]))
             for i, j in zip(first, second, strict=True)]
    predicted = model.embedding_distances(emb[first], emb[second])
    assert np.corrcoef(predicted, exact)[0, 1] > 0.8
    labels = adata.obs["niche_type"].cat.codes.to_numpy()
    accuracy = nearest_neighbor_accuracy(emb[test], labels[test], emb[train], labels[train])
    print(f"held-out Pearson vs exact W2: {np.corrcoef(predicted, exact)[0, 1]:.3f}, "
          f"1-NN niche-type accuracy: {accuracy:.3f}")
    assert accuracy > 0.75  # four niche types: chance is about 0.25


def test_the_run_writes_its_cells_embeddings_back(trained):
    model, adata, _ = trained
    embedded = anndata.read_h5ad(model.workdir / EMBEDDED_FILE)
    assert list(embedded.obs_names) == list(adata.obs_names)
    np.testing.assert_array_equal(embedded.obsm["spatial"], adata.obsm["spatial"])
    # Row i is the embedding of cell i's niche, recomputed here from a brute-force k-NN.
    samples = adata.obs["sample"].to_numpy()
    cells = [0, 700, 1499]
    niches = [adata.X[_brute_niche(adata.obsm["spatial"], samples, c, 8)] for c in cells]
    np.testing.assert_allclose(embedded.obsm["X_wormhole"][cells], model.encode(niches),
                               atol=1e-4)


def test_embed_anndata_writes_niches_to_obsm_and_samples_to_uns(trained):
    model, _, _ = trained
    new = synthetic_tissue(num_cells=400, num_samples=2, num_features=16, num_cell_types=8,
                           num_niche_types=4, seed=9)
    new.obs["slide"] = new.obs.pop("sample")
    with pytest.raises(ValueError, match="no obs column 'sample'"):
        model.embed_anndata(new)
    out = model.embed_anndata(new, key="niche_emb", options={"sample_key": "slide"})
    assert out is new and new.obsm["niche_emb"].shape == (400, 16)
    samples = new.obs["slide"].to_numpy()
    niche = new.X[_brute_niche(new.obsm["spatial"], samples, 123, 8)]
    np.testing.assert_allclose(new.obsm["niche_emb"][123], model.encode([niche])[0],
                               atol=1e-4)
    model.embed_anndata(new, key="sample_emb",
                        options={"mode": "samples", "sample_key": "slide"})
    table = new.uns["sample_emb"]
    assert list(table.index) == ["slide_0", "slide_1"] and table.shape == (2, 16)
    np.testing.assert_allclose(table.loc["slide_1"].to_numpy(),
                               model.encode([new.X[samples == "slide_1"]])[0], atol=1e-4)
    new.obsm["X_small"] = new.X[:, :5]
    with pytest.raises(ValueError, match="gives 5 features per cell, but the run was trained "
                                         "on 16"):
        model.embed_anndata(new, options={"sample_key": "slide", "rep_key": "X_small"})
    # The embeddings never replace what the niches are read from.
    new.obsm["X_rep"] = new.X.copy()
    for key, option in (("X_rep", "rep_key"), ("spatial", "spatial_key")):
        with pytest.raises(ValueError, match=f"key '{key}' is where the cells' {option} is"):
            model.embed_anndata(new, key=key, options={"sample_key": "slide",
                                                       "rep_key": "X_rep"})
    np.testing.assert_array_equal(new.obsm["X_rep"], new.X)
    # max_points subsamples the niches (their 8 cells: another measure); batch_size only
    # splits the work.
    options = {"sample_key": "slide"}
    few = model.embed_anndata(new, key="few", options=options, max_points=3).obsm["few"]
    assert np.abs(few - new.obsm["niche_emb"]).max() > 1e-3
    batched = model.embed_anndata(new, key="b", options=options, max_points=3, batch_size=5)
    np.testing.assert_allclose(batched.obsm["b"], few, atol=1e-5)


def test_embed_script_writes_an_h5ad(trained, tmp_path):
    model, _, _ = trained
    new = synthetic_tissue(num_cells=300, num_samples=2, num_features=16, num_cell_types=8,
                           num_niche_types=4, seed=5)
    new.obsm["xy"] = new.obsm.pop("spatial")
    new.write_h5ad(tmp_path / "new.h5ad")
    script = load_script("embed")
    base = ["--checkpoint", str(model.workdir), "--input", str(tmp_path / "new.h5ad"),
            "--output", str(tmp_path / "out.h5ad")]
    assert script.main(base) == 1  # no obsm['spatial'] in the new file
    assert script.main([*base, "--set", "data.options.spatial_key=xy"]) == 0
    out = anndata.read_h5ad(tmp_path / "out.h5ad")
    reference = model.embed_anndata(new, options={"spatial_key": "xy"}).obsm["X_wormhole"]
    np.testing.assert_allclose(out.obsm["X_wormhole"], reference, atol=1e-6)
    assert script.main([*base, "--set", "train.steps=3"]) == 1
    # A misspelt loader option is named, as training names it, before any work.
    assert script.main([*base, "--set", "data.options.spatial_kee=xy"]) == 1
    with pytest.raises(ConfigError, match=r"data.options.spatial_kee: not an option of the "
                       r"'anndata' loader. Did you mean 'spatial_key'\?"):
        model.embed_anndata(new, options={"spatial_kee": "xy"})


def test_a_fit_that_cannot_read_its_cells_leaves_no_run_behind(tmp_path):
    adata = synthetic_tissue(num_cells=60, num_samples=1, num_features=4, num_cell_types=3,
                             num_niche_types=2, seed=1)
    adata.obsm["xy"] = adata.obsm.pop("spatial")
    config = config_from_dict({"data": {"name": "anndata", "path": "unused.h5ad",
                                        "options": {"k": 4}},
                               "train": {"steps": 1}})
    with pytest.raises(ValueError, match=r"obsm\['spatial'\]"):
        wormhole.fit(adata, config=config, workdir=tmp_path / "runs" / "bad", progress=False)
    assert not (tmp_path / "runs").exists()
    # A directory the user made stays, empty as it was.
    (tmp_path / "mine").mkdir()
    with pytest.raises(ValueError, match=r"obsm\['spatial'\]"):
        wormhole.fit(adata, config=config, workdir=tmp_path / "mine", progress=False)
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())


def test_a_missing_optional_package_is_an_error_line_not_a_traceback(tmp_path, monkeypatch,
                                                                    capsys):
    # pbmc_niches.yaml reads scanpy's bundled data set; without scanpy the script says what
    # to install and exits 1.
    monkeypatch.setitem(sys.modules, "scanpy", None)  # import scanpy fails
    assert load_script("train").main(["--config", "pbmc_niches.yaml", "--no-progress",
                        "--set", f"train.workdir={tmp_path / 'run'}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: data.path 'scanpy:pbmc68k_reduced' needs scanpy: pip install")
