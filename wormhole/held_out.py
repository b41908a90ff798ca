"""Held-out evaluation during training: fixed random pairs of test clouds, OT targets once."""

from __future__ import annotations

import math

import jax
import numpy as np

from wormhole.data import PointClouds
from wormhole.data.padding import fill_with_first
from wormhole.evaluate.metrics import agreement, distinct_random_pairs
from wormhole.models import WormholeModel, embedding_distance
from wormhole.models.encoding import encode_in_chunks
from wormhole.ot import OTSpec, paired_distances
from wormhole.parallel import encode_mesh

__all__ = ["HeldOutPairs"]


class HeldOutPairs:
    """``eval_step``: agreement of the model's distances with OT on fixed held-out pairs.

    Attributes:
      first, second: ``[P]`` indices of the test clouds of each pair.
      targets: ``[P]`` OT distances of the pairs (the training kind and settings).
      embedding_distance: how embedding distances are measured (``model.embedding_distance``).
    """

    def __init__(self, model: WormholeModel, test: PointClouds, spec: OTSpec, num_pairs: int,
                 embedding_distance: str, seed: int, chunk: int = 256, bucket: int = 32):
        self.first, self.second = distinct_random_pairs(np.random.default_rng((seed, 7)),
                                                        len(test), num_pairs)
        self.test, self.embedding_distance = test, embedding_distance
        self.chunk, self.bucket, self.emb_dim = chunk, bucket, model.config.emb_dim
        solve = jax.jit(lambda x, a, y, b: paired_distances(x, a, y, b, spec).values)
        self.targets = np.concatenate([
            np.asarray(solve(test.points[f], test.weights[f], test.points[s],
                             test.weights[s]))[:count] for f, s, count in self._chunks()])
        self._encode = jax.jit(lambda params, x, a: model.apply(
            {"params": params}, x, a, method=WormholeModel.encode))

    def _chunks(self):
        """``(first, second, count)`` per chunk: chunks of equal length (at most ``chunk``
        pairs; the last one filled with copies of its first pair, of which only ``count`` are
        real), so that one program solves them all."""
        total = len(self.first)
        length = math.ceil(total / max(1, math.ceil(total / self.chunk)))
        for start in range(0, total, length):
            index = np.arange(start, min(start + length, total))
            filled = fill_with_first(index, length)
            yield self.first[filled], self.second[filled], len(index)

    def embed(self, params) -> np.ndarray:
        """``[N, emb_dim]`` embeddings of every test cloud."""
        test = self.test
        return encode_in_chunks(lambda x, a: self._encode(params, x, a), test.points,
                                test.weights, test.sizes, self.emb_dim, bucket=self.bucket,
                                mesh=encode_mesh())

    def __call__(self, params) -> dict:
        emb = self.embed(params)
        pred = np.asarray(embedding_distance(emb[self.first], emb[self.second],
                                             self.embedding_distance))
        if not np.all(np.isfinite(pred)):
            return {"test_pearson": float("nan"), "test_spearman": float("nan"),
                    "test_stress": float("nan")}
        result = agreement(pred, self.targets)
        return {"test_pearson": result.pearson, "test_spearman": result.spearman,
                "test_stress": result.stress}
