"""Scale-out figures: training speed against device count and batch size, and host memory
over a 70,000-cloud run (in memory and memory-mapped).

    python benchmarks/scaling.py                                   # both parts
    python benchmarks/scaling.py --part devices --devices 1 2 4 --batch-sizes 16 64
    python benchmarks/scaling.py --part memory --steps 300
    python benchmarks/scaling.py --quick                           # the smoke test's sizes

Part ``devices``: the trainer (``train_and_evaluate``, held-out evaluation and checkpoints
off) on MNIST-style clouds (``--mnist-dir``: the real t10k digits; default the embedded 8x8
digits) for each device count (``train.mesh.data``; on a CPU the machine is split into that
many devices with ``train.mesh.cpu_devices``), each run in its own process. Steps/s is the
mean of the logged intervals after the first (which holds the compilations), the median over
``--rounds`` interleaved repeats; pairs/s is steps/s times the ``B (B - 1) / 2`` in-batch OT
problems. CPU devices share the machine's cores: each runs its share of the solves on its own
thread, so they can use cores that a single device's one-by-one solves leave idle, but they
add no compute.

Part ``memory``: the full Fashion-MNIST (60,000 + 10,000 images, the Debian package
``dataset-fashion-mnist``; ``--fashion-dir``) as clouds, trained ``--steps`` steps twice: with
the clouds in memory, and from one memory-mapped ``.npy`` file (written once by
``save_clouds_npy``). The process's resident memory (RSS, and its anonymous part, which
excludes file pages the kernel can drop) is sampled every ``--sample-every`` steps; growth is
the change from the first sample after the warm-up to the last. Writes
benchmarks/results/scaling.{md,json} (``--quick``: nothing unless ``--output`` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import numpy as np  # noqa: E402

from benchmarks._harness import REPO, RESULTS, Run, markdown_table, write_result  # noqa: E402

TITLE = "Scale-out: devices, batch sizes, host memory"

_SPEED = """
import json, sys
sys.path.insert(0, sys.argv[1])
import jax, numpy as np
from wormhole.api import resolve_config
from wormhole.trainer import train_and_evaluate
overrides = json.loads(sys.argv[2])
config = resolve_config(sys.argv[3], overrides)
out = train_and_evaluate(config, progress=False)
rates = [r["steps_per_s"] for r in out.history if "steps_per_s" in r]
print(json.dumps({"devices": jax.device_count(), "backend": jax.default_backend(),
                  "steps_per_s": float(np.mean(rates[1:] or rates)), "intervals": len(rates)}))
"""

_MEMORY = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from wormhole.api import resolve_config
from wormhole.data import load_dataset
from wormhole.trainer import train_and_evaluate

def memory():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "RssAnon")}

overrides = json.loads(sys.argv[2])
every = int(sys.argv[3])
config = resolve_config(None, overrides)
before = memory()
started = time.perf_counter()
dataset = load_dataset(config.data)
loaded = memory()
load_s = time.perf_counter() - started
samples = []

def sample(step, metrics):
    if step % every == 0:
        samples.append({"step": step, **memory()})

out = train_and_evaluate(config, dataset, callbacks=[sample], progress=False)
rates = [r["steps_per_s"] for r in out.history if "steps_per_s" in r]
print(json.dumps({"clouds": len(dataset.train) + len(dataset.test or []),
                  "train": len(dataset.train), "mapped": dataset.train.on_demand,
                  "mean_points": float(dataset.train.sizes.mean()),
                  "padded_length": dataset.train.length, "before": before, "loaded": loaded,
                  "load_s": load_s, "samples": samples,
                  "steps_per_s": float(np.mean(rates[1:] or rates))}))
"""


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}


def _strings(overrides: dict, extra: list[str]) -> list[str]:
    """``section.key=value`` strings (values as JSON), then the command line's ``--set``."""
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()] + list(extra)


def _worker(code: str, *args: str, env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", code, str(REPO), *args], capture_output=True,
                          text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def device_speeds(args, workdir: Path) -> list[dict]:
    """Each (batch size, device count) setting ``--rounds`` times, interleaved round by round
    so that every setting sees the same machine load; the median round is reported."""
    data = ({"data.name": "mnist", "data.path": args.mnist_dir} if args.mnist_dir
            else {"data.name": "digits"})
    settings = [(b, d) for b in args.batch_sizes for d in args.devices if b % d == 0]
    runs = {setting: [] for setting in settings}
    for round_ in range(args.rounds):
        for batch, devices in settings[round_ % len(settings):] + \
                settings[:round_ % len(settings)]:
            overrides = {**data, "train.steps": args.speed_steps, "train.batch_size": batch,
                         "train.log_every": max(args.speed_steps // 4, 1),
                         "train.eval_every": 10 ** 9, "checkpoint.enabled": False,
                         "train.mesh.data": devices, "train.mesh.cpu_devices": devices,
                         "train.workdir": str(workdir / f"speed-{batch}-{devices}")}
            row = _worker(_SPEED, json.dumps(_strings(overrides, args.set)), args.config,
                          env=_env())
            print(json.dumps({"batch_size": batch, **row}))
            runs[(batch, devices)].append(row)
    rows = []
    for (batch, devices), found in runs.items():
        rates = [r["steps_per_s"] for r in found]
        steps = float(np.median(rates))
        rows.append({"batch_size": batch, "requested_devices": devices,
                     "devices": found[0]["devices"], "backend": found[0]["backend"],
                     "steps_per_s": steps, "rounds": rates,
                     "pairs_per_s": steps * batch * (batch - 1) / 2})
    return rows


def host_memory(args, workdir: Path) -> list[dict]:
    from wormhole.config import load_config
    from wormhole.data import load_clouds
    from wormhole.data.loaders.files import save_clouds_npy

    if args.quick:
        base = {"data.name": "digits", "model.num_layers": 1, "model.width": 32,
                "model.mlp_dim": 64, "model.emb_dim": 16, "model.decoder_layers": 1}
    else:
        if not Path(args.fashion_dir).is_dir():
            raise SystemExit(f"{args.fashion_dir} not found: install the Debian package "
                             f"dataset-fashion-mnist or pass --fashion-dir.")
        base = {"data.name": "fashion_mnist", "data.path": args.fashion_dir,
                "data.options": {"threshold": 0.5}, "data.split": "official"}
    mapped_file = workdir / "clouds.npy"
    data_config = load_config(None, [f"{k}={json.dumps(v)}" for k, v in base.items()]).data
    clouds = load_clouds(data_config)  # both splits, in the loader's order
    if data_config.split == "official" and "split" in clouds.metadata:
        clouds = clouds.subset(np.argsort(clouds.metadata["split"] != "train", kind="stable"))
    save_clouds_npy(mapped_file, clouds)
    total = len(clouds)
    del clouds
    common = {"train.steps": args.steps, "train.log_every": args.sample_every,
              "train.eval_every": 10 ** 9, "checkpoint.every": max(args.steps // 2, 1),
              "eval.num_pairs": 100}
    modes = {
        "in memory": {**base},
        "memory-mapped": {"data.name": "files", "data.path": str(mapped_file),
                          "data.test_fraction": 10_000 / 70_000 if not args.quick else 0.1,
                          **{k: v for k, v in base.items() if k.startswith("model.")}},
    }
    rows = []
    for name, overrides in modes.items():
        overrides = {**overrides, **common, "train.workdir": str(workdir / name)}
        row = _worker(_MEMORY, json.dumps(_strings(overrides, args.set)), str(args.sample_every),
                      env=_env())
        row.update(mode=name, file_clouds=total, overrides=_strings(overrides, args.set))
        row.update(memory_trend(row["samples"]))
        print(json.dumps({k: v for k, v in row.items() if k != "samples"}))
        rows.append(row)
    return rows


def _ratio(row: dict, rows: list[dict]) -> str:
    one = [r for r in rows if r["batch_size"] == row["batch_size"] and r["devices"] == 1]
    return f"{row['steps_per_s'] / one[0]['steps_per_s']:.2f}x" if one else "-"


def memory_trend(samples: list[dict]) -> dict:
    """Peak RSS, the peaks of the first and second half of the run after the first sample
    (which precedes most compilations), and the least-squares slope of RSS and of anonymous
    memory in MiB per 100 steps over those samples."""
    later = samples[1:] or samples
    half = len(later) // 2
    steps = np.array([s["step"] for s in later], float)

    def slope(key: str) -> float:
        if len(later) < 2:
            return 0.0
        return float(np.polyfit(steps, [s[key] for s in later], 1)[0] * 100)

    return {"peak_rss_mb": max(s["VmRSS"] for s in samples),
            "first_half_peak_mb": max(s["VmRSS"] for s in later[:max(half, 1)]),
            "second_half_peak_mb": max(s["VmRSS"] for s in later[half:]),
            "rss_slope_mb_per_100_steps": slope("VmRSS"),
            "anon_slope_mb_per_100_steps": slope("RssAnon")}


def plot_memory(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for row in rows:
        steps = [s["step"] for s in row["samples"]]
        ax.plot(steps, [s["VmRSS"] for s in row["samples"]], label=f"{row['mode']}: RSS")
        ax.plot(steps, [s["RssAnon"] for s in row["samples"]], "--",
                label=f"{row['mode']}: anonymous")
    ax.set_xlabel("training step")
    ax.set_ylabel("host memory (MiB)")
    ax.set_title(f"Host memory while training on {rows[0]['file_clouds']:,} clouds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("devices", "memory", "both"), default="both")
    parser.add_argument("--config", default="mnist.yaml", help="base config of the speed part")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--speed-steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repeats per setting")
    parser.add_argument("--mnist-dir", default=os.environ.get("WORMHOLE_MNIST_DIR"))
    parser.add_argument("--fashion-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--steps", type=int, default=300, help="steps of each memory run")
    parser.add_argument("--sample-every", type=int, default=25)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--render", action="store_true",
                        help="rewrite the .md (and plot) from the result's .json; run nothing")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.batch_sizes, args.speed_steps = [1, 2], [8], 8
        args.steps, args.sample_every = 12, 3
        args.config = "digits.yaml"
        args.set = ["model.num_layers=1", "model.width=32", "model.mlp_dim=64",
                    "model.emb_dim=16", "model.decoder_layers=1", *args.set]
    output = args.output or (None if args.quick else str(RESULTS / "scaling"))
    run = Run.start(__file__, argv)
    if args.render:
        return render(output)
    with tempfile.TemporaryDirectory() as tmp:
        speeds = device_speeds(args, Path(tmp)) if args.part != "memory" else []
        memory = host_memory(args, Path(tmp)) if args.part != "devices" else []
    if not output:
        print(json.dumps({"speeds": speeds, "memory": [{k: v for k, v in m.items()
                                                         if k != "samples"} for m in memory]}))
        return 0
    result = {**run.finish(),
              "speed_settings": {"config": args.config, "overrides": args.set,
                                 "mnist_dir": args.mnist_dir, "steps": args.speed_steps},
              "memory_settings": {"overrides": args.set, "steps": args.steps,
                                  "sample_every": args.sample_every},
              "speeds": speeds, "memory": memory}
    previous = Path(output + ".json")
    if args.part != "both" and previous.is_file():  # keep the part not run this time
        old = json.loads(previous.read_text())
        other = "memory" if args.part == "devices" else "speeds"
        result[other] = old.get(other, [])
        key = "memory_settings" if other == "memory" else "speed_settings"
        result[key] = old[key]
        result["other_part_from"] = {"command": old.get("command"), "date": old.get("date")}
    write_result(Path(output), result, TITLE, report_lines(result, output))
    return 0


def render(output: str) -> int:
    """Rewrite ``output.md`` from ``output.json`` (memory trends recomputed from samples)."""
    result = json.loads(Path(output + ".json").read_text())
    for row in result["memory"]:
        row.update(memory_trend(row["samples"]))
    Path(output + ".json").write_text(json.dumps(result, indent=1) + "\n")
    write_result(Path(output), result, TITLE, report_lines(result, output))
    return 0


def report_lines(result: dict, output: str) -> list[str]:
    lines = []
    if result["speeds"]:
        speeds, setting = result["speeds"], result["speed_settings"]
        backend = speeds[0]["backend"]
        where = "MNIST t10k from " + setting["mnist_dir"] if setting["mnist_dir"] else \
            "the 8x8 digits"
        lines += [f"## Steps/s against device count and batch size ({backend})", "",
                  f"`train_and_evaluate` on {setting['config']} ({where}; overrides "
                  f"{setting['overrides'] or 'none'}), {setting['steps']} steps per setting, "
                  f"evaluation and checkpoints off, one process per setting. "
                  + ("CPU devices (`train.mesh.cpu_devices`) share this machine's cores: a "
                     "gain over 1 device is cores that one device's one-by-one solves left "
                     "idle, not added compute." if backend == "cpu" else ""), "",
                  *markdown_table(["batch", "devices", "steps/s (median)", "rounds",
                                   "OT pairs/s", "vs 1 device"],
                                  [[r["batch_size"], r["devices"], f"{r['steps_per_s']:.2f}",
                                    " ".join(f"{x:.2f}" for x in r.get("rounds", [])),
                                    f"{r['pairs_per_s']:.0f}", _ratio(r, speeds)]
                                   for r in speeds]), ""]
    if result["memory"]:
        memory, setting = result["memory"], result["memory_settings"]
        figure = Path(output + ".memory.png")
        plot_memory(memory, figure)
        lines += ["## Host memory over a training run", "",
                  f"{memory[0]['file_clouds']:,} clouds (mean {memory[0]['mean_points']:.0f} "
                  f"points, padded to {memory[0]['padded_length']}), {setting['steps']} steps "
                  f"of the default config with, in memory, "
                  f"`{' '.join(memory[0].get('overrides', []))}` and, memory-mapped, "
                  f"`{' '.join(memory[-1].get('overrides', []))}`; memory sampled every "
                  f"{setting['sample_every']} steps. After the first sample: the peak of the "
                  f"first and of the second half of the run, and the least-squares trend "
                  f"(MiB per 100 steps). Memory rises and falls with the compilations of new "
                  f"padded lengths and with checkpoint writes; a leak would show as a second "
                  f"half above the first and a positive trend.", "",
                  *markdown_table(
                      ["clouds", "load (s)", "RSS after loading (MiB)", "peak RSS (MiB)",
                       "peak, 1st / 2nd half (MiB)", "trend RSS / anonymous", "steps/s"],
                      [[r["mode"], f"{r['load_s']:.1f}", f"{r['loaded']['VmRSS']:.0f}",
                        f"{r['peak_rss_mb']:.0f}",
                        f"{r['first_half_peak_mb']:.0f} / {r['second_half_peak_mb']:.0f}",
                        f"{r['rss_slope_mb_per_100_steps']:+.0f} / "
                        f"{r['anon_slope_mb_per_100_steps']:+.0f}", f"{r['steps_per_s']:.2f}"]
                       for r in memory]), "", f"![memory]({figure.name})"]
    if "other_part_from" in result:
        lines += ["", f"(One of the two parts is from "
                      f"an earlier run: `{result['other_part_from']['command']}`, "
                      f"{result['other_part_from']['date']}.)"]
    return lines


if __name__ == "__main__":
    sys.exit(main())
