"""Encoders and decoder: invariances that make a network a function of a weighted measure."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wormhole.config import ModelConfig
from wormhole.models import (
    ModelSpec,
    WormholeModel,
    build_model,
    embedding_distance,
    mean_scale,
)

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


def test_the_mean_split_rests_on_an_exact_identity_of_entropic_ot():
    # For the squared-Euclidean cost, S2(a, b) = |mean_a - mean_b|^2 + S2(a - mean_a,
    # b - mean_b) at any epsilon: ott-jax's own divergence is the oracle.
    from ott.geometry import pointcloud
    from ott.tools import sinkhorn_divergence

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(9, 2)), rng.normal(loc=(1.5, -0.7), size=(12, 2)) * 0.6
    a, b = rng.uniform(0.2, 1.0, 9), rng.uniform(0.2, 1.0, 12)
    a, b = a / a.sum(), b / b.sum()

    def s2(p, q):
        return float(sinkhorn_divergence.sinkhorn_divergence(
            pointcloud.PointCloud, jnp.asarray(p), jnp.asarray(q), epsilon=0.05, a=a, b=b,
            solve_kwargs={"threshold": 1e-9, "max_iterations": 20000})[0])

    mean_x, mean_y = a @ x, b @ y
    split = np.sum((mean_x - mean_y) ** 2) + s2(x - mean_x, y - mean_y)
    assert s2(x, y) == pytest.approx(split, rel=1e-5)


def _split_model(decoder_points: int, cost_scale: float) -> tuple:
    cfg = ModelConfig(encoder="transformer", **SMALL)
    spec = ModelSpec(2, decoder_points, (0.0, -1.0), (1.0, 2.0),
                     mean_scale(SMALL["emb_dim"], cost_scale))
    model = build_model(cfg, spec)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 5, 2)), jnp.full((1, 5), 0.2))
    return model, params["params"]


def test_mean_split_embeds_means_exactly_and_shapes_without_them(cloud):
    x, w = cloud
    padded_x = np.concatenate([x, np.full((3, 4, 2), 9.0, np.float32)], axis=1)  # junk
    padded_w = np.concatenate([w, np.zeros((3, 4), np.float32)], axis=1)
    model, params = _split_model(0, cost_scale=0.5)
    shift = np.array([0.3, -0.2], np.float32)
    emb = _encode(model, params, padded_x, padded_w)
    moved = _encode(model, params, np.where(padded_w[..., None] > 0, padded_x + shift,
                                            padded_x), padded_w)
    assert emb.shape == (3, SMALL["emb_dim"])
    np.testing.assert_allclose(emb[:, :2] / mean_scale(SMALL["emb_dim"], 0.5),
                               np.einsum("bn,bnd->bd", w, x), rtol=1e-5)
    np.testing.assert_allclose(moved[:, 2:], emb[:, 2:], atol=1e-5)  # shape part: no mean
    # A translation by t is at distance |t|^2 / cost_scale, the target's mean term.
    np.testing.assert_allclose(embedding_distance(emb, moved, "mse"),
                               np.sum(shift ** 2) / 0.5, rtol=1e-4)
    assert not np.allclose(emb[0, 2:], emb[1, 2:], atol=1e-3)  # shapes still differ


def test_mean_split_decoder_adds_the_mean_back():
    model, params = _split_model(11, cost_scale=1.0)
    emb = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (2, SMALL["emb_dim"])))
    shift = np.zeros_like(emb)
    shift[:, :2] = np.array([0.5, -0.25]) * mean_scale(SMALL["emb_dim"], 1.0)
    decode = lambda e: np.asarray(model.apply({"params": params}, jnp.asarray(e),  # noqa: E731
                                              method=WormholeModel.decode))
    np.testing.assert_allclose(decode(emb + shift), decode(emb) + [0.5, -0.25], atol=1e-5)
    # Centred outputs stay in the box of centred data clouds (the data box's extent).
    centred = decode(emb) - emb[:, None, :2] / mean_scale(SMALL["emb_dim"], 1.0)
    assert np.all(np.abs(centred[..., 0]) <= 1.0) and np.all(np.abs(centred[..., 1]) <= 3.0)


def test_specs_of_runs_written_before_the_mean_split_load_without_it():
    old = {"data_dim": 2, "decoder_points": 8, "low": [0, 0], "high": [1, 1]}
    assert ModelSpec.from_dict(old).mean_scale is None
    assert ModelSpec.from_dict(old).centre is False  # nor centred, as they were trained
    spec = ModelSpec(2, 8, (0.0, 0.0), (1.0, 1.0), 4.0)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    spec = ModelSpec(3, 0, None, None, None, True)
    assert ModelSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("kind, cost, centred", [
    ("GW", None, True), ("GS", "euclidean", True), ("GW", "cosine", False),
    ("S2", None, False), ("W2", None, False)])
def test_gw_runs_with_a_shift_invariant_cost_embed_a_moved_cloud_as_the_cloud(kind, cost,
                                                                             centred):
    # GW and GS compare the clouds' internal costs, which moving a cloud does not change
    # under a cost of x - y: the embedding may not change either.
    from wormhole.config import config_from_dict
    from wormhole.data import PointClouds
    from wormhole.run_setup import resolve_model_spec

    rng = np.random.default_rng(0)
    clouds = [rng.normal(size=(n, 3)) + rng.normal(size=3) for n in (5, 7, 4)]
    train = PointClouds.from_list(clouds, [rng.uniform(0.1, 1.0, len(c)) for c in clouds])
    config = config_from_dict({"ot": {"kind": kind, "cost": cost},
                               "model": {**SMALL, "decoder_layers": 0}})
    spec = resolve_model_spec(config, train, cost_scale=1.0)
    assert spec.centre is centred
    model = build_model(config.model, spec)
    x, w = jnp.asarray(train.points), jnp.asarray(train.weights)  # padded with zero weight
    params = model.init(jax.random.PRNGKey(0), x, w)["params"]
    moved = jnp.where(w[..., None] > 0, x + jnp.array([3.0, -1.0, 0.5]), x)
    change = np.abs(_encode(model, params, moved, w) - _encode(model, params, x, w)).max()
    assert change < 1e-5 if centred else change > 1e-3
