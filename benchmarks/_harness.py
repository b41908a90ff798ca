"""What every benchmark shares: provenance, timing, and writing a result file.

A benchmark script is one experiment. It starts a :class:`Run` (the exact command, machine,
code version, load and date), measures, then hands its figures and the lines of its report
to :func:`write_result`, which writes ``results/NAME.md`` (the provenance paragraph, then
the report) and ``results/NAME.json`` (the figures and the same provenance).

Scripts import this module as ``benchmarks._harness``; run as ``python benchmarks/NAME.py``
they first put the repository root on ``sys.path`` (``benchmarks`` is a package, not
installed).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

from wormhole.compile_cache import COMPILE_CACHE_ENV
from wormhole.evaluate.ground_truth import usable_cpus

__all__ = ["REPO", "RESULTS", "Run", "code_version", "cpu_model", "cpu_seconds",
           "describe_machine",
           "format_seconds", "interleaved", "load_average", "markdown_table",
           "package_version", "provenance_lines", "relative_error", "result_stem", "run_training",
           "training_stopped", "describe_accelerator", "write_result"]

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


# --------------------------------------------------------------------------- the machine


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo; asks no JAX backend)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def package_version(name: str) -> str:
    """The installed version of a distribution, or "?" when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def describe_machine() -> dict:
    """CPU model, usable cores, platform, Python, jax / ott-jax versions, backend, devices."""
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "cpus_usable": usable_cpus(),
            "platform": platform.platform(), "python": platform.python_version(),
            "jax": jax.__version__, "ott_jax": package_version("ott-jax"),
            "backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: how busy the (shared) machine was."""
    return [round(v, 2) for v in os.getloadavg()]


def code_version(watch: Sequence[str] = ("wormhole",)) -> dict:
    """The commit measured and which of the ``watch`` paths had uncommitted changes to code
    (result files under ``benchmarks/results`` are not code and do not count)."""

    def git(*command: str) -> str:
        try:
            return subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": [path for path in watch
                         if git("status", "--porcelain", "--", path,
                                f":(exclude){RESULTS.relative_to(REPO)}")]}


@dataclass
class Run:
    """The provenance of one benchmark run, started before measuring.

    Attributes:
      command: how to run it again, from the repository root.
      watch: source paths whose uncommitted changes the report should mention.
    """

    command: str
    watch: tuple[str, ...] = ("wormhole",)
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    load_before: list[float] = field(default_factory=load_average)
    started: float = field(default_factory=time.perf_counter)
    code: dict = field(default_factory=dict)  # the code version when the run started

    def __post_init__(self):
        self.code = self.code or code_version(self.watch)

    @classmethod
    def start(cls, script: str, argv: Sequence[str] | None = None,
              watch: Sequence[str] = ("wormhole",)) -> Run:
        """A run of ``benchmarks/<script's file name>`` with ``argv`` (default: ours)."""
        args = sys.argv[1:] if argv is None else list(argv)
        return cls(shlex.join(["python", f"benchmarks/{Path(script).name}", *args]),
                   tuple(watch))

    def finish(self) -> dict:
        """The provenance fields every result file carries (top-level JSON keys).

        The code is the version the run started with (a long run outlives commits); the
        commit at the end is added as ``ended_at`` where it differs."""
        code, now = dict(self.code), code_version(self.watch)["commit"]
        if now != code["commit"]:
            code["ended_at"] = now
        return {"command": self.command, "date": self.date, "machine": describe_machine(),
                "code": code, "load_before": self.load_before,
                "load_after": load_average(), "wall_s": time.perf_counter() - self.started}


def provenance_lines(result: dict) -> list[str]:
    """The report's opening paragraph: command, date, code, machine, load, wall time.

    Tolerates result files written before a field existed (it is then left out).
    """
    m = result.get("machine", {})
    code = result.get("code")
    parts = []
    if result.get("date"):
        parts.append(f"Run at {result['date']}")
    if code:
        changes = (f" with uncommitted changes to {', '.join(code['modified'])}"
                   if code.get("modified") else "")
        ended = f" (HEAD {code['ended_at']} when it ended)" if code.get("ended_at") else ""
        parts.append(f"commit {code['commit']}{changes}{ended}")
    if m:
        parts.append(f"{m.get('cpu', '?')}, {m.get('cpus_usable', '?')} usable of "
                     f"{m.get('cpu_count', '?')} CPUs, jax {m.get('jax', '?')} "
                     f"({m.get('backend', '?')} backend), ott-jax {m.get('ott_jax', '?')}, "
                     f"Python {m.get('python', '?')} on {m.get('platform', '?')}")
    text = "; ".join(parts) + "." if parts else ""
    if result.get("load_before") is not None:
        text += (f" Load average (1, 5, 15 min) before {result['load_before']}, after "
                 f"{result.get('load_after', '?')}: the machine is shared, so absolute times "
                 f"carry other users' load.")
    if result.get("wall_s") is not None:
        text += f" Wall time {format_seconds(result['wall_s'])}."
    command = result["command"]
    quoted = f"`` {command} ``" if "`" in command else f"`{command}`"  # a note may hold `
    return [f"Command: {quoted}", "", text.strip()]


# --------------------------------------------------------------------------- timing


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (robust to other users' load)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def interleaved(calls: dict[str, tuple[Callable, list[tuple]]], repeats: int, bar):
    """Time every jitted ``fn(*inputs[k])`` side by side; ``(timings, outputs)``.

    Each call is compiled ahead of time (timed apart, on ``inputs[0]``; all its inputs share
    shapes). Then each of the ``repeats`` rounds runs every call once, round ``r`` on
    ``inputs[r % len(inputs)]`` and starting at call ``r`` (rotated order) so that no method
    always runs first and all see the same machine load. ``outputs[name][k]`` is the last
    output on ``inputs[k]``; ``timings[name]`` has ``compile_s``, ``runs_s`` and
    ``median_s``. ``bar`` (tqdm) advances once per compilation and per run.
    """
    compiled, timings, outputs = {}, {}, {name: {} for name in calls}
    for name, (fn, inputs) in calls.items():
        start = time.perf_counter()
        compiled[name] = fn.lower(*inputs[0]).compile()
        timings[name] = {"compile_s": time.perf_counter() - start, "runs_s": []}
        bar.update(1)
    names = list(calls)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            inputs = calls[name][1]
            k = r % len(inputs)
            start = time.perf_counter()
            outputs[name][k] = jax.block_until_ready(compiled[name](*inputs[k]))
            timings[name]["runs_s"].append(time.perf_counter() - start)
            bar.update(1)
    for timing in timings.values():
        timing["median_s"] = float(np.median(timing["runs_s"]))
    return timings, outputs


def relative_error(values, truth) -> dict:
    """Max and median of ``|value - truth| / |truth|``."""
    error = np.abs(np.asarray(values, np.float64) - truth) / np.abs(truth)
    return {"max": float(error.max()), "median": float(np.median(error))}


# --------------------------------------------------------------------------- writing


def format_seconds(value: float) -> str:
    """``12.3 s``, ``4.5 min`` or ``6.7 h``."""
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.3g} s"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    """A markdown table's lines; cells are formatted with ``str``."""
    return ["| " + " | ".join(map(str, header)) + " |",
            "|" + "---|" * len(header),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def result_stem(path: Path | str) -> Path:
    """A result's path without its ``.md`` or ``.json`` suffix (other suffixes are kept:
    ``results/ot_throughput.quick`` names ``ot_throughput.quick.md``)."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".md", ".json") else path


def write_result(path: Path, result: dict, title: str, lines: Sequence[str]) -> str:
    """Write ``path.md`` (title, provenance, ``lines``) and ``path.json``; return the text.

    ``path`` may end in ``.md`` or ``.json`` or in neither (:func:`result_stem`).
    """
    path = result_stem(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join([f"# {title}", "", *provenance_lines(result), "", *lines]).rstrip() + "\n"
    path.parent.joinpath(path.name + ".md").write_text(text)
    path.parent.joinpath(path.name + ".json").write_text(json.dumps(result, indent=1) + "\n")
    return text


# Overrides that train no decoder: for a quick run whose figures read the encoder alone
# (the decoder's reconstruction term more than doubles the train step's compile time).
ENCODER_ONLY = ("loss.reconstruction=0", "model.decoder_layers=0")


@contextlib.contextmanager
def scratch_dir(prefix: str, keep: str | Path | None = None) -> Iterator[Path]:
    """Where a benchmark trains the runs it scores: ``keep`` (made if missing, left in place)
    or a temporary directory removed on exit, so that runs nobody asked to keep do not pile
    up in the temporary folder, a few MB each."""
    if keep is not None:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def training_command(config: str, overrides: Sequence[str], workdir: Path) -> list[str]:
    """The ``scripts/train.py`` command line that trains ``config`` with ``overrides``."""
    return [sys.executable, str(REPO / "scripts" / "train.py"), "--config", config,
            "--no-progress", *[x for o in [*overrides, f"train.workdir={workdir}"]
                               for x in ("--set", o)]]


def first_run_env(env: dict | None = None) -> dict:
    """``env`` (default: this one) with the scripts' compilation cache off, so that a timed
    command compiles as a user's first run does (``wormhole.compile_cache``; an explicit
    ``JAX_COMPILATION_CACHE_DIR``, as the test suite sets, still wins)."""
    return dict(os.environ if env is None else env, **{COMPILE_CACHE_ENV: "off"})


TRAINING_RECORD = "benchmark_training.json"


def run_training(config: str, overrides: Sequence[str], workdir: Path,
                 time_limit: float | None = None) -> tuple[float, list[str]]:
    """``scripts/train.py --config CONFIG --set ...`` as a user runs it, into ``workdir``.

    Returns the whole command's wall seconds and the command, and records both in
    ``workdir/benchmark_training.json`` for a later rescore (:func:`recorded_training`);
    raises with the end of its stderr when training fails. A run already in ``workdir`` (a
    kept run of an earlier invocation) is removed first: ``train.py`` would resume it, and
    the time would be a resume's, not a training's. With ``time_limit`` (seconds) the
    training is stopped at that time; the record then says ``"stopped": true`` and the run
    keeps the checkpoints written before it (:func:`recorded_training` returns the same).
    """
    if Path(workdir).exists():
        shutil.rmtree(workdir)
    command = training_command(config, overrides, workdir)
    print("== training: " + shlex.join(command[1:]), file=sys.stderr)
    started = time.perf_counter()
    stopped, stderr = False, ""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=time_limit,
                              env=first_run_env())
    except subprocess.TimeoutExpired as err:
        stopped = True
        stderr = (err.stderr or b"")[-3000:]
        stderr = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    else:
        if done.returncode:
            raise RuntimeError(f"training failed ({shlex.join(command)}):\n"
                               f"{done.stderr[-3000:]}")
    seconds = time.perf_counter() - started
    Path(workdir).mkdir(parents=True, exist_ok=True)
    record = {"seconds": seconds, "command": command, "stopped": stopped}
    if stopped:  # what it was doing when stopped
        record["stderr_tail"] = stderr
    Path(workdir, TRAINING_RECORD).write_text(json.dumps(record) + "\n")
    return seconds, command


def _training_record(workdir: Path) -> dict | None:
    path = Path(workdir, TRAINING_RECORD)
    return json.loads(path.read_text()) if path.exists() else None


def training_stopped(workdir: Path) -> bool:
    """Whether :func:`run_training` stopped the training in ``workdir`` at its time limit."""
    record = _training_record(workdir)
    return bool(record and record.get("stopped"))


def describe_accelerator() -> str:
    """The GPU's name from ``nvidia-smi`` ("" without one). Asks no JAX backend, which would
    take the device's memory from the training processes that follow."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return f"{len(names)} x {names[0]}" if names and out.returncode == 0 else ""


def recorded_training(workdir: Path) -> tuple[float, list[str]] | None:
    """The wall seconds and command :func:`run_training` recorded in ``workdir``, if any."""
    record = _training_record(workdir)
    return None if record is None else (record["seconds"], record["command"])
