"""A trained Wormhole: encode, decode, distances, barycenters and interpolation.

:func:`load` reads a run directory (or one checkpoint) written by training and returns a
:class:`Wormhole`, which applies the stored data normalisation on the way in and undoes it
on the way out, so users work in their own coordinate units throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from wormhole.checkpoint import (
    CheckpointStore,
    DamagedCheckpoint,
    DataRecord,
    RunMeta,
    find_checkpoint_dir,
)
from wormhole.config import Config, config_from_dict
from wormhole.data import Normalization, PointClouds, subsample_clouds
from wormhole.data.inputs import as_point_clouds
from wormhole.models import ModelSpec, WormholeModel, build_model, embedding_distance
from wormhole.models.encoding import encode_in_chunks
from wormhole.ot import get_kind
from wormhole.parallel import encode_mesh, to_local

__all__ = ["Wormhole", "from_meta", "load", "relocated"]

_BUCKET = 32  # encoder padding is cropped to a multiple of this


class Wormhole:
    """A trained encoder/decoder with its data normalisation and OT cost scale.

    Attributes:
      config: the run's resolved config.
      spec: data-dependent model facts (input dimension, decoder size, output box).
      params: the network parameters.
      normalization: the map from user coordinates to the model's.
      cost_scale: costs were divided by this when computing training targets.
      data: what the run was trained on (its clouds' fingerprint), when known: the scripts'
        ``--split`` reloads are checked against it.
    """

    def __init__(self, config: Config, spec: ModelSpec, params, normalization: Normalization,
                 cost_scale: float, workdir: Path | None = None, step: int | None = None,
                 data: DataRecord | None = None):
        self.config, self.spec, self.params = config, spec, params
        self.normalization, self.cost_scale = normalization, float(cost_scale)
        self.workdir, self.step, self.data = workdir, step, data
        self.model: WormholeModel = build_model(config.model, spec)
        self._encode = jax.jit(lambda p, x, a: self.model.apply(
            {"params": p}, x, a, method=WormholeModel.encode))
        self._decode = jax.jit(lambda p, e: self.model.apply(
            {"params": p}, e, method=WormholeModel.decode))

    def __repr__(self) -> str:
        cfg = self.config
        return (f"Wormhole({cfg.model.encoder}, {cfg.ot.kind}, emb_dim={cfg.model.emb_dim}, "
                f"input {self.spec.data_dim}-D, decoder_points={self.spec.decoder_points}, "
                f"step={self.step})")

    @property
    def kind(self) -> str:
        return self.config.ot.kind

    # ------------------------------------------------------------------ encode / decode

    def prepare(self, clouds, weights=None, max_points: int | None = None,
                seed: int = 0) -> PointClouds:
        """Validate clouds, check their dimension and normalise them as in training."""
        data = as_point_clouds(clouds, weights)
        if data.dim != self.spec.data_dim:
            raise ValueError(f"The clouds are {data.dim}-D, but this model expects "
                             f"{self.spec.data_dim}-D clouds.")
        if max_points is not None:
            data = subsample_clouds(data, max_points, seed)
        return self.normalization.apply_to(data)

    def encode(self, clouds, weights=None, batch_size: int | None = None,
               max_points: int | None = None) -> np.ndarray:
        """Embed clouds: ``N`` clouds (any sizes) -> ``[N, emb_dim]``.

        Args:
          clouds: a list of ``[n_i, d]`` arrays, a padded ``[N, n, d]`` array (with
            ``weights [N, n]``, zero weight = padding), or :class:`PointClouds`.
          weights: per-point weights (default uniform); normalised to sum to one.
          batch_size: clouds per network call (default 16 per device on CPU, where the
            encoder is memory-bound, 256 on accelerators: see
            :func:`~wormhole.models.encoding.default_encode_batch`); each call is split
            over this process's devices (:func:`wormhole.parallel.encode_mesh`).
          max_points: subsample larger clouds to this many points (drawn among those of
            positive weight). By default every point is used: the encoder treats a cloud
            as a weighted measure (mass-weighted attention and mean pooling), so clouds
            larger than any seen in training are encoded as they are, at a cost quadratic
            in their size.
        """
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if max_points is not None and max_points < 1:
            raise ValueError(f"max_points must be at least 1 (or None: every point), got "
                             f"{max_points}.")
        data = self.prepare(clouds, weights, max_points)
        emb = encode_in_chunks(lambda x, a: self._encode(self.params, x, a), data.points,
                               data.weights, data.sizes, self.config.model.emb_dim,
                               batch_size, _BUCKET, mesh=encode_mesh())
        _check_finite_embeddings(emb, data)
        return emb

    def embed_anndata(self, adata, key: str = "X_wormhole", options=None,
                      batch_size: int | None = None, max_points: int | None = None):
        """Embed an AnnData's niches (``adata.obsm[key]``, one row per cell) or samples
        (``adata.uns[key]``, a table keyed by sample) with the run's loader options, updated
        by ``options``; ``adata`` may be an ``.h5ad`` path. See :mod:`wormhole.cells`."""
        from wormhole.cells import embed_anndata

        return embed_anndata(self, adata, key, options, batch_size, max_points)

    def decode(self, embeddings, batch_size: int = 256) -> np.ndarray:
        """Decode ``[N, emb_dim]`` embeddings to clouds ``[N, decoder_points, d]``.

        Decoded clouds have uniform weights and are in the original coordinate units.
        """
        emb = np.asarray(embeddings, np.float32)
        if emb.ndim == 1:
            emb = emb[None]
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if emb.ndim != 2 or emb.shape[1] != self.config.model.emb_dim or not len(emb):
            raise ValueError(f"Embeddings must have shape [N, {self.config.model.emb_dim}] with "
                             f"N >= 1, got {np.shape(embeddings)}.")
        if not np.all(np.isfinite(emb)):
            bad = int(np.argwhere(~np.isfinite(emb))[0, 0])
            raise ValueError(f"Embedding {bad} has NaN or infinite entries.")
        self.spec.require_decoder()
        parts = [np.asarray(self._decode(self.params, emb[s:s + batch_size]))
                 for s in range(0, len(emb), batch_size)]
        decoded = np.asarray(self.normalization.invert(np.concatenate(parts)), np.float32)
        bad = np.flatnonzero(~np.all(np.isfinite(decoded), axis=(1, 2)))
        if len(bad):
            raise ValueError(f"Embedding {bad[0]} decodes to NaN or infinite points: its "
                             f"entries reach {np.abs(emb[bad[0]]).max():.3g}, beyond what "
                             "the decoder can map (embeddings of clouds like the training "
                             "ones lie far inside that).")
        return decoded

    # ------------------------------------------------------------------ distances

    def to_original_units(self, values: np.ndarray) -> np.ndarray:
        """Target-unit distances in the units of the user's coordinates.

        Targets are OT costs on normalised coordinates divided by ``cost_scale``; scaling
        coordinates by ``s`` scales W1/S1 by ``s``, W2/S2 by ``s**2`` and GW/GS by ``s**4``.
        Exact for unregularised OT; for entropic OT the same epsilon is implied.
        """
        if self.config.ot.cost is not None:
            raise ValueError("Unit conversion is unknown for a custom ot.cost; use target "
                             "units.")
        power = get_kind(self.kind).scaling_power
        return np.asarray(values) * self.cost_scale * self.normalization.scale ** power

    def embedding_distances(self, emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
        """The model's distance between rows of two embedding arrays ``[N, e]``."""
        return np.asarray(embedding_distance(jnp.asarray(emb_a), jnp.asarray(emb_b),
                                             self.config.model.embedding_distance))

    def distance(self, clouds_a, clouds_b, weights_a=None, weights_b=None,
                 units: str = "target") -> np.ndarray:
        """Embedding estimate of the OT distance between ``clouds_a[i]`` and ``clouds_b[i]``.

        ``units="target"`` returns the units the model was trained on (OT cost on normalised
        coordinates over ``cost_scale``); ``"original"`` converts to the user's units.
        """
        emb_a = self.encode(clouds_a, weights_a)
        emb_b = self.encode(clouds_b, weights_b)
        if len(emb_a) != len(emb_b):
            raise ValueError(f"Got {len(emb_a)} clouds in clouds_a but {len(emb_b)} in "
                             f"clouds_b; distance() compares them pairwise.")
        values = self.embedding_distances(emb_a, emb_b)
        if units == "original":
            return self.to_original_units(values)
        if units != "target":
            raise ValueError(f"units must be 'target' or 'original', got {units!r}.")
        return values

    def distance_matrix(self, clouds, weights=None) -> np.ndarray:
        """All-pairs ``[N, N]`` embedding distances (target units): one encoder pass."""
        return self.embedding_distance_matrix(self.encode(clouds, weights))

    def embedding_distance_matrix(self, embeddings: np.ndarray) -> np.ndarray:
        """``[N, N]`` distances between all rows of ``embeddings [N, e]``.

        Computed a block of rows at a time, so memory stays near ``N^2`` floats rather than
        the ``N^2 e`` of one broadcast difference (N = 10,000 clouds: 0.4 GB, not 51 GB).
        """
        emb = np.asarray(embeddings, np.float32)
        count, dim = emb.shape
        block = max(1, min(count, (1 << 25) // max(count * dim, 1)))  # ~128 MiB at a time
        kind = self.config.model.embedding_distance
        rows_to_all = jax.jit(lambda rows, every: embedding_distance(rows[:, None], every[None],
                                                                     kind))
        every = jnp.asarray(emb)
        out = np.empty((count, count), np.float32)
        for start in range(0, count, block):
            rows = emb[start:start + block]
            if len(rows) < block:  # pad the last block: one compiled shape
                rows = np.pad(rows, ((0, block - len(rows)), (0, 0)))
            out[start:start + block] = np.asarray(rows_to_all(rows, every))[:count - start]
        return out

    def index(self, clouds, weights=None, labels=None, backend: str = "brute",
              batch_size: int | None = None):
        """A :class:`~wormhole.search.CloudIndex` of ``clouds`` for OT nearest-neighbour
        search: embedding candidates (``backend`` ``brute`` or ``hnsw``), or candidates by
        sliced quantile sketches of the clouds (``sketch``), re-ranked by OT.
        """
        from wormhole.search import CloudIndex

        return CloudIndex.build(self, clouds, weights, labels, backend, batch_size)

    # ------------------------------------------------------------------ barycenters

    def barycenter(self, clouds, weights=None, coefficients: Sequence[float] | None = None
                   ) -> np.ndarray:
        """Decode the (weighted) mean embedding of ``clouds``: ``[decoder_points, d]``.

        ``coefficients`` weigh the clouds (non-negative, normalised to one); default equal.
        """
        emb = self.encode(clouds, weights)
        if len(emb) == 0:
            raise ValueError("A barycenter needs at least one cloud; got none.")
        if coefficients is None:
            coef = np.full(len(emb), 1.0 / len(emb))
        else:
            coef = np.atleast_1d(np.asarray(coefficients, np.float64))
            if coef.shape != (len(emb),):
                raise ValueError(f"Got {len(coef)} coefficients for {len(emb)} clouds.")
            if np.any(coef < 0) or not np.any(coef > 0) or not np.all(np.isfinite(coef)):
                raise ValueError("coefficients must be finite, non-negative and not all zero.")
            coef = coef / coef.max()  # first: a sum of huge coefficients would overflow
            coef = coef / coef.sum()
        return self.decode((coef @ emb)[None])[0]

    def interpolate(self, cloud_a: np.ndarray, cloud_b: np.ndarray, t=None, weights_a=None,
                    weights_b=None) -> np.ndarray:
        """Decode ``(1 - t) E(a) + t E(b)`` for each ``t``: ``[len(t), decoder_points, d]``."""
        t = np.linspace(0.0, 1.0, 8) if t is None else np.atleast_1d(np.asarray(t))
        if t.dtype.kind not in "iuf" or t.ndim != 1 or not len(t):
            raise ValueError("Interpolation times t must be a number or a non-empty list of "
                             f"numbers, got {t.tolist()!r}.")
        t = t.astype(np.float32)
        if not np.all(np.isfinite(t)):
            raise ValueError(f"Interpolation times t must be finite numbers, got {t.tolist()}.")
        wa = None if weights_a is None else [weights_a]
        wb = None if weights_b is None else [weights_b]
        ea = self.encode([np.asarray(cloud_a)], wa)[0]
        eb = self.encode([np.asarray(cloud_b)], wb)[0]
        return self.decode((1 - t)[:, None] * ea + t[:, None] * eb)


def _check_finite_embeddings(emb: np.ndarray, data: PointClouds) -> None:
    """Refuse, naming the cloud, an embedding that overflowed (coordinates far outside the
    range of the training clouds, e.g. 1e25 where training saw units of 1)."""
    bad = np.flatnonzero(~np.all(np.isfinite(emb), axis=1))
    if not len(bad):
        return
    i = int(bad[0])
    points, weights = data.cloud(i)
    reach = float(np.abs(np.asarray(points)[np.asarray(weights) > 0]).max())
    others = f" ({len(bad)} clouds in all)" if len(bad) > 1 else ""
    raise ValueError(f"cloud {i}: its embedding is not finite{others}. Its coordinates reach "
                     f"{reach:.3g} after the run's normalisation (with the default 'minmax' "
                     "the training clouds lie in [0, 1]): rescale it to the training data's "
                     "units.")


def from_meta(meta: RunMeta, params, workdir: Path | None = None,
              step: int | None = None) -> Wormhole:
    """A :class:`Wormhole` from checkpoint metadata and parameters.

    A run read from another directory than the one it was trained in (moved or copied)
    reads the clouds it keeps inside itself (``fit``'s ``data/``) from there.
    """
    config = config_from_dict(meta.config)
    if workdir is not None:
        config = relocated(config, Path(workdir))
    return Wormhole(config, ModelSpec.from_dict(meta.model_spec), params,
                    Normalization.from_dict(meta.normalization), meta.cost_scale, workdir,
                    step, meta.data)


def relocated(config: Config, workdir: Path) -> Config:
    """``config`` of a run read from ``workdir``: when that is not where it was trained, a
    ``data.path`` inside the old run directory (``fit``'s copy of the clouds) points to the
    same file in ``workdir``, and ``train.workdir`` is ``workdir``."""
    old = Path(config.workdir).expanduser()
    new = Path(workdir).expanduser().absolute()
    if old.is_absolute() and old.resolve() == new.resolve():
        return config
    path = config.data.path and Path(config.data.path).expanduser()
    inner = _path_inside(path, old) if path and path.is_absolute() else None
    if inner is not None and (new / inner).resolve() == path.resolve():
        return config  # trained here (a relative train.workdir)
    data = config.data if inner is None else replace(config.data, path=str(new / inner))
    return replace(config, data=data, train=replace(config.train, workdir=str(new)))


def _path_inside(path: Path, directory: Path) -> Path | None:
    """``path`` relative to ``directory`` (absolute, or relative: then any parent of
    ``path`` ending in its parts), or ``None`` when it is not inside."""
    for parent in path.parents:
        inside = (parent in (directory, directory.resolve()) if directory.is_absolute()
                  else parent.parts[-len(directory.parts):] == directory.parts)
        if inside:
            return path.relative_to(parent)
    return None


def load(path: str | Path, step: int | None = None) -> Wormhole:
    """Load a trained model from a run directory or one of its checkpoints.

    Args:
      path: ``runs/<name>``, ``runs/<name>/checkpoints`` or ``runs/<name>/checkpoints/<step>``.
      step: which checkpoint (default: the one named by ``path``, else the newest intact
        one: a damaged newer checkpoint is skipped with a warning that names it).

    Raises:
      DamagedCheckpoint: the checkpoint asked for is damaged (the message names the file),
        or every checkpoint of the run is.
    """
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, np.integer))):
        raise TypeError(f"step must be an integer checkpoint step (or None: the newest), got "
                        f"{step!r}.")
    directory, named = find_checkpoint_dir(path)
    step = int(step) if step is not None else named
    with CheckpointStore(directory, create=False) as store:
        if step is not None:
            state, meta = store.restore(step)
        else:
            found = store.restore_latest_intact()
            if found is None:
                if store.latest_step() is None:
                    raise FileNotFoundError(f"No checkpoint in '{directory}'.")
                raise DamagedCheckpoint(f"Every checkpoint in {directory} is damaged (steps "
                                        f"{store.all_steps()}).")
            step, state, meta = found
    # A copy on every local device: encoding splits its chunks over all of them.
    params = to_local(jax.tree.map(jnp.asarray, state["params"]))
    return from_meta(meta, params, directory.parent, step)
