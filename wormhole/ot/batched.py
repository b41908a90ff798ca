"""OT distances for a batch of padded clouds: all in-batch pairs, or an explicit pair list.

Everything is jit-compatible with no Python loop over pairs. For the debiased kinds the self
terms ``OT(x_i, x_i)`` are solved once per cloud (``B`` solves, not one per pair) and combined
with the ``B (B - 1) / 2`` cross terms.

Two ways to run the solves of a batch (``OTSpec.batching``): ``vmap`` runs them in lock-step,
so every solve iterates until the slowest converges and works on the full padded length,
which suits the wide parallelism of GPUs; ``sequential`` maps over them with ``lax.map``, so
each stops on its own threshold, and a ``lax.switch`` crops each problem to the size bucket of
its clouds (only the taken branch runs), which removes most padded work on CPUs.

Under a mesh with a ``data`` axis (:func:`jax.set_mesh`, as the trainer runs its step), the
solves of a batch are split over that axis with :func:`jax.shard_map`: each device runs its
share of the list, batched as above (see :mod:`wormhole.parallel`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from wormhole.ot.solvers import solve_gw, solve_linear, solve_linear_self, solve_sorted
from wormhole.ot.spec import OTSpec
from wormhole.ot.validation import check_clouds
from wormhole.parallel import DATA_AXIS

__all__ = ["OTDistances", "map_pairs", "paired_distances", "pairwise_distances", "self_terms"]


class OTDistances(NamedTuple):
    """Distances of a list of pairs.

    Attributes:
      values: ``[P]`` distances; for :func:`pairwise_distances` the pairs ``i < j`` in
        ``np.triu_indices(B, 1)`` order.
      hit_cap: ``[S]`` for each solve (cross and self terms), whether it stopped at the
        iteration cap rather than on the threshold.
      size: number of clouds ``B`` for pairwise results (``0`` for explicit pairs).
      self_values: ``[B]`` the self terms ``OT(x_i, x_i)`` of a debiased kind (pairwise
        results), reusable by :func:`paired_distances` for the same clouds and spec.
    """

    values: jnp.ndarray
    hit_cap: jnp.ndarray
    size: int = 0
    self_values: jnp.ndarray | None = None

    @property
    def hit_cap_fraction(self) -> jnp.ndarray:
        """Fraction of solves that hit the iteration cap (a convergence metric)."""
        return jnp.mean(self.hit_cap.astype(jnp.float32))

    def matrix(self) -> jnp.ndarray:
        """The symmetric ``[B, B]`` matrix of pairwise values, zero on the diagonal."""
        if not self.size:
            raise ValueError("matrix() needs the result of pairwise_distances.")
        first, second = np.triu_indices(self.size, 1)
        out = jnp.zeros((self.size, self.size), self.values.dtype)
        return out.at[first, second].set(self.values).at[second, first].set(self.values)


def _cross_solver(spec: OTSpec):
    if spec.sorting:
        return solve_sorted
    return solve_gw if spec.quadratic else solve_linear


_MAX_BRANCHES = 4  # size buckets per compiled program: each is one more copy of the solver


def _lengths(size: int, bucket: int) -> tuple[int, ...]:
    """Crop lengths for clouds padded to ``size``: multiples of a step, at most 4 of them."""
    step = bucket * max(1, math.ceil(size / (bucket * _MAX_BRANCHES)))
    return tuple(range(step, size, step)) + (size,)


def _extent(a: jnp.ndarray) -> jnp.ndarray:
    """One past the last positive weight: cropping there keeps every real point."""
    return jnp.max(jnp.where(a > 0, jnp.arange(1, a.shape[-1] + 1), 0))


def _cropped(solve: Callable, n: int, m: int, x, a, y, b):
    return solve(x[:n], a[:n], y[:m], b[:m])


def _map_here(solve: Callable, x, a, y, b, spec: OTSpec):
    """The solves of this device, batched as ``spec`` says."""
    if not spec.sequential:
        return jax.vmap(solve)(x, a, y, b)
    n, m = x.shape[1], y.shape[1]
    lengths = _lengths(max(n, m), spec.length_bucket)
    branches = [functools.partial(_cropped, solve, min(size, n), min(size, m))
                for size in lengths]

    def one(args):
        need = jnp.maximum(_extent(args[1]), _extent(args[3]))
        index = jnp.minimum(jnp.searchsorted(jnp.asarray(lengths), need), len(lengths) - 1)
        return jax.lax.switch(index, branches, *args)

    return jax.lax.map(one, (x, a, y, b))


def _data_devices() -> int:
    """Devices on the ``data`` axis of the mesh in context (1: none, or already inside a
    :func:`jax.shard_map` over it)."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or DATA_AXIS not in mesh.axis_names or DATA_AXIS in mesh.manual_axes:
        return 1
    return mesh.shape[DATA_AXIS]


def map_pairs(solve: Callable, x, a, y, b, spec: OTSpec):
    """``solve(x[k], a[k], y[k], b[k])`` for every ``k``, batched as ``spec`` says and split
    over the devices of the mesh in context, if any.

    A list that does not divide by the device count is padded with copies of its first
    problem (a real one, so every solve stays well posed) and the copies are dropped.
    """
    devices = _data_devices()
    if devices == 1:
        return _map_here(solve, x, a, y, b, spec)
    count = x.shape[0]
    extra = -count % devices
    if extra:
        x, a, y, b = (jnp.concatenate([v, jnp.repeat(v[:1], extra, axis=0)]) for v in
                      (x, a, y, b))
    split = PartitionSpec(DATA_AXIS)
    out = jax.shard_map(lambda *args: _map_here(solve, *args, spec), in_specs=split,
                        out_specs=split, check_vma=False)(x, a, y, b)
    return jax.tree.map(lambda v: v[:count], out)


def self_terms(points, weights, spec: OTSpec):
    """``OT(x_i, x_i)`` for each cloud: ``([B] values, [B] hit_cap)``.

    Linear kinds use symmetric Sinkhorn updates; GW has no symmetric solver in ott-jax and
    solves ``GW(x_i, x_i)`` as an ordinary problem.
    """
    if spec.quadratic:
        solve = lambda x, a, y, b: solve_gw(x, a, y, b, spec)
    else:
        solve = lambda x, a, y, b: solve_linear_self(x, a, spec)
    return map_pairs(solve, points, weights, points, weights, spec)


def pairwise_distances(points, weights, spec: OTSpec, validate: bool = True) -> OTDistances:
    """Distances between all pairs ``i < j`` of one batch ``points [B, n, d]``, ``weights [B, n]``.

    Zero weights mark padding and change no distance. Values are in units of the cost
    divided by ``spec.cost_scale``.
    """
    if validate:
        check_clouds(points, weights)
    size = points.shape[0]
    first, second = np.triu_indices(size, 1)
    solve = functools.partial(_cross_solver(spec), spec=spec)
    values, hit = map_pairs(solve, points[first], weights[first], points[second],
                            weights[second], spec)
    own = None
    if spec.debiased:
        own, own_hit = self_terms(points, weights, spec)
        values = values - 0.5 * (own[first] + own[second])
        hit = jnp.concatenate([hit, own_hit])
    return OTDistances(values, hit, size, own)


def _given_or_solved(given, points, weights, spec: OTSpec):
    """Self terms passed in (no gradient, no solves) or solved here."""
    if given is None:
        return self_terms(points, weights, spec)
    return jax.lax.stop_gradient(given), jnp.zeros((0,), bool)


def paired_distances(x, a, y, b, spec: OTSpec, validate: bool = True,
                     x_self: jnp.ndarray | None = None,
                     y_self: jnp.ndarray | None = None) -> OTDistances:
    """Distances between ``(x[k], a[k])`` and ``(y[k], b[k])`` for each ``k``.

    ``x [P, n, d]`` and ``y [P, m, d]`` may differ in length. Gradients with respect to the
    points flow through the solver as ``spec.differentiation`` says (the decoder's
    reconstruction loss uses this). ``x_self`` (``[P]``, e.g. ``self_values`` of a
    :func:`pairwise_distances` result with the same spec) supplies the self terms of the
    ``x`` clouds instead of solving them again; they carry no gradient. ``y_self`` does the
    same for the ``y`` clouds (e.g. cached self terms of a search collection).
    """
    if validate:
        check_clouds(x, a, "x")
        check_clouds(y, b, "y")
        if x.shape[0] != y.shape[0] or x.shape[-1] != y.shape[-1]:
            raise ValueError(f"paired_distances needs as many x as y clouds in the same "
                             f"dimension; got x {tuple(x.shape)} and y {tuple(y.shape)}.")
    solve = functools.partial(_cross_solver(spec), spec=spec)
    values, hit = map_pairs(solve, x, a, y, b, spec)
    if spec.debiased:
        own_x, hit_x = _given_or_solved(x_self, x, a, spec)
        own_y, hit_y = _given_or_solved(y_self, y, b, spec)
        values = values - 0.5 * (own_x + own_y)
        hit = jnp.concatenate([hit, hit_x, hit_y])
    return OTDistances(values, hit)
