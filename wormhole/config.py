"""The run schema: one typed :class:`Config` with a section per stage of the pipeline.

Sections: data, model, ot, loss, train, checkpoint, eval. Every field carries its allowed
values (:func:`wormhole.configlib.option`), so a bad YAML file fails on load with a message
that names the section, the key and what is allowed, instead of failing later inside a
jitted function. Loading, overrides and checks that involve several keys are here too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from wormhole.configlib import (
    ConfigError,
    apply_overrides,
    build_dataclass,
    did_you_mean,
    option,
)
from wormhole.ot.costs import lookup_cost
from wormhole.ot.kinds import KINDS, get_kind, sorting_kinds

__all__ = [
    "CONFIG_DIR",
    "CheckpointConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "DistributedConfig",
    "EvalConfig",
    "LossConfig",
    "MeshConfig",
    "ModelConfig",
    "OTConfig",
    "TrainConfig",
    "apply_overrides",
    "build_dataclass",
    "option",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "read_yaml",
    "resolve_config_path",
    "save_config",
]

# Kept for the modules that still import it from here.
_closest = did_you_mean

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"

OT_KINDS = tuple(KINDS)


@dataclass
class DataConfig:
    """Which point clouds to train on and how to prepare them."""

    name: str = option("digits", choices=("digits", "mnist", "fashion_mnist", "synthetic",
                                         "shapes", "files", "anndata"),
                      doc="data set loader")
    path: str | None = option(None, doc="file or directory for loaders that read files")
    options: dict = option(factory=dict, doc="loader-specific keyword arguments")
    max_clouds: int | None = option(None, min=2, doc="keep at most this many clouds")
    max_points: int | None = option(None, min=1, doc="subsample each cloud to at most N "
                                    "points (drawn among those of positive weight)")
    normalize: str = option("minmax", choices=("none", "minmax"),
                           doc="coordinate normalisation over the whole data set")
    rotate: bool = option(False, doc="random rotation of each cloud at every training step")
    split: str = option("random", choices=("random", "official"),
                       doc="random split by test_fraction, or the data set's own train/test")
    test_fraction: float = option(0.1, min=0.0, max=0.9, doc="fraction held out for testing")
    exclude_labels: list[int | str] | None = option(
        None, doc="classes (values or names) removed from the training split only, to "
                  "evaluate on classes the model never saw")
    seed: int = option(0, doc="seed for subsampling and the train/test split")


@dataclass
class ModelConfig:
    """Encoder, decoder and the distance used between embeddings."""

    encoder: str = option("transformer", choices=("transformer", "deepsets"))
    emb_dim: int = option(128, min=1, doc="embedding dimension")
    width: int = option(128, min=1, doc="token width inside the transformer (and decoder)")
    num_layers: int = option(3, min=0, doc="encoder blocks (transformer) or hidden layers")
    num_heads: int = option(4, min=1)
    mlp_dim: int = option(512, min=1,
                        doc="hidden size of each block's MLP; DeepSets: of phi and rho")
    dropout: float = option(0.0, min=0.0, max=0.9)
    fourier_features: int = option(0, min=0, doc="transformer: lift points through this many "
                                   "learned Fourier features (0: a linear lift)")
    fourier_scale: float = option(1.0, min=0.0, min_exclusive=True,
                                  doc="initial std of the Fourier frequencies, in cycles per "
                                      "unit of the normalised coordinates")
    pooling: str = option("mean", choices=("mean", "sum"), doc="DeepSets pooling")
    phi_sizes: list[int] | None = option(None, doc="DeepSets: widths of phi's layers "
                                                   "(None: num_layers x mlp_dim)")
    rho_sizes: list[int] | None = option(None, doc="DeepSets: widths of rho's layers "
                                                   "(None: num_layers x mlp_dim)")
    decoder_layers: int = option(3, min=0, doc="decoder blocks (0: a decoder without "
                                               "attention blocks; loss.reconstruction=0 "
                                               "trains no decoder)")
    decoder_points: int | None = option(None, min=1,
                                       doc="points per decoded cloud (None: typical size)")
    embedding_distance: str = option("mse", choices=("mse", "euclidean"),
                                    doc="mse matches W2/S2-like targets, euclidean W1/S1-like")
    dtype: str = option("float32", choices=("float32", "bfloat16"))
    mean_split: bool = option(False, doc="S2/W2 with the squared-Euclidean cost and the mse "
                              "distance: each cloud's mean fills the embedding's first "
                              "data-dimension entries, scaled to give the mean term of the "
                              "target exactly, and the network embeds the centred cloud")


@dataclass
class OTConfig:
    """The optimal-transport distance that the embedding reproduces."""

    kind: str = option("S2", choices=OT_KINDS)
    epsilon: float = option(0.01, min=0.0, min_exclusive=True, doc="entropic regularisation")
    cost: str | None = option(None, doc="ott-jax cost name for linear kinds (None: kind default)")
    cost_scale: float | None = option(None, min=0.0, min_exclusive=True,
                                     doc="divide costs by this (None: estimated from data)")
    threshold: float = option(1e-3, min=0.0, min_exclusive=True,
                             doc="Sinkhorn marginal-error stopping threshold")
    max_iterations: int | None = option(None, min=1,
                                      doc="Sinkhorn iteration cap (None: derived from epsilon "
                                          "so that solves converge; see OTSpec.from_config)")
    lse_mode: bool = option(True, doc="log-sum-exp (stable) or kernel Sinkhorn updates")
    decoder_kind: str | None = option(None, choices=OT_KINDS + (None,),
                                     doc="distance for the reconstruction loss (None: kind)")
    decoder_epsilon: float | None = option(None, min=0.0, min_exclusive=True)
    differentiation: str = option("implicit", choices=("implicit", "unroll"),
                                 doc="how reconstruction gradients pass through Sinkhorn")
    outer_iterations: int = option(20, min=1, doc="outer-iteration cap of GW solvers")
    outer_threshold: float = option(1e-4, min=0.0, min_exclusive=True,
                                  doc="GW stops when its cost changes by less than this "
                                      "(relative) between outer iterations")
    batching: str = option("auto", choices=("auto", "vmap", "sequential"),
                         doc="solves in lock-step (vmap, GPU) or one by one (sequential, CPU)")
    solver: str = option("sinkhorn", choices=("sinkhorn", "sorting"),
                       doc="sorting: exact W1/W2 between 1-D clouds (no epsilon, no iterations)")


@dataclass
class LossConfig:
    """Weights of the loss terms; a zero weight switches a term off."""

    stress: float = option(1.0, min=0.0, doc="the paper's stress: mean squared error of "
                                            "embedding distances against OT targets")
    local_stress: float = option(0.0, min=0.0,
                                 doc="stress weighted by 1 / (target + local_offset x batch "
                                     "mean target): values near neighbours")
    log_stress: float = option(0.0, min=0.0,
                               doc="squared log-ratio of embedding distance to target, times "
                                   "the squared batch mean target: a relative error that "
                                   "values near neighbours more than local_stress does")
    local_offset: float = option(0.1, min=0.0, min_exclusive=True,
                                 doc="keeps local_stress and log_stress finite for near-equal "
                                     "clouds (times the batch mean target)")
    reconstruction: float = option(0.1, min=0.0)
    detach_decoder: bool = option(False, doc="the reconstruction trains the decoder only: its "
                                             "gradient stops at the embeddings, which the "
                                             "distance terms alone shape")
    translation: float = option(0.0, min=0.0, doc="translation-invariance regulariser")
    scaling: float = option(0.0, min=0.0, doc="scaling-equivariance regulariser")


@dataclass
class MeshConfig:
    """How a run spreads over devices (see :mod:`wormhole.parallel`)."""

    data: int = option(-1, min=-1, doc="devices on the data axis: each holds batch_size / data "
                                       "clouds and solves its share of the pairs (-1: all "
                                       "devices of all processes)")
    shard_params: bool = option(False, doc="split large parameters and their optimiser state "
                                           "over the data axis instead of copying them to "
                                           "every device (for large models)")
    cpu_devices: int = option(0, min=0, doc="run JAX's CPU platform as this many devices "
                                            "(jax_num_cpu_devices), so that the OT solves of "
                                            "a batch run on several cores at once; 0: JAX's "
                                            "default. Ignored by GPU/TPU runs; takes effect "
                                            "only before JAX first runs anything")


@dataclass
class DistributedConfig:
    """Joining a multi-process (multi-host) run with ``jax.distributed.initialize``."""

    enabled: bool = option(False, doc="start by joining the other processes of the run")
    coordinator_address: str | None = option(
        None, doc="host:port of process 0 (None: JAX_COORDINATOR_ADDRESS, or detected on "
                  "SLURM, Open MPI and TPU pods)")
    num_processes: int | None = option(None, min=1, doc="None: JAX_NUM_PROCESSES, or detected")
    process_id: int | None = option(None, min=0, doc="None: JAX_PROCESS_ID, or detected")


@dataclass
class TrainConfig:
    """Optimiser, schedule and loop."""

    steps: int = option(5000, min=1)
    batch_size: int = option(16, min=2)
    learning_rate: float = option(1e-4, min=0.0, min_exclusive=True)
    schedule: str = option("cosine", choices=("constant", "cosine", "exponential"))
    warmup_steps: int = option(100, min=0)
    final_lr_fraction: float = option(0.05, min=0.0, max=1.0)
    grad_clip: float | None = option(1.0, min=0.0, min_exclusive=True)
    weight_decay: float = option(0.0, min=0.0)
    seed: int = option(0)
    updates_per_batch: int = option(1, min=1,
                                    doc="optimiser updates on each batch's OT targets (the "
                                        "in-batch solves dominate a step; k > 1 reuses them "
                                        "for k updates, at the learning rate of the step)")
    neighbour_batches: float = option(0.0, min=0.0, max=1.0,
                                      doc="fraction of each batch drawn as groups of near "
                                          "neighbours (an anchor and its nearest clouds by "
                                          "sliced quantile sketches; 0: random batches)")
    neighbour_group: int = option(4, min=2, doc="clouds per neighbour group (anchor included)")
    neighbour_pool: int = option(16, min=1, doc="a group's members come from the anchor's "
                                                "this many nearest clouds")
    length_bucket: int = option(32, min=0,
                              doc="crop each batch's padding to a multiple of this (0: never)")
    divergence_factor: float = option(1e4, min=1.0, min_exclusive=True,
                                    doc="stop when the loss exceeds this times the first "
                                        "step's loss (non-finite values always stop)")
    tensorboard: bool = option(False, doc="also write TensorBoard event files (tensorboardX)")
    log_every: int = option(50, min=1)
    eval_every: int = option(1000, min=1)
    workdir: str | None = option(None, doc="run directory (None: runs/<config name>)")
    mesh: MeshConfig = option(factory=MeshConfig)
    distributed: DistributedConfig = option(factory=DistributedConfig)


@dataclass
class CheckpointConfig:
    """Orbax checkpoints inside the run directory."""

    enabled: bool = option(True)
    every: int = option(1000, min=1)
    keep: int = option(3, min=1)


@dataclass
class EvalConfig:
    """Held-out evaluation."""

    num_pairs: int = option(500, min=2, doc="held-out pairs compared with ground-truth OT")
    ground_truth: str = option("auto", choices=("auto", "exact", "sinkhorn"),
                              doc="exact (POT network simplex) or converged Sinkhorn")
    max_exact_points: int = option(2000, min=1, doc="largest cloud solved exactly")
    num_plot: int = option(8, min=0, doc="clouds drawn in reconstruction plots")


@dataclass
class Config:
    """A whole run: data, model, OT target, losses, training, checkpoints, evaluation."""

    name: str = option("run")
    data: DataConfig = option(factory=DataConfig)
    model: ModelConfig = option(factory=ModelConfig)
    ot: OTConfig = option(factory=OTConfig)
    loss: LossConfig = option(factory=LossConfig)
    train: TrainConfig = option(factory=TrainConfig)
    checkpoint: CheckpointConfig = option(factory=CheckpointConfig)
    eval: EvalConfig = option(factory=EvalConfig)

    @property
    def workdir(self) -> Path:
        return Path(self.train.workdir or Path("runs") / self.name)


def config_from_dict(raw: dict | None) -> Config:
    """Build and validate a :class:`Config` from nested plain data (e.g. parsed YAML)."""
    config = build_dataclass(Config, raw)
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
    if config.model.mean_split:
        _check_mean_split(config)
    if config.data.name == "files" and not config.data.path:
        raise ConfigError("data.path: the 'files' loader needs a path to an .npz or .npy file "
                          "or a directory of .npy files.")
    if config.data.name == "anndata" and not config.data.path:
        raise ConfigError("data.path: the 'anndata' loader needs an .h5ad file (or "
                          "scanpy:NAME, e.g. scanpy:pbmc68k_reduced).")


def _check_mean_split(config: Config) -> None:
    """model.mean_split is exact only where the target splits into a mean term and a shape
    term: linear OT with the squared-Euclidean cost, matched by the mse distance."""
    kind = get_kind(config.ot.kind)
    cost = config.ot.cost or kind.default_cost
    named = lookup_cost(cost)
    if kind.quadratic or named is None or named.name != "sqeuclidean":
        raise ConfigError(f"model.mean_split needs a linear OT kind with the sqeuclidean cost "
                          f"(S2 or W2), but ot.kind is {config.ot.kind!r} with cost {cost!r}.")
    if config.model.embedding_distance != "mse":
        raise ConfigError("model.mean_split needs model.embedding_distance: mse (the mean term "
                          "is a squared distance).")


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the
    last silently, so a second ``train:`` section would drop the whole first one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found the key {key!r} twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> tuple[Path, dict]:
    """The resolved path (see :func:`resolve_config_path`) and its top-level mapping."""
    resolved = resolve_config_path(path)
    try:
        raw = yaml.load(resolved.read_text(), Loader=_UniqueKeyLoader) or {}
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
    overrides = list(overrides)
    if path is not None:
        resolved, raw = read_yaml(path)
        raw.setdefault("name", resolved.stem)
        where = f"{resolved}: "

    def build(overrides):
        merged = apply_overrides(raw, list(overrides))
        return config_from_dict(merged) if cls is Config else build_dataclass(cls, merged)

    try:
        return build(overrides)
    except ConfigError as err:
        raise ConfigError(f"{_blame(build, overrides, err, where)}{err}") from None


def _blame(build, overrides: list[str], err: ConfigError, where: str) -> str:
    """Where a config error comes from: the overrides that set the offending key (named),
    else the file when it fails alone, else all the overrides."""
    if not overrides:
        return where
    file_fails = False
    try:
        build(())
    except ConfigError as alone:
        if str(alone) == str(err):
            return where
        file_fails = True
    message = str(err)

    def sets_the_key(override: str) -> bool:
        key = override.split("=", 1)[0].strip()
        return (message.startswith((f"{key}:", f"{key}.", f"Override '{override}'"))
                or f"Unknown key '{key}'" in message or f"Unknown key '{key}." in message)

    named = [o for o in overrides if sets_the_key(o)]
    if not named and file_fails:
        return where
    shown = named or overrides
    return (f"{where.rstrip(': ')} with override{'s' if len(shown) > 1 else ''} "
            f"{', '.join(repr(o) for o in shown)}: ").lstrip()


def save_config(config: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path
