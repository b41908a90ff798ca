"""Judging a trained embedding: ground-truth OT, agreement metrics, stress bounds, plots."""

from wormhole.evaluate.barycenter import (
    BarycenterComparison,
    barycenter_objectives,
    compare_barycenter,
    free_support_barycenter,
)
from wormhole.evaluate.ground_truth import (
    gaussian_w2,
    ground_truth_distances,
    pairwise_ground_truth,
)
from wormhole.evaluate.metrics import (
    Agreement,
    UndefinedCorrelationWarning,
    agreement,
    distinct_random_pairs,
    nearest_neighbor_accuracy,
    nearest_neighbor_hits,
)
from wormhole.evaluate.report import evaluate_run
from wormhole.evaluate.splits import SPLITS, run_split
from wormhole.evaluate.stress import (
    StressAnalysis,
    classical_mds,
    criterion_eigenvalues,
    nearest_euclidean,
    stress_analysis,
    stress_bounds,
)

__all__ = [
    "SPLITS",
    "Agreement",
    "BarycenterComparison",
    "StressAnalysis",
    "UndefinedCorrelationWarning",
    "agreement",
    "barycenter_objectives",
    "classical_mds",
    "compare_barycenter",
    "criterion_eigenvalues",
    "distinct_random_pairs",
    "evaluate_run",
    "free_support_barycenter",
    "gaussian_w2",
    "ground_truth_distances",
    "nearest_euclidean",
    "nearest_neighbor_accuracy",
    "nearest_neighbor_hits",
    "pairwise_ground_truth",
    "run_split",
    "stress_analysis",
    "stress_bounds",
]
