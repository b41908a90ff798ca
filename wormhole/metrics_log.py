"""Where training metrics go, the rule that stops a diverging run, and the loop's reports.

One writer for every record: ``metrics.jsonl`` in the run directory always, and TensorBoard
event files under ``<run>/tensorboard/`` when ``train.tensorboard`` is set, through
tensorboardX (a small pure-Python writer: no TensorFlow; ``pip install -e ".[tensorboard]"``).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from wormhole.extras import MissingExtra

__all__ = ["DivergenceGuard", "MetricsWriter", "RunReport", "TrainingDiverged",
           "truncate_metrics"]

# A target solve at the iteration cap is inaccurate; warn when more than this fraction does.
HIT_CAP_WARNING = 0.01


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
    """Appends ``{"step": ..., name: value}`` records to ``metrics.jsonl`` (and TensorBoard).

    ``enabled=False`` (every process but the first of a multi-process run) writes nothing.
    """

    def __init__(self, workdir: Path, tensorboard: bool = False, enabled: bool = True):
        self.path = workdir / "metrics.jsonl"
        self.enabled = enabled
        self._board = None
        if tensorboard and enabled:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise MissingExtra('train.tensorboard needs tensorboardX: pip install -e '
                                  '".[tensorboard]" (or pip install tensorboardX).') from None
            self._board = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
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


def _mean_metrics(records: Sequence[dict]) -> dict:
    return {k: float(np.mean([r[k] for r in records])) for k in records[0]}


class RunReport:
    """The periodic actions of the training loop that report: metric records (checked by
    the divergence rule first), held-out evaluation, the iteration-cap warning, and the
    training clock (evaluation and checkpoint time are not training time)."""

    def __init__(self, writer: MetricsWriter, guard: DivergenceGuard, schedule: Callable,
                 checkpoints: Path | None, last_saved: int | None, bar):
        self.writer, self.guard, self.schedule = writer, guard, schedule
        self.checkpoints, self.last_saved, self.bar = checkpoints, last_saved, bar
        self.history: list[dict] = []
        self.pending: list = []
        self.train_seconds = 0.0
        self.tick = time.perf_counter()
        self.warned_cap = False

    def kept(self) -> str:
        if self.last_saved is None:
            return "No checkpoint had been written."
        return (f"The last good checkpoint (step {self.last_saved}) is kept in "
                f"{self.checkpoints}.")

    def pause(self, state=None) -> None:
        """Stop the training clock (evaluation and checkpoints are not training time),
        after the steps dispatched so far have finished."""
        if state is not None:
            jax.block_until_ready(state)
        self.train_seconds += time.perf_counter() - self.tick

    def resume(self) -> None:
        self.tick = time.perf_counter()

    def write(self, record: dict) -> None:
        self.writer.write(record)
        self.history.append(record)

    def say(self, message: str) -> None:
        """A line above the progress bar, from the first process of a run only."""
        if self.writer.enabled:
            self.bar.write(message)

    def flush(self, done: int) -> None:
        """Check and log the pending steps' metrics; raise on divergence."""
        records = [{k: float(v) for k, v in m.items()} for m in jax.device_get(self.pending)]
        self.pause()
        first = done - len(records)
        failure = self.guard.first_failure(records)
        if failure is not None:
            index, reason = failure
            if index:
                self.write({"step": first + index, **_mean_metrics(records[:index])})
            raise TrainingDiverged(
                f"Training stopped at step {first + index + 1}: {reason}. {self.kept()} Try a "
                f"lower train.learning_rate, train.grad_clip, or a larger ot.epsilon.")
        record = {"step": done, **_mean_metrics(records),
                  "learning_rate": float(self.schedule(done - 1)),
                  "steps_per_s": len(records) / max(self.train_seconds, 1e-9)}
        self.pending, self.train_seconds = [], 0.0
        self.write(record)
        self._warn_about_cap(record)
        self.bar.set_postfix({k: f"{record[k]:.3g}" for k in
                              ("loss", "stress", "reconstruction", "batch_pearson",
                               "steps_per_s") if k in record}, refresh=False)
        self.resume()

    def _warn_about_cap(self, record: dict) -> None:
        if self.warned_cap or record["target_hit_cap"] <= HIT_CAP_WARNING:
            return
        self.warned_cap = True
        message = (f"{100 * record['target_hit_cap']:.0f}% of the OT target solves stopped at "
                   f"the iteration cap (ot.max_iterations) by step {record['step']}: the targets "
                   f"are not converged. Raise ot.max_iterations (or leave it unset), or raise "
                   f"ot.epsilon.")
        self.say(f"WARNING: {message}")
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def evaluate(self, evaluator: Callable[[Any], dict], params, done: int) -> None:
        self.pause(params)
        started = time.perf_counter()
        record = {"step": done, **evaluator(params),
                  "eval_seconds": time.perf_counter() - started}
        self.write(record)
        self.say(f"step {done}: " + ", ".join(
            f"{k}={v:.4g}" for k, v in record.items() if k != "step"))
        self.resume()
