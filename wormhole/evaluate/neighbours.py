"""Neighbourhood agreement between an embedding and exact OT, from distance matrices.

Global agreement (a correlation over random pairs) is dominated by large distances; these
metrics look at each cloud's nearest neighbours, which k-NN classification, clustering and
retrieval depend on.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["NeighbourhoodAgreement", "knn_label_accuracy", "knn_predict", "majority_vote",
           "neighbourhood_agreement",
           "nearest_indices", "recall_at_k"]


def _square(matrix, name: str) -> np.ndarray:
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or len(matrix) < 2:
        raise ValueError(f"{name} must be a square [N, N] matrix with N >= 2, got "
                         f"{matrix.shape}.")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} has NaN or infinite entries.")
    return matrix


def nearest_indices(distances, k: int, exclude_self: bool = True) -> np.ndarray:
    """``[Q, k]`` column indices of the ``k`` smallest entries of each row, nearest first.

    With ``exclude_self`` (square matrices: row ``i`` is item ``i``), item ``i`` is never
    its own neighbour. Ties are broken by index (stable sort).
    """
    distances = np.array(distances, np.float64)
    if exclude_self:
        np.fill_diagonal(distances, np.inf)
    available = distances.shape[1] - int(exclude_self)
    if not 1 <= k <= available:
        raise ValueError(f"k must be between 1 and {available}, got {k}.")
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def recall_at_k(found, truth) -> float:
    """Mean fraction of each row of ``truth [Q, k]`` that appears in ``found [Q, k']``."""
    found, truth = np.asarray(found), np.asarray(truth)
    if len(found) != len(truth):
        raise ValueError(f"Got {len(found)} found rows for {len(truth)} true rows.")
    return float(np.mean([len(np.intersect1d(f, t)) / truth.shape[1]
                          for f, t in zip(found, truth, strict=True)]))


def knn_predict(distances, reference_labels, k: int = 1,
                leave_one_out: bool = False) -> np.ndarray:
    """``[Q]`` k-NN majority votes from ``distances [Q, N]`` to labelled references.

    A tied vote goes to the tied label of the nearest neighbour. ``leave_one_out``: the
    matrix is square and item ``i`` does not vote for itself.
    """
    reference = np.asarray(reference_labels)
    return majority_vote(reference[nearest_indices(distances, k, exclude_self=leave_one_out)])


def majority_vote(neighbour_labels) -> np.ndarray:
    """``[Q]`` majority label of each row of ``neighbour_labels [Q, k]`` (nearest first);
    a tied vote goes to the tied label of the nearest neighbour."""
    votes = []
    for row in np.asarray(neighbour_labels):
        values, counts = np.unique(row, return_counts=True)
        tied = values[counts == counts.max()]
        votes.append(next(v for v in row if v in tied))
    return np.asarray(votes)


def knn_label_accuracy(distances, labels, k: int = 1, reference_labels=None) -> float:
    """k-NN label accuracy (:func:`knn_predict`) from a distance matrix.

    ``distances [Q, N]`` with ``reference_labels [N]`` classifies ``labels [Q]`` against
    references; without them ``distances`` is square and each item is classified by the
    others (leave-one-out).
    """
    labels = np.asarray(labels)
    leave_one_out = reference_labels is None
    reference = labels if leave_one_out else reference_labels
    return float(np.mean(knn_predict(distances, reference, k, leave_one_out) == labels))


class NeighbourhoodAgreement(NamedTuple):
    """How well an embedding's neighbourhoods match exact OT's on one set of clouds.

    Attributes:
      recall: ``{k: recall@k}``: of each cloud's ``k`` nearest by OT, the fraction among its
        ``k`` nearest by the embedding.
      trustworthiness: sklearn's trustworthiness of the embedding at ``k`` = the largest
        recall ``k`` (1: no embedding neighbour is an OT stranger).
      knn_accuracy: ``{k: (embedding, exact)}`` leave-one-out k-NN label accuracy, when
        labels are given.
      clouds: the number of clouds.
    """

    recall: dict
    trustworthiness: float
    knn_accuracy: dict | None
    clouds: int

    def as_dict(self) -> dict:
        out = {"clouds": self.clouds, "trustworthiness": self.trustworthiness,
               "recall": {str(k): v for k, v in self.recall.items()}}
        if self.knn_accuracy is not None:
            out["knn_accuracy"] = {str(k): {"embedding": e, "exact": x}
                                   for k, (e, x) in self.knn_accuracy.items()}
        return out


def neighbourhood_agreement(embedding_distances, exact_distances, embeddings, labels=None,
                            ks=(1, 10, 50), label_ks=(1, 5)) -> NeighbourhoodAgreement:
    """Recall@k, trustworthiness and k-NN accuracy of an embedding against exact OT.

    Args:
      embedding_distances: ``[N, N]`` the model's distances between the clouds.
      exact_distances: ``[N, N]`` exact OT between the same clouds.
      embeddings: ``[N, e]`` the clouds' embeddings (for trustworthiness).
      labels: optional ``[N]`` labels for k-NN accuracy.
      ks: neighbourhood sizes for recall (those below ``N - 1`` are kept).
      label_ks: neighbourhood sizes for k-NN accuracy.
    """
    from sklearn.manifold import trustworthiness

    predicted = _square(embedding_distances, "embedding_distances")
    exact = _square(exact_distances, "exact_distances")
    if predicted.shape != exact.shape:
        raise ValueError(f"The embedding matrix is {predicted.shape} but the exact one is "
                         f"{exact.shape}.")
    count = len(exact)
    ks = [k for k in ks if k < count - 1] or [1]
    recall = {k: recall_at_k(nearest_indices(predicted, k), nearest_indices(exact, k))
              for k in ks}
    exact_zero_diagonal = exact.copy()
    np.fill_diagonal(exact_zero_diagonal, 0.0)
    trust = float(trustworthiness(np.maximum(exact_zero_diagonal, 0.0),
                                  np.asarray(embeddings, np.float64),
                                  n_neighbors=min(max(ks), count // 2 - 1) or 1,
                                  metric="precomputed"))
    accuracy = None
    if labels is not None:
        accuracy = {k: (knn_label_accuracy(predicted, labels, k),
                        knn_label_accuracy(exact, labels, k))
                    for k in label_ks if k < count}
    return NeighbourhoodAgreement(recall, trust, accuracy, count)
