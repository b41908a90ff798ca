"""Would another decoder sharpen the decoded barycenters? Fresh decoders on a frozen encoder.

    python benchmarks/decoder_probe.py --run RUN [--steps 1500]
    python benchmarks/decoder_probe.py --quick --output /tmp/dp      # the smoke test's

``RUN`` is a finished training run with labelled held-out clouds (for instance the one
``local_fidelity.py --keep-runs`` keeps). Its encoder is frozen; each variant trains a new
decoder from scratch for ``--steps`` steps on the run's training clouds (batch size from the
run's config, Adam with warm-up and cosine decay), so the variants differ only in the decoder.
Each row reports the seconds per step, the held-out reconstruction S2 and the barycentre
objective, both in the run's target kind at its decoder epsilon (one yardstick for every
variant, whatever kind it trains with):

- reconstruction: the mean S2 between held-out clouds and their decoded embeddings;
- barycentre objective: for each class, the decoded mean embedding of its first ``--members``
  held-out clouds, and its mean S2 to those members (the functional a Sinkhorn-divergence
  barycentre minimises; lower is a better barycentre), averaged over classes.

A PNG draws every variant's class barycentres, one row each. Variant knobs
(``--variant 'NAME: layers=2, points=128, epsilon=0.002, kind=W2, groups=4'``): decoder
transformer blocks, output points, the training epsilon and OT kind (``ot.decoder_kind``; W2
is entropic OT without the debiasing, whose minimiser over the decoded cloud is drawn in onto
the input's strokes) of the reconstruction, and ``groups``: also decode
the mean embedding of each of four groups of that many embedding-space neighbours and pull it
towards every member (the barycentre objective as a training term).

Writes benchmarks/results/decoder_probe.{md,json,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` as a package

from benchmarks._harness import (  # noqa: E402
    RESULTS,
    Run,
    markdown_table,
    scratch_dir,
    write_result,
)
from benchmarks.local_fidelity import parse_variant as parse_overrides  # noqa: E402
from wormhole.data.padding import fill_with_first  # noqa: E402

DEFAULT_VARIANTS = (
    "as trained: ",
    "two decoder blocks: layers=2",
    "sharper target: epsilon=0.002",
    "two blocks, 128 points, sharper target: layers=2, points=128, epsilon=0.002",
    "barycentres of 4 neighbours as a term: groups=4",
)
KNOBS = {"layers": int, "points": int, "epsilon": float, "kind": str, "groups": int}
GROUPS_PER_STEP = 4
NEIGHBOURS = 8  # a group is a cloud and some of its NEIGHBOURS nearest training embeddings


def parse_variant(text: str) -> tuple[str, dict]:
    """``'NAME: key=value, ...'`` (``local_fidelity.py``'s grammar) -> ``(NAME, {key: value})``
    over :data:`KNOBS`."""
    name, overrides = parse_overrides(text)
    knobs = {}
    for key, value in (item.split("=", 1) for item in overrides):
        if key.strip() not in KNOBS:
            raise ValueError(f"--variant '{text}': unknown knob '{key.strip()}'; use "
                             f"{', '.join(KNOBS)}.")
        knobs[key.strip()] = KNOBS[key.strip()](value)
    return name, knobs


class Probe:
    """A frozen encoder, its data and the fixed yardstick every decoder is measured by."""

    def __init__(self, run: Path, members: int):
        import jax

        from wormhole.data import load_dataset
        from wormhole.inference import load
        from wormhole.models import WormholeModel, build_model
        from wormhole.ot import OTSpec

        self.wormhole = load(run)
        self.config = self.wormhole.config
        self.data = load_dataset(self.config.data)
        if self.data.test is None or self.data.test.labels is None:
            raise ValueError(f"{run}: the probe needs labelled held-out clouds.")
        self.encoder = self.wormhole.params["encoder"]
        # The run's target kind (S2 for MNIST) at its decoder epsilon, whatever kind the
        # decoders train with: a non-debiased cost is not zero between a cloud and itself.
        self.yardstick = OTSpec.from_config(dataclasses.replace(self.config.ot, decoder_kind=None),
                                            cost_scale=self.wormhole.cost_scale, decoder=True)
        model = build_model(self.config.model, self.wormhole.spec)
        self._encode = jax.jit(lambda x, a: model.apply(
            {"params": {"encoder": self.encoder}}, x, a, method=WormholeModel.encode))
        self.train_embeddings = self.embed(self.data.train)
        self.test_embeddings = self.embed(self.data.test)
        labels = np.asarray(self.data.test.labels)
        self.classes = {int(c): np.flatnonzero(labels == c)[:members] for c in np.unique(labels)}

    def embed(self, clouds, chunk: int = 256) -> np.ndarray:
        return np.concatenate([np.asarray(self._encode(clouds.points[s:s + chunk],
                                                       clouds.weights[s:s + chunk]))
                               for s in range(0, len(clouds), chunk)])

    def neighbours(self) -> np.ndarray:
        """Each training cloud's :data:`NEIGHBOURS` nearest training embeddings."""
        emb = self.train_embeddings
        sq = np.sum(emb ** 2, axis=1)
        found = np.zeros((len(emb), NEIGHBOURS), dtype=int)
        for s in range(0, len(emb), 1024):
            d = sq[s:s + 1024, None] + sq[None] - 2.0 * emb[s:s + 1024] @ emb.T
            found[s:s + 1024] = np.argsort(d, axis=1)[:, 1:NEIGHBOURS + 1]
        return found


def divergences(decoded, points, weights, spec):
    from wormhole.losses import reconstruction_distances

    return reconstruction_distances(points, weights, decoded, spec).values


@functools.lru_cache
def _divergence_program(spec):
    import jax

    return jax.jit(lambda decoded, points, weights: divergences(decoded, points, weights, spec))


def measured_divergences(decoded, points, weights, spec, chunk: int = 64) -> np.ndarray:
    """:func:`divergences` of many clouds, ``chunk`` at a time, a short chunk padded with
    copies of its first cloud: one compiled program whatever the count."""
    solve = _divergence_program(spec)
    decoded, points, weights = map(np.asarray, (decoded, points, weights))
    out = []
    for start in range(0, len(points), chunk):
        rows = np.arange(start, min(start + chunk, len(points)))
        padded = fill_with_first(rows, chunk)
        out.append(np.asarray(solve(decoded[padded], points[padded],
                                    weights[padded]))[:len(rows)])
    return np.concatenate(out)


def train_decoder(probe: Probe, knobs: dict, steps: int, seed: int = 0):
    """A new decoder for ``probe``'s encoder; returns ``(decode, seconds per step)``."""
    import jax
    import jax.numpy as jnp
    import optax
    from tqdm import tqdm

    from wormhole.models import WormholeModel, build_model
    from wormhole.ot import OTSpec, get_kind

    cfg = probe.config
    spec, layers = probe.wormhole.spec, knobs.get("layers", cfg.model.decoder_layers)
    model = build_model(
        dataclasses.replace(cfg.model, decoder_layers=layers),
        dataclasses.replace(spec, decoder_points=knobs.get("points", spec.decoder_points)))
    train = probe.data.train
    params = model.init(jax.random.PRNGKey(seed), jnp.asarray(train.points[:2]),
                        jnp.asarray(train.weights[:2]))["params"]["decoder"]
    ot = cfg.ot if "epsilon" not in knobs else dataclasses.replace(
        cfg.ot, decoder_epsilon=knobs["epsilon"], max_iterations=max(cfg.ot.max_iterations, 500))
    if "kind" in knobs:
        ot = dataclasses.replace(ot, decoder_kind=get_kind(knobs["kind"]).name)
    target = OTSpec.from_config(ot, cost_scale=probe.wormhole.cost_scale, decoder=True)
    rate = cfg.train.learning_rate
    warmup = min(cfg.train.warmup_steps, max(steps - 1, 1))
    schedule = optax.warmup_cosine_decay_schedule(0.0, rate, warmup, max(steps, warmup + 1),
                                                  0.05 * rate)
    optimiser = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))
    state = optimiser.init(params)

    def decode(dec, emb):
        return model.apply({"params": {"decoder": dec}}, emb, method=WormholeModel.decode)

    def loss(dec, emb, x, a, group_emb, group_x, group_a):
        value = jnp.mean(divergences(decode(dec, emb), x, a, target))
        if group_emb is not None:  # each group's decoded mean embedding against every member
            size = group_emb.shape[1]
            mixed = jnp.repeat(decode(dec, group_emb.mean(axis=1)), size, axis=0)
            value = value + jnp.mean(divergences(mixed, group_x, group_a, target))
        return value

    @jax.jit
    def step(dec, state, emb, x, a, group_emb=None, group_x=None, group_a=None):
        value, grads = jax.value_and_grad(loss)(dec, emb, x, a, group_emb, group_x, group_a)
        updates, state = optimiser.update(grads, state, dec)
        return optax.apply_updates(dec, updates), state, value

    rng = np.random.default_rng(seed)
    size = knobs.get("groups", 0)
    near = probe.neighbours() if size else None
    batch = cfg.train.batch_size
    start = None
    for i in tqdm(range(steps), desc="decoder", leave=False):
        if i == 1:  # the first step compiles
            start = time.perf_counter()
        index = np.sort(rng.choice(len(train), batch, replace=False))
        extra = ()
        if size:
            anchors = rng.choice(len(train), GROUPS_PER_STEP, replace=False)
            group = np.concatenate([np.concatenate([[j], rng.choice(near[j], size - 1,
                                                                      replace=False)])
                                    for j in anchors])
            extra = (probe.train_embeddings[group].reshape(GROUPS_PER_STEP, size, -1),
                     train.points[group], train.weights[group])
        params, state, _ = step(params, state, probe.train_embeddings[index],
                                train.points[index], train.weights[index], *extra)
    jax.block_until_ready(params)
    per_step = (time.perf_counter() - start) / max(steps - 1, 1) if start else float("nan")
    return jax.jit(lambda emb: decode(params, emb)), per_step


def score(probe: Probe, decode, chunk: int = 64, held_out: int = 256) -> dict:
    """Held-out reconstruction S2 and the class barycentres with their objective."""
    test = probe.data.test
    count = min(held_out, len(test))
    parts = [slice(s, min(s + chunk, count)) for s in range(0, count, chunk)]
    rec = [measured_divergences(decode(probe.test_embeddings[part]), test.points[part],
                                test.weights[part], probe.yardstick) for part in parts]
    barycentres, objective = {}, []
    for label, members in probe.classes.items():
        decoded = decode(probe.test_embeddings[members].mean(axis=0, keepdims=True))
        values = measured_divergences(np.repeat(np.asarray(decoded), len(members), axis=0),
                                      test.points[members], test.weights[members],
                                      probe.yardstick)
        barycentres[label] = probe.wormhole.normalization.invert(np.asarray(decoded[0]))
        objective.append(float(np.mean(values)))
    return {"reconstruction": float(np.mean(np.concatenate(rec))),
            "barycentre_objective": float(np.mean(objective)),
            "barycentre_objective_by_class": dict(zip(map(str, probe.classes), objective,
                                                      strict=True)),
            "barycentres": barycentres}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(rows[0]["barycentres"])
    fig, axes = plt.subplots(len(rows), len(classes), squeeze=False,
                             figsize=(1.6 * len(classes), 1.8 * len(rows)))
    for r, row in enumerate(rows):
        for c, label in enumerate(classes):
            ax = axes[r, c]
            points = row["barycentres"][label]
            ax.scatter(points[:, 0], points[:, 1], s=3, c="tab:red")
            ax.set_xticks([]), ax.set_yticks([]), ax.set_aspect("equal")
            if r == 0:
                ax.set_title(str(label), fontsize=9)
        axes[r, 0].set_ylabel(row["name"], fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle("decoded class barycentres (mean embedding), one decoder per row")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def quick_run(workdir: Path) -> Path:
    """A few steps of a small digits.yaml model with a decoder: the smoke test's encoder."""
    import wormhole

    wormhole.train("digits.yaml", overrides=[
        f"train.workdir={workdir}", "train.steps=10", "train.eval_every=1000",
        "checkpoint.every=10", "model.num_layers=1", "model.decoder_layers=1",
        "model.emb_dim=32"])
    return workdir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=None, help="a finished run with a decoder")
    parser.add_argument("--steps", type=int, default=1500, help="decoder training steps")
    parser.add_argument("--members", type=int, default=50, help="held-out clouds per class")
    parser.add_argument("--variant", action="append", default=None,
                        help="'NAME: layers=L, points=P, epsilon=E, kind=K, groups=G' (repeatable)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    variants = [parse_variant(v) for v in (args.variant or DEFAULT_VARIANTS)]
    with scratch_dir("decoder_probe_") as scratch:  # --quick trains its run here
        if args.quick:
            args.run = args.run or quick_run(scratch / "run")
            args.steps, args.members = 10, 5
            variants = variants[:1] + [parse_variant("quick groups: groups=3")]
        if args.run is None:
            parser.error("--run is required (or --quick)")
        run = Run.start(__file__, argv)
        probe = Probe(Path(args.run), args.members)
        rows = []
        for name, knobs in variants:
            print(f"{name}: {knobs or 'the run config decoder'}", flush=True)
            decode, per_step = train_decoder(probe, knobs, args.steps)
            rows.append({"name": name, "knobs": knobs, "seconds_per_step": per_step,
                         **score(probe, decode)})
        out = Path(args.output) if args.output else RESULTS / "decoder_probe"
        out.parent.mkdir(parents=True, exist_ok=True)
        plot(rows, out.with_suffix(".png"))
        cfg = probe.config
        table = markdown_table(
            ["variant", "knobs", "s / step", "held-out reconstruction S2", "barycentre objective"],
            [[r["name"], ", ".join(f"{k}={v}" for k, v in r["knobs"].items()) or "as trained",
              f"{r['seconds_per_step']:.3f}", f"{r['reconstruction']:.3g}",
              f"{r['barycentre_objective']:.3g}"] for r in rows])
        lines = [f"Frozen encoder of `{args.run}` ({cfg.name}); each decoder trained from scratch "
                 f"for {args.steps} steps of batch {cfg.train.batch_size}; trained decoder: "
                 f"{cfg.model.decoder_layers} block(s), "
                 f"{probe.wormhole.spec.decoder_points} points, "
                 f"{cfg.ot.decoder_kind or cfg.ot.kind} at epsilon {cfg.ot.decoder_epsilon}. Both "
                 f"figures in {cfg.ot.kind} at epsilon {cfg.ot.decoder_epsilon} (lower is better); "
                 f"the barycentre objective is the mean {cfg.ot.kind} from each class's decoded "
                 f"mean embedding to its first {args.members} held-out members, averaged over "
                 f"classes.", "", *table, "",
                 f"Barycentres: `{out.with_suffix('.png').name}`."]
        for row in rows:
            row["barycentres"] = {k: v.tolist() for k, v in row["barycentres"].items()}
        result = {**run.finish(), "run": str(args.run), "steps": args.steps, "rows": rows}
        print(write_result(out, result, "Decoder probe: barycentres from other decoders", lines))
        return 0


if __name__ == "__main__":
    sys.exit(main())
