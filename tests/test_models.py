"""Encoders and decoder: invariances that make a network a function of a weighted measure."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wormhole.config import ModelConfig
from wormhole.models import ModelSpec, WormholeModel, build_model, embedding_distance

SMALL = dict(emb_dim=16, width=32, num_layers=2, num_heads=4, mlp_dim=64, decoder_layers=1)


def _model(encoder: str, decoder_points: int = 0, pooling: str = "mean",
           **extra) -> tuple:
    cfg = ModelConfig(encoder=encoder, pooling=pooling, **SMALL, **extra)
    model = build_model(cfg, ModelSpec(2, decoder_points, (0.0, -1.0), (1.0, 2.0)))
    x = jnp.zeros((1, 5, 2))
    w = jnp.full((1, 5), 0.2)
    params = model.init(jax.random.PRNGKey(0), x, w)["params"]
    return model, params


def _encode(model, params, x, w):
    return np.asarray(model.apply({"params": params}, jnp.asarray(x), jnp.asarray(w),
                                  method=WormholeModel.encode))


# "fourier": the transformer lifting points through learned Fourier features.
@pytest.fixture(scope="module", params=["transformer", "deepsets", "fourier"])
def encoder(request):
    if request.param == "fourier":
        return _model("transformer", fourier_features=8, fourier_scale=3.0)
    return _model(request.param)


@pytest.fixture(scope="module")
def cloud():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 9, 2)).astype(np.float32)
    w = rng.uniform(0.1, 1.0, size=(3, 9)).astype(np.float32)
    return x, w / w.sum(1, keepdims=True)


def test_encoder_is_invariant_to_point_order(encoder, cloud):
    model, params = encoder
    x, w = cloud
    perm = np.random.default_rng(1).permutation(x.shape[1])
    np.testing.assert_allclose(_encode(model, params, x, w),
                               _encode(model, params, x[:, perm], w[:, perm]), atol=1e-5)


def test_padding_does_not_change_the_embedding(encoder, cloud):
    model, params = encoder
    x, w = cloud
    # Padding anywhere (even far away, and in the middle of the rows) has zero weight.
    pad_x = np.concatenate([x[:, :4], np.full((3, 6, 2), 7.0), x[:, 4:]], 1)
    pad_w = np.concatenate([w[:, :4], np.zeros((3, 6)), w[:, 4:]], 1)
    np.testing.assert_allclose(_encode(model, params, x, w),
                               _encode(model, params, pad_x, pad_w), atol=1e-5)


def test_duplicated_point_equals_doubled_weight(encoder):
    """The encoder sees a measure: two copies of a point weigh as one point of twice the mass."""
    model, params = encoder
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(1, 6, 2)).astype(np.float32)
    dup_x = np.concatenate([x, x[:, :1]], 1)
    dup_w = np.full((1, 7), 1 / 7, np.float32)
    w = np.full((1, 6), 1 / 7, np.float32)
    w[0, 0] = 2 / 7
    np.testing.assert_allclose(_encode(model, params, dup_x, dup_w),
                               _encode(model, params, x, w), atol=1e-5)


def test_weights_change_the_embedding(encoder, cloud):
    model, params = encoder
    x, w = cloud
    other = np.roll(w, 1, axis=1)
    assert np.abs(_encode(model, params, x, w) - _encode(model, params, x, other)).max() > 1e-4


def test_sum_pooling_sees_set_size():
    model, params = _model("deepsets", pooling="sum")
    x = np.random.default_rng(3).uniform(size=(1, 4, 2)).astype(np.float32)
    once = _encode(model, params, x, np.full((1, 4), 0.25, np.float32))
    twice = _encode(model, params, np.concatenate([x, x], 1), np.full((1, 8), 0.125, np.float32))
    assert np.abs(once - twice).max() > 1e-4


def test_deepsets_layer_sizes_follow_phi_and_rho_sizes():
    cfg = ModelConfig(encoder="deepsets", emb_dim=2, phi_sizes=[50, 100, 36],
                      rho_sizes=[30, 30, 10], pooling="sum")
    model = build_model(cfg, ModelSpec(1, 0, (0.0,), (1.0,)))
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 5, 1)), jnp.full((1, 5), 0.2))
    kernels = {name: layer["kernel"].shape
               for name, layer in params["params"]["encoder"].items()}
    assert kernels == {"phi0": (1, 50), "phi1": (50, 100), "phi2": (100, 36),
                       "rho0": (36, 30), "rho1": (30, 30), "rho2": (30, 10), "out": (10, 2)}


def test_decoder_output_shape_and_box():
    model, params = _model("transformer", decoder_points=11)
    x = np.random.default_rng(4).uniform(size=(2, 5, 2)).astype(np.float32)
    emb, dec = model.apply({"params": params}, jnp.asarray(x), jnp.full((2, 5), 0.2))
    assert emb.shape == (2, 16) and dec.shape == (2, 11, 2)
    dec = np.asarray(dec)
    assert np.all(dec[..., 0] >= 0.0) and np.all(dec[..., 0] <= 1.0)
    assert np.all(dec[..., 1] >= -1.0) and np.all(dec[..., 1] <= 2.0)


def test_model_without_decoder_refuses_to_decode():
    model, params = _model("transformer", decoder_points=0)
    with pytest.raises(ValueError, match="without a decoder"):
        model.apply({"params": params}, jnp.zeros((1, 16)), method=WormholeModel.decode)


def test_embedding_distances():
    a = jnp.array([[0.0, 0.0, 0.0, 0.0]])
    b = jnp.array([[1.0, 2.0, 2.0, 0.0]])
    np.testing.assert_allclose(embedding_distance(a, b, "mse"), [9.0 / 4])
    np.testing.assert_allclose(embedding_distance(a, b, "euclidean"), [3.0], rtol=1e-6)
    with pytest.raises(ValueError, match="Unknown embedding distance"):
        embedding_distance(a, b, "cosine")


def test_fourier_lift_learns_its_frequencies_at_the_given_scale():
    model, params = _model("transformer", fourier_features=256, fourier_scale=3.0)
    lift = params["encoder"]["fourier"]
    assert lift["frequencies"]["kernel"].shape == (2, 256)
    assert lift["lift"]["kernel"].shape == (2 * 256 + 2, SMALL["width"])
    assert "lift" not in params["encoder"]  # the linear lift is replaced, not kept beside it
    assert np.std(np.asarray(lift["frequencies"]["kernel"])) == pytest.approx(3.0, rel=0.15)
