"""Train the published ``wassersteinwormhole`` package on prepared clouds; print JSON.

Run by ``benchmarks/train_throughput.py`` with the interpreter of a separate virtual
environment (the package pins its own jax and flax), never imported by ``wormhole``:

    /path/to/venv/bin/python benchmarks/_published_worker.py DATA.npz SETTINGS.json

    /path/to/venv/bin/python benchmarks/_published_worker.py --describe DATA.npz SETTINGS.json

    /path/to/venv/bin/python benchmarks/_published_worker.py --race DATA.npz SETTINGS.json

``DATA.npz`` holds padded train and test clouds (``*_points [N, n, d]``, ``*_weights [N, n]``)
and the held-out pairs (``first``, ``second``); ``SETTINGS.json`` the shared settings. The
loop of the package's ``Wormhole.train`` runs twice from the same fresh train state: a few
steps to compile its jitted train step, then the measured steps. With ``--describe`` nothing
is trained: the package's ``Wormhole`` is built on the same clouds and settings and the
worker reports what its code does with them (coordinate scaling, cost scale, epsilon,
iteration rule, padding), read from the built object, one solve and the installed source.
With ``--race`` (``benchmarks/head_to_head.py``) the package trains for a budget of training
seconds from its own defaults or given ones, and the held-out pairs are scored at set times;
its last embeddings go to the ``arrays`` file the settings name.
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


def _build(data, config, cost_scale: float | None):
    """The package's ``Wormhole`` on the data file's clouds; ``(model, cost-scale calls)``.

    The package estimates its cost scale from 1000 random cloud pairs; a given
    ``cost_scale`` (the one value both trainers share) replaces it, so the two learn exactly
    the same targets. The calls it made to its estimator are recorded (arguments only) for
    the settings report. ``config=None`` is the package's ``DefaultConfig``.
    """
    import wassersteinwormhole

    module = sys.modules["wassersteinwormhole.Wormhole"]
    calls = []
    own_estimate = module.get_max_dist_statistic

    def recorded_scale(*args, **kwargs):
        calls.append(kwargs)
        return own_estimate(*args, **kwargs) if cost_scale is None else cost_scale

    module.get_max_dist_statistic = recorded_scale
    train_x, train_w = _as_lists(data["train_points"], data["train_weights"])
    test_x, test_w = _as_lists(data["test_points"], data["test_weights"])
    model = wassersteinwormhole.Wormhole(point_clouds=train_x, weights=train_w,
                                         point_clouds_test=test_x, weights_test=test_w,
                                         config=config)
    return model, calls


def run(data_path: str, settings: dict) -> dict:
    import jax
    import jax.numpy as jnp

    data = np.load(data_path)
    first, second = data["first"], data["second"]
    steps, batch = settings["steps"], settings["batch_size"]
    with contextlib.redirect_stdout(sys.stderr):
        start = time.perf_counter()
        model, _ = _build(data, _config(settings), settings["cost_scale"])
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


def _plain(value):
    """A config value as JSON can hold it."""
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def race(data_path: str, settings: dict) -> dict:
    """Train for ``budget_s`` seconds of training clock, scoring held-out pairs on the way.

    The settings name the package's config (``config``: ``DefaultConfig`` fields to change;
    empty = its defaults), ``cost_scale`` (``None``: its own estimate), ``learning_rate`` and
    ``batch_size`` (as ``Wormhole.train`` takes them, with its 0.99 decay every 2000 steps),
    ``seed``, ``budget_s`` and ``eval_every_s``. The clock counts the train steps,
    compilation included, and stops while the held-out clouds are encoded. The loop is the
    body of ``Wormhole.train`` (0.3.7), one step at a time.
    """
    import jax
    import jax.numpy as jnp
    from tqdm import tqdm
    from wassersteinwormhole.DefaultConfig import DefaultConfig

    data = np.load(data_path)
    first, second = data["first"], data["second"]
    references = data["references"]
    batch, budget = settings["batch_size"], settings["budget_s"]
    with contextlib.redirect_stdout(sys.stderr):
        start = time.perf_counter()
        model, _ = _build(data, DefaultConfig(**settings["config"]), settings["cost_scale"])
        setup_s = time.perf_counter() - start
        model.tri_u_ind = jnp.stack(jnp.triu_indices(batch, 1), axis=1)
        model.pseudo_weights = jnp.ones([batch, model.num_particles_output]) \
            / model.num_particles_output
        key = jax.random.key(settings["seed"])
        key, subkey = jax.random.split(key)
        state = model.create_train_state(subkey, init_lr=settings["learning_rate"])

        def encode(points, weights):
            model.params = state.params
            return np.asarray(model.encode(points, weights))

        clock, steps, scores, first_step_s = 0.0, 0, [], None
        next_eval = settings["eval_every_s"]
        bar = tqdm(total=round(budget), desc=f"[published] {settings['name']}", unit="s")
        while clock < budget:
            tick = time.perf_counter()
            key, subkey = jax.random.split(key)
            index = jax.random.choice(subkey, model.point_clouds.shape[0], [batch],
                                      replace=False)
            key, subkey = jax.random.split(key)
            state, _ = model.train_step(state, model.point_clouds[index],
                                        model.weights[index], subkey)
            jax.block_until_ready(state.params)
            spent = time.perf_counter() - tick
            first_step_s = spent if first_step_s is None else first_step_s
            clock, steps = clock + spent, steps + 1
            bar.update(min(round(clock), round(budget)) - bar.n)
            if clock >= next_eval or clock >= budget:
                emb = encode(model.point_clouds_test, model.weights_test)
                pred = np.mean(np.square(emb[first] - emb[second]), axis=-1)
                scores.append({"train_s": clock, "step": steps, "pred": pred.tolist()})
                while next_eval <= clock:
                    next_eval += settings["eval_every_s"]
        bar.close()
        test_emb = encode(model.point_clouds_test, model.weights_test)
        reference_emb = encode(model.point_clouds[references], model.weights[references])
    np.savez(settings["arrays"], test=test_emb, references=reference_emb)
    return {
        "package": "wassersteinwormhole",
        "version": metadata.version("wassersteinwormhole"),
        "jax": jax.__version__, "ott": metadata.version("ott-jax"),
        "device": str(jax.devices()[0]),
        "steps": steps, "train_s": clock, "first_step_s": first_step_s,
        "steps_per_s": (steps - 1) / max(clock - first_step_s, 1e-9) if steps > 1 else None,
        "setup_s": setup_s, "scores": scores,
        "padded_length": int(model.point_clouds.shape[1]),
        "sinkhorn_iterations": int(model.num_sinkhorn_iter),
        "cost_scale": float(model.ot_scale_value),
        "decoder_points": int(model.num_particles_output),
        "config": {k: _plain(getattr(model.config, k)) for k in
                   model.config.__dataclass_fields__ if k not in ("kernel_init", "bias_init")},
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
        model, scale_calls = _build(data, _config(settings), settings["cost_scale"])
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
    modes = {"--describe": describe, "--race": race}
    if argv and argv[0] in modes:
        mode, argv = modes[argv[0]], argv[1:]
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    settings = json.loads(open(argv[1]).read())
    print(json.dumps(mode(argv[0], settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
