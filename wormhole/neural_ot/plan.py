"""Entropic c-transform, semi-dual, and the Gibbs-form plan of a learned potential.

Notation (Wang and Goldfeld 2024, Sections 2-3). For a potential ``phi`` on the mu side, its
entropic c-transform against mu is::

    psi(y) = -eps * log E_{x ~ mu} exp((phi(x) - c(x, y)) / eps),                 (c-transform)

the semi-dual objective is ``E_mu phi + E_nu psi`` (its supremum over phi is OT_eps), and the
plan induced by ``phi`` has density with respect to the product measure::

    dpi/d(mu (x) nu)(x, y) = exp((phi(x) + psi(y) - c(x, y)) / eps).               (Gibbs form)

By construction ``E_mu[dpi/d(mu (x) nu)(x, y)] = 1`` for every y; ``E_nu[...](x) = 1`` holds
at the optimal phi only, so it measures how well phi was learned. Expectations over mu are
taken on a reference sample; every evaluation runs in blocks of ``chunk_size`` rows and
columns, so memory stays ``O(chunk_size^2)`` whatever the sample sizes.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = [
    "EntropicPlan",
    "PairCost",
    "block_lse",
    "c_transform",
    "chunked_lse",
    "gibbs_log_density",
    "semi_dual",
]

PairCost = Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray]
"""``pair_cost(x: [n, dx], y: [m, dy]) -> [n, m]``: the ground cost of every pair."""


def c_transform(phi_x: jnp.ndarray, cost_xy: jnp.ndarray, epsilon: float) -> jnp.ndarray:
    """Empirical entropic c-transform: ``phi_x: [m]`` at points ``x_i ~ mu``, ``cost_xy:
    [m, n]`` -> ``psi: [n]``, ``psi_j = -eps log (1/m) sum_i exp((phi_i - c_ij) / eps)``."""
    m = phi_x.shape[0]
    lse = jax.nn.logsumexp((phi_x[:, None] - cost_xy) / epsilon, axis=0)
    return -epsilon * (lse - jnp.log(m))


def semi_dual(phi_x: jnp.ndarray, cost_xy: jnp.ndarray, epsilon: float) -> jnp.ndarray:
    """Mini-batch semi-dual ``mean_i phi(x_i) + mean_j psi(y_j)`` (Wang and Goldfeld, the
    empirical semi-dual objective); ``phi_x: [m]``, ``cost_xy: [m, n]`` -> ``[]``."""
    return jnp.mean(phi_x) + jnp.mean(c_transform(phi_x, cost_xy, epsilon))


def gibbs_log_density(phi_x: jnp.ndarray, psi_y: jnp.ndarray, cost_xy: jnp.ndarray,
                      epsilon: float) -> jnp.ndarray:
    """``log dpi/d(mu (x) nu)``: ``phi_x: [n]``, ``psi_y: [m]``, ``cost_xy: [n, m]``
    -> ``[n, m]``."""
    return (phi_x[:, None] + psi_y[None, :] - cost_xy) / epsilon


def _pad_blocks(x: jnp.ndarray, chunk: int, fill: float = 0.0):
    """``[n, ...]`` -> ``[ceil(n / chunk), chunk, ...]`` padded with ``fill``."""
    n = x.shape[0]
    blocks = -(-n // chunk)
    pad = [(0, blocks * chunk - n)] + [(0, 0)] * (x.ndim - 1)
    return jnp.pad(x, pad, constant_values=fill).reshape((blocks, chunk) + x.shape[1:])


def _map_rows(fn: Callable, x: jnp.ndarray, chunk: int) -> jnp.ndarray:
    """``fn`` applied block-wise to the rows of ``x: [n, ...]``; results joined to ``[n, ...]``."""
    n = x.shape[0]
    out = jax.lax.map(fn, _pad_blocks(x, min(chunk, n)))
    return out.reshape((-1,) + out.shape[2:])[:n]


def chunked_lse(weights: jnp.ndarray, rows: jnp.ndarray, cols: jnp.ndarray,
                pair_cost: PairCost, epsilon: float, chunk: int) -> jnp.ndarray:
    """``out_j = logsumexp_i (weights_i - c(rows_i, cols_j)) / eps`` in ``chunk x chunk``
    blocks; ``weights: [m]``, ``rows: [m, dx]``, ``cols: [n, dy]`` -> ``[n]``."""
    block = min(chunk, rows.shape[0])
    row_blocks = _pad_blocks(rows, block)
    weight_blocks = _pad_blocks(weights, block, fill=-jnp.inf)

    def over_cols(col_block):
        def over_rows(carry, row):
            r, w = row
            part = jax.nn.logsumexp((w[:, None] - pair_cost(r, col_block)) / epsilon, axis=0)
            return jnp.logaddexp(carry, part), None

        init = jnp.full(col_block.shape[0], -jnp.inf, dtype=weights.dtype)
        out, _ = jax.lax.scan(over_rows, init, (row_blocks, weight_blocks))
        return out

    return _map_rows(over_cols, cols, chunk)


def block_lse(weights: jnp.ndarray, rows: jnp.ndarray, cols: jnp.ndarray,
              pair_cost: PairCost, epsilon: float, chunk: int, blocks: int) -> jnp.ndarray:
    """:func:`chunked_lse` over each of ``blocks`` equal consecutive slices of the rows:
    ``weights: [m]``, ``rows: [m, dx]`` (``m`` a multiple of ``blocks``), ``cols: [n, dy]``
    -> ``[blocks, n]``. ``logsumexp`` over the first axis gives :func:`chunked_lse`."""
    m = rows.shape[0]
    if m % blocks:
        raise ValueError(f"{m} rows do not split into {blocks} equal blocks.")
    size = m // blocks
    return jax.lax.map(
        lambda block: chunked_lse(block[0], block[1], cols, pair_cost, epsilon, chunk),
        (weights.reshape(blocks, size), rows.reshape((blocks, size) + rows.shape[1:])))


def _transposed(pair_cost: PairCost) -> PairCost:
    return lambda y, x: pair_cost(x, y).T


class EntropicPlan:
    """The entropic plan induced by a potential ``phi`` (Gibbs form above).

    Args:
      potential: ``phi(x: [n, dx]) -> [n]``, traceable.
      pair_cost: ``c(x: [n, dx], y: [m, dy]) -> [n, m]``, traceable.
      reference: ``[m, dx]`` sample of mu over which the c-transform averages.
      epsilon: regularisation strength.
      chunk_size: rows per block in every evaluation.
    """

    def __init__(self, potential: Callable, pair_cost: PairCost, reference: jnp.ndarray,
                 epsilon: float, chunk_size: int = 2048):
        self.potential = potential
        self.pair_cost = pair_cost
        self.reference = reference
        self.epsilon = float(epsilon)
        self.chunk_size = int(chunk_size)
        eps, chunk = self.epsilon, self.chunk_size
        log_m = jnp.log(reference.shape[0])

        def phi(x):
            return _map_rows(potential, x, chunk)

        def psi(ref, y):
            return -eps * (chunked_lse(phi(ref), ref, y, pair_cost, eps, chunk) - log_m)

        def log_density(ref, x, y):
            return gibbs_log_density(phi(x), psi(ref, y), pair_cost(x, y), eps)

        def marginals(ref, x, y):
            phi_x, psi_y = phi(x), psi(ref, y)
            rows = chunked_lse(psi_y, y, x, _transposed(pair_cost), eps, chunk)
            cols = chunked_lse(phi_x, x, y, pair_cost, eps, chunk)
            return (jnp.exp(rows + phi_x / eps - jnp.log(y.shape[0])),
                    jnp.exp(cols + psi_y / eps - jnp.log(x.shape[0])))

        def barycentric(ref, x, cand):
            psi_c = psi(ref, cand)
            cand_blocks = _pad_blocks(cand, min(chunk, cand.shape[0]))
            psi_blocks = _pad_blocks(psi_c, min(chunk, cand.shape[0]), fill=-jnp.inf)

            def per_block(x_block):
                def step(carry, blk):
                    top, norm, acc = carry
                    c_blk, p_blk = blk
                    logits = (p_blk[None, :] - pair_cost(x_block, c_blk)) / eps
                    new_top = jnp.maximum(top, jnp.max(logits, axis=1))
                    w = jnp.exp(logits - new_top[:, None])
                    rescale = jnp.exp(top - new_top)
                    return (new_top, norm * rescale + w.sum(1),
                            acc * rescale[:, None] + w @ c_blk), None

                k = x_block.shape[0]
                init = (jnp.full(k, -jnp.inf), jnp.zeros(k), jnp.zeros((k, cand.shape[1])))
                (_, norm, acc), _ = jax.lax.scan(step, init, (cand_blocks, psi_blocks))
                return acc / norm[:, None]

            return _map_rows(per_block, x, chunk)

        def sample(ref, key, x, cand, num):
            # Gumbel-max over candidate blocks: categorical draws without holding [n, m] logits.
            psi_c = psi(ref, cand)
            block = min(chunk, cand.shape[0])
            cand_blocks = _pad_blocks(cand, block)
            psi_blocks = _pad_blocks(psi_c, block, fill=-jnp.inf)
            offsets = jnp.arange(cand_blocks.shape[0]) * block
            keys = jax.random.split(key, cand_blocks.shape[0])

            def per_block(x_block_and_index):
                x_block, start = x_block_and_index

                def step(carry, blk):
                    best, arg = carry
                    c_blk, p_blk, offset, k = blk
                    logits = (p_blk[None, :] - pair_cost(x_block, c_blk)) / eps
                    k = jax.random.fold_in(k, start)
                    g = jax.random.gumbel(k, (x_block.shape[0], c_blk.shape[0], num))
                    scores = logits[:, :, None] + g
                    blk_best = jnp.max(scores, axis=1)
                    blk_arg = jnp.argmax(scores, axis=1) + offset
                    take = blk_best > best
                    return (jnp.where(take, blk_best, best), jnp.where(take, blk_arg, arg)), None

                k = x_block.shape[0]
                init = (jnp.full((k, num), -jnp.inf), jnp.zeros((k, num), jnp.int32))
                (_, arg), _ = jax.lax.scan(step, init, (cand_blocks, psi_blocks, offsets, keys))
                return arg

            block_x = min(chunk, x.shape[0])
            x_blocks = _pad_blocks(x, block_x)
            starts = jnp.arange(x_blocks.shape[0])
            idx = jax.lax.map(per_block, (x_blocks, starts))
            idx = idx.reshape(-1, num)[: x.shape[0]]
            return cand[idx]

        def reference_log_sums(ref, y, blocks):
            return block_lse(phi(ref), ref, y, pair_cost, eps, chunk, blocks)

        def reference_ess(ref, y):
            # (sum_i w_i)^2 / sum_i w_i^2 for w_i = exp((phi_i - c_iy) / eps), in log space.
            lse = chunked_lse(phi(ref), ref, y, pair_cost, eps, chunk)
            lse2 = chunked_lse(2.0 * phi(ref), ref, y, lambda a, b: 2.0 * pair_cost(a, b), eps,
                               chunk)
            return jnp.exp(2.0 * lse - lse2)

        self._phi = jax.jit(phi)
        self._psi = jax.jit(psi)
        self._reference_log_sums = jax.jit(reference_log_sums, static_argnums=2)
        self._reference_ess = jax.jit(reference_ess)
        self._log_density = jax.jit(log_density)
        self._marginals = jax.jit(marginals)
        self._barycentric = jax.jit(barycentric)
        self._sample = jax.jit(sample, static_argnums=4)

    def __call__(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
        """The density ``dpi/d(mu (x) nu)(x_i, y_j)``; ``x: [n, dx]``, ``y: [m, dy]``
        -> ``[n, m]``."""
        return jnp.exp(self.log_density(x, y))

    def phi(self, x: jnp.ndarray) -> jnp.ndarray:
        """The learned potential on the mu side; ``x: [n, dx]`` -> ``[n]``."""
        return self._phi(jnp.asarray(x, jnp.float32))

    def psi(self, y: jnp.ndarray) -> jnp.ndarray:
        """Its entropic c-transform against the reference sample; ``y: [m, dy]`` -> ``[m]``."""
        return self._psi(self.reference, jnp.asarray(y, jnp.float32))

    def reference_log_sums(self, y: jnp.ndarray, blocks: int) -> jnp.ndarray:
        """``L[b, j] = log sum_{i in block b} exp((phi(x_i) - c(x_i, y_j)) / eps)`` over
        ``blocks`` equal consecutive blocks of the reference sample; ``y: [n, dy]`` ->
        ``[blocks, n]``. ``psi = -eps (logsumexp(L, 0) - log m)``; leaving blocks out gives the
        jackknife of the c-transform's reference sample."""
        return self._reference_log_sums(self.reference, jnp.asarray(y, jnp.float32),
                                        int(blocks))

    def reference_ess(self, y: jnp.ndarray) -> jnp.ndarray:
        """Effective sample size of the reference sample in the c-transform at each ``y_j``:
        ``(sum_i w_ij)^2 / sum_i w_ij^2``, ``w_ij = exp((phi(x_i) - c(x_i, y_j)) / eps)``;
        ``y: [n, dy]`` -> ``[n]``. Between 1 (one reference point carries psi(y_j)) and the
        reference size; small values mean psi is biased upward."""
        return self._reference_ess(self.reference, jnp.asarray(y, jnp.float32))

    def log_density(self, x: jnp.ndarray, y: jnp.ndarray) -> jnp.ndarray:
        """``log dpi/d(mu (x) nu)(x_i, y_j)``; ``x: [n, dx]``, ``y: [m, dy]`` -> ``[n, m]``."""
        return self._log_density(self.reference, jnp.asarray(x, jnp.float32),
                                 jnp.asarray(y, jnp.float32))

    def marginals(self, x: jnp.ndarray, y: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """``(mean_j density(x_i, y_j) [n], mean_i density(x_i, y_j) [m])`` for samples
        ``x ~ mu``, ``y ~ nu``: both ~1 when the plan has marginals mu and nu."""
        return self._marginals(self.reference, jnp.asarray(x, jnp.float32),
                               jnp.asarray(y, jnp.float32))

    def barycentric_projection(self, x: jnp.ndarray, candidates: jnp.ndarray) -> jnp.ndarray:
        """``E_pi[y | x]`` estimated on ``candidates: [m, dy]`` drawn from nu (self-normalised
        importance weights ``density(x, y_j)``); ``x: [n, dx]`` -> ``[n, dy]``."""
        return self._barycentric(self.reference, jnp.asarray(x, jnp.float32),
                                 jnp.asarray(candidates, jnp.float32))

    def conditional_sample(self, key: jax.Array, x: jnp.ndarray, candidates: jnp.ndarray,
                           num_samples: int = 1) -> jnp.ndarray:
        """Draw ``y ~ pi(. | x)`` from ``candidates: [m, dy]`` drawn from nu, with probabilities
        proportional to ``density(x, y_j)``; ``x: [n, dx]`` -> ``[n, num_samples, dy]``."""
        return self._sample(self.reference, key, jnp.asarray(x, jnp.float32),
                            jnp.asarray(candidates, jnp.float32), int(num_samples))
