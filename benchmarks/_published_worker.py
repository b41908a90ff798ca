"""Train the published ``wassersteinwormhole`` package on prepared clouds; print JSON.

Run by ``benchmarks/train_throughput.py`` with the interpreter of a separate virtual
environment (the package pins its own jax and flax), never imported by ``wormhole``:

    /path/to/venv/bin/python benchmarks/_published_worker.py DATA.npz SETTINGS.json

    /path/to/venv/bin/python benchmarks/_published_worker.py --describe DATA.npz SETTINGS.json

``DATA.npz`` holds padded train and test clouds (``*_points [N, n, d]``, ``*_weights [N, n]``)
and the held-out pairs (``first``, ``second``); ``SETTINGS.json`` the shared settings. The
loop of the package's ``Wormhole.train`` runs twice from the same fresh train state: a few
steps to compile its jitted train step, then the measured steps. With ``--describe`` nothing
is trained: the package's ``Wormhole`` is built on the same clouds and settings and the
worker reports what its code does with them (coordinate scaling, cost scale, epsilon,
iteration rule, padding), read from the built object, one solve and the installed source.
Stdout carries one JSON object; the package's own prints and progress bar go to stderr.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import resource
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np


def _as_lists(points: np.ndarray, weights: np.ndarray) -> tuple[list, list]:
    """Padded arrays back to per-cloud lists, as a user of the package would pass them."""
    sizes = (weights > 0).sum(axis=1)
    return ([p[:k].astype(np.float64) for p, k in zip(points, sizes, strict=True)],
            [w[:k].astype(np.float64) for w, k in zip(weights, sizes, strict=True)])


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _train_loop(model, state, steps: int, batch: int, key, verbose: int = 8) -> None:
    """The body of ``Wormhole.train`` (0.3.7): the same sampling, step and bookkeeping.

    Its default ``verbose=8`` progress line is shown through tqdm as the package does.
    """
    import jax
    from tqdm import trange

    enc_sum, dec_sum, corr_sum, count = 0, 0, 0, 0
    model.enc_loss_curve, model.dec_loss_curve = [], []
    bar = trange(steps, leave=True, desc="[published] train")
    for step in bar:
        key, subkey = jax.random.split(key)
        index = jax.random.choice(subkey, model.point_clouds.shape[0], [batch], replace=False)
        points, weights = model.point_clouds[index], model.weights[index]
        key, subkey = jax.random.split(key)
        state, loss = model.train_step(state, points, weights, subkey)
        model.params = state.params
        model.enc_loss_curve.append(loss[1][0])
        model.dec_loss_curve.append(loss[1][1])
        # Running sums stay device arrays; only the progress line waits for them, as there.
        enc_sum, dec_sum, corr_sum, count = (enc_sum + loss[1][0], dec_sum + loss[1][1],
                                             corr_sum + loss[1][2], count + 1)
        if step % verbose == 0:
            bar.set_description(f"enc_loss: {enc_sum / count:.3e} dec_loss: "
                                f"{dec_sum / count:.3e} enc_corr: {corr_sum / count:.3f}")
            enc_sum, dec_sum, corr_sum, count = 0, 0, 0, 0
    jax.block_until_ready(model.params)


def _config(settings: dict):
    """The package's ``DefaultConfig`` with the benchmark's shared settings."""
    from wassersteinwormhole.DefaultConfig import DefaultConfig

    return DefaultConfig(
        dist_func_enc=settings["kind"], dist_func_dec=settings["kind"],
        eps_enc=settings["epsilon"], eps_dec=settings["epsilon"],
        lse_enc=True, lse_dec=True,
        num_sinkhorn_iter=settings["max_iterations"],  # fixed: min = max iterations
        num_particles_output=settings["decoder_points"],
        coeff_dec=settings["reconstruction_weight"],
        attention_dropout_rate=settings["dropout"],
        emb_dim=settings["emb_dim"], num_heads=settings["num_heads"],
        num_layers=settings["num_layers"], mlp_dim=settings["mlp_dim"])


def _build(data, settings: dict):
    """The package's ``Wormhole`` on the data file's clouds; ``(model, cost-scale calls)``.

    The package estimates its cost scale from 1000 random cloud pairs; the one value both
    trainers share replaces it, so the two learn exactly the same targets. The calls it made
    to its estimator are recorded (arguments only) for the settings report.
    """
    import wassersteinwormhole

    module = sys.modules["wassersteinwormhole.Wormhole"]
    calls = []

    def shared_scale(*args, **kwargs):
        calls.append(kwargs)
        return settings["cost_scale"]

    module.get_max_dist_statistic = shared_scale
    train_x, train_w = _as_lists(data["train_points"], data["train_weights"])
    test_x, test_w = _as_lists(data["test_points"], data["test_weights"])
    model = wassersteinwormhole.Wormhole(point_clouds=train_x, weights=train_w,
                                         point_clouds_test=test_x, weights_test=test_w,
                                         config=_config(settings))
    return model, calls


def run(data_path: str, settings: dict) -> dict:
    import jax
    import jax.numpy as jnp

    data = np.load(data_path)
    first, second = data["first"], data["second"]
    steps, batch = settings["steps"], settings["batch_size"]
    with contextlib.redirect_stdout(sys.stderr):
        start = time.perf_counter()
        model, _ = _build(data, settings)
        setup_s = time.perf_counter() - start

        # What Wormhole.train sets up before its loop. Both runs below start from this one
        # state: its optimiser object is part of the jitted step's static arguments, so a
        # state made anew (as a second call of Wormhole.train makes) would compile again.
        model.tri_u_ind = jnp.stack(jnp.triu_indices(batch, 1), axis=1)
        model.pseudo_weights = jnp.ones([batch, model.num_particles_output]) \
            / model.num_particles_output
        fresh = model.create_train_state(jax.random.key(settings["seed"]),
                                         init_lr=settings["learning_rate"])

        print(f"[published] compiling the train step ({settings['warmup_steps']} steps)")
        start = time.perf_counter()
        _train_loop(model, fresh, settings["warmup_steps"], batch,
                    jax.random.key(settings["seed"] + 1))
        warmup_s = time.perf_counter() - start

        print(f"[published] training {steps} steps from fresh parameters")
        cpu, start = _cpu_seconds(), time.perf_counter()
        _train_loop(model, fresh, steps, batch, jax.random.key(settings["seed"]))
        train_s, train_cpu_s = time.perf_counter() - start, _cpu_seconds() - cpu

        start = time.perf_counter()
        emb = np.asarray(model.encode(model.point_clouds_test, model.weights_test))
        encode_s = time.perf_counter() - start
    pred = np.mean(np.square(emb[first] - emb[second]), axis=-1)
    return {
        "package": "wassersteinwormhole",
        "version": metadata.version("wassersteinwormhole"),
        "jax": jax.__version__,
        "ott": metadata.version("ott-jax"),
        "flax": metadata.version("flax"),
        "device": str(jax.devices()[0]),
        "steps": steps,
        "steps_per_s": steps / train_s,
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "cpu_s_per_step": train_cpu_s / steps,
        "setup_s": setup_s,
        "warmup_steps": settings["warmup_steps"],
        "warmup_s": warmup_s,
        "encode_s": encode_s,
        "padded_length": int(model.point_clouds.shape[1]),
        "sinkhorn_iterations": int(model.num_sinkhorn_iter),
        "cost_scale": float(model.ot_scale_value),
        "decoder_points": int(model.num_particles_output),
        "pred": pred.tolist(),
    }


def _calls_in_source(name: str) -> list[str]:
    """``file:line`` of every call of ``name`` in the installed package's source."""
    import wassersteinwormhole

    found = []
    for path in sorted(Path(wassersteinwormhole.__file__).parent.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if f"{name}(" in line and f"def {name}(" not in line:
                found.append(f"{path.name}:{number}")
    return found


def describe(data_path: str, settings: dict) -> dict:
    """What the package does with the benchmark's clouds and settings, without training.

    Every value is read from the built ``Wormhole``, from one solve by the package's own
    helper, or from the installed source and ott-jax's signatures.
    """
    import jax.numpy as jnp
    import ott
    from ott.solvers.linear import sinkhorn
    from wassersteinwormhole import _utils_Processing, utils_OT
    from wassersteinwormhole.DefaultConfig import DefaultConfig

    data = np.load(data_path)
    with contextlib.redirect_stdout(sys.stderr):
        model, scale_calls = _build(data, settings)
        # Its own estimate (what it would have used), with the arguments it passed.
        np.random.seed(settings["seed"])
        own_scale = float(_utils_Processing.get_max_dist_statistic(
            list(model.point_clouds), list(model.weights), **scale_calls[0]))
    real = model.weights > 0
    given, _ = _as_lists(data["train_points"], data["train_weights"])
    changed = max(float(np.max(np.abs(model.point_clouds[i, :len(x)] - x)))
                  for i, x in enumerate(given))
    sizes = np.concatenate([(data["train_weights"] > 0).sum(1), (data["test_weights"] > 0).sum(1)])
    # One encoder-target solve as the package's S2 runs it, on a cloud against itself: the
    # easiest problem there is, so any early stop would show here.
    x, a = jnp.asarray(model.point_clouds[0]), jnp.asarray(model.weights[0])
    out = utils_OT._solve_linear(x, x, a, a, model.eps_enc, model.lse_enc,
                                 model.num_sinkhorn_iter, model.ot_scale_value)
    defaults = inspect.signature(sinkhorn.Sinkhorn.__init__).parameters
    fields = sorted(DefaultConfig.__dataclass_fields__)
    return {
        "version": metadata.version("wassersteinwormhole"),
        "ott": ott.__version__,
        "config_fields": fields,
        "config_has_scale_field": "scale" in fields or "factor" in fields,
        "docstring_mentions_scale": ":param scale:" in (DefaultConfig.__doc__ or ""),
        "max_min_scale_calls": _calls_in_source("MaxMinScale"),
        "coordinates_changed": changed,
        "coordinate_range": [float(model.point_clouds[real].min()),
                             float(model.point_clouds[real].max())],
        "cost_scale_call": scale_calls[0],
        "cost_scale_own_estimate": own_scale,
        "cost_scale_used": float(model.ot_scale_value),
        "eps_enc": float(model.eps_enc), "eps_dec": float(model.eps_dec),
        "lse_enc": bool(model.lse_enc), "lse_dec": bool(model.lse_dec),
        "num_sinkhorn_iter": int(model.num_sinkhorn_iter),
        "self_solve_iterations": int(out.n_iters),
        "self_solve_converged": bool(out.converged),
        "ott_sinkhorn_defaults": {k: defaults[k].default for k in
                                  ("threshold", "inner_iterations", "min_iterations")},
        "padded_length": int(model.point_clouds.shape[1]),
        "largest_cloud": int(sizes.max()),
        "weight_sums": [float(model.weights.sum(1).min()), float(model.weights.sum(1).max())],
        "decoder_points": int(model.num_particles_output),
        "attention_dropout_rate": float(model.config.attention_dropout_rate),
    }


def main(argv: list[str]) -> int:
    mode = run
    if argv and argv[0] == "--describe":
        mode, argv = describe, argv[1:]
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    settings = json.loads(open(argv[1]).read())
    print(json.dumps(mode(argv[0], settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
