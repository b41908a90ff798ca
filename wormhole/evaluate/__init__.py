"""Judging a trained embedding: ground-truth OT, agreement metrics, stress bounds, plots."""

from wormhole.evaluate.ground_truth import KINDS, ground_truth_distances, pairwise_ground_truth
from wormhole.evaluate.metrics import Agreement, agreement, nearest_neighbor_accuracy
from wormhole.evaluate.stress import (
    StressAnalysis,
    classical_mds,
    criterion_eigenvalues,
    nearest_euclidean,
    stress_analysis,
    stress_bounds,
)

__all__ = [
    "KINDS",
    "Agreement",
    "StressAnalysis",
    "agreement",
    "classical_mds",
    "criterion_eigenvalues",
    "ground_truth_distances",
    "nearest_euclidean",
    "nearest_neighbor_accuracy",
    "pairwise_ground_truth",
    "stress_analysis",
    "stress_bounds",
]
