"""Loss terms against their definitions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wormhole.config import LossConfig, ModelConfig
from wormhole.losses import (
    LOSS_TERMS,
    StepArrays,
    local_stress_loss,
    log_stress_loss,
    pearson,
    reconstruction_loss,
    scaling_loss,
    stress_loss,
    translation_loss,
)
from wormhole.models import ModelSpec, WormholeModel, build_model
from wormhole.ot import OTSpec


def test_stress_is_mean_squared_error():
    pred, target = jnp.array([1.0, 2.0, 4.0]), jnp.array([1.0, 3.0, 2.0])
    assert float(stress_loss(pred, target)) == pytest.approx((0 + 1 + 4) / 3)
    assert float(stress_loss(target, target)) == 0.0


def test_local_stress_weighs_pairs_by_inverse_target_and_scales_like_the_stress():
    targets = jnp.array([1.0, 10.0, 4.0])
    distances = jnp.array([2.0, 11.0, 4.0])  # the same absolute error on the first two
    raw = 1.0 / (np.array(targets) + 0.1 * 5.0)
    weights = raw / raw.mean()
    expected = np.mean(weights * (np.array(distances) - np.array(targets)) ** 2)
    assert float(local_stress_loss(distances, targets)) == pytest.approx(expected, rel=1e-6)
    # The small pair's error costs (10.5 / 1.5 =) 7 times the large pair's.
    assert weights[0] / weights[1] == pytest.approx(7.0)
    # Normalised weights: scaling all distances by c scales the loss by c^2, as the stress.
    scaled = local_stress_loss(3.0 * distances, 3.0 * targets)
    assert float(scaled) == pytest.approx(9.0 * expected, rel=1e-5)


def test_log_stress_is_the_squared_log_ratio_in_the_stress_units():
    targets = jnp.array([1.0, 10.0, 4.0])
    distances = jnp.array([2.0, 20.0, 4.0])  # the first two off by the same factor
    c = 0.1 * 5.0
    ratios = np.log(np.array(distances) + c) - np.log(np.array(targets) + c)
    expected = 25.0 * np.mean(ratios ** 2)
    assert float(log_stress_loss(distances, targets)) == pytest.approx(expected, rel=1e-6)
    assert float(log_stress_loss(targets, targets)) == 0.0
    # Scaling all distances by 3 scales the loss by 9, as the stress.
    scaled = log_stress_loss(3.0 * distances, 3.0 * targets)
    assert float(scaled) == pytest.approx(9.0 * expected, rel=1e-5)
    # Off by one factor, the near pair costs about as much as the far one (not 81x less,
    # as under the plain stress): only the offset c tells them apart.
    near = log_stress_loss(jnp.array([2.0, 10.0]), jnp.array([1.0, 10.0]))
    far = log_stress_loss(jnp.array([1.0, 20.0]), jnp.array([1.0, 10.0]))
    assert 0.4 < float(near) / float(far) < 1.0


def test_reconstruction_is_mean_distance():
    assert float(reconstruction_loss(jnp.array([0.5, 1.5]))) == 1.0


def test_invariance_terms_vanish_exactly_when_the_law_holds():
    d = jnp.array([0.2, 0.7, 1.1])
    assert float(translation_loss(d, d)) == 0.0
    assert float(translation_loss(d, d + 0.1)) > 0
    a = 1.7
    assert abs(float(scaling_loss(d, a**2 * d, a**2))) < 1e-12
    assert float(scaling_loss(d, a * d, a**2)) > 0


def test_pearson_matches_numpy_and_handles_constants():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    np.testing.assert_allclose(float(pearson(jnp.asarray(x), jnp.asarray(y))),
                               np.corrcoef(x, y)[0, 1], rtol=1e-5)
    assert float(pearson(jnp.ones(5), jnp.arange(5.0))) == 0.0


@pytest.mark.parametrize("detach", [False, True])
def test_a_detached_decoder_leaves_the_encoder_to_the_distance_terms(detach):
    model = build_model(ModelConfig(emb_dim=8, width=16, num_layers=1, num_heads=2, mlp_dim=32,
                                    decoder_layers=1, decoder_points=6),
                        ModelSpec(2, 6, (0.0, 0.0), (1.0, 1.0)))
    rng = np.random.default_rng(0)
    points = jnp.asarray(rng.uniform(size=(3, 7, 2)), jnp.float32)
    weights = jnp.full((3, 7), 1 / 7)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), points, weights)["params"]
    spec = OTSpec(kind="S2", epsilon=0.05, threshold=1e-4, max_iterations=200)

    def term(params):
        def encode(p, x):
            return model.apply({"params": p}, x, weights, method=WormholeModel.encode)

        def decode(p, e):
            return model.apply({"params": p}, e, method=WormholeModel.decode)

        emb = encode(params, points)
        step = StepArrays(params, points, weights, None, None, emb, {}, encode, decode, None,
                          spec, False, 2, LossConfig(detach_decoder=detach))
        return LOSS_TERMS["reconstruction"](step)[0]

    grads = jax.jit(jax.grad(term))(params)  # one compiled program, not one per operation
    encoder = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads["encoder"]))
    decoder = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads["decoder"]))
    assert decoder > 1e-6
    assert (encoder == 0.0) if detach else (encoder > 1e-6)
