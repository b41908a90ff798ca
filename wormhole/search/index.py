"""OT nearest-neighbour search: embedding candidates, re-ranked by OT.

    index = model.index(clouds, labels=labels)          # one encoder pass over the collection
    found = index.search(queries, k=10, rerank=100)     # [Q, 10] indices and OT distances
    index.save("runs/mnist/index"); index = wormhole.load_index("runs/mnist/index")

The embedding ranks the whole collection at the cost of one matrix product per block; the
``rerank`` nearest candidates are then ranked again by real OT, the run's own kind through
the batched ott-jax engine, or (``exact=True``) the exact unregularised cost by POT. With
``rerank`` at least the collection size this is brute-force OT search. ``certified=True``
returns the exact W2^2 nearest with a proof instead: exact solves in the order of provable
lower bounds (:mod:`.bounds`, :mod:`.certified`) until no unsolved cloud can be nearer.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from wormhole.data import PointClouds
from wormhole.data.inputs import as_point_clouds
from wormhole.data.loaders.files import load_files, save_clouds_npz
from wormhole.data.padding import bucket_length
from wormhole.data.sketches import cloud_sketches
from wormhole.ot import OTSpec, get_kind
from wormhole.ot.costs import lookup_cost
from wormhole.search.bounds import FrameBounds, frame_sketches, random_frames
from wormhole.search.candidates import make_backend
from wormhole.search.certified import certified_nearest
from wormhole.search.dual_bounds import dual_lower_bounds
from wormhole.search.rerank import EngineReranker, exact_distances, exact_kind

__all__ = ["CloudIndex", "SearchResult", "load_index"]

INDEX_FORMAT = 1
_META = "index.json"
_CHECKED_CLOUDS = 8  # clouds re-embedded on load to check the index matches the model
# 64 directions x 32 levels: on 500 held-out MNIST clouds 75% of the exact-W2 10 nearest are
# among the sketch's 10 nearest (32 directions: 71%; a trained mnist.yaml embedding: 62-68%).
SKETCH_DIRECTIONS = 64


class SearchResult(NamedTuple):
    """Neighbours of ``Q`` queries, nearest first.

    Attributes:
      indices: ``[Q, k]`` positions in the indexed collection.
      distances: ``[Q, k]`` distances in ``units``, by ``measure``.
      measure: what ranked the final list: ``embedding`` (no re-rank), the run's kind
        (e.g. ``S2``, the OT engine), or ``exact W2`` (POT).
      units: ``target`` (the units of :meth:`Wormhole.distance`) or ``original``.
      labels: ``[Q, k]`` labels of the neighbours when the collection has labels.
      solved: ``[Q]`` exact OT solves per query, for a certified search.
    """

    indices: np.ndarray
    distances: np.ndarray
    measure: str
    units: str = "target"
    labels: np.ndarray | None = None
    solved: np.ndarray | None = None


class CloudIndex:
    """A collection of clouds with their embeddings, searchable by OT distance.

    Build one with :meth:`Wormhole.index` (or :meth:`build`); the clouds are kept in the
    user's units, their embeddings and (for debiased kinds) a cache of OT self terms beside
    them.
    """

    def __init__(self, model, clouds: PointClouds, embeddings: np.ndarray,
                 backend: str = "brute", self_values: np.ndarray | None = None):
        if len(clouds) == 0:
            raise ValueError("Cannot index an empty collection: give at least one cloud.")
        if embeddings.shape != (len(clouds), model.config.model.emb_dim):
            raise ValueError(f"Got embeddings of shape {embeddings.shape} for {len(clouds)} "
                             f"clouds and a model with emb_dim {model.config.model.emb_dim}.")
        self.model, self.clouds = model, clouds
        self.embeddings = np.asarray(embeddings, np.float32)
        self.backend_name = backend
        rows = self._sketches(model.normalization.apply_to(clouds)) if backend == "sketch" \
            else self.embeddings
        self._backend = make_backend(backend, rows)
        spec = OTSpec.from_config(model.config.ot, model.cost_scale)
        self._engine = EngineReranker(spec, clouds, model.normalization, self_values)
        self._bound_sketches = None  # frame sketches of the collection, made when first used

    @classmethod
    def build(cls, model, clouds, weights=None, labels=None, backend: str = "brute",
              batch_size: int | None = None) -> CloudIndex:
        """Embed ``clouds`` (a list of ``[n_i, d]`` arrays, padded arrays or
        :class:`PointClouds`) with ``model`` and index them."""
        data = as_point_clouds(clouds, weights, labels)
        if len(data) == 0:
            raise ValueError("Cannot index an empty collection: give at least one cloud.")
        return cls(model, data, model.encode(data, batch_size=batch_size), backend)

    def __len__(self) -> int:
        return len(self.clouds)

    def __repr__(self) -> str:
        return (f"CloudIndex({len(self)} clouds, {self.backend_name} candidates, "
                f"{self.model.kind} re-rank)")

    # ------------------------------------------------------------------ search

    def search(self, queries, weights=None, k: int = 10, rerank: int = 100,
               exact: bool = False, units: str = "target",
               batch_size: int | None = None, certified: bool = False) -> SearchResult:
        """The ``k`` nearest clouds of each query.

        Args:
          queries: ``Q`` clouds (list of ``[n_i, d]``, padded array or :class:`PointClouds`)
            in the model's input dimension.
          weights: per-point weights of the queries (default uniform).
          k: neighbours per query.
          rerank: embedding candidates re-ranked by OT (at least ``k``, capped at the
            collection size); ``0`` returns the embedding's neighbours and distances (with
            the ``sketch`` backend: the sketch's ``k`` nearest, ordered by embedding).
          exact: re-rank by the exact unregularised cost of the run's kind family (W2^2
            for W2/S2 runs, W1 for W1/S1) with POT instead of the run's own entropic kind.
          units: ``target`` (as :meth:`Wormhole.distance`) or ``original`` (the user's
            coordinate units, see :meth:`Wormhole.to_original_units`).
          batch_size: queries per encoder call (default: see :meth:`Wormhole.encode`).
          certified: return the exact W2^2 ``k`` nearest, proven: exact solves (POT) in the
            order of a lower bound of W2^2 until the next bound reaches the ``k``-th value
            found (``rerank`` and ``exact`` are then not used; ``solved`` in the result
            counts the solves). For runs whose kind is W2 or S2 with the squared
            Euclidean cost.
        """
        query_set = as_point_clouds(queries, weights, what="query")
        self._check(k, rerank, units)
        prepared = self.model.prepare(query_set)
        if certified:
            return self._certified(prepared, k, units)
        query_emb = self.model.encode(query_set, batch_size=batch_size)
        width = min(rerank, len(self)) if rerank else k
        rows = self._sketches(prepared) if self.backend_name == "sketch" else query_emb
        candidates = self._backend.search(rows, width)
        if rerank:
            values, measure = self._rerank(prepared, candidates, exact)
        else:
            values = self._embedding_distances(query_emb, candidates)
            measure = "embedding"
        order = np.argsort(values, axis=1, kind="stable")[:, :k]
        indices = np.take_along_axis(candidates, order, axis=1)
        distances = np.take_along_axis(values, order, axis=1)
        if units == "original":
            distances = self.model.to_original_units(distances)
        labels = None if self.clouds.labels is None else self.clouds.labels[indices]
        return SearchResult(indices, distances, measure, units, labels)

    def _sketches(self, prepared: PointClouds) -> np.ndarray:
        """Sliced quantile sketches of normalised clouds (radial ones for GW kinds)."""
        return cloud_sketches(prepared, quadratic=get_kind(self.model.kind).quadratic,
                              directions=SKETCH_DIRECTIONS)

    def build_bounds(self) -> CloudIndex:
        """Sketch the collection for certified search now (else on the first certified
        search): ``4 * frames * min(d, 8) * levels`` bytes per cloud, 2 KiB for 2-D clouds."""
        self._check_certifiable()
        if self._bound_sketches is None:
            self._bound_sketches = FrameBounds(frame_sketches(
                self.model.normalization.apply_to(self.clouds), self._frames))
        return self

    def _certified(self, prepared: PointClouds, k: int, units: str) -> SearchResult:
        self.build_bounds()
        bounds = self._bound_sketches.bounds(
            frame_sketches(prepared, self._frames)) / self.model.cost_scale
        config = self.model.config
        indices = np.empty((len(prepared), k), np.int64)
        distances = np.empty((len(prepared), k), np.float64)
        solved = np.empty(len(prepared), np.int64)
        scale = self.model.cost_scale
        for q in range(len(prepared)):
            query = prepared.subset(np.array([q]))

            def solve(found, query=query):
                others = self.model.normalization.apply_to(self.clouds.subset(found))
                return exact_distances(query, others, len(found), self.model.kind,
                                       config.ot.cost, scale)[0]

            def refine(found, query=query):
                others = self.model.normalization.apply_to(self.clouds.subset(found))
                # Each side padded to a multiple of 64 points: little padding, and few
                # shapes for the solver to compile.
                both = [_padded_to_bucket(c) for c in (query, others)]
                return dual_lower_bounds(both[0].points[0], both[0].weights[0],
                                         both[1].points, both[1].weights) / scale

            indices[q], distances[q], solved[q], _ = certified_nearest(bounds[q], solve, k,
                                                                       refine)
        if units == "original":
            distances = self.model.to_original_units(distances)
        labels = None if self.clouds.labels is None else self.clouds.labels[indices]
        return SearchResult(indices, distances, "exact W2 (certified)", units, labels, solved)

    @functools.cached_property
    def _frames(self) -> np.ndarray:
        """The orthonormal frames of the certified bounds: one set per index."""
        return random_frames(self.clouds.dim)

    def _check_certifiable(self) -> None:
        kind = self.model.kind
        cost = self.model.config.ot.cost or get_kind(kind).default_cost
        entry = lookup_cost(cost) if isinstance(cost, str) else None
        if get_kind(kind).exact != "W2" or entry is None or entry.name != "sqeuclidean":
            raise ValueError(f"certified=True proves exact W2^2 neighbours, which needs a W2 or "
                             f"S2 run with the squared Euclidean cost; this run is {kind} with "
                             f"cost {cost!r}. Use rerank with exact=True (or the run's own "
                             f"kind) instead.")

    def _check(self, k: int, rerank: int, units: str) -> None:
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        if k > len(self):
            raise ValueError(f"k={k} is larger than the collection ({len(self)} clouds).")
        if rerank < 0:
            raise ValueError(f"rerank must be 0 or at least k, got {rerank}.")
        if rerank and rerank < k:
            raise ValueError(f"rerank={rerank} is smaller than k={k}: re-rank at least k "
                             f"candidates, or pass rerank=0 for embedding neighbours alone.")
        if units not in ("target", "original"):
            raise ValueError(f"units must be 'target' or 'original', got {units!r}.")

    def _embedding_distances(self, query_emb: np.ndarray, candidates: np.ndarray):
        rows = np.repeat(query_emb, candidates.shape[1], axis=0)
        found = self.embeddings[candidates.reshape(-1)]
        return self.model.embedding_distances(rows, found).reshape(candidates.shape)

    def _rerank(self, queries: PointClouds, candidates: np.ndarray, exact: bool):
        if not exact:
            return self._engine.distances(queries, candidates), self.model.kind
        config = self.model.config
        found = self.model.normalization.apply_to(self.clouds.subset(candidates.reshape(-1)))
        values = exact_distances(queries, found, candidates.shape[1], self.model.kind,
                                 config.ot.cost, self.model.cost_scale)
        return values, f"exact {exact_kind(self.model.kind)}"

    # ------------------------------------------------------------------ save / load

    def save(self, path: str | Path) -> Path:
        """Write the index to directory ``path``: the clouds, their embeddings, the cached
        OT self terms and the run (directory and step) whose model embedded them.

        The directory is written beside its final name and moved into place, so an
        interrupted save leaves no half-written index. ``path`` must be new, an empty
        directory or an index saved before (which is replaced); anything else is refused,
        so a save never deletes a run directory or other files.
        """
        if self.model.workdir is None:
            raise ValueError("This model has no run directory, so a saved index could not "
                             "name it; save a model loaded with wormhole.load().")
        path = Path(path)
        check_index_target(path)
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        save_clouds_npz(partial / "clouds.npz", self.clouds)
        np.save(partial / "embeddings.npy", self.embeddings)
        np.save(partial / "self_values.npy", self._engine.self_values)
        meta = {"format": INDEX_FORMAT, "run": str(Path(self.model.workdir).resolve()),
                "step": self.model.step, "kind": self.model.kind, "size": len(self),
                "backend": self.backend_name}
        (partial / _META).write_text(json.dumps(meta, indent=2))
        if path.exists():
            shutil.rmtree(path)
        partial.rename(path)
        return path


def check_index_target(path: Path) -> None:
    """Refuse to save an index over anything but nothing, an empty directory or an index."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise ValueError(f"Cannot save the index to {path}: it is a file; name a new "
                         "directory.")
    if any(path.iterdir()) and not (path / _META).is_file():
        raise ValueError(f"Cannot save the index to {path}: the directory holds other files "
                         f"and no saved index ({_META}); saving would delete them. Name a new "
                         "directory.")


def _padded_to_bucket(clouds: PointClouds) -> PointClouds:
    """``clouds`` padded to their largest cloud rounded up to a multiple of 64 points."""
    length = bucket_length(int(clouds.sizes.max()), 64, 1 << 30)
    return clouds.pad_to(min(clouds.length, length)).pad_to(length)


def _with_saved_label_names(clouds: PointClouds, file: Path) -> PointClouds:
    """Labels given as strings come back as those strings (the loader numbers them)."""
    with np.load(file, allow_pickle=False) as saved:
        named = "labels" in saved.files and saved["labels"].dtype.kind == "U"
    if not named:
        return clouds
    return dataclasses.replace(clouds, labels=np.asarray(clouds.label_names)[clouds.labels],
                               label_names=None)


def load_index(path: str | Path, model=None, backend: str | None = None) -> CloudIndex:
    """Read an index written by :meth:`CloudIndex.save`.

    Args:
      path: the index directory.
      model: the model to search with (default: the run and step the index names).
      backend: candidate backend (default: the one it was built with).

    Raises:
      FileNotFoundError: ``path`` is not an index directory.
      ValueError: the model embeds the indexed clouds differently from the stored
        embeddings (the index was built with another model or checkpoint).
    """
    from wormhole.inference import load

    path = Path(path)
    if not (path / _META).is_file():
        raise FileNotFoundError(f"No search index at '{path}' (expected {path / _META}).")
    meta = json.loads((path / _META).read_text())
    if meta.get("format") != INDEX_FORMAT:
        raise ValueError(f"{path / _META}: unknown index format {meta.get('format')!r}.")
    if model is None:
        model = load(meta["run"], meta["step"])
    clouds = _with_saved_label_names(load_files(str(path / "clouds.npz")),
                                     path / "clouds.npz")
    embeddings = np.load(path / "embeddings.npy", allow_pickle=False)
    sample = np.arange(min(_CHECKED_CLOUDS, len(clouds)))
    again = model.encode(clouds.subset(sample))
    tolerance = 1e-3 * (1.0 + float(np.abs(embeddings[sample]).max()))
    if not np.allclose(again, embeddings[sample], atol=tolerance):
        raise ValueError(f"The index at '{path}' was built by run {meta['run']} step "
                         f"{meta['step']}, and {model!r} embeds its clouds differently; "
                         f"rebuild it with this model's index().")
    self_values = np.load(path / "self_values.npy", allow_pickle=False)
    return CloudIndex(model, clouds, embeddings, backend or meta["backend"], self_values)
