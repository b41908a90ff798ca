"""Neural EOT / EGW: against ott-jax and closed forms, invariances, plan marginals, errors.

Small problems are trained full-batch (a sample no larger than the batch is used whole), so
the network solves exactly the discrete problem ott-jax solves and the tolerances can be tight.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ott.geometry import costs

from wormhole.config import ConfigError, load_config
from wormhole.neural_ot import (
    Gaussian,
    NetworkConfig,
    NeuralEvalConfig,
    NeuralOTConfig,
    NeuralTrainConfig,
    entropic_gw,
    entropic_igw_gaussians,
    entropic_ot_gaussians,
    neural_egw,
    neural_eot,
    random_gaussian,
    sinkhorn_eot,
)
from wormhole.neural_ot.config import check_config, neural_ot_config_from_dict
from wormhole.neural_ot.eot import estimate_semi_dual
from wormhole.neural_ot.gaussian import (
    entropic_potential_gaussians,
    gaussian_conditional_mean,
    gaussian_plan_log_density,
)
from wormhole.neural_ot.gw import _moment_influence, moment_term
from wormhole.neural_ot.plan import EntropicPlan
from wormhole.neural_ot.reference import gw_objective

from .conftest import load_script

SMALL_NET = NetworkConfig(width=128)
FULL_BATCH = NeuralTrainConfig(steps=1500, batch_size=512, learning_rate=1e-2)
SMALL_EVAL = NeuralEvalConfig(eval_size=4000, reference_size=4000)


def _two_clouds(n: int = 100, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)) * np.array([1.0, 0.5])
    y = rng.normal(size=(n, 2)) * np.array([1.3, 0.4]) + np.array([1.0, -0.5])
    return x.astype(np.float32), y.astype(np.float32)


def _rotation(dim: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


# ----------------------------------------------------------------------------- EOT


def test_neural_eot_matches_sinkhorn_on_the_same_small_samples():
    x, y = _two_clouds(150)
    eps = 0.5
    result = neural_eot(x, y, eps, network=SMALL_NET, train=FULL_BATCH)
    reference = sinkhorn_eot(x, y, eps)
    assert reference.converged
    # The semi-dual of a potential is a lower bound of OT_eps on these samples (the
    # c-transform is exact on the whole sample), so the gap is training error only.
    assert result.cost <= reference.cost + 1e-3
    assert abs(result.cost - reference.cost) < 5e-3 * abs(reference.cost)


@pytest.fixture(scope="module")
def gaussian_eot():
    mu, nu = random_gaussian(2, 1), random_gaussian(2, 2)
    eps = 1.0
    result = neural_eot(mu.sample, nu.sample, eps, network=SMALL_NET,
                        train=NeuralTrainConfig(steps=1500, batch_size=512),
                        evaluation=NeuralEvalConfig(eval_size=20000, reference_size=10000))
    return mu, nu, eps, result


def test_neural_eot_matches_gaussian_closed_form(gaussian_eot):
    mu, nu, eps, result = gaussian_eot
    truth = entropic_ot_gaussians(mu, nu, eps)
    # Monte Carlo error of the final averages plus 1% for training and the finite reference.
    assert abs(result.cost - truth) < 3 * result.stderr + 0.01 * abs(truth)


def test_learned_plan_matches_gaussian_plan(gaussian_eot):
    mu, nu, eps, result = gaussian_eot
    x = np.asarray(mu.sample(jax.random.PRNGKey(3), 200))
    y = np.asarray(nu.sample(jax.random.PRNGKey(4), 200))
    # Typical points only: the network extrapolates in the tails.
    x = x[np.linalg.norm(x - mu.mean, axis=1) < 1.5]
    learned = np.asarray(result.plan.log_density(x, y))
    truth = gaussian_plan_log_density(x, y, mu, nu, eps)
    assert np.corrcoef(learned.ravel(), truth.ravel())[0, 1] > 0.98
    candidates = nu.sample(jax.random.PRNGKey(5), 20000)
    bary = np.asarray(result.plan.barycentric_projection(x, candidates))
    true_bary = gaussian_conditional_mean(x, mu, nu, eps)
    spread = np.sqrt(np.trace(nu.cov))
    assert np.mean(np.linalg.norm(bary - true_bary, axis=1)) < 0.1 * spread


def test_plan_marginals_match_the_inputs_on_samples(gaussian_eot):
    mu, nu, eps, result = gaussian_eot
    x = mu.sample(jax.random.PRNGKey(6), 3000)
    y = nu.sample(jax.random.PRNGKey(7), 3000)
    rows, cols = result.plan.marginals(x, y)
    # E_nu[density(x, .)] = 1 (mu marginal) and E_mu[density(., y)] = 1 (nu marginal).
    assert abs(float(jnp.mean(rows)) - 1) < 0.03 and float(jnp.mean(jnp.abs(rows - 1))) < 0.1
    assert abs(float(jnp.mean(cols)) - 1) < 0.03 and float(jnp.mean(jnp.abs(cols - 1))) < 0.1
    # Samples of the plan: x ~ mu, y ~ pi(. | x) must be distributed as nu.
    draws = result.plan.conditional_sample(jax.random.PRNGKey(8), x, y, 1)[:, 0]
    draws = np.asarray(draws)
    assert np.linalg.norm(draws.mean(0) - nu.mean) < 0.1
    assert np.linalg.norm(np.cov(draws.T) - nu.cov) < 0.15 * np.linalg.norm(nu.cov)
    # The same check fails for a potential that is not optimal.
    skewed = EntropicPlan(lambda a: result.plan.potential(a) + a[:, 0], costs.SqEuclidean()
                          .all_pairs, result.plan.reference, eps)
    rows, _ = skewed.marginals(x, y)
    assert float(jnp.mean(jnp.abs(rows - 1))) > 0.3


def test_jackknife_over_reference_blocks_corrects_the_bias_and_reports_its_spread():
    # The exact optimal potential: its semi-dual with the exact c-transform is OT_eps, so the
    # only errors are the reference sample's (and the evaluation samples' Monte Carlo error).
    mu, nu = random_gaussian(8, 0), random_gaussian(8, 1)
    eps = 1.0
    truth = entropic_ot_gaussians(mu, nu, eps)
    x = mu.sample(jax.random.PRNGKey(1), 20000)
    y = nu.sample(jax.random.PRNGKey(2), 20000)
    plan = EntropicPlan(entropic_potential_gaussians(mu, nu, eps), costs.SqEuclidean().all_pairs,
                        mu.sample(jax.random.PRNGKey(10), 2000), eps)
    values, ref_stderrs = [], []
    for seed in range(4):
        plan.reference = mu.sample(jax.random.PRNGKey(10 + seed), 2000)  # same shape: no recompile
        estimate = estimate_semi_dual(plan, x, y, blocks=20)
        eval_stderr = np.sqrt(estimate.stderr**2 - estimate.reference_stderr**2)
        # Uncorrected, a 2,000-point reference puts the estimate several standard errors above
        # the closed form; the jackknife brings it back within its (wider) standard error.
        assert estimate.plug_in - truth > 4 * eval_stderr
        assert abs(estimate.value - truth) < 3 * estimate.stderr
        assert estimate.reliable and estimate.reference_ess > 10
        values.append(estimate.value)
        ref_stderrs.append(estimate.reference_stderr)
    # The reference's share of the standard error matches how far independent references
    # move the estimate (x and y fixed).
    assert 1 / 3 < np.std(values, ddof=1) / np.mean(ref_stderrs) < 3


def test_small_reference_at_small_epsilon_is_flagged_unreliable():
    mu, nu = random_gaussian(8, 0), random_gaussian(8, 1)
    settings = {"network": NetworkConfig(width=32), "train": NeuralTrainConfig(steps=100),
                "evaluation": NeuralEvalConfig(eval_size=1000, reference_size=400)}
    with pytest.warns(UserWarning, match="median effective size of .* biased upward"):
        result = neural_eot(mu.sample, nu.sample, 0.25, **settings)
    assert not result.reliable and result.reference_ess < 10
    assert result.reference_stderr > 0 and result.plug_in > result.cost
    # A finite sample used whole as the reference gives the exact c-transform: no correction.
    x, y = _two_clouds(100)
    exact = neural_eot(x, y, 0.25, **settings)
    assert exact.reliable and exact.reference_stderr == 0 and exact.cost == exact.plug_in


def test_chunked_plan_evaluation_equals_one_block():
    x, y = _two_clouds(37)

    def potential(a):
        return jnp.sin(a[:, 0]) + a[:, 1] ** 2

    cost = costs.SqEuclidean().all_pairs
    whole = EntropicPlan(potential, cost, x, 0.7, chunk_size=1000)
    blocks = EntropicPlan(potential, cost, x, 0.7, chunk_size=8)
    np.testing.assert_allclose(whole.psi(y), blocks.psi(y), rtol=1e-5, atol=1e-5)
    # The reference split into blocks (for the jackknife) adds up to the whole c-transform.
    split = EntropicPlan(potential, cost, x[:36], 0.7, chunk_size=8)
    sums = split.reference_log_sums(y, 4)
    assert sums.shape == (4, len(y))
    psi = -0.7 * (jax.scipy.special.logsumexp(sums, axis=0) - np.log(36.0))
    np.testing.assert_allclose(psi, split.psi(y), rtol=1e-5, atol=1e-5)
    for a, b in zip(whole.marginals(x, y), blocks.marginals(x, y), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    np.testing.assert_allclose(whole.barycentric_projection(x, y),
                               blocks.barycentric_projection(x, y), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(blocks.marginals(x, y)[1], 1.0, rtol=1e-5)


def test_conditional_samples_follow_the_plan_density():
    reference = jnp.array([[-1.0], [0.5], [2.0]])
    plan = EntropicPlan(lambda a: 0.5 * a[:, 0], costs.SqEuclidean().all_pairs, reference,
                        1.0, chunk_size=2)
    x = jnp.array([[0.0], [1.5]])
    candidates = jnp.array([[-1.0], [0.0], [1.0], [2.0]])
    draws = np.asarray(plan.conditional_sample(jax.random.PRNGKey(0), x, candidates, 20000))
    # pi(y_j | x) on candidates drawn from nu is proportional to the density at (x, y_j).
    probs = np.asarray(jax.nn.softmax(plan.log_density(x, candidates), axis=1))
    for i in range(2):
        freq = [(draws[i, :, 0] == v).mean() for v in candidates[:, 0]]
        np.testing.assert_allclose(freq, probs[i], atol=0.015)
    assert np.abs(probs[0] - probs[1]).max() > 0.2  # the two rows really differ


# ----------------------------------------------------------------------------- EGW


def test_moment_term_is_the_coupling_free_part_of_gw():
    x, y = _two_clouds(30)
    x, y = x - x.mean(0), y - y.mean(0)
    p = np.random.default_rng(1).random((30, 30))
    for _ in range(200):  # a random coupling of the two uniform samples
        p /= p.sum(1, keepdims=True) * 30
        p /= p.sum(0, keepdims=True) * 30
    cross = x.T @ p @ y
    quartic = np.sum(p * np.sum(x**2, 1)[:, None] * np.sum(y**2, 1)[None, :])
    gw = gw_objective(p, x, y, 0.0, "egw")
    assert moment_term("egw", x, y) - 4 * quartic - 8 * np.sum(cross**2) == pytest.approx(
        gw, rel=1e-4)
    igw = gw_objective(p, x, y, 0.0, "eigw")
    assert moment_term("eigw", x, y) - 2 * np.sum(cross**2) == pytest.approx(igw, rel=1e-4)


def test_standard_error_uses_the_influence_of_the_moment_term():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, size=(300, 2)).astype(np.float32)
    y = (rng.normal(size=(200, 3)) ** 2).astype(np.float32)
    for kind in ("egw", "eigw"):
        infl_x, infl_y = _moment_influence(kind, x, y)
        base = moment_term(kind, x, y)
        # Duplicating a point moves S1 by its influence / (n + 1), to first order.
        moved_x = (moment_term(kind, np.concatenate([x, x[:1]]), y) - base) * 301
        moved_y = (moment_term(kind, x, np.concatenate([y, y[5:6]])) - base) * 201
        assert moved_x == pytest.approx(float(infl_x[0]), rel=0.01, abs=0.05)
        assert moved_y == pytest.approx(float(infl_y[5]), rel=0.01, abs=0.05)


@pytest.fixture(scope="module")
def small_egw():
    x, y = _two_clouds(100)
    eps = 4.0
    result = neural_egw(x, y, eps, network=SMALL_NET, train=FULL_BATCH, evaluation=SMALL_EVAL)
    return x, y, eps, result


def test_neural_egw_matches_ott_entropic_gw(small_egw):
    x, y, eps, result = small_egw
    reference = entropic_gw(x, y, eps, "egw")
    assert abs(result.cost - reference.cost) < 5e-3 * abs(reference.cost)
    # A is half the cross moment of the plan (the minimiser of the variational form).
    cross = (x - x.mean(0)).T @ reference.matrix @ (y - y.mean(0))
    np.testing.assert_allclose(np.abs(result.matrix), np.abs(cross / 2), atol=0.02)


def test_egw_is_invariant_to_isometries_and_embedding(small_egw):
    x, y, eps, result = small_egw
    # The same cloud rotated, translated and isometrically embedded in 3-D: A becomes [2, 3].
    lifted = np.concatenate([y, np.zeros((len(y), 1), np.float32)], 1) @ _rotation(3, 4)
    moved = lifted + np.array([5.0, -2.0, 1.0], np.float32)
    embedded = neural_egw(x, moved, eps, network=SMALL_NET, train=FULL_BATCH,
                          evaluation=SMALL_EVAL)
    assert embedded.matrix.shape == (2, 3)
    assert embedded.cost == pytest.approx(result.cost, rel=3e-3)


def test_egw_plan_aligns_and_keeps_the_marginals(small_egw):
    x, y, eps, result = small_egw
    rows, cols = result.plan.marginals(x, y)
    np.testing.assert_allclose(cols, 1.0, rtol=1e-4)  # exact: x is the reference sample
    assert float(jnp.mean(jnp.abs(rows - 1))) < 0.05
    draws = np.asarray(result.plan.conditional_sample(jax.random.PRNGKey(0), x, y, 20))
    np.testing.assert_allclose(draws.reshape(-1, 2).mean(0), y.mean(0), atol=0.05)


def test_neural_eigw_matches_gaussian_closed_form():
    mu = Gaussian(np.zeros(2), random_gaussian(2, 1).cov)
    nu = Gaussian(np.zeros(3), random_gaussian(3, 2).cov)
    eps = 1.0
    result = neural_egw(mu.sample, nu.sample, eps, "eigw", network=SMALL_NET,
                        train=NeuralTrainConfig(steps=1000),
                        evaluation=NeuralEvalConfig(eval_size=4000, reference_size=4000,
                                              moment_size=50000))
    truth = entropic_igw_gaussians(mu, nu, eps)
    assert abs(result.cost - truth) < 3 * result.stderr + 0.02 * abs(truth)
    # 2A = E_pi[x y^T], whose singular values are sqrt(l m (1 - eps / (4 l m))).
    lx = np.sort(np.linalg.eigvalsh(mu.cov))[::-1]
    ly = np.sort(np.linalg.eigvalsh(nu.cov))[::-1][:2]
    p = lx * ly
    expected = np.sqrt(np.clip(p - eps / 4, 0, None))
    np.testing.assert_allclose(np.linalg.svd(2 * result.matrix, compute_uv=False), expected,
                               atol=0.05)


@pytest.mark.slow
def test_neural_eigw_and_minibatch_egw_match_ott_on_larger_samples():
    x, y = _two_clouds(400, seed=5)
    for kind, eps in (("eigw", 1.0), ("egw", 4.0)):
        reference = entropic_gw(x, y, eps, kind)
        result = neural_egw(x, y, eps, kind, train=NeuralTrainConfig(steps=4000, batch_size=256))
        assert abs(result.cost - reference.cost) < 1e-2 * abs(reference.cost), kind


@pytest.mark.slow
def test_neural_eot_matches_closed_form_in_dimension_8():
    mu, nu = random_gaussian(8, 3), random_gaussian(8, 4)
    result = neural_eot(mu.sample, nu.sample, 2.0, train=NeuralTrainConfig(steps=4000))
    truth = entropic_ot_gaussians(mu, nu, 2.0)
    assert abs(result.cost - truth) < 3 * result.stderr + 0.02 * truth


# ----------------------------------------------------------------------------- inputs


def test_input_errors_name_the_problem():
    x, y = _two_clouds(10)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        neural_eot(x, y, 0.0)
    with pytest.raises(ValueError, match="Unknown cost 'hamming' for neural EOT"):
        neural_eot(x, y, 1.0, "hamming")
    with pytest.raises(ValueError, match="x: the array holds NaN"):
        neural_eot(np.full((5, 2), np.nan), y, 1.0)
    with pytest.raises(ValueError, match=r"y: expected an array \[n, d\]"):
        neural_eot(x, y[:, 0], 1.0)
    with pytest.raises(ValueError, match="a sampler must return"):
        neural_eot(lambda key, n: jnp.zeros(n), y, 1.0)
    with pytest.raises(ValueError, match="x has dimension 2 and y 3.*Use neural_egw"):
        neural_eot(x, np.zeros((10, 3)), 1.0)
    with pytest.raises(ValueError, match="Unknown GW kind 'fgw'"):
        neural_egw(x, y, 1.0, "fgw")
    with pytest.raises(ValueError, match="centred Gaussians"):
        entropic_igw_gaussians(random_gaussian(2, 0), random_gaussian(2, 1), 1.0)


def test_costs_resolve_through_the_package_registry(monkeypatch):
    from wormhole.neural_ot.eot import _ground_cost
    from wormhole.ot import costs as registry

    assert isinstance(_ground_cost(None), costs.SqEuclidean)
    assert isinstance(_ground_cost("squared_euclidean"), costs.SqEuclidean)  # a registry alias
    assert isinstance(_ground_cost("manhattan"), costs.PNormP)
    mine = costs.Euclidean()
    assert _ground_cost(mine) is mine
    with pytest.raises(ValueError, match="Unknown cost 'wormhole.ot.costs:COSTS'"):
        _ground_cost("wormhole.ot.costs:COSTS")  # import paths are the matrix API's only
    with pytest.raises(TypeError, match="not function"):
        _ground_cost(lambda a, b: a @ b.T)
    # An entry the registry marks as unusable by neural OT is refused by name.
    entry = registry.NamedCost("geodesic", costs.Euclidean, None, neural=False)
    monkeypatch.setitem(registry._BY_SPELLING, "geodesic", entry)
    with pytest.raises(ValueError, match="'geodesic' is not usable by neural EOT"):
        _ground_cost("geodesic")


@pytest.mark.parametrize(("raw", "message"), [
    ({"problem": {"kind": "gw"}}, "problem.kind: 'gw' is not allowed; choose one of: eot, egw"),
    ({"problem": {"epsilon": 0}}, "problem.epsilon: 0.0 is out of range; it must be > 0"),
    ({"train": {"stepz": 5}}, "Unknown key 'train.stepz'.*Did you mean 'steps'"),
    ({"network": {"width": "wide"}}, "network.width: expected int, got 'wide'"),
    ({"data": {"eig_min": 3.0, "eig_max": 2.0}}, r"data.eig_min \(3.0\) must be <= data.eig_max"),
    ({"data": {"source": "npz"}}, "data.path: the 'npz' source needs a file"),
    ({"data": {"dim": 2, "dim_y": 3}}, r"data.dim_y \(3\) must equal data.dim \(2\) for "
                                       "problem.kind 'eot'"),
    ({"problem": {"kind": "egw", "cost": "euclidean"}},
     "problem.cost \\('euclidean'\\) applies to 'eot' only"),
])
def test_config_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        neural_ot_config_from_dict(raw)


def test_shipped_configs_load():
    for name in ("neural_eot_gaussian", "neural_egw_gaussian"):
        config = check_config(load_config(name, cls=NeuralOTConfig))
        assert config.name == name
    config = load_config("neural_egw_gaussian", ["train.steps=7"], cls=NeuralOTConfig)
    assert config.train.steps == 7 and config.problem.kind == "egw"


def test_script_reports_bad_configs_and_writes_results(tmp_path, capsys):
    main = load_script("neural_ot").main

    assert main(["--config", "neural_eot_gaussian", "--set", "problem.kind=sinkhorn"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "problem.kind: 'sinkhorn' is not allowed" in err
    assert main(["--config", "neural_eot_gaussian", "--set", "data.source=npz",
                 "--set", f"data.path={tmp_path / 'missing.npz'}"]) == 1
    assert "data.path: no file at" in capsys.readouterr().err
    np.savez(tmp_path / "clouds.npz", x=np.zeros((5, 2)), z=np.zeros((5, 2)))
    assert main(["--config", "neural_eot_gaussian", "--set", "data.source=npz",
                 "--set", f"data.path={tmp_path / 'clouds.npz'}"]) == 1
    assert "it needs 'x'" in capsys.readouterr().err
    (tmp_path / "afile").write_text("kept")
    for out in ("afile", "afile/sub"):  # before any training
        assert main(["--config", "neural_eot_gaussian", "--out", str(tmp_path / out)]) == 1
        assert "afile is a file, not a directory" in capsys.readouterr().err

    out = tmp_path / "run"
    assert main(["--config", "neural_eot_gaussian", "--out", str(out), "--no-progress",
                 "--set", "data.dim=1", "--set", "train.steps=200",
                 "--set", "eval.eval_size=2000", "--set", "eval.reference_size=2000",
                 "--set", "eval.sinkhorn_size=null"]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert summary["kind"] == "eot" and summary["config"]["train"]["steps"] == 200
    assert summary["closed_form_relative_error"] < 0.1
    assert (out / "plan.png").stat().st_size > 10_000


def test_paper_benchmark_quick_run_reports_every_claim(tmp_path, mnist_dir):
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "negw"
    done = subprocess.run([sys.executable, str(repo / "benchmarks" / "neural_egw_paper.py"),
                           "--quick", "--mnist-dir", str(mnist_dir), "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "negw.json").read_text())
    assert {"sweep", "plan", "mnist", "rate", "scale"} <= set(result)
    rows = result["sweep"]["rows"]
    assert {r["problem"] for r in rows} == {"egw_uniform", "eigw_gaussian", "eot_gaussian"}
    assert np.isfinite([r["relative_error"] for r in rows]).all()
    # The cube's reference is a converged ott-jax EGW value, a positive number.
    assert all(ref["value"] > 0 and any(s["converged"] for s in ref["solves"])
               for ref in result["sweep"]["references"])
    plan = result["plan"]
    assert 0 <= plan["total_variation"] <= 1 and np.isfinite(plan["cross_moment"])
    mnist = result["mnist"]
    matrix = np.asarray(mnist["matrix"])
    assert matrix.shape == (2, 2) and np.isfinite(matrix).all() and np.allclose(matrix, matrix.T)
    assert np.isfinite([r["value"] for r in mnist["invariance"]]).all()
    assert {r["transform"] for r in mnist["invariance"]} >= {"none", "U0, V0"}
    rate = result["rate"]
    assert np.isfinite([rate["slope_k"], rate["slope_n"]]).all()
    for part in ("eot", "egw"):
        methods = {r["method"] for r in result["scale"][part]["rows"] if "cost" in r}
        assert len(methods) >= 2  # the neural estimator and at least one ott-jax solver ran
    for figure in result["figures"]:
        assert (tmp_path / figure).stat().st_size > 5_000
    text = (tmp_path / "negw.md").read_text()
    assert "## The claims" in text and "## What was scaled down" in text
