"""One run format on disk, written by training and read by inference (orbax underneath).

A run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` and
``checkpoints/<step>/`` with two items:

- ``state``: the train state pytree (params, optimiser state, step, PRNG key);
- ``meta``: JSON with everything needed to use the network: the resolved config, the data
  normalisation, the OT cost scale and the model spec (data dimension, decoder size,
  output range).

Orbax writes each step to a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact and never a half-written one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

__all__ = ["CHECKPOINT_DIR", "CheckpointStore", "find_checkpoint_dir"]

CHECKPOINT_DIR = "checkpoints"


def find_checkpoint_dir(path: str | Path) -> tuple[Path, int | None]:
    """Resolve a run directory, its ``checkpoints/`` folder or one ``checkpoints/<step>``.

    Returns the checkpoints folder and the step (``None``: the latest).
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"No run or checkpoint at '{path}'.")
    if (path / CHECKPOINT_DIR).is_dir():
        return path / CHECKPOINT_DIR, None
    if path.name.isdigit() and (path / "meta").exists():
        return path.parent, int(path.name)
    if any(p.name.isdigit() for p in path.iterdir()):
        return path, None
    raise FileNotFoundError(f"'{path}' is not a run directory (no '{CHECKPOINT_DIR}/' inside) "
                            f"nor a checkpoint folder.")


class CheckpointStore:
    """Save and restore (state, meta) pairs by step, keeping the last ``keep``."""

    def __init__(self, directory: str | Path, keep: int = 3, create: bool = True):
        self.directory = Path(directory).expanduser().resolve()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
        self._manager = ocp.CheckpointManager(self.directory, item_names=("state", "meta"),
                                              options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict) -> None:
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
        self._manager.wait_until_finished()

    def restore(self, step: int | None = None, target: Any = None) -> tuple[Any, dict]:
        """The state (shaped like ``target`` when given) and meta at ``step`` (default latest)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No checkpoint in '{self.directory}'.")
        if step not in self.all_steps():
            raise FileNotFoundError(f"No checkpoint for step {step} in '{self.directory}'; "
                                    f"available: {self.all_steps()}.")
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
        return restored.state, restored.meta

    def restore_meta(self, step: int | None = None) -> dict:
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No checkpoint in '{self.directory}'.")
        return self._manager.restore(step, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore())).meta

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
