"""The one run format on disk, written by training and read by inference (orbax underneath).

A run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` and
``checkpoints/<step>/`` with two items and a manifest:

- ``state``: the train state pytree (params, optimiser state, step, PRNG key);
- ``meta``: a :class:`RunMeta` as JSON: everything needed to use the network (the resolved
  config, data normalisation, OT cost scale, model spec) and to know its data (a
  description and a fingerprint of the clouds);
- ``manifest.json``: the size and SHA-256 of every file of the checkpoint, written once the
  checkpoint is complete, so that a damaged file is found and named on load.

Orbax writes each step to a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["CHECKPOINT_DIR", "FORMAT_VERSION", "CheckpointStore", "DamagedCheckpoint",
           "DataRecord", "RunMeta", "find_checkpoint_dir"]

CHECKPOINT_DIR = "checkpoints"
FORMAT_VERSION = 2
_MANIFEST = "manifest.json"


class DamagedCheckpoint(RuntimeError):
    """A checkpoint on disk cannot be read; the message names the damaged file."""


@dataclass(frozen=True)
class DataRecord:
    """What a run was trained on.

    Attributes:
      description: how to get the clouds again, in words (loader and path, or the run's own
        copy of clouds given in memory).
      fingerprint: SHA-256 (hex, shortened) of the prepared train and test clouds; a resume
        whose clouds have another fingerprint is refused.
      num_train, num_test: clouds in each split.
    """

    description: str
    fingerprint: str | None
    num_train: int
    num_test: int = 0


@dataclass(frozen=True)
class RunMeta:
    """The metadata stored with every checkpoint (format :data:`FORMAT_VERSION`).

    Attributes:
      config: the resolved run config as nested plain data.
      normalization: the data normalisation (``Normalization.to_dict``).
      cost_scale: ground costs were divided by this for the training targets.
      model_spec: the data-dependent model facts (``ModelSpec.to_dict``).
      data: a :class:`DataRecord`.
      format: the run-format version that wrote it.
    """

    config: dict
    normalization: dict
    cost_scale: float
    model_spec: dict
    data: DataRecord
    format: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict, where: str = "checkpoint") -> RunMeta:
        """Read format 2, and format 1 (no data record: its fingerprint is unknown)."""
        if not isinstance(raw, dict):
            raise DamagedCheckpoint(f"{where}: the metadata is not a JSON object.")
        version = raw.get("format", 1)
        if version > FORMAT_VERSION:
            raise DamagedCheckpoint(f"{where} was written by a newer wormhole (run format "
                                    f"{version}; this one reads up to {FORMAT_VERSION}). "
                                    f"Upgrade wormhole to read it.")
        missing = [k for k in ("config", "normalization", "cost_scale", "model_spec")
                   if k not in raw]
        if missing:
            raise DamagedCheckpoint(f"{where}: the metadata lacks {', '.join(missing)}; it was "
                                    f"not written by wormhole's trainer.")
        data = raw.get("data")
        if isinstance(data, dict):
            record = DataRecord(**data)
        else:  # format 1 kept only the number of training clouds
            record = DataRecord("unknown (written by run format 1)", None,
                                int(raw.get("num_train", 0)))
        return cls(raw["config"], raw["normalization"], float(raw["cost_scale"]),
                   raw["model_spec"], record, FORMAT_VERSION, raw.get("extra", {}))


def holds_checkpoints(directory: str | Path) -> bool:
    """Whether ``directory`` (a run's ``checkpoints/``) holds at least one step folder."""
    directory = Path(directory)
    return directory.is_dir() and any(p.name.isdigit() for p in directory.iterdir())


def find_checkpoint_dir(path: str | Path) -> tuple[Path, int | None]:
    """Resolve a run directory, its ``checkpoints/`` folder or one ``checkpoints/<step>``.

    Returns the checkpoints folder and the step (``None``: the latest intact one).
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"No run or checkpoint at '{path}'.")
    if not path.is_dir():
        raise FileNotFoundError(f"'{path}' is a file; give the run directory (the one holding "
                                f"'{CHECKPOINT_DIR}/') or one checkpoint folder.")
    if (path / CHECKPOINT_DIR).is_dir():
        return path / CHECKPOINT_DIR, None
    if path.name.isdigit() and path.parent.is_dir() and (path / "state").exists():
        return path.parent, int(path.name)
    if holds_checkpoints(path):
        return path, None
    raise FileNotFoundError(f"'{path}' is not a run directory (no '{CHECKPOINT_DIR}/' inside) "
                            f"nor a checkpoint folder.")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(step_dir: Path) -> None:
    files = {str(p.relative_to(step_dir)): {"bytes": p.stat().st_size, "sha256": _file_digest(p)}
             for p in sorted(step_dir.rglob("*")) if p.is_file() and p.name != _MANIFEST}
    temporary = step_dir / (_MANIFEST + ".tmp")
    temporary.write_text(json.dumps(files, indent=0))
    temporary.replace(step_dir / _MANIFEST)


def verify_checkpoint(step_dir: Path) -> None:
    """Raise :class:`DamagedCheckpoint` naming the first missing or altered file.

    Uses the manifest written at save time; a checkpoint without one (an older run) is only
    checked for its two items.
    """
    for item in ("state", "meta"):
        if not (step_dir / item).is_dir():
            raise DamagedCheckpoint(f"Checkpoint {step_dir} is damaged: {step_dir / item} is "
                                    f"missing.")
    manifest = step_dir / _MANIFEST
    if not manifest.exists():
        return
    try:
        files = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:
        raise DamagedCheckpoint(f"Checkpoint {step_dir} is damaged: {manifest} cannot be read "
                                f"({err}).") from None
    for name, expected in files.items():
        path = step_dir / name
        if not path.is_file():
            raise DamagedCheckpoint(f"Checkpoint {step_dir} is damaged: {path} is missing.")
        if path.stat().st_size != expected["bytes"] or _file_digest(path) != expected["sha256"]:
            raise DamagedCheckpoint(f"Checkpoint {step_dir} is damaged: {path} differs from "
                                    f"what was written (size or checksum).")


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= 240 else text[:237] + "..."


class CheckpointStore:
    """Save and restore ``(state, RunMeta)`` pairs by step, keeping the last ``keep``."""

    def __init__(self, directory: str | Path, keep: int = 3, create: bool = True):
        self.directory = Path(directory).expanduser().resolve()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
        self._manager = ocp.CheckpointManager(self.directory, item_names=("state", "meta"),
                                              options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def step_dir(self, step: int) -> Path:
        return self.directory / str(step)

    def save(self, step: int, state: Any, meta: RunMeta) -> None:
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta.to_dict())),
            force=True)
        self._manager.wait_until_finished()
        if jax.process_index() == 0:
            _write_manifest(self.step_dir(step))

    def _check_step(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No checkpoint in '{self.directory}'.")
        if step not in self.all_steps():
            raise FileNotFoundError(f"No checkpoint for step {step} in '{self.directory}'; "
                                    f"available: {self.all_steps()}.")
        return step

    def restore(self, step: int | None = None, target: Any = None) -> tuple[Any, RunMeta]:
        """The state (shaped and sharded like ``target`` when given) and meta at ``step``.

        Raises :class:`DamagedCheckpoint`, naming the file, when the checkpoint is damaged.
        """
        step = self._check_step(step)
        meta = self.restore_meta(step)
        if target is not None:
            target = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        else:
            target = self._on_this_device(step)
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target)))
        except Exception as err:  # orbax raises many types; name the checkpoint instead
            raise DamagedCheckpoint(f"Checkpoint {self.step_dir(step)} cannot be restored: "
                                    f"{_short(err)}") from None
        return restored.state, meta

    def _on_this_device(self, step: int):
        """A restore target for the saved state on this process's first device: a run saved
        on other devices (or hosts) loads anywhere. ``None`` when the layout is unreadable
        (orbax then reports the damage)."""
        try:
            saved = ocp.PyTreeCheckpointHandler().metadata(self.step_dir(step) / "state")
        except Exception:  # damaged metadata: the restore below names the checkpoint
            return None
        saved = getattr(saved, "tree", saved)
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

        def one(leaf):
            if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
                return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device)
            return leaf

        return jax.tree.map(one, saved)

    def restore_meta(self, step: int | None = None) -> RunMeta:
        step = self._check_step(step)
        verify_checkpoint(self.step_dir(step))
        try:
            raw = self._manager.restore(step, args=ocp.args.Composite(
                meta=ocp.args.JsonRestore())).meta
        except Exception as err:
            raise DamagedCheckpoint(f"Checkpoint {self.step_dir(step)}: its metadata cannot be "
                                    f"read ({_short(err)}).") from None
        return RunMeta.from_dict(raw, str(self.step_dir(step)))

    def latest_intact_step(self, before: int | None = None, warn: bool = True) -> int | None:
        """The newest step whose checkpoint passes :func:`verify_checkpoint` and whose meta
        reads, warning about each newer one that is skipped (unless ``warn`` is false: a
        look before :meth:`restore_latest_intact`, which warns)."""
        for step in reversed(self.all_steps()):
            if before is not None and step >= before:
                continue
            try:
                self.restore_meta(step)
                return step
            except DamagedCheckpoint as err:
                if warn:
                    warnings.warn(f"{err} Skipping it.", RuntimeWarning, stacklevel=2)
        return None

    def restore_latest_intact(self, target: Any = None) -> tuple[int, Any, RunMeta] | None:
        """``(step, state, meta)`` of the newest checkpoint that restores, or ``None``.

        Each damaged newer checkpoint is skipped with a warning that names it.
        """
        before = None
        while (step := self.latest_intact_step(before)) is not None:
            try:
                state, meta = self.restore(step, target)
                return step, state, meta
            except DamagedCheckpoint as err:
                warnings.warn(f"{err} Skipping it.", RuntimeWarning, stacklevel=2)
                before = step
        return None

    def set_aside(self, steps: list[int], where: Path) -> None:
        """Move the checkpoints of ``steps`` (damaged ones) to ``where/<step>``, out of the
        store, so that the steps can be trained and saved again."""
        where.mkdir(parents=True, exist_ok=True)
        for step in steps:
            target = where / str(step)
            suffix = 0
            while target.exists():
                suffix += 1
                target = where / f"{step}.{suffix}"
            self.step_dir(step).rename(target)
        self._manager.reload()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
