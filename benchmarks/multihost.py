"""A multi-process run on loopback with ``jax.distributed``, resumed on another device count.

    python benchmarks/multihost.py                      # 2 processes x 2 CPU devices, digits
    python benchmarks/multihost.py --processes 4 --devices 1 --steps 200
    python benchmarks/multihost.py --quick              # a tiny run (the smoke test's)

Starts ``--processes`` copies of ``scripts/train.py`` on this machine, each with ``--devices``
simulated CPU devices, joined through ``JAX_COORDINATOR_ADDRESS=127.0.0.1:<port>``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (``train.distributed.enabled=true``): the same
commands a cluster runs, one per host. Then the run is resumed by one process on one device
for ``--extra`` more steps, and the same number of steps is trained straight on one device
in another run directory; the two final models must agree (parameters and embeddings). The
figures: wall time and steps/s of the multi-process part, what the run directory holds (one
``metrics.jsonl`` record per logged step, written by process 0 only; the checkpoints), and
the largest parameter difference against the straight run. Writes
benchmarks/results/multihost.{md,json} (``--quick``: nothing unless ``--output`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import numpy as np  # noqa: E402

from benchmarks._harness import (  # noqa: E402
    ENCODER_ONLY,
    REPO,
    RESULTS,
    Run,
    first_run_env,
    markdown_table,
    write_result,
)

# Encoder only (tests/test_parallel.py checks the sharded decoder on four devices).
_QUICK = ["data.max_clouds=240", "data.test_fraction=0.25", "model.emb_dim=16",
          "model.width=32", "model.num_layers=1", "model.num_heads=2", "model.mlp_dim=64",
          *ENCODER_ONLY, "ot.epsilon=0.05", "ot.max_iterations=100", "train.batch_size=8",
          "train.warmup_steps=2", "train.log_every=2", "train.eval_every=4",
          "train.length_bucket=0", "eval.num_pairs=20"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_command(config: str, overrides: list[str], workdir: Path, steps: int,
                  every: int) -> list[str]:
    sets = [*overrides, f"train.workdir={workdir}", f"train.steps={steps}",
            f"checkpoint.every={every}"]
    return [sys.executable, str(REPO / "scripts" / "train.py"), "--config", config,
            "--no-progress", *[item for value in sets for item in ("--set", value)]]


def device_env(devices: int, **extra) -> dict:
    """This environment with ``devices`` simulated CPU devices (other XLA flags kept)."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    return first_run_env(dict(os.environ, XLA_FLAGS=flags.strip(), JAX_PLATFORMS="cpu",
                              **extra))


def run_processes(command: list[str], processes: int, devices: int) -> tuple[list, float]:
    """Start every process of the run at once; their exit codes, output and wall time."""
    port = free_port()
    started = time.perf_counter()
    running = [subprocess.Popen(command + ["--set", "train.distributed.enabled=true"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=device_env(devices,
                                               JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                               JAX_NUM_PROCESSES=str(processes),
                                               JAX_PROCESS_ID=str(rank)))
               for rank in range(processes)]
    outputs = [(proc.wait(timeout=3600), *proc.communicate()) for proc in running]
    return outputs, time.perf_counter() - started


_COMPARE = """
import json, sys
import jax, numpy as np
import wormhole
from wormhole.evaluate import run_split
a, b = wormhole.load(sys.argv[1]), wormhole.load(sys.argv[2])
diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
           for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)))
clouds = run_split(a.config, "test").subset(slice(0, 32))
ea, eb = a.encode(clouds), b.encode(clouds)
print(json.dumps({"param_max_diff": diff, "steps": [a.step, b.step],
                  "embedding_max_diff": float(np.max(np.abs(ea - eb))),
                  "embedding_scale": float(np.max(np.abs(eb)))}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="digits.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--devices", type=int, default=2, help="CPU devices per process")
    parser.add_argument("--steps", type=int, default=100, help="steps of the multi-process run")
    parser.add_argument("--extra", type=int, default=20, help="steps resumed on one device")
    parser.add_argument("--quick", action="store_true", help="a tiny model, 4 + 2 steps")
    parser.add_argument("--output", default=None,
                        help=f"result file stem (default {RESULTS / 'multihost'}; --quick: none)")
    args = parser.parse_args(argv)
    overrides = list(args.set)
    if args.quick:
        overrides = _QUICK + overrides
        args.steps, args.extra = 4, 2
    output = args.output or (None if args.quick else str(RESULTS / "multihost"))
    run = Run.start(__file__, argv)
    every = max(args.steps // 2, 1)
    with tempfile.TemporaryDirectory() as tmp:
        shared, straight = Path(tmp) / "shared", Path(tmp) / "straight"
        outputs, wall = run_processes(train_command(args.config, overrides, shared,
                                                    args.steps, every),
                                      args.processes, args.devices)
        failed = [(rank, err[-2000:]) for rank, (code, _, err) in enumerate(outputs) if code]
        if failed:
            for rank, err in failed:
                print(f"process {rank} failed:\n{err}", file=sys.stderr)
            return 1
        records = [json.loads(line) for line in (shared / "metrics.jsonl").read_text().splitlines()]
        train_records = [r for r in records if "steps_per_s" in r]
        checkpoints = sorted(int(p.name) for p in (shared / "checkpoints").iterdir()
                             if p.name.isdigit())
        total = args.steps + args.extra
        resumed = subprocess.run(train_command(args.config, overrides, shared, total, every),
                                 capture_output=True, text=True, env=device_env(1))
        reference = subprocess.run(train_command(args.config, overrides, straight, total,
                                                 every),
                                   capture_output=True, text=True, env=device_env(1))
        for name, done in (("resume on one device", resumed), ("straight run", reference)):
            if done.returncode:
                print(f"{name} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                return 1
        compared = subprocess.run([sys.executable, "-c", _COMPARE, str(shared), str(straight)],
                                  capture_output=True, text=True, env=device_env(1),
                                  cwd=REPO, check=True)
        agreement = json.loads(compared.stdout.strip().splitlines()[-1])
    steps_logged = [r["step"] for r in train_records]
    result = {**run.finish(), "config": args.config, "overrides": overrides,
              "processes": args.processes, "devices_per_process": args.devices,
              "global_devices": args.processes * args.devices, "steps": args.steps,
              "extra_steps": args.extra, "wall_seconds": wall,
              "steps_per_s": float(np.mean([r["steps_per_s"] for r in train_records[1:]]
                                           or [train_records[0]["steps_per_s"]])),
              "logged_steps": steps_logged,
              "duplicate_records": len(steps_logged) - len(set(steps_logged)),
              "checkpoints": checkpoints, **agreement}
    print(json.dumps({k: result[k] for k in ("global_devices", "wall_seconds", "steps_per_s",
                                             "duplicate_records", "checkpoints", "steps",
                                             "param_max_diff", "embedding_max_diff")}))
    if output:
        lines = [
            f"{args.processes} processes x {args.devices} simulated CPU devices on this "
            f"machine, joined by jax.distributed over 127.0.0.1 (config {args.config}, "
            f"{args.steps} steps), then resumed by one process on 1 device for {args.extra} "
            f"more steps and compared with a straight {args.steps + args.extra}-step run on "
            f"1 device. Simulated devices share the same cores, so steps/s here measure the "
            f"overhead of the multi-process runtime, not a speed-up.", "",
            *markdown_table(["figure", "value"], [
                ["global devices", result["global_devices"]],
                ["multi-process wall time (s, with start-up and compilation)", f"{wall:.1f}"],
                ["steps/s (logged, after the first interval)", f"{result['steps_per_s']:.2f}"],
                ["metrics records written twice", result["duplicate_records"]],
                ["checkpoints after the multi-process part", checkpoints],
                ["steps of the resumed / straight run", agreement["steps"]],
                ["largest parameter difference, resumed vs straight",
                 f"{agreement['param_max_diff']:.2e}"],
                ["largest embedding difference (32 held-out clouds)",
                 f"{agreement['embedding_max_diff']:.2e} (embeddings up to "
                 f"{agreement['embedding_scale']:.2f})"],
            ])]
        write_result(Path(output), result, "Multi-process training on loopback", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
