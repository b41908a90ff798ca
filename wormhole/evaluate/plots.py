"""PNG figures of an evaluation: agreement scatter, embedding map, clouds and barycenters.

Figures are built with matplotlib's object API (:class:`matplotlib.figure.Figure`), so
nothing here changes the pyplot backend or state of the caller's session. Each function
writes one PNG and returns its path.

Clouds are drawn by dimension: 1-D as weighted histograms, 2-D as scatter plots with
marker area proportional to weight (images appear upright, equal aspect), 3-D as 3-D
scatter plots, and higher dimensions by their first two coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from wormhole.evaluate.metrics import agreement

__all__ = ["MODEL_COLOR", "REFERENCE_COLOR", "label_name", "plot_agreement",
           "plot_barycenters", "plot_clouds", "plot_embedding_map", "plot_interpolations",
           "plot_neighbourhood_recall", "plot_reconstructions"]

_INPUT, _MODEL, _REFERENCE = "#1f77b4", "#d62728", "#2ca02c"
MODEL_COLOR, REFERENCE_COLOR = _MODEL, _REFERENCE
_PANEL = 1.7  # inches per cloud panel


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _grid(rows: int, cols: int, dim: int, title: str | None = None):
    fig = Figure(figsize=(_PANEL * cols, _PANEL * rows + (0.4 if title else 0.0)),
                 layout="constrained")
    kwargs = {"projection": "3d"} if dim == 3 else {}
    axes = np.array([[fig.add_subplot(rows, cols, r * cols + c + 1, **kwargs)
                      for c in range(cols)] for r in range(rows)])
    if title:
        fig.suptitle(title)
    return fig, axes


def _draw_cloud(ax, points, weights=None, color: str = _INPUT, title: str | None = None,
                bounds=None) -> None:
    points = np.asarray(points, np.float64)
    n, dim = points.shape
    weights = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, np.float64)
    weights = weights / weights.sum()
    if dim == 1:
        ax.hist(points[:, 0], bins=min(30, max(5, n // 3)), weights=weights, color=color)
    elif dim == 3:
        ax.scatter(points[:, 0], points[:, 1], points[:, 2], s=6 * n * weights, c=color,
                   depthshade=False)
        ax.set_zticks([])
    else:
        ax.scatter(points[:, 0], points[:, 1], s=12 * n * weights, c=color, linewidths=0)
    if dim == 1 and bounds is not None:
        low, high = bounds
        pad = 0.05 * max(float(high[0] - low[0]), 1e-12)
        ax.set_xlim(low[0] - pad, high[0] + pad)
    if dim >= 2:
        # A square window shared by the panels of a figure: equal aspect, common scale.
        low, high = bounds if bounds is not None else _bounds([points])
        centre = (low + high) / 2.0
        half = 0.55 * max(float(np.max(high[:3] - low[:3])), 1e-12)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        if dim == 3:
            ax.set_zlim(centre[2] - half, centre[2] + half)
        else:
            ax.set_aspect("equal", adjustable="box")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _bounds(clouds: Sequence[np.ndarray]):
    """One box around all clouds, so panels share a scale."""
    stacked = np.concatenate([np.asarray(c, np.float64) for c in clouds])
    return stacked.min(axis=0), stacked.max(axis=0)


def plot_clouds(clouds: Sequence, path: str | Path, titles: Sequence[str] | None = None,
                title: str | None = None, columns: int = 8,
                colors: Sequence[str] | None = None) -> Path:
    """A grid of clouds: arrays ``[n, d]`` or ``(points, weights)`` pairs, one scale.

    ``colors`` gives one colour per cloud (default: the model's red for all).
    """
    items = [c if isinstance(c, tuple) else (c, None) for c in clouds]
    if not items:
        raise ValueError("No clouds to plot.")
    cols = min(columns, len(items))
    rows = -(-len(items) // cols)
    fig, axes = _grid(rows, cols, np.asarray(items[0][0]).shape[-1], title)
    bounds = _bounds([p for p, _ in items])
    for k, ax in enumerate(axes.ravel()):
        if k < len(items):
            color = colors[k] if colors else _MODEL
            _draw_cloud(ax, *items[k], color, titles[k] if titles else None, bounds)
        else:
            ax.set_axis_off()
    return _save(fig, path)


def plot_agreement(predicted, target, path: str | Path, title: str = "",
                   units: str = "target units", max_points: int = 5000) -> Path:
    """Scatter of embedding distances against ground-truth OT, with the identity line."""
    figures = agreement(predicted, target)
    predicted, target = np.asarray(predicted, float), np.asarray(target, float)
    fig = Figure(figsize=(4.4, 4.2))
    ax = fig.add_subplot()
    shown = np.random.default_rng(0).permutation(len(target))[:max_points]
    ax.scatter(target[shown], predicted[shown], s=5, alpha=0.5, linewidths=0)
    low = min(target.min(), predicted.min())
    high = max(target.max(), predicted.max())
    ax.plot([low, high], [low, high], color="k", lw=0.8, ls="--", label="y = x")
    ax.set_xlabel(f"ground-truth OT ({units})")
    ax.set_ylabel(f"embedding distance ({units})")
    note = (f"Pearson {figures.pearson:.3f}, Spearman {figures.spearman:.3f}, "
            f"{len(target)} pairs")
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_neighbourhood_recall(ks, recall, path: str | Path, title: str = "",
                              exact_kind: str = "exact OT") -> Path:
    """recall@k of exact-OT neighbours among the embedding's ``k`` nearest, against ``k``."""
    fig = Figure(figsize=(4.4, 3.4))
    ax = fig.add_subplot()
    ax.plot(ks, recall, marker=".", color=_MODEL)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("k")
    ax.set_ylabel(f"recall@k of {exact_kind} neighbours")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_embedding_map(embeddings, labels, path: str | Path,
                       label_names: Sequence[str] | None = None, title: str = "") -> Path:
    """The first two principal components of the embeddings, coloured by label."""
    from sklearn.decomposition import PCA

    embeddings = np.asarray(embeddings, np.float64)
    coords = PCA(n_components=2, random_state=0).fit_transform(embeddings)
    fig = Figure(figsize=(5.6, 4.6))
    ax = fig.add_subplot()
    if labels is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=6, linewidths=0)
    else:
        labels = np.asarray(labels)
        values = np.unique(labels)
        for color, value in zip(_colors(len(values)), values, strict=True):
            mask = labels == value
            name = label_name(value, label_names)
            ax.scatter(coords[mask, 0], coords[mask, 1], s=6, color=color, linewidths=0,
                       label=str(name))
        ax.legend(fontsize=7, markerscale=2.5, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  frameon=False)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title or "Embeddings (PCA to 2-D)", fontsize=9)
    return _save(fig, path)


def label_name(value, names: Sequence[str] | None) -> str:
    """The name of a label value (its ``label_names`` entry when there is one)."""
    if names is not None and np.issubdtype(np.asarray(value).dtype, np.integer) \
            and 0 <= int(value) < len(names):
        return str(names[int(value)])
    return str(value)


def _colors(count: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def plot_reconstructions(inputs: Sequence[tuple[np.ndarray, np.ndarray]], decoded,
                         path: str | Path, titles: Sequence[str] | None = None) -> Path:
    """Inputs (top row, marker area by weight) above their decodings (bottom row)."""
    decoded = np.asarray(decoded)
    count = len(inputs)
    fig, axes = _grid(2, count, decoded.shape[-1], "inputs (top) and decodings (bottom)")
    bounds = _bounds([p for p, _ in inputs] + list(decoded))
    for i, ((points, weights), out) in enumerate(zip(inputs, decoded, strict=True)):
        _draw_cloud(axes[0, i], points, weights, _INPUT, titles[i] if titles else None,
                    bounds)
        _draw_cloud(axes[1, i], out, None, _MODEL, None, bounds)
    return _save(fig, path)


def plot_barycenters(rows: Sequence[dict], path: str | Path, members: int = 4) -> Path:
    """One row per class: a few members, the model's barycenter, ott-jax's if given.

    Each row is a dict with ``title``, ``members`` (list of ``(points, weights)``),
    ``model`` (``[m, d]``) and optionally ``model_note`` (its panel title), ``reference``
    (``[m, d]``) and ``note``, or ``references``: a list of ``(points [m, d], note)``, one
    panel each.
    """
    dim = np.asarray(rows[0]["model"]).shape[-1]
    references = [_references(row) for row in rows]
    cols = members + 1 + max(len(r) for r in references)
    fig, axes = _grid(len(rows), cols, dim,
                      "class members | model barycenter (red) | ott-jax barycenter (green)")
    for r, (row, refs) in enumerate(zip(rows, references, strict=True)):
        shown = row["members"][:members]
        bounds = _bounds([p for p, _ in shown] + [row["model"]] + [p for p, _ in refs])
        for c in range(members):
            if c < len(shown):
                _draw_cloud(axes[r, c], *shown[c], _INPUT,
                            row["title"] if c == 0 else None, bounds)
            else:
                axes[r, c].set_axis_off()
        _draw_cloud(axes[r, members], row["model"], None, _MODEL,
                    row.get("model_note", "model"), bounds)
        for c in range(members + 1, cols):
            if c - members - 1 < len(refs):
                points, note = refs[c - members - 1]
                _draw_cloud(axes[r, c], points, None, _REFERENCE, note, bounds)
            else:
                axes[r, c].set_axis_off()
    return _save(fig, path)


def _references(row: dict) -> list:
    if row.get("references") is not None:
        return list(row["references"])
    if row.get("reference") is not None:
        return [(row["reference"], row.get("note") or "ott-jax")]
    return []


def plot_interpolations(strips: Sequence[dict], path: str | Path) -> Path:
    """Rows of decoded clouds along straight lines between two embeddings.

    Each strip is a dict with ``start`` and ``end`` (``(points, weights)`` inputs), ``t``
    (``[T]``) and ``decoded`` (``[T, m, d]``): the inputs frame the decoded path.
    """
    steps = len(strips[0]["t"])
    dim = np.asarray(strips[0]["decoded"]).shape[-1]
    fig, axes = _grid(len(strips), steps + 2, dim,
                      "input | decoded (1 - t) E(a) + t E(b) | input")
    for r, strip in enumerate(strips):
        bounds = _bounds([strip["start"][0], strip["end"][0], *strip["decoded"]])
        _draw_cloud(axes[r, 0], *strip["start"], _INPUT, strip.get("title"), bounds)
        for c, (t, cloud) in enumerate(zip(strip["t"], strip["decoded"], strict=True)):
            _draw_cloud(axes[r, c + 1], cloud, None, _MODEL, f"t={t:.2f}", bounds)
        _draw_cloud(axes[r, steps + 1], *strip["end"], _INPUT, None, bounds)
    return _save(fig, path)
