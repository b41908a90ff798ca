"""Encoding throughput of this checkout against an older commit, side by side.

    python benchmarks/encode_throughput.py --checkpoint runs/mnist --against e054822

Both versions load the same run and embed its held-out clouds with their own default chunk
size, in separate processes run alternately (``--rounds`` each), after one untimed pass that
compiles every padded length; the figure is clouds per second, the median of three timed
passes per process. The older commit is checked out with ``git worktree`` in a temporary
directory. The embeddings of both are compared, so a speed-up that changed the numbers would
show. Writes benchmarks/results/encode_throughput.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

import numpy as np  # noqa: E402

from benchmarks._harness import REPO, RESULTS, Run, markdown_table, write_result  # noqa: E402

_TIMER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import wormhole
from wormhole.evaluate import run_split
model = wormhole.load(sys.argv[2])
clouds = run_split(model.config, "test")
model.encode(clouds)
times = []
for _ in range(3):
    start = time.perf_counter()
    emb = model.encode(clouds)
    times.append(time.perf_counter() - start)
np.save(sys.argv[3], emb)
print(json.dumps({"clouds": len(clouds), "clouds_per_s": len(clouds) / float(np.median(times)),
                  "mean_points": float(clouds.sizes.mean())}))
"""


def time_version(root: Path, checkpoint: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _TIMER, str(root), checkpoint, str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a trained run")
    parser.add_argument("--against", required=True, help="the older commit")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", default=str(RESULTS / "encode_throughput"))
    args = parser.parse_args(argv)
    run = Run.start(__file__, argv)
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.against],
                       cwd=REPO, check=True, capture_output=True)
        try:
            rows = {"this checkout": [], args.against: []}
            for r in range(args.rounds):
                for name, root in (("this checkout", REPO), (args.against, old)):
                    rows[name].append(time_version(root, args.checkpoint,
                                                   Path(tmp) / f"{r}-{name[:4]}.npy"))
            new_emb = np.load(Path(tmp) / "0-this.npy")
            old_emb = np.load(Path(tmp) / f"0-{args.against[:4]}.npy")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO,
                           check=False, capture_output=True)
    speeds = {name: [r["clouds_per_s"] for r in runs] for name, runs in rows.items()}
    ratio = np.median(speeds["this checkout"]) / np.median(speeds[args.against])
    result = {**run.finish(), "checkpoint": args.checkpoint, "against": args.against,
              "clouds": rows["this checkout"][0]["clouds"],
              "mean_points": rows["this checkout"][0]["mean_points"], "clouds_per_s": speeds,
              "speedup": float(ratio),
              "max_abs_embedding_difference": float(np.abs(new_emb - old_emb).max()),
              "embedding_scale": float(np.abs(old_emb).max())}
    lines = [f"Run `{args.checkpoint}`: {result['clouds']} held-out clouds (mean "
             f"{result['mean_points']:.0f} points), each version with its own default chunk "
             f"size, alternating processes, {args.rounds} each.", ""]
    lines += markdown_table(["version", "clouds/s (each process)"],
                            [[name, ", ".join(f"{v:.0f}" for v in values)]
                             for name, values in speeds.items()])
    lines += ["", f"Speed-up (ratio of medians): **{ratio:.1f}x**. Largest embedding "
              f"difference between the versions: {result['max_abs_embedding_difference']:.2g} "
              f"(embeddings up to {result['embedding_scale']:.2g})."]
    print(write_result(Path(args.output), result, "Encoding throughput, side by side", lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
