"""Where training metrics go, and the rule that stops a diverging run.

One writer for every record: ``metrics.jsonl`` in the run directory always, and TensorBoard
event files under ``<run>/tensorboard/`` when ``train.tensorboard`` is set, through
tensorboardX (a small pure-Python writer: no TensorFlow; ``pip install -e ".[tensorboard]"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DivergenceGuard", "MetricsWriter", "TrainingDiverged", "truncate_metrics"]


class TrainingDiverged(RuntimeError):
    """Training diverged; no checkpoint of the failing steps was written."""


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop records logged after the checkpoint a run resumes from (they will be redone)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= last_step]
    path.write_text("".join(line + "\n" for line in kept))


class MetricsWriter:
    """Appends ``{"step": ..., name: value}`` records to ``metrics.jsonl`` (and TensorBoard)."""

    def __init__(self, workdir: Path, tensorboard: bool = False):
        self.path = workdir / "metrics.jsonl"
        self._board = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise ImportError('train.tensorboard needs tensorboardX: pip install -e '
                                  '".[tensorboard]" (or pip install tensorboardX).') from None
            self._board = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, record: dict) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._board is not None:
            step = int(record["step"])
            for key, value in record.items():
                if key != "step" and math.isfinite(value):
                    self._board.add_scalar(key, value, step)

    def close(self) -> None:
        if self._board is not None:
            self._board.close()


class DivergenceGuard:
    """Stops training on the first step whose record fails the divergence rule.

    The rule, checked on every step's metrics before any checkpoint of that step is
    written: the loss, the gradient norm and the updated parameters must be finite, and the
    loss must stay below ``factor`` times the first checked step's loss (runaway growth
    that is still finite, e.g. a learning rate far too large).
    """

    def __init__(self, factor: float):
        self.factor = factor
        self.reference: float | None = None

    def first_failure(self, records: Sequence[dict]) -> tuple[int, str] | None:
        """``(index, reason)`` of the first failing record, or ``None``."""
        for index, record in enumerate(records):
            loss, grad = record["loss"], record["grad_norm"]
            if not math.isfinite(loss):
                return index, f"the loss is {loss}"
            if not math.isfinite(grad):
                return index, f"the gradient norm is {grad}"
            if record.get("params_finite", 1.0) < 1.0:
                return index, "the updated parameters contain NaN or infinite values"
            if self.reference is None:
                self.reference = max(abs(loss), 1e-30)
            if abs(loss) > self.factor * self.reference:
                return index, (f"the loss grew to {loss:.4g}, over train.divergence_factor="
                               f"{self.factor:g} times the first step's {self.reference:.4g}")
        return None
