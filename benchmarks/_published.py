"""The published ``wassersteinwormhole`` package, driven from our environment.

It pins its own jax and flax, so it runs in a separate virtual environment: this module
checks that interpreter, hands it the clouds and settings through ``_published_worker.py``
(a training run, or ``--describe``: what its code does with them) and words the
description for a report. Files and functions named in the words are the package's (0.3.7).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["PACKAGE", "WORKER", "ensure_interpreter", "interpreter_problem", "run_worker",
           "setting_cells"]

PACKAGE = "wassersteinwormhole==0.3.7"

WORKER = Path(__file__).resolve().parent / "_published_worker.py"


def interpreter_problem(python: str) -> str:
    """Why ``python`` cannot run the published package, or ``""`` when it can."""
    if not python:
        return ("no interpreter with wassersteinwormhole given (--published-python or "
                "$WORMHOLE_PUBLISHED_PYTHON)")
    if not Path(python).exists():
        return f"{python} does not exist"
    check = subprocess.run([python, "-c", "import wassersteinwormhole"], capture_output=True,
                           text=True)
    if check.returncode:
        return f"{python} cannot import wassersteinwormhole: {check.stderr.strip()[-300:]}"
    return ""


def ensure_interpreter(venv: str | Path) -> tuple[str, str]:
    """``venv``'s python with :data:`PACKAGE`, made (``venv`` + pip) when it lacks it.

    Returns ``(python, "")``, or ``(python, why)`` when the package cannot be had (no
    network or registry, a failing build): the benchmark then reports our side only.
    """
    python = str(Path(venv) / "bin" / "python")
    if not interpreter_problem(python):
        return python, ""
    print(f"installing {PACKAGE} into {venv} (its own jax and flax pins)", file=sys.stderr)
    steps = [] if Path(python).exists() else [[sys.executable, "-m", "venv", str(venv)]]
    for command in [*steps, [python, "-m", "pip", "install", "-q", PACKAGE]]:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            return python, f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return python, interpreter_problem(python)


def run_worker(python: str, train, test, first, second, settings: dict, timeout: float,
               describe: bool = False, race: bool = False,
               references=()) -> tuple[dict | None, str]:
    """The worker's JSON, or ``None`` and why.

    ``describe``: its setting; ``race``: a run against the clock (the JSON then also holds
    ``arrays``: the last embeddings of the test clouds and of the training clouds numbered
    in ``references``); else a training run of fixed steps. ``train``, ``test``:
    :class:`~wormhole.data.PointClouds`; ``first``, ``second``: the held-out pairs its
    embeddings are scored on.
    """
    problem = interpreter_problem(python)
    if problem:
        return None, problem
    with tempfile.TemporaryDirectory() as tmp:
        data, config = Path(tmp) / "clouds.npz", Path(tmp) / "settings.json"
        arrays = Path(tmp) / "arrays.npz"
        np.savez(data, train_points=train.points, train_weights=train.weights,
                 test_points=test.points, test_weights=test.weights, first=first,
                 second=second, references=np.asarray(references, np.int64))
        config.write_text(json.dumps({**settings, "arrays": str(arrays)}))
        mode = ["--describe"] if describe else ["--race"] if race else []
        # stderr (the package's progress bar and prints) passes through to the terminal.
        proc = subprocess.run([python, str(WORKER), *mode, str(data), str(config)],
                              stdout=subprocess.PIPE, text=True, timeout=timeout)
        if proc.returncode:
            return None, f"the published worker failed (exit {proc.returncode}); see its stderr"
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        if arrays.exists():
            with np.load(arrays) as saved:
                out["arrays"] = {k: saved[k] for k in saved.files}
    print("[published] " + json.dumps({k: v for k, v in out.items()
                                       if k not in ("pred", "scores", "arrays")}),
          file=sys.stderr)
    return out, ""


def setting_cells(p: dict) -> dict[str, str]:
    """The worker's ``--describe`` output in words, one cell per setting, citing the code."""
    calls = ", ".join(p["max_min_scale_calls"]) or "none"
    q = p["ott_sinkhorn_defaults"]
    iterations = p["num_sinkhorn_iter"]
    return {
        "coordinate scaling":
            "none: `DefaultConfig` has no `scale` or `factor` field (its docstring "
            f"{'documents' if p['docstring_mentions_scale'] else 'does not mention'} `scale`); "
            f"`_utils_Processing.py: MaxMinScale` is defined but called nowhere (calls: "
            f"{calls}); `Wormhole.py: Wormhole.__init__` keeps coordinates as given (largest "
            f"change {p['coordinates_changed']:g}); real points span "
            f"[{p['coordinate_range'][0]:.3g}, {p['coordinate_range'][1]:.3g}]. Only the "
            "decoder's output is mapped into that range (`_utils_Transformer.py: "
            "Transformer`, a sigmoid)",
        "cost scale":
            f"{p['cost_scale_used']:.4g}, the shared value, substituted by the worker for "
            "`_utils_Processing.py: get_max_dist_statistic`, which `Wormhole.__init__` calls "
            f"with {json.dumps(p['cost_scale_call'])} (the largest squared Euclidean distance "
            f"over 1000 random pairs; on these clouds {p['cost_scale_own_estimate']:.4g}); "
            "costs are divided by it (`utils_OT.py: _solve_linear`, `scale_cost`)",
        "epsilon":
            f"{p['eps_enc']} targets (`eps_enc`), {p['eps_dec']} reconstruction (`eps_dec`), "
            "absolute on the scaled cost (`utils_OT.py: _solve_linear`)",
        "log domain": f"{p['lse_enc']} (`lse_enc`; `lse_dec` {p['lse_dec']})",
        "stopping threshold":
            f"none in effect: ott-jax {p['ott']}'s default {q['threshold']} applies only "
            "after `min_iterations`, which equals `max_iterations` (`utils_OT.py: "
            "_solve_linear`)",
        "min / max iterations":
            f"{iterations} / {iterations} (`num_sinkhorn_iter`; its default -1 would choose "
            "it by `utils_OT.py: auto_find_num_iter`)",
        "inner iterations (error checked every)":
            f"{q['inner_iterations']} (ott-jax {p['ott']} default, not overridden)",
        "iterations run":
            f"always {iterations}: a training cloud against itself (`_solve_linear`, the "
            f"easiest problem there is) ran {p['self_solve_iterations']}",
        "self terms OT(x, x)":
            "solved again for every pair, three solves per pair (`utils_OT.py: "
            "_calculate_divergence`), alternating updates",
        "padding":
            "every cloud zero-padded to the data set's largest, train and test together: "
            f"{p['padded_length']} points, largest cloud {p['largest_cloud']} "
            "(`_utils_Processing.py: pad_pointclouds`); weights renormalised (row sums "
            f"{p['weight_sums'][0]:.4g} to {p['weight_sums'][1]:.4g})",
    }
