"""Typed run configuration: dataclasses, YAML loading, dotted overrides, validation.

A run is described by one :class:`Config` with one section per stage of the pipeline
(data, model, ot, loss, train, checkpoint, eval). Every field carries its allowed values in
its metadata, so a bad YAML file fails on load with a message that names the section, the key
and what is allowed, instead of failing later inside a jitted function.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wormhole.ot.kinds import KINDS, sorting_kinds

__all__ = [
    "CONFIG_DIR",
    "spec",
    "CheckpointConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "OTConfig",
    "TrainConfig",
    "apply_overrides",
    "build_dataclass",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "read_yaml",
    "resolve_config_path",
    "save_config",
]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

OT_KINDS = tuple(KINDS)


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the dotted key."""


def spec(default: Any = dataclasses.MISSING, *, choices=None, min=None, max=None,
          min_exclusive: bool = False, factory=None, doc: str = ""):
    """A dataclass field with validation metadata (allowed choices and numeric range)."""
    meta = {"choices": choices, "min": min, "max": max, "min_exclusive": min_exclusive,
            "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Which point clouds to train on and how to prepare them."""

    name: str = spec("digits", choices=("digits", "mnist", "fashion_mnist", "synthetic",
                                         "shapes", "files"),
                      doc="data set loader")
    path: str | None = spec(None, doc="file or directory for loaders that read files")
    options: dict = spec(factory=dict, doc="loader-specific keyword arguments")
    max_clouds: int | None = spec(None, min=2, doc="keep at most this many clouds")
    max_points: int | None = spec(None, min=1, doc="subsample each cloud to at most N points")
    normalize: str = spec("minmax", choices=("none", "minmax"),
                           doc="coordinate normalisation over the whole data set")
    rotate: bool = spec(False, doc="random rotation of each cloud at every training step")
    split: str = spec("random", choices=("random", "official"),
                       doc="random split by test_fraction, or the data set's own train/test")
    test_fraction: float = spec(0.1, min=0.0, max=0.9, doc="fraction held out for testing")
    exclude_labels: list[int | str] | None = spec(
        None, doc="classes (values or names) removed from the training split only, to "
                  "evaluate on classes the model never saw")
    seed: int = spec(0, doc="seed for subsampling and the train/test split")


@dataclass
class ModelConfig:
    """Encoder, decoder and the distance used between embeddings."""

    encoder: str = spec("transformer", choices=("transformer", "deepsets"))
    emb_dim: int = spec(128, min=1, doc="embedding dimension")
    width: int = spec(128, min=1, doc="token width inside the transformer (and decoder)")
    num_layers: int = spec(3, min=0, doc="encoder blocks (transformer) or hidden layers")
    num_heads: int = spec(4, min=1)
    mlp_dim: int = spec(512, min=1,
                        doc="hidden size of each block's MLP; DeepSets: of phi and rho")
    dropout: float = spec(0.0, min=0.0, max=0.9)
    pooling: str = spec("mean", choices=("mean", "sum"), doc="DeepSets pooling")
    decoder_layers: int = spec(3, min=0, doc="decoder blocks; 0 trains no decoder")
    decoder_points: int | None = spec(None, min=1,
                                       doc="points per decoded cloud (None: typical size)")
    embedding_distance: str = spec("mse", choices=("mse", "euclidean"),
                                    doc="mse matches W2/S2-like targets, euclidean W1/S1-like")
    dtype: str = spec("float32", choices=("float32", "bfloat16"))


@dataclass
class OTConfig:
    """The optimal-transport distance that the embedding reproduces."""

    kind: str = spec("S2", choices=OT_KINDS)
    epsilon: float = spec(0.01, min=0.0, min_exclusive=True, doc="entropic regularisation")
    cost: str | None = spec(None, doc="ott-jax cost name for linear kinds (None: kind default)")
    cost_scale: float | None = spec(None, min=0.0, min_exclusive=True,
                                     doc="divide costs by this (None: estimated from data)")
    threshold: float = spec(1e-3, min=0.0, min_exclusive=True,
                             doc="Sinkhorn marginal-error stopping threshold")
    max_iterations: int = spec(200, min=1, doc="Sinkhorn iteration cap")
    lse_mode: bool = spec(True, doc="log-sum-exp (stable) or kernel Sinkhorn updates")
    decoder_kind: str | None = spec(None, choices=OT_KINDS + (None,),
                                     doc="distance for the reconstruction loss (None: kind)")
    decoder_epsilon: float | None = spec(None, min=0.0, min_exclusive=True)
    differentiation: str = spec("implicit", choices=("implicit", "unroll"),
                                 doc="how reconstruction gradients pass through Sinkhorn")
    outer_iterations: int = spec(20, min=1, doc="outer-iteration cap of GW solvers")
    outer_threshold: float = spec(1e-4, min=0.0, min_exclusive=True,
                                  doc="GW stops when its cost changes by less than this "
                                      "(relative) between outer iterations")
    batching: str = spec("auto", choices=("auto", "vmap", "sequential"),
                         doc="solves in lock-step (vmap, GPU) or one by one (sequential, CPU)")
    solver: str = spec("sinkhorn", choices=("sinkhorn", "sorting"),
                       doc="sorting: exact W1/W2 between 1-D clouds (no epsilon, no iterations)")


@dataclass
class LossConfig:
    """Weights of the loss terms; a zero weight switches a term off."""

    stress: float = spec(1.0, min=0.0)
    reconstruction: float = spec(0.1, min=0.0)
    translation: float = spec(0.0, min=0.0, doc="translation-invariance regulariser")
    scaling: float = spec(0.0, min=0.0, doc="scaling-equivariance regulariser")


@dataclass
class TrainConfig:
    """Optimiser, schedule and loop."""

    steps: int = spec(5000, min=0)
    batch_size: int = spec(16, min=2)
    learning_rate: float = spec(1e-4, min=0.0, min_exclusive=True)
    schedule: str = spec("cosine", choices=("constant", "cosine", "exponential"))
    warmup_steps: int = spec(100, min=0)
    final_lr_fraction: float = spec(0.05, min=0.0, max=1.0)
    grad_clip: float | None = spec(1.0, min=0.0, min_exclusive=True)
    weight_decay: float = spec(0.0, min=0.0)
    seed: int = spec(0)
    length_bucket: int = spec(32, min=0,
                              doc="crop each batch's padding to a multiple of this (0: never)")
    log_every: int = spec(50, min=1)
    eval_every: int = spec(1000, min=1)
    workdir: str | None = spec(None, doc="run directory (None: runs/<config name>)")


@dataclass
class CheckpointConfig:
    """Orbax checkpoints inside the run directory."""

    enabled: bool = spec(True)
    every: int = spec(1000, min=1)
    keep: int = spec(3, min=1)


@dataclass
class EvalConfig:
    """Held-out evaluation."""

    num_pairs: int = spec(500, min=2, doc="held-out pairs compared with ground-truth OT")
    ground_truth: str = spec("auto", choices=("auto", "exact", "sinkhorn"),
                              doc="exact (POT network simplex) or converged Sinkhorn")
    max_exact_points: int = spec(2000, min=1, doc="largest cloud solved exactly")
    num_plot: int = spec(8, min=0, doc="clouds drawn in reconstruction plots")


@dataclass
class Config:
    """A whole run: data, model, OT target, losses, training, checkpoints, evaluation."""

    name: str = spec("run")
    data: DataConfig = spec(factory=DataConfig)
    model: ModelConfig = spec(factory=ModelConfig)
    ot: OTConfig = spec(factory=OTConfig)
    loss: LossConfig = spec(factory=LossConfig)
    train: TrainConfig = spec(factory=TrainConfig)
    checkpoint: CheckpointConfig = spec(factory=CheckpointConfig)
    eval: EvalConfig = spec(factory=EvalConfig)

    @property
    def workdir(self) -> Path:
        return Path(self.train.workdir or Path("runs") / self.name)


# --------------------------------------------------------------------------- conversion


def _closest(key: str, valid) -> str:
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _coerce(value: Any, tp, key: str) -> Any:
    """Check ``value`` against ``tp``; ints and numbers written as text are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}.")
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif origin is list:
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(tp)
            return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} "
                      f"({type(value).__name__}).")


def _check_range(value: Any, meta: dict, key: str) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        shown = ", ".join("null" if c is None else str(c) for c in choices)
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of: {shown}."
                          f"{_closest(str(value), [c for c in choices if c])}")
    if value is None or isinstance(value, (bool, str, dict, list)):
        return
    low, high = meta.get("min"), meta.get("max")
    if low is not None:
        if meta.get("min_exclusive") and not value > low:
            raise ConfigError(f"{key}: {value!r} is out of range; it must be > {low}.")
        if value < low:
            raise ConfigError(f"{key}: {value!r} is out of range; it must be >= {low}.")
    if high is not None and value > high:
        raise ConfigError(f"{key}: {value!r} is out of range; it must be <= {high}.")


def _build(cls, raw: Any, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where = prefix or "config"
        raise ConfigError(f"{where}: expected a mapping of keys, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            section = f"section '{prefix}'" if prefix else "the top level"
            raise ConfigError(f"Unknown key '{dotted}' in {section}.{_closest(str(key), fields)}"
                              f" Valid keys: {', '.join(fields)}.")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, dotted)
            continue
        value = _coerce(value, tp, dotted)
        _check_range(value, fields[key].metadata, dotted)
        kwargs[key] = value
    return cls(**kwargs)


def build_dataclass(cls, raw: dict | None, prefix: str = ""):
    """Build and validate any config dataclass declared with this module's field specs.

    Other typed configs of the package (e.g. the neural OT estimator's) reuse this, so every
    config file fails the same way on an unknown key, a wrong type or an out-of-range value.
    """
    return _build(cls, raw, prefix)


def config_from_dict(raw: dict | None) -> Config:
    """Build and validate a :class:`Config` from nested plain data (e.g. parsed YAML)."""
    config = _build(Config, raw, "")
    _check_consistency(config)
    return config


def config_to_dict(config: Config) -> dict:
    """Nested plain data for ``config`` (YAML- and JSON-serialisable)."""
    return dataclasses.asdict(config)


def _check_consistency(config: Config) -> None:
    """Checks that involve more than one key."""
    if config.model.width % config.model.num_heads:
        raise ConfigError(f"model.width ({config.model.width}) must be divisible by "
                          f"model.num_heads ({config.model.num_heads}).")
    if config.ot.solver == "sorting" and config.ot.kind not in sorting_kinds():
        raise ConfigError(f"ot.solver: 'sorting' computes exact W1 or W2 between 1-D clouds; "
                          f"ot.kind {config.ot.kind!r} needs 'sinkhorn'.")
    if config.ot.solver == "sorting" and config.ot.decoder_kind not in (None, *sorting_kinds()):
        raise ConfigError(f"ot.decoder_kind {config.ot.decoder_kind!r} cannot use the sorting "
                          f"solver (ot.solver); use W1 or W2.")
    if config.data.name == "files" and not config.data.path:
        raise ConfigError("data.path: the 'files' loader needs a path to an .npz file or a "
                          "directory of .npy files.")


# --------------------------------------------------------------------------- files and overrides


def resolve_config_path(path: str | Path) -> Path:
    """A config file path as given, or a bare name looked up in ``configs/``."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    for name in (candidate.name, f"{candidate.name}.yaml"):
        in_dir = CONFIG_DIR / name
        if in_dir.is_file():
            return in_dir
    available = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"Config file '{path}' not found (looked in the current directory "
                            f"and in {CONFIG_DIR}). Available: {', '.join(available)}.")


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to nested plain data."""
    raw = _deep_copy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override '{item}' must look like section.key=value.")
        dotted, text = item.split("=", 1)
        value = yaml.safe_load(text) if text.strip() else None
        parts = dotted.strip().split(".")
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Override '{item}': '{part}' is not a section.")
            node = child
        node[parts[-1]] = value
    return raw


def _deep_copy(raw: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in (raw or {}).items()}


def read_yaml(path: str | Path) -> tuple[Path, dict]:
    """The resolved path (see :func:`resolve_config_path`) and its top-level mapping."""
    resolved = resolve_config_path(path)
    try:
        raw = yaml.safe_load(resolved.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{resolved}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{resolved}: the top level must be a mapping of sections.")
    return resolved, raw


def load_config(path: str | Path | None = None, overrides=(), cls=Config):
    """Load a YAML config (a path or a bare name in ``configs/``) and apply overrides.

    Without a path, the defaults are used. The config's ``name`` defaults to the file stem.
    ``cls`` selects another config dataclass that has a ``name`` field.
    """
    raw: dict = {}
    where = ""
    if path is not None:
        resolved, raw = read_yaml(path)
        raw.setdefault("name", resolved.stem)
        where = f"{resolved}: "
    try:
        raw = apply_overrides(raw, list(overrides))
        return config_from_dict(raw) if cls is Config else build_dataclass(cls, raw)
    except ConfigError as err:
        raise ConfigError(f"{where}{err}") from None


def save_config(config: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path
