"""How well embedding distances agree with OT, and how well embeddings separate labels.

Plain NumPy/SciPy/scikit-learn functions of arrays: no model, no solver. The pairs they are
computed on are drawn by :func:`~wormhole.data.transforms.distinct_random_pairs`, re-exported
here (it lives in ``wormhole.data`` so that the OT layer can draw pairs too).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from scipy import stats

from wormhole.data.transforms import distinct_random_pairs

__all__ = ["PROBE", "Agreement", "UndefinedCorrelationWarning", "agreement",
           "distinct_random_pairs", "knn_accuracies", "nearest_neighbor_accuracy",
           "nearest_neighbor_hits", "probe_accuracy"]

# The label probe of :func:`probe_accuracy`, as reports describe it.
PROBE = ("scikit-learn MLPClassifier: standardised embeddings, one hidden layer of 256 ReLU "
         "units, Adam at 3e-3 for at most 200 epochs, stopped after 20 without gain on a "
         "held-back 10% of the references, seed 0")

# Values whose spread is at most this fraction of their largest magnitude count as all equal:
# float32 rounding of one repeated distance, not a signal a correlation could measure.
_EQUAL_RELATIVE_SPREAD = 1e-6


class UndefinedCorrelationWarning(UserWarning):
    """Pearson and Spearman correlations are undefined: one side's values are all equal."""


class Agreement(NamedTuple):
    """Agreement of predicted distances with ground truth over ``P`` pairs.

    Attributes:
      pearson: linear correlation.
      spearman: rank correlation.
      stress: mean squared difference ``mean((pred - target)^2)``, in the units of the
        values squared (the training stress loss on these pairs).
      mean_relative_error: ``mean(|pred - target| / target)`` over pairs with a positive
        target.
      num_pairs: ``P``.
      num_relative: pairs that entered the relative error (positive target).
    """

    pearson: float
    spearman: float
    stress: float
    mean_relative_error: float
    num_pairs: int
    num_relative: int

    def as_dict(self) -> dict:
        return {k: (float(v) if isinstance(v, float | np.floating) else int(v))
                for k, v in self._asdict().items()}


def _all_equal(values: np.ndarray) -> bool:
    return bool(np.ptp(values) <= _EQUAL_RELATIVE_SPREAD * np.max(np.abs(values)))


def agreement(predicted, target) -> Agreement:
    """Pearson, Spearman, stress and mean relative error of ``predicted`` vs ``target``.

    The one computation of held-out agreement (training's evaluation and
    :func:`~wormhole.evaluate.evaluate_run` both use it).

    Correlations are undefined when all predictions or all targets are equal (e.g. every
    pair compares identical clouds, or the model maps every cloud to one embedding);
    values within a relative spread of 1e-6 count as equal. Then ``pearson`` and
    ``spearman`` are NaN and an :class:`UndefinedCorrelationWarning` says which side is
    constant; the stress and relative error are still computed.

    Args:
      predicted, target: ``[P]`` values for the same pairs, in the same units.

    Raises:
      ValueError: on shape mismatch, fewer than two pairs or non-finite values.
    """
    pred = np.asarray(predicted, np.float64).ravel()
    true = np.asarray(target, np.float64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"Got {pred.size} predicted values for {true.size} targets.")
    if pred.size < 2:
        raise ValueError("Agreement needs at least two pairs.")
    for name, values in (("predicted", pred), ("target", true)):
        bad = int(np.sum(~np.isfinite(values)))
        if bad:
            raise ValueError(f"The {name} distances contain NaN or infinite values ({bad} of "
                             f"{values.size}).")
    constant = [f"all {values.size} {name} values are equal (to {values[0]:.6g})"
                for name, values in (("target", true), ("predicted", pred))
                if _all_equal(values)]
    if constant:
        warnings.warn(f"Pearson and Spearman correlations are undefined because "
                      f"{' and '.join(constant)}; they are reported as NaN.",
                      UndefinedCorrelationWarning, stacklevel=2)
        pearson = spearman = float("nan")
    else:
        pearson = float(stats.pearsonr(pred, true).statistic)
        spearman = float(stats.spearmanr(pred, true).statistic)
    positive = true > 0
    relative = np.abs(pred[positive] - true[positive]) / true[positive]
    return Agreement(pearson, spearman, float(np.mean((pred - true) ** 2)),
                     float(relative.mean()) if relative.size else float("nan"),
                     int(pred.size), int(positive.sum()))


def _labelled(embeddings, labels, name: str) -> tuple[np.ndarray, np.ndarray]:
    embeddings, labels = np.asarray(embeddings, np.float64), np.asarray(labels)
    if embeddings.ndim != 2 or labels.shape != (len(embeddings),):
        raise ValueError(f"Got {name} embeddings of shape {embeddings.shape} but labels of "
                         f"shape {labels.shape}; expected [N, e] and [N].")
    return embeddings, labels


def nearest_neighbor_hits(query, query_labels, reference=None,
                          reference_labels=None) -> np.ndarray:
    """For each ``query`` embedding, whether its nearest neighbour has the same label.

    The nearest neighbour is taken in Euclidean distance, which orders neighbours as both
    embedding distances of the model do (``mse`` is its square over the dimension).

    Args:
      query: ``[N, e]`` embeddings with ``query_labels [N]``.
      reference: ``[M, e]`` embeddings with ``reference_labels [M]`` to search (e.g. the
        training split); ``None``: leave-one-out within ``query``.

    Returns:
      ``[N]`` booleans.
    """
    from sklearn.neighbors import NearestNeighbors

    query, query_labels = _labelled(query, query_labels, "query")
    if reference is None:
        if len(query) < 2:
            raise ValueError("Leave-one-out nearest neighbours need at least two embeddings.")
        # Without X, sklearn leaves each point out by its index: an exact duplicate of a
        # query (at distance 0) is its neighbour, the query itself never.
        index = NearestNeighbors(n_neighbors=1).fit(query).kneighbors()[1][:, 0]
        return query_labels[index] == query_labels
    reference, reference_labels = _labelled(reference, reference_labels, "reference")
    index = NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(query)[1][:, 0]
    return reference_labels[index] == query_labels


def nearest_neighbor_accuracy(query, query_labels, reference=None,
                              reference_labels=None) -> float:
    """Fraction of :func:`nearest_neighbor_hits`: 1-NN label accuracy in embedding space."""
    return float(np.mean(nearest_neighbor_hits(query, query_labels, reference,
                                               reference_labels)))


def knn_accuracies(query, query_labels, reference, reference_labels,
                   ks=(1, 5, 10)) -> dict[str, float]:
    """``{k: accuracy}``: k-NN majority-vote label accuracy of ``query`` embeddings among
    labelled ``reference`` embeddings (Euclidean; ties as :func:`~wormhole.evaluate.
    neighbours.majority_vote`). A ``k`` above the number of references is left out."""
    from sklearn.neighbors import NearestNeighbors

    from wormhole.evaluate.neighbours import majority_vote

    query, query_labels = _labelled(query, query_labels, "query")
    reference, reference_labels = _labelled(reference, reference_labels, "reference")
    ks = sorted(k for k in set(ks) if 1 <= k <= len(reference))
    if not ks:
        return {}
    index = NearestNeighbors(n_neighbors=ks[-1]).fit(reference).kneighbors(query)[1]
    return {str(k): float(np.mean(majority_vote(reference_labels[index[:, :k]])
                                  == query_labels)) for k in ks}


def probe_accuracy(train, train_labels, test, test_labels, seed: int = 0) -> float:
    """Label accuracy on ``test`` embeddings of a small classifier fit on ``train`` ones
    (:data:`PROBE`): how much label information the embedding carries beyond its nearest
    neighbours."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, train_labels = _labelled(train, train_labels, "training")
    test, test_labels = _labelled(test, test_labels, "test")
    counts = np.unique(train_labels, return_counts=True)[1]
    if len(counts) < 2:
        raise ValueError("A label probe needs training embeddings of at least two labels.")
    # early stopping holds out a stratified 10%: every label must be able to appear there
    early = counts.min() >= 10
    probe = make_pipeline(StandardScaler(), MLPClassifier(
        (256,), learning_rate_init=3e-3, max_iter=200, early_stopping=early,
        n_iter_no_change=20, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(train, train_labels)
    return float(probe.score(test, test_labels))
