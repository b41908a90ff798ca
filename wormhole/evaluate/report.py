"""Evaluate a trained run end to end: one JSON of figures and a folder of PNG plots.

    from wormhole.evaluate import evaluate_run
    report = evaluate_run("runs/digits")          # writes runs/digits/eval/test-step<N>/

Everything is judged on clouds the model never trained on (the run's ``test`` split unless
told otherwise), against OT computed without the model (:mod:`.ground_truth`), in the
model's target units: the OT cost on normalised coordinates divided by the run's cost scale.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from wormhole.atomic import file_in_the_way
from wormhole.data import PointClouds
from wormhole.evaluate.barycenter import compare_barycenter
from wormhole.evaluate.ground_truth import (
    cross_ground_truth,
    gaussian_w2,
    ground_truth_distances,
    neighbour_judge,
    pairwise_ground_truth,
    resolve_method,
)
from wormhole.evaluate.metrics import (
    PROBE,
    agreement,
    distinct_random_pairs,
    knn_accuracies,
    nearest_neighbor_accuracy,
    nearest_neighbor_hits,
    probe_accuracy,
)
from wormhole.evaluate.neighbours import (
    knn_label_accuracy,
    nearest_indices,
    neighbourhood_agreement,
    recall_at_k,
)
from wormhole.evaluate.plots import (
    label_name,
    plot_agreement,
    plot_barycenters,
    plot_embedding_map,
    plot_interpolations,
    plot_neighbourhood_recall,
    plot_reconstructions,
)
from wormhole.evaluate.splits import label_values, run_split
from wormhole.evaluate.stress import stress_analysis
from wormhole.inference import Wormhole, load
from wormhole.ot.costs import lookup_cost
from wormhole.ot.kinds import get_kind

__all__ = ["evaluate_run"]

_GROUND_TRUTH_BATCH = 64


class _Evaluation:
    """The pieces of one report; each method adds a section and its plots."""

    def __init__(self, model: Wormhole, clouds: PointClouds, split: str, out: Path,
                 seed: int, progress: bool, plots: bool):
        self.model, self.clouds, self.split, self.out = model, clouds, split, out
        self.config = model.config
        self.progress, self.plots, self.seed = progress, plots, seed
        self.normalized = model.prepare(clouds)
        self.embeddings = model.encode(clouds)
        self.figures: list[str] = []
        self.report: dict = {}

    def _settings(self, kind: str, epsilon: float | None = None, **changes) -> dict:
        """Ground-truth settings for ``kind``: the run's epsilon, cost and cost scale."""
        ev = self.config.eval
        # W1/W2 ground truth is unregularised: the epsilon of the run does not define it.
        entropic = not get_kind(kind).has_exact_solver
        return {"kind": kind, "method": ev.ground_truth,
                "epsilon": (epsilon or self.config.ot.epsilon) if entropic else None,
                "max_exact_points": ev.max_exact_points, "cost": self.config.ot.cost,
                "cost_scale": self.model.cost_scale, "batch_size": _GROUND_TRUTH_BATCH,
                "progress": self.progress, **changes}

    def _ground_truth(self, first, second, kind: str | None = None, **changes) -> np.ndarray:
        return ground_truth_distances(
            self.normalized.subset(first), None, self.normalized.subset(second), None,
            **self._settings(kind or self.config.ot.kind, **changes))

    def _method(self, kind: str) -> str:
        """How the ground truth of ``kind`` is solved here (``auto`` resolved)."""
        ev = self.config.eval
        return resolve_method(kind, int(self.clouds.sizes.max()), ev.max_exact_points,
                              ev.ground_truth)

    def _predicted(self, first, second) -> np.ndarray:
        return self.model.embedding_distances(self.embeddings[first], self.embeddings[second])

    def _plot(self, name: str, fn, *args, **kwargs) -> None:
        if self.plots:
            self.figures.append(str(fn(*args, path=self.out / name, **kwargs).name))

    # ------------------------------------------------------------------ sections

    def pairs(self, num_pairs: int, exact: bool) -> None:
        rng = np.random.default_rng((self.seed, 5))
        first, second = _pairs_at_most(rng, len(self.clouds), num_pairs)
        target = self._ground_truth(first, second)
        predicted = self._predicted(first, second)
        kind = self.config.ot.kind
        section = {"kind": kind, "method": self._method(kind),
                   **agreement(predicted, target).as_dict(),
                   "target_mean": float(target.mean())}
        self.report["pairs"] = section
        self._plot("agreement.png", plot_agreement, predicted, target,
                   title=f"{self.config.name}: embedding distance vs {kind} ({self.split})")
        exact_kind = get_kind(kind).exact
        small = int(self.clouds.sizes.max()) <= self.config.eval.max_exact_points
        if exact and exact_kind and exact_kind != kind and small:
            # How close the entropic target's embedding is to unregularised OT.
            value = self._ground_truth(first, second, exact_kind, method="exact")
            self.report["pairs_exact"] = {"kind": exact_kind, "method": "exact",
                                          **agreement(predicted, value).as_dict()}
        self._gaussian_closed_form(first, second, predicted, target)

    def _gaussian_closed_form(self, first, second, predicted, target) -> None:
        """W2^2 between the generating Gaussians, where the data set records them.

        The synthetic loader keeps each cloud's exact ``mean`` and ``cov``; for pairs of its
        ``gaussians`` clouds, the Bures-Wasserstein closed form is the W2^2 of the
        distributions the samples come from. The model is compared with it, and so is the
        sample-based target, whose agreement is the most the model can be expected to reach.
        """
        meta, names = self.clouds.metadata, list(self.clouds.label_names or [])
        if "mean" not in meta or "cov" not in meta or "gaussians" not in names:
            return
        record = get_kind(self.config.ot.kind)
        cost = self.config.ot.cost or record.default_cost
        named = lookup_cost(cost) if isinstance(cost, str) else None
        if record.exact != "W2" or named is None or named.name != "sqeuclidean":
            self.report["gaussian_closed_form"] = {
                "skipped": f"the closed form is W2^2 (squared Euclidean cost); this run "
                           f"trains {record.name} with the {cost} cost"}
            return
        gaussian = self.clouds.labels == names.index("gaussians")
        both = gaussian[first] & gaussian[second]
        if both.sum() < 2:
            return
        a, b = first[both], second[both]
        # In target units: normalised coordinates (x - shift) / scale, then / cost_scale.
        units = self.model.normalization.scale ** 2 * self.model.cost_scale
        closed = gaussian_w2(meta["mean"][a], meta["cov"][a], meta["mean"][b],
                             meta["cov"][b]) / units
        self.report["gaussian_closed_form"] = {
            "kind": "W2^2 between the generating Gaussians (Bures-Wasserstein closed form)",
            "num_pairs": int(both.sum()),
            "model": agreement(predicted[both], closed).as_dict(),
            "target": agreement(target[both], closed).as_dict()}

    def nearest_neighbors(self, reference: PointClouds | None, max_reference: int,
                          label_probe: bool = False) -> None:
        labels = self.clouds.labels
        if labels is None:
            return
        if len(np.unique(labels)) < 2:  # every cloud has the same label: 1.0 says nothing
            self.report["nearest_neighbor"] = {"skipped": f"every {self.split} cloud has "
                                                          "the same label"}
            return
        section = {"leave_one_out": nearest_neighbor_accuracy(self.embeddings, labels)}
        if reference is not None and reference.labels is not None:
            if len(reference) > max_reference:
                keep = np.random.default_rng((self.seed, 6)).choice(
                    len(reference), max_reference, replace=False)
                reference = reference.subset(np.sort(keep))
            encoded = self.model.encode(reference)
            knn = knn_accuracies(self.embeddings, labels, encoded, reference.labels)
            section["against_train"] = knn["1"]  # 1-NN, one neighbour search for every k
            section["knn_against_train"] = knn
            if label_probe:
                section["probe_against_train"] = probe_accuracy(
                    encoded, reference.labels, self.embeddings, labels)
                section["probe"] = PROBE
            section["num_reference"] = len(reference)
        self.report["nearest_neighbor"] = section
        self._plot("embedding_map.png", plot_embedding_map, self.embeddings, labels,
                   label_names=self.clouds.label_names,
                   title=f"{self.config.name}: {self.split} embeddings (PCA to 2-D)")

    def _neighbour_kind(self) -> tuple[str, str]:
        """The OT neighbourhoods are judged by: the exact counterpart where POT applies."""
        ev = self.config.eval
        return neighbour_judge(self.config.ot.kind, int(self.clouds.sizes.max()),
                               ev.max_exact_points, ev.ground_truth)

    def neighbourhoods(self, num_clouds: int, reference: PointClouds | None,
                       num_reference: int) -> None:
        """Recall@k of OT neighbours, trustworthiness and k-NN accuracy, from a full matrix
        of OT on ``num_clouds`` clouds (and ``num_reference`` training references)."""
        count = min(num_clouds, len(self.clouds))
        if count < 4:
            return
        index = np.sort(np.random.default_rng((self.seed, 11)).choice(
            len(self.clouds), count, replace=False))
        kind, method = self._neighbour_kind()
        exact = pairwise_ground_truth(self.normalized.subset(index),
                                      **self._settings(kind, method=method))
        emb = self.embeddings[index]
        predicted = self.model.embedding_distance_matrix(emb)
        labels = None if self.clouds.labels is None else self.clouds.labels[index]
        found = neighbourhood_agreement(predicted, exact, emb, labels)
        ks = np.arange(1, min(50, count - 2) + 1)
        curve = [recall_at_k(nearest_indices(predicted, k), nearest_indices(exact, k))
                 for k in ks]
        section = {"kind": kind, "method": method, **found.as_dict(),
                   "recall_curve": {"k": ks.tolist(), "recall": curve}}
        if labels is not None and reference is not None and reference.labels is not None \
                and num_reference:
            section["against_train"] = self._neighbours_against(index, reference,
                                                                num_reference, kind, method)
        self.report["neighbourhoods"] = section
        recall = ", ".join(f"@{k} {v:.2f}" for k, v in found.recall.items())
        self._plot("neighbourhood_recall.png", plot_neighbourhood_recall, ks, curve,
                   title=f"{self.config.name}: {count} {self.split} clouds, recall {recall}, "
                         f"trustworthiness {found.trustworthiness:.3f}", exact_kind=kind)

    def _neighbours_against(self, index, reference: PointClouds, num_reference: int,
                            kind: str, method: str) -> dict:
        """k-NN label accuracy of clouds ``index`` against training references, by the
        embedding and by OT on the same references."""
        count = min(num_reference, len(reference))
        keep = np.sort(np.random.default_rng((self.seed, 12)).choice(
            len(reference), count, replace=False))
        refs = reference.subset(keep)
        exact = cross_ground_truth(self.normalized.subset(index), self.model.prepare(refs),
                                   **self._settings(kind, method=method))
        emb_refs = self.model.encode(refs)
        predicted = np.array(self.model.embedding_distances(
            self.embeddings[index][:, None], emb_refs[None]))
        labels = self.clouds.labels[index]
        accuracy = {str(k): {"embedding": knn_label_accuracy(predicted, labels, k, refs.labels),
                             "exact": knn_label_accuracy(exact, labels, k, refs.labels)}
                    for k in (1, 5) if k <= count}
        return {"num_reference": count, "knn_accuracy": accuracy}

    def held_out(self, labels, num_pairs: int) -> None:
        """The same figures on classes removed from training (``data.exclude_labels``).

        Pairs within the held-out classes (against pairs within one seen class), pairs of a
        held-out and a seen cloud (against pairs of two seen clouds), and leave-one-out 1-NN
        label accuracy of held-out clouds in the split, all against the training target.
        """
        mask = np.isin(self.clouds.labels, labels)
        index = np.nonzero(mask)[0]
        if len(index) < 2:
            self.report["held_out"] = {"labels": [str(v) for v in labels],
                                       "skipped": f"fewer than two {self.split} clouds"}
            return
        rng = np.random.default_rng((self.seed, 8))
        a, b = _pairs_at_most(rng, len(index), num_pairs)
        first, second = index[a], index[b]
        target = self._ground_truth(first, second)
        predicted = self._predicted(first, second)
        # The same figures within seen classes, for comparison: pairs inside one held-out
        # class span a narrower range than random pairs, which lowers correlations.
        seen = self._within_class_pairs(~mask, num_pairs, rng)
        baseline = None if seen is None else self._agreement_on(*seen)
        # Where the new class sits among the known ones: pairs of one held-out and one
        # seen cloud, next to random pairs of seen clouds.
        cross = seen_pairs = None
        others = np.nonzero(~mask)[0]
        if len(others) >= 2:
            new = index[rng.integers(0, len(index), num_pairs)]
            known = others[rng.integers(0, len(others), num_pairs)]
            cross = self._agreement_on(new, known)
            a, b = distinct_random_pairs(rng, len(others), num_pairs)
            seen_pairs = self._agreement_on(others[a], others[b])
        # Leave-one-out within the split: do held-out clouds find their own class?
        hits = nearest_neighbor_hits(self.embeddings, self.clouds.labels)
        self.report["held_out"] = {
            "labels": [label_name(v, self.clouds.label_names) for v in labels],
            "num_clouds": len(index), **agreement(predicted, target).as_dict(),
            "target_mean": float(target.mean()),
            "seen_classes_within_class_pairs": baseline,
            "held_out_to_seen_pairs": cross,
            "seen_pairs": seen_pairs,
            "nearest_neighbor_leave_one_out": float(hits[mask].mean()),
            "nearest_neighbor_leave_one_out_seen": float(hits[~mask].mean())
            if (~mask).any() else None}
        self._plot("agreement_held_out.png", plot_agreement, predicted, target,
                   title=f"{self.config.name}: held-out classes")

    def _agreement_on(self, first, second) -> dict:
        """Agreement of the model with the target on pairs ``(first, second)``, with the
        targets' mean (errors in target units grow with it: a class of far-apart clouds has
        a larger MSE at the same relative error)."""
        target = self._ground_truth(first, second)
        return {**agreement(self._predicted(first, second), target).as_dict(),
                "target_mean": float(target.mean())}

    def _within_class_pairs(self, mask, num_pairs: int, rng):
        """Random pairs ``i != j`` of clouds in ``mask`` that share a label, or ``None``."""
        labels = self.clouds.labels
        groups = [np.nonzero(mask & (labels == v))[0] for v in np.unique(labels[mask])]
        groups = [g for g in groups if len(g) >= 2]
        if not groups:
            return None
        first, second = [], []
        for g in rng.choice(len(groups), num_pairs):
            a, b = distinct_random_pairs(rng, len(groups[g]), 1)
            first.append(groups[g][a[0]])
            second.append(groups[g][b[0]])
        return np.array(first), np.array(second)

    def stress(self, num_clouds: int) -> None:
        count = min(num_clouds, len(self.clouds))
        if count < 3:
            return
        index = np.sort(np.random.default_rng((self.seed, 9)).choice(
            len(self.clouds), count, replace=False))
        kind = self.config.ot.kind
        delta = pairwise_ground_truth(self.normalized.subset(index), **self._settings(kind))
        emb = self.embeddings[index]
        predicted = np.array(self.model.embedding_distances(emb[:, None], emb[None, :]))
        squared = self.config.model.embedding_distance == "euclidean"
        if squared:  # a Euclidean embedding fits the targets' squares by squared distances
            delta, predicted = delta ** 2, predicted ** 2
        np.fill_diagonal(predicted, 0.0)
        result = stress_analysis(delta, self.config.model.emb_dim, predicted)
        upper = np.triu_indices(len(delta), 1)
        self.report["stress_analysis"] = {
            **result.as_dict(), "kind": kind,
            "mean_delta_squared": float(np.mean(np.square(delta[upper]))),
            "values": f"{kind}^2 (squared, for a euclidean embedding distance)" if squared
            else kind}

    def reconstructions(self, num_plot: int) -> None:
        if self.model.spec.decoder_points == 0:
            return
        count = min(max(num_plot, 1), len(self.clouds))
        index = np.arange(count)
        decoded = self.model.decode(self.embeddings[index])
        # In the target kind, at the decoder's epsilon, whatever the decoder trained with: a
        # non-debiased cost (ot.decoder_kind: W2) is not zero between a cloud and itself, and
        # the between-clouds mean below is in the target kind.
        kind = self.config.ot.kind
        rebuilt = PointClouds.from_padded(self.model.normalization.apply(decoded))
        values = ground_truth_distances(
            self.normalized.subset(index), None, rebuilt, None,
            **self._settings(kind, self.config.ot.decoder_epsilon, progress=False))
        # For scale: the mean target distance between two different clouds of the split.
        self.report["reconstruction"] = {
            "kind": kind, "num_clouds": count, "mean": float(values.mean()),
            "max": float(values.max()),
            "mean_between_clouds": self.report.get("pairs", {}).get("target_mean")}
        if num_plot > 0:
            titles = None if self.clouds.labels is None else \
                [label_name(v, self.clouds.label_names) for v in self.clouds.labels[index]]
            self._plot("reconstructions.png", plot_reconstructions,
                       [self.clouds.cloud(i) for i in index], decoded, titles=titles)

    def barycenters(self, labels, max_clouds: int, epsilon: float) -> None:
        if self.model.spec.decoder_points == 0 or self.clouds.labels is None:
            return
        record = get_kind(self.config.ot.kind)
        if record.quadratic:
            self.report["barycenters"] = {"skipped": "GW embeddings are defined up to "
                                          "isometry; a W2 reference does not apply"}
            return
        cost = self.config.ot.cost or record.default_cost
        named = lookup_cost(cost) if isinstance(cost, str) else None
        if named is None or named.name != "sqeuclidean":
            self.report["barycenters"] = {"skipped": f"the reference is the W2 (squared "
                                          f"Euclidean) barycenter; this run's cost is {cost}"}
            return
        values = np.unique(self.clouds.labels) if labels is None else np.asarray(labels)
        rows, section = [], {}
        for value in tqdm(values, desc="barycenters", disable=not self.progress):
            index = np.nonzero(self.clouds.labels == value)[0][:max_clouds]
            members = self.clouds.subset(index)
            result = compare_barycenter(self.model, members, epsilon=epsilon, seed=self.seed)
            name = label_name(value, self.clouds.label_names)
            section[name] = result.figures()
            rows.append({"title": name, "members": [members.cloud(i) for i in range(4)
                                                    if i < len(members)],
                         "model": result.model, "reference": result.reference,
                         "note": f"S2 {result.s2_model_reference:.3g}"})
        self.report["barycenters"] = {"reference_epsilon": epsilon, "classes": section}
        self._plot("barycenters.png", plot_barycenters, rows)

    def interpolations(self, count: int, steps: int = 7) -> None:
        if self.model.spec.decoder_points == 0 or count == 0:
            return
        rng = np.random.default_rng((self.seed, 10))
        labels = self.clouds.labels
        strips, t = [], np.linspace(0.0, 1.0, steps)
        for _ in range(count):
            a = int(rng.integers(len(self.clouds)))
            others = np.arange(len(self.clouds)) if labels is None else \
                np.nonzero(labels != labels[a])[0]
            others = others[others != a]
            if len(others) == 0:
                break
            b = int(rng.choice(others))
            decoded = self.model.decode((1 - t)[:, None] * self.embeddings[a]
                                        + t[:, None] * self.embeddings[b])
            strips.append({"start": self.clouds.cloud(a), "end": self.clouds.cloud(b),
                           "t": t, "decoded": decoded})
        if strips:
            self._plot("interpolations.png", plot_interpolations, strips)


def evaluate_run(run: str | Path | Wormhole, split: str = "test", num_pairs: int | None = None,
                 exact: bool = True, stress_clouds: int = 100, barycenter_labels=None,
                 barycenter_clouds: int = 50, reference_epsilon: float = 1e-2,
                 interpolations: int = 3, num_plot: int | None = None,
                 max_reference: int = 10_000, neighbour_clouds: int = 200,
                 neighbour_references: int = 200, output_dir: str | Path | None = None,
                 plots: bool = True, seed: int = 0, progress: bool = True,
                 step: int | None = None, label_probe: bool = False) -> dict:
    """Evaluate a trained run and write ``report.json`` and PNG plots.

    Args:
      run: a run directory or checkpoint (see :func:`wormhole.load`), or a loaded model.
      split: ``test`` (default), ``train`` or ``all`` clouds of the run's data set.
      num_pairs: random pairs compared with ground-truth OT (default ``eval.num_pairs``).
      exact: for S1/S2 runs with small clouds, also compare with exact W1/W2.
      stress_clouds: clouds in the stress analysis (all ``n (n - 1) / 2`` pairs are
        solved); 0 skips it.
      barycenter_labels: classes whose barycenters are compared with ott-jax's (default
        every label of the split); ``[]`` skips them.
      barycenter_clouds: at most this many clouds per class barycenter.
      reference_epsilon: entropic regularisation of the ott-jax barycenter, in squared
        normalised units (see :func:`~wormhole.evaluate.barycenter.free_support_barycenter`
        for what it does to the picture).
      interpolations: interpolation strips to draw.
      num_plot: reconstructions to draw (default ``eval.num_plot``).
      max_reference: training clouds searched for 1-NN (and 5-, 10-NN) label accuracy.
      neighbour_clouds: clouds whose full OT matrix (exact W1/W2 for S1/S2 runs with small
        clouds) gives recall@k of OT neighbours (k = 1, 10, 50), trustworthiness and k-NN
        accuracy next to exact OT's; 0 skips it.
      neighbour_references: training clouds those are also classified against, by the
        embedding and by OT (``neighbour_clouds x neighbour_references`` solves).
      output_dir: default ``<run>/eval/<split>-step<step>``.
      plots: write PNG files.
      seed: seeds every random choice (pairs, subsets).
      progress: show progress bars.
      step: checkpoint step to load (default the latest).
      label_probe: also fit a small classifier (:data:`~wormhole.evaluate.metrics.PROBE`) on
        those training embeddings and report its accuracy on the split's.

    Returns:
      The report (also written as ``report.json``), with ``figures`` naming the PNGs.
    """
    start = time.perf_counter()
    blocking = None if output_dir is None else file_in_the_way(output_dir)
    if blocking is not None:
        raise ValueError(f"output_dir {output_dir}: {blocking} is a file, not a directory.")
    model = run if isinstance(run, Wormhole) else load(run, step)
    config = model.config
    clouds = run_split(config, split, model.data)
    if len(clouds) < 2:
        raise ValueError(f"The {split} split has {len(clouds)} cloud; evaluation needs two.")
    bary_values = None if barycenter_labels is None else label_values(barycenter_labels, clouds)
    missing = [v for v in bary_values or [] if clouds.labels is None or v not in clouds.labels]
    if missing:
        raise ValueError(f"No {split} cloud has label {missing[0]!r}.")
    if output_dir is None:
        if model.workdir is None:
            raise ValueError("The model has no run directory; pass output_dir.")
        output_dir = Path(model.workdir) / "eval" / f"{split}-step{model.step}"
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    ev = _Evaluation(model, clouds, split, out, seed, progress, plots)
    ev.report.update({"run": str(model.workdir), "step": model.step, "name": config.name,
                      "split": split, "num_clouds": len(clouds), "output_dir": str(out),
                      "kind": config.ot.kind, "epsilon": config.ot.epsilon,
                      "cost_scale": model.cost_scale,
                      "units": "OT cost on normalised coordinates / cost_scale (target units)"})
    ev.pairs(num_pairs or config.eval.num_pairs, exact)
    # Training clouds are references for held-out queries only: the 'all' split holds them.
    reference = run_split(config, "train", model.data) if split == "test" else None
    ev.nearest_neighbors(reference, max_reference, label_probe)
    if neighbour_clouds:
        ev.neighbourhoods(neighbour_clouds, reference, neighbour_references)
    held = getattr(config.data, "exclude_labels", None)
    if held and clouds.labels is not None:
        ev.held_out(label_values(held, clouds), num_pairs or config.eval.num_pairs)
    if stress_clouds:
        ev.stress(stress_clouds)
    ev.reconstructions(config.eval.num_plot if num_plot is None else num_plot)
    if bary_values is None or bary_values:
        ev.barycenters(bary_values, barycenter_clouds, reference_epsilon)
    ev.interpolations(interpolations)
    ev.report["figures"] = ev.figures
    ev.report["seconds"] = round(time.perf_counter() - start, 1)
    (out / "report.json").write_text(json.dumps(ev.report, indent=2) + "\n")
    return ev.report


def _pairs_at_most(rng: np.random.Generator, count: int, num_pairs: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``num_pairs`` random pairs of distinct items, or every pair once when there are no
    more than that (a small split is not scored on repeats of its few pairs)."""
    if count * (count - 1) // 2 <= num_pairs:
        return np.triu_indices(count, 1)
    return distinct_random_pairs(rng, count, num_pairs)
