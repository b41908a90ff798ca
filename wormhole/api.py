"""The Python entry points: train from a config file, or fit on clouds in memory.

    import wormhole
    model = wormhole.train("digits.yaml", overrides=["train.steps=500"])
    model = wormhole.fit(list_of_clouds, labels=labels, overrides={"ot.kind": "W2"})
    emb = model.encode(new_clouds)

Both return a :class:`~wormhole.inference.Wormhole` and write a run directory that
:func:`wormhole.load` reads back; running the same call again resumes the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from wormhole.config import (
    Config,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
)
from wormhole.data import Dataset, PointClouds, prepare_dataset
from wormhole.inference import Wormhole, from_meta
from wormhole.trainer import train_and_evaluate

__all__ = ["fit", "resolve_config", "train"]


def resolve_config(config: Config | str | Path | None = None,
                   overrides: Mapping | Sequence[str] | None = None) -> Config:
    """A :class:`Config` from an object, a YAML path or bare name, or the defaults.

    ``overrides`` are ``"section.key=value"`` strings or a ``{"section.key": value}`` mapping.
    """
    items = _override_strings(overrides)
    if isinstance(config, Config):
        if not items:
            return config
        return config_from_dict(apply_overrides(config_to_dict(config), items))
    return load_config(config, items)


def _override_strings(overrides) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return list(overrides)


def _finish(output) -> Wormhole:
    return from_meta(output.meta, output.state.params, output.workdir, int(output.state.step))


def train(config: Config | str | Path | None = "digits.yaml",
          overrides: Mapping | Sequence[str] | None = None, dataset: Dataset | None = None,
          callbacks: Sequence[Callable[[int, dict], None]] = (),
          progress: bool = True) -> Wormhole:
    """Train (or resume) the run a config describes, on its configured data set."""
    resolved = resolve_config(config, overrides)
    return _finish(train_and_evaluate(resolved, dataset, callbacks, progress))


def fit(clouds, weights=None, labels=None, test_clouds=None, test_weights=None,
        test_labels=None, config: Config | str | Path | None = None,
        overrides: Mapping | Sequence[str] | None = None, workdir: str | Path | None = None,
        progress: bool = True) -> Wormhole:
    """Train on clouds held in memory.

    Args:
      clouds: a list of ``[n_i, d]`` arrays (sizes may differ) or :class:`PointClouds`.
      weights: optional per-point weights (default uniform).
      labels: optional per-cloud labels (kept for evaluation and plots).
      test_clouds, test_weights, test_labels: a held-out set; default: a random split of
        ``clouds`` by ``data.test_fraction``.
      config: a config object, YAML path or bare name (default: the built-in defaults).
      overrides: ``"section.key=value"`` strings or a ``{"section.key": value}`` mapping.
      workdir: the run directory (default ``runs/<config name>``).
    """
    resolved = resolve_config(config, overrides)
    if workdir is not None:
        resolved = resolve_config(resolved, {"train.workdir": str(workdir)})
    train_set = clouds if isinstance(clouds, PointClouds) else PointClouds.from_list(
        clouds, weights, labels=labels)
    test_set = None
    if test_clouds is not None:
        test_set = test_clouds if isinstance(test_clouds, PointClouds) else \
            PointClouds.from_list(test_clouds, test_weights, labels=test_labels)
    dataset = prepare_dataset(train_set, resolved.data, test_set)
    return _finish(train_and_evaluate(resolved, dataset, progress=progress))
