"""OT nearest-neighbour search: candidates, re-ranking against POT and ott-jax, save/load."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
import ot as pot
import pytest

import wormhole
from wormhole.config import config_from_dict
from wormhole.evaluate import run_split
from wormhole.evaluate.ground_truth import ground_truth_distances
from wormhole.inference import Wormhole
from wormhole.search import BruteForce, load_index
from wormhole.search import candidates as candidates_module

from .conftest import REPO, load_script


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A few steps on a slice of the digits: a model whose embeddings are far from exact
    (no decoder: search reads the encoder alone)."""
    workdir = tmp_path_factory.mktemp("run") / "search"
    config = config_from_dict({
        "name": "search",
        "data": {"name": "digits", "max_clouds": 120, "test_fraction": 0.25},
        "model": {"emb_dim": 8, "width": 16, "num_layers": 1, "num_heads": 2, "mlp_dim": 32,
                  "decoder_layers": 0},
        "ot": {"kind": "S2", "epsilon": 0.05, "max_iterations": 100},
        "loss": {"reconstruction": 0.0},
        "train": {"steps": 8, "batch_size": 8, "log_every": 8, "eval_every": 8,
                  "workdir": str(workdir)},
        "checkpoint": {"every": 8},
        "eval": {"num_pairs": 20},
    })
    model = wormhole.train(config, progress=False)
    collection = run_split(model.config, "train")
    queries = run_split(model.config, "test").subset(slice(0, 6))
    return model, collection, queries


def _exact_w2(model, query, collection):
    """Exact W2^2 in target units from one query to every collection cloud, by POT."""
    norm = model.normalization
    x, a = query
    out = []
    for i in range(len(collection)):
        y, b = collection.cloud(i)
        cost = pot.dist(norm.apply(x), norm.apply(y), metric="sqeuclidean")
        out.append(pot.emd2(a.astype(np.float64), b.astype(np.float64), cost.astype(np.float64))
                   / model.cost_scale)
    return np.array(out)


def test_brute_force_candidates_are_the_nearest_rows_across_blocks(monkeypatch):
    rng = np.random.default_rng(0)
    rows, queries = rng.normal(size=(50, 5)), rng.normal(size=(11, 5))
    monkeypatch.setattr(candidates_module, "_ROW_BLOCK", 16)  # 4 blocks, the last padded
    monkeypatch.setattr(candidates_module, "_QUERY_BLOCK", 4)
    found = BruteForce(rows).search(queries, 7)
    truth = np.argsort(((queries[:, None] - rows[None]) ** 2).sum(-1), axis=1)[:, :7]
    np.testing.assert_array_equal(found, truth)


def test_exact_rerank_of_the_whole_collection_is_brute_force_pot(run):
    model, collection, queries = run
    index = model.index(collection)
    found = index.search(queries, k=5, rerank=len(collection), exact=True)
    assert found.measure == "exact W2"
    for q in range(len(queries)):
        truth = _exact_w2(model, queries.cloud(q), collection)
        np.testing.assert_allclose(found.distances[q], np.sort(truth)[:5], rtol=1e-5)
        np.testing.assert_allclose(truth[found.indices[q]], found.distances[q], rtol=1e-5)


def test_engine_rerank_matches_ott_sinkhorn_divergences(run):
    model, collection, queries = run
    index = model.index(collection)
    found = index.search(queries.subset(slice(0, 2)), k=4, rerank=30)
    assert found.measure == "S2"
    q_points, q_weights = queries.to_list()
    for q in range(2):
        norm = model.normalization
        xs = [norm.apply(q_points[q])] * 4
        pairs = [collection.cloud(int(i)) for i in found.indices[q]]
        truth = ground_truth_distances(xs, [q_weights[q]] * 4, [norm.apply(p) for p, _ in pairs],
                                       [w for _, w in pairs], kind="S2",
                                       epsilon=model.config.ot.epsilon,
                                       cost_scale=model.cost_scale, progress=False)
        np.testing.assert_allclose(found.distances[q], truth, rtol=0.02, atol=1e-4)
    assert np.all(np.diff(found.distances, axis=1) >= 0)
    # The self terms of every candidate were solved once and cached.
    assert np.isfinite(index._engine.self_values).sum() >= 30


def test_embedding_only_search_ranks_by_the_models_distance(run):
    model, collection, queries = run
    index = model.index(collection)
    found = index.search(queries, k=6, rerank=0)
    assert found.measure == "embedding"
    emb_q, emb_c = model.encode(queries), model.encode(collection)
    for q in range(len(queries)):
        dist = model.embedding_distances(np.repeat(emb_q[q:q + 1], len(emb_c), 0), emb_c)
        np.testing.assert_allclose(found.distances[q], np.sort(dist)[:6], rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(found.labels, collection.labels[found.indices])
    original = index.search(queries, k=6, rerank=0, units="original")
    np.testing.assert_allclose(original.distances, model.to_original_units(found.distances))


def test_a_query_from_the_collection_finds_itself_first(run):
    model, collection, _ = run
    index = model.index(collection)
    found = index.search(collection.subset([3, 17]), k=3, rerank=20, exact=True)
    np.testing.assert_array_equal(found.indices[:, 0], [3, 17])
    np.testing.assert_allclose(found.distances[:, 0], 0.0, atol=1e-9)


def test_saved_index_loads_with_its_run_and_refuses_another_model(run, tmp_path):
    model, collection, queries = run
    index = model.index(collection)
    before = index.search(queries, k=5, rerank=25)
    path = index.save(tmp_path / "index")
    assert not (tmp_path / "index.partial").exists()
    loaded = wormhole.load_index(path)
    assert len(loaded) == len(collection) and loaded.model.step == model.step
    assert np.isfinite(loaded._engine.self_values).sum() >= 25  # the cache came back
    after = loaded.search(queries, k=5, rerank=25)
    np.testing.assert_array_equal(after.indices, before.indices)
    np.testing.assert_allclose(after.distances, before.distances, rtol=1e-5)
    other = Wormhole(model.config, model.spec, jax.tree.map(lambda p: 1.5 * p, model.params),
                     model.normalization, model.cost_scale, model.workdir, model.step)
    with pytest.raises(ValueError, match="embeds its clouds differently"):
        load_index(path, other)
    with pytest.raises(FileNotFoundError, match="No search index"):
        load_index(tmp_path)
    # Labels given as names come back as names; a label the run format cannot hold is
    # refused when the index is made, not when it is loaded.
    points, weights = collection.subset(slice(0, 10)).to_list()
    names = np.array(["even", "odd"])[np.arange(10) % 2]
    named = model.index(points, weights, labels=names)
    path = named.save(tmp_path / "named")
    again = load_index(path).search(points[:2], weights[:2], k=2, rerank=0)
    np.testing.assert_array_equal(again.labels, named.search(points[:2], weights[:2], k=2,
                                                             rerank=0).labels)
    assert again.labels.dtype.kind == "U"
    # A save replaces an index saved before, never a run directory or other files.
    assert named.save(path) == path and len(load_index(path)) == 10
    run_files = sorted(p.name for p in Path(model.workdir).iterdir())
    for target in (Path(model.workdir), path / "clouds.npz"):
        with pytest.raises(ValueError, match="Cannot save the index to .*(other files|a file)"):
            named.save(target)
    assert sorted(p.name for p in Path(model.workdir).iterdir()) == run_files
    with pytest.raises(ValueError, match="labels: cloud 1 has label -1"):
        model.index(points, weights, labels=[0, -1] * 5)


def test_bad_search_arguments_are_named(run):
    model, collection, queries = run
    index = model.index(collection.subset(slice(0, 12)))
    with pytest.raises(ValueError, match="larger than the collection"):
        index.search(queries, k=13)
    with pytest.raises(ValueError, match="smaller than k"):
        index.search(queries, k=10, rerank=5)
    with pytest.raises(ValueError, match="rerank must be 0 or at least k, got -1"):
        index.search(queries, k=2, rerank=-1)
    with pytest.raises(ValueError, match="positive integer"):
        index.search(queries, k=0)
    with pytest.raises(ValueError, match="3-D.*expects 2-D"):
        index.search([np.zeros((4, 3))], k=2)
    with pytest.raises(ValueError, match="empty collection"):
        model.index(collection.subset(slice(0, 0)))
    with pytest.raises(ValueError, match="Unknown search backend"):
        model.index(collection, backend="annoy")


def test_hnsw_backend_finds_most_brute_force_neighbours():
    pytest.importorskip("faiss", reason="faiss-cpu not installed (pip install -e '.[ann]')")
    from wormhole.search import FaissHNSW

    rng = np.random.default_rng(1)
    rows, queries = rng.normal(size=(3000, 16)), rng.normal(size=(50, 16))
    truth = BruteForce(rows).search(queries, 10)
    found = FaissHNSW(rows).search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall > 0.9


def test_search_script_writes_neighbours_and_a_picture(run, tmp_path, capsys):
    model, _, _ = run
    script = load_script("search")
    out, png, saved = tmp_path / "n.json", tmp_path / "n.png", tmp_path / "idx"
    code = script.main(["--checkpoint", str(model.workdir), "--index-split", "train",
                        "--query-split", "test", "--max-queries", "3", "--k", "4",
                        "--rerank", "12", "--exact", "--output", str(out), "--plot", str(png),
                        "--save-index", str(saved)])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["measure"] == "exact W2" and len(report["queries"]) == 3
    first = report["queries"][0]
    assert len(first["neighbours"]) == 4 and first["distances"] == sorted(first["distances"])
    assert png.stat().st_size > 1000
    # The saved index is read back by the same script.
    code = script.main(["--checkpoint", str(model.workdir), "--index", str(saved),
                        "--query-split", "test", "--max-queries", "3", "--k", "4",
                        "--rerank", "12", "--exact", "--output", str(out)])
    assert code == 0
    assert json.loads(out.read_text())["queries"][0]["neighbours"] == first["neighbours"]
    # Certified: the proven exact 4 nearest (12 candidates above may have missed some).
    code = script.main(["--checkpoint", str(model.workdir), "--index", str(saved),
                        "--query-split", "test", "--max-queries", "3", "--k", "4",
                        "--certified", "--output", str(out)])
    assert code == 0
    proven = json.loads(out.read_text())
    assert proven["measure"] == "exact W2 (certified)"
    for row, searched in zip(proven["queries"], report["queries"], strict=True):
        assert row["distances"][-1] <= searched["distances"][-1] + 1e-9
        assert 4 <= row["exact_solves"] <= proven["collection"]
    code = script.main(["--checkpoint", str(model.workdir), "--index-split", "train",
                        "--query-split", "test", "--k", "4", "--rerank", "2",
                        "--output", str(out)])
    assert code == 1 and "smaller than k" in capsys.readouterr().err
    # --save-index over the run itself is refused before any work, and the run stays whole.
    code = script.main(["--checkpoint", str(model.workdir), "--index-split", "train",
                        "--query-split", "test", "--k", "4", "--rerank", "0",
                        "--output", str(out), "--save-index", str(model.workdir)])
    assert code == 1 and "holds other files" in capsys.readouterr().err
    assert wormhole.load(model.workdir).step == model.step


def test_search_benchmark_runs_end_to_end_on_a_small_run(run, tmp_path):
    model, _, _ = run
    sys.path.insert(0, str(REPO))
    from benchmarks import search as bench

    out = tmp_path / "search"
    code = bench.main(["--checkpoint", str(model.workdir), "--recall-clouds", "20",
                       "--reranks", "0", "12", "--engine-queries", "3", "--collection", "60",
                       "--speed-queries", "2", "--scale-sizes", "500", "--backends", "brute",
                       "--output", str(out)])
    assert code == 0
    result = json.loads(out.with_suffix(".json").read_text())
    rows = {(r["measure"], r["candidates"], r["rerank"]): r for r in result["recall"]["rows"]}
    # Re-ranking the 12 nearest of 19 other clouds by exact OT finds most exact neighbours.
    assert (rows[("exact", "embedding", 12)]["recall_at_10"]
            >= rows[("embedding", "embedding", 0)]["recall_at_10"])
    # Certified search is brute-force exact search, with fewer solves.
    certified = rows[("exact (certified)", "lower bounds", 0)]
    assert certified["recall_at_10"] == 1.0 and certified["exact_solves_median"] <= 19
    speed = {(r["measure"], r["candidates"]): r for r in result["speed"]["rows"]}
    assert speed[("exact W2 (certified)", "lower bounds")]["recall_at_10_vs_brute_force"] == 1.0
    assert result["encode"]["clouds_per_s"] > 0 and result["scale"][0]["size"] == 500
    assert "Recall@10" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".recall.png").stat().st_size > 1000


def test_sketch_candidates_find_exact_neighbours_a_barely_trained_embedding_misses(run,
                                                                                   tmp_path):
    model, collection, queries = run
    truth = np.array([np.argsort(_exact_w2(model, queries.cloud(q), collection))[:5]
                      for q in range(len(queries))])

    def recall(backend):
        found = model.index(collection, backend=backend).search(queries, k=5, rerank=10,
                                                                 exact=True)
        return np.mean([len(set(t) & set(f)) / 5
                        for t, f in zip(truth, found.indices, strict=True)])

    sketch, embedding = recall("sketch"), recall("brute")
    assert sketch >= 0.9 and sketch >= embedding
    index = model.index(collection, backend="sketch")
    index.save(tmp_path / "idx")
    again = load_index(tmp_path / "idx")
    assert again.backend_name == "sketch"
    np.testing.assert_array_equal(again.search(queries, k=3, rerank=0).indices,
                                  index.search(queries, k=3, rerank=0).indices)


def test_sketch_candidates_benchmark_reports_recall_by_ranking(run, tmp_path):
    sys.path.insert(0, str(REPO))
    from benchmarks.sketch_candidates import main, recall_at

    exact = np.array([[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]], float)
    assert recall_at(exact, exact, 1, [1])[1] == 1.0
    assert recall_at(-exact, exact, 1, [1, 3])[1] == 0.0
    model, _, _ = run
    assert main(["--checkpoint", str(model.workdir), "--clouds", "12", "--k", "3",
                 "--pools", "3", "11", "--output", str(tmp_path / "sc")]) == 0
    result = json.loads((tmp_path / "sc.json").read_text())
    assert result["clouds"] == 12 and result["exact_kind"] == "W2"
    for shares in result["recall"].values():
        assert 0.0 <= shares["3"] <= 1.0 and shares["11"] == 1.0  # 11 = every other cloud


def _random_clouds(rng, count, dim, points=(5, 30)):
    """Ragged weighted clouds (some padded), as a PointClouds."""
    from wormhole.data.inputs import as_point_clouds

    xs = [rng.normal(size=(int(rng.integers(*points)), dim)) for _ in range(count)]
    ws = [rng.random(len(x)) + 0.05 for x in xs]
    return as_point_clouds(xs, ws)


@pytest.mark.parametrize("dim", [1, 2, 3, 10])
def test_frame_bounds_never_exceed_exact_w2(dim):
    from wormhole.search.bounds import frame_sketches, lower_bounds, random_frames

    rng = np.random.default_rng(dim)
    clouds = _random_clouds(rng, 24, dim)
    frames = random_frames(dim, 6, seed=dim)
    sketches = frame_sketches(clouds, frames)
    bounds = lower_bounds(sketches[:6], sketches)
    points, weights = clouds.to_list()
    exact = np.array([[pot.emd2(weights[q] / weights[q].sum(), weights[i] / weights[i].sum(),
                                pot.dist(points[q].astype(np.float64),
                                         points[i].astype(np.float64)))
                       for i in range(len(clouds))] for q in range(6)])
    assert np.all(bounds <= exact * (1 + 1e-4) + 1e-9), np.max(bounds - exact)
    np.testing.assert_allclose(np.diag(bounds[:, :6]), 0.0, atol=1e-9)
    # Not a trivial bound: a good share of the exact value (these clouds are noise, so
    # far less than on shapes; 1-D is exact up to the bins).
    share = np.median(bounds[:, 6:] / exact[:, 6:])
    assert share > {1: 0.9, 2: 0.4, 3: 0.3, 10: 0.15}[dim]


@pytest.mark.parametrize("dim", [2, 3])
def test_frame_bound_of_a_translated_cloud_is_the_squared_shift(dim):
    """W2^2 between a cloud and its translate by t is |t|^2; a full frame sees all of it."""
    from wormhole.data.inputs import as_point_clouds
    from wormhole.search.bounds import frame_sketches, lower_bounds, random_frames

    rng = np.random.default_rng(0)
    x, shift = rng.normal(size=(17, dim)), rng.normal(size=dim)
    w = rng.random(17)
    clouds = as_point_clouds([x, x + shift], [w, w])
    sketches = frame_sketches(clouds, random_frames(dim, 3))
    np.testing.assert_allclose(lower_bounds(sketches[:1], sketches[1:])[0, 0],
                               np.sum(shift ** 2), rtol=1e-5)


def test_quantile_bin_means_match_interpolated_integrals():
    from wormhole.data.sketches import quantile_bin_means

    rng = np.random.default_rng(3)
    values, weights = rng.normal(size=(9, 12, 2)), rng.random((9, 12))
    weights[:, 9:] = 0.0  # padding
    values[4, :6, 0] = 0.25  # ties
    got = quantile_bin_means(values, weights, 8)
    for c in range(9):
        for s in range(2):
            keep = weights[c] > 0
            order = np.argsort(values[c, keep, s])
            v, w = values[c, keep, s][order], weights[c, keep][order] / weights[c, keep].sum()
            knots = np.concatenate([[0.0], np.cumsum(w)])
            integral = np.concatenate([[0.0], np.cumsum(v * w)])
            want = 8 * np.diff(np.interp(np.linspace(0, 1, 9), knots, integral))
            np.testing.assert_allclose(got[c, s], want, atol=1e-12)


def test_certified_nearest_finds_the_true_k_nearest_whatever_the_bound(monkeypatch):
    from wormhole.search import certified

    monkeypatch.setattr(certified, "_FIRST", 8)  # the sorted prefix must grow
    rng = np.random.default_rng(0)
    truth = rng.random(3000)
    for looseness in (0.0, 0.5, 0.95):  # bounds from 0 (useless) to nearly exact
        bounds = truth * rng.uniform(looseness, 1.0, size=truth.shape)
        solved = []

        def solve(index, solved=solved):
            solved.extend(index.tolist())
            return truth[index]

        index, values, count, _ = certified.certified_nearest(bounds, solve, k=7)
        np.testing.assert_array_equal(index, np.argsort(truth)[:7])
        np.testing.assert_allclose(values, np.sort(truth)[:7])
        assert count == len(solved) == len(set(solved))  # each cloud solved at most once
        kth = np.sort(truth)[6]
        # Every cloud whose bound is below the 7th value must be solved, and few others.
        must = np.flatnonzero(bounds * (1 - 1e-3) < kth)
        assert set(must) <= set(solved) and len(solved) <= len(must) + 16
        if looseness == 0.95:
            assert len(solved) < 60


def test_certified_search_is_brute_force_exact_search_with_fewer_solves(run):
    model, collection, queries = run
    index = model.index(collection)
    found = index.search(queries, k=5, certified=True)
    assert found.measure == "exact W2 (certified)"
    for q in range(len(queries)):
        truth = _exact_w2(model, queries.cloud(q), collection)
        np.testing.assert_allclose(found.distances[q], np.sort(truth)[:5], rtol=1e-5)
        np.testing.assert_allclose(truth[found.indices[q]], found.distances[q], rtol=1e-5)
    assert np.all(found.solved >= 5) and found.solved.mean() < 0.7 * len(collection)
    original = index.search(queries, k=5, certified=True, units="original")
    np.testing.assert_allclose(original.distances, model.to_original_units(found.distances))


def test_certified_search_refuses_costs_its_bound_does_not_hold_for(run):
    import dataclasses

    model, collection, queries = run
    config = model.config
    config = dataclasses.replace(config, ot=dataclasses.replace(config.ot, cost="euclidean"))
    other = Wormhole(config, model.spec, model.params, model.normalization, model.cost_scale,
                     model.workdir, model.step)
    with pytest.raises(ValueError, match="certified=True proves exact W2.*euclidean"):
        other.index(collection.subset(slice(0, 10))).search(queries, k=2, certified=True)


@pytest.mark.parametrize("dim", [2, 3])
def test_dual_bounds_never_exceed_exact_w2_and_tighten_with_iterations(dim):
    from wormhole.search.dual_bounds import dual_lower_bounds

    rng = np.random.default_rng(dim)
    clouds = _random_clouds(rng, 20, dim)
    points, weights = clouds.to_list()
    exact = np.array([pot.emd2(weights[0] / weights[0].sum(), weights[i] / weights[i].sum(),
                               pot.dist(points[0].astype(np.float64),
                                        points[i].astype(np.float64)))
                      for i in range(1, 20)])
    x, a = clouds.points[0], clouds.weights[0]
    rough = dual_lower_bounds(x, a, clouds.points[1:], clouds.weights[1:])
    fine = dual_lower_bounds(x, a, clouds.points[1:], clouds.weights[1:],
                             relative_epsilon=0.01, iterations=2000)
    for bound in (rough, fine):
        assert np.all(bound <= exact * (1 + 1e-4) + 1e-6), np.max(bound - exact)
    assert np.median(rough / exact) > 0.5
    # Near-optimal potentials: weak duality is nearly tight.
    np.testing.assert_allclose(fine, exact, rtol=0.03)


def test_certified_nearest_with_a_second_bound_solves_only_what_it_cannot_rule_out():
    from wormhole.search.certified import certified_nearest

    rng = np.random.default_rng(1)
    truth = rng.random(2000)
    loose = truth * rng.uniform(0.2, 1.0, size=truth.shape)
    tight = truth * rng.uniform(0.97, 1.0, size=truth.shape)
    solved, refined = [], []

    def solve(index):
        solved.extend(index.tolist())
        return truth[index]

    def refine(index):
        refined.extend(index.tolist())
        return tight[index]

    found = certified_nearest(loose, solve, k=5, refine=refine)
    np.testing.assert_array_equal(found.indices, np.argsort(truth)[:5])
    assert found.solved == len(solved) and found.refined == len(refined)
    assert set(solved) <= set(refined) and len(solved) < len(refined) / 3
    kth = np.sort(truth)[4]
    assert set(np.flatnonzero(tight * (1 - 1e-3) < kth)) <= set(solved)
