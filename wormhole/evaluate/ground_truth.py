"""Ground-truth OT between weighted point clouds, independent of any model.

The numbers a trained embedding is judged against. Two ways to get them:

- ``exact``: POT's network simplex (:func:`ot.emd2`) on the full cost matrix
  (:func:`wormhole.ot.costs.cost_matrix`), for the unregularised kinds ``W1`` and ``W2``
  when both clouds have at most ``max_exact_points`` points. The value is the optimal
  transport cost, so with the default costs ``W2`` is the *squared* 2-Wasserstein distance
  (squared Euclidean ground cost) and ``W1`` the 1-Wasserstein distance (Euclidean ground
  cost).
- ``sinkhorn``: ott-jax in float64 with a tight marginal threshold, a high iteration cap and
  epsilon annealing. For ``W1``/``W2`` it returns the transport cost ``<C, P_eps>`` of the
  entropic plan (an upper bound on the exact cost that tends to it as ``eps -> 0``; the
  default ``eps`` is 1e-3 times the pair's mean cost). For the entropic kinds it returns the
  quantity that defines them at the given ``epsilon``:

  - ``S1``/``S2``: the Sinkhorn divergence
    ``OT_eps(a, b) - (OT_eps(a, a) + OT_eps(b, b)) / 2`` (Feydy et al. 2019), via
    :func:`ott.tools.sinkhorn_divergence.sinkhorn_divergence`;
  - ``GW``: the Gromov-Wasserstein objective
    ``sum_ijkl (Cx_ik - Cy_jl)^2 P_ij P_kl`` evaluated at ott-jax's entropic GW plan
    (Peyre et al. 2016), where ``Cx``/``Cy`` are the clouds' intra-cloud costs;
  - ``GS``: the debiased entropic GW cost ``GW_eps(a, b) - (GW_eps(a, a) + GW_eps(b, b)) / 2``.

Between Gaussian *distributions* (not samples), :func:`gaussian_w2` gives ``W2^2`` in closed
form, for data sets that know each cloud's generating mean and covariance.

``method="auto"`` uses ``exact`` where it applies and ``sinkhorn`` otherwise. Ground costs are
divided by ``cost_scale`` before solving (the same convention as ott's ``scale_cost``), and
values are returned in those scaled units.

Kinds and costs come from the package's registries (:mod:`wormhole.ot.kinds`,
:mod:`wormhole.ot.costs`), so every cost training accepts is evaluated here too: a registered
name, an ott-jax ``CostFn`` or an import path ``"module:function"`` to a cost-matrix function
such as a geodesic distance (its Sinkhorn geometry is the matrix it returns).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm.auto import tqdm

from wormhole.data.inputs import as_point_clouds
from wormhole.data.padding import bucket_length, fill_with_first, power_of_two_at_least
from wormhole.ot.costs import CostLike, cost_matrix, resolve_cost
from wormhole.ot.kinds import get_kind

__all__ = ["ANNEAL_ITERATIONS", "annealed_epsilon", "cross_ground_truth", "gaussian_w2",
           "ground_truth_distances", "neighbour_judge", "pairwise_ground_truth",
           "resolve_method"]

# Relative epsilon (times the pair's mean cost) used when W1/W2 go through Sinkhorn.
_W_RELATIVE_EPSILON = 1e-3
# Absolute epsilon for the entropic kinds when none is given: the training default
# (wormhole.config.OTConfig.epsilon). Pass config.ot.epsilon to match a run.
_ENTROPIC_DEFAULT_EPSILON = 0.01


def _as_lists(clouds, weights, what: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return as_point_clouds(clouds, weights, what=what).to_list()


# ----------------------------------------------------------------------------- exact


def _exact_pair(x, a, y, b, cost: CostLike, cost_scale: float) -> float:
    import ot

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a, b = a / a.sum(), b / b.sum()
    matrix = cost_matrix(cost, x, y) / cost_scale
    value, log = ot.emd2(a, b, matrix, numItermax=10_000_000, log=True)
    if log["warning"] is not None:
        warnings.warn(f"Network simplex did not reach optimality ({log['warning']}); the "
                      f"exact value may be slightly too high.", RuntimeWarning, stacklevel=3)
    return float(value)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _exact_pairs(xs_a, ws_a, xs_b, ws_b, index, cost, cost_scale, workers, bar):
    """Exact values of the pairs in ``index``, solved ``workers`` at a time.

    POT's network simplex releases the GIL, so threads solve pairs in parallel without
    copying the clouds into other processes; one worker solves them one after another.
    """
    def solve(p):
        return _exact_pair(xs_a[p], ws_a[p], xs_b[p], ws_b[p], cost, cost_scale)

    values = []
    with ThreadPoolExecutor(max_workers=min(workers, len(index))) as pool:
        for value in pool.map(solve, index):
            values.append(value)
            bar.update(1)
    return values


# --------------------------------------------------------------------------- sinkhorn


def _linear_solver_kwargs(threshold: float, max_iterations: int) -> dict:
    return dict(threshold=threshold, max_iterations=max_iterations, lse_mode=True)


# Pairs are padded to a multiple of this many points (few compiled shapes, little waste).
_LENGTH_BUCKET = 32

# Epsilon annealing: start 100x larger and decay geometrically. At small eps, plain Sinkhorn
# needs tens of thousands of iterations to spread mass; annealing reaches the same fixed
# point faster. ott checks convergence whatever the current epsilon, so a solve must not
# stop before the schedule has reached its target: ANNEAL_ITERATIONS is past that point.
# It must not be a multiple of ott's inner_iterations (10): ott 0.6 then checks a block
# whose error it skipped computing (stored as inf), reads it as divergence and stops.
_ANNEAL_INIT, _ANNEAL_DECAY = 100.0, 0.95
ANNEAL_ITERATIONS = 10 * int(np.ceil(np.log(_ANNEAL_INIT) / -np.log(_ANNEAL_DECAY) / 10)) + 1


def annealed_epsilon(target):
    """An ott-jax epsilon schedule decaying to ``target`` in ``ANNEAL_ITERATIONS`` steps.

    Pair it with ``min_iterations >= ANNEAL_ITERATIONS`` in the Sinkhorn solver.
    """
    from ott.geometry import epsilon_scheduler

    return epsilon_scheduler.Epsilon(target, init=_ANNEAL_INIT, decay=_ANNEAL_DECAY)


def _gw_objective(cx, cy, plan):
    """Squared-loss GW objective at ``plan``: sum_ijkl (Cx_ik - Cy_jl)^2 P_ij P_kl."""
    import jax.numpy as jnp

    p, q = plan.sum(1), plan.sum(0)
    return (p @ (cx ** 2) @ p + q @ (cy ** 2) @ q
            - 2.0 * jnp.sum(plan * (cx @ plan @ cy.T)))


def _masked_matrix(matrix_fn, x, a, y, b, scale: float):
    """``matrix_fn(x, y) / scale`` with zero entries wherever a padding point takes part.

    A cost-matrix function sees the zero coordinates of padding too, where it may return
    NaN (an arc length, a logarithm); no mass moves there, so any finite value will do.
    """
    import jax.numpy as jnp

    real = (a[:, None] > 0) & (b[None, :] > 0)
    return jnp.where(real, matrix_fn(x, y), 0.0) / scale


@functools.cache
def _batched_solver(kind: str, cost: CostLike, scale: float, threshold: float,
                    max_iterations: int):
    """A jitted, vmapped ``(x, a, y, b, epsilon) -> (value, converged)``; for ``GS`` the value
    is the pair's entropic GW cost ``GW_eps(x, y)``, which :func:`_debiased_gw_pairs` debiases.

    ``epsilon`` is relative to the pair's mean cost for W kinds and absolute otherwise;
    ``scale`` divides the costs (static: ott keeps ``scale_cost`` out of the traced data).
    ``cost`` is resolved by :func:`wormhole.ot.costs.resolve_cost`: an ott-jax ``CostFn``
    gives point-cloud geometries, a cost-matrix function dense ones.
    """
    import jax
    import jax.numpy as jnp
    from ott.geometry import costs, geometry, pointcloud
    from ott.problems.quadratic import quadratic_problem
    from ott.solvers import linear
    from ott.solvers.linear import sinkhorn
    from ott.solvers.quadratic import gromov_wasserstein
    from ott.tools import sinkhorn_divergence

    cost_fn = resolve_cost(cost)
    point_cost = isinstance(cost_fn, costs.CostFn)
    solver_kwargs = _linear_solver_kwargs(threshold, max_iterations)

    def geom(x, a, y, b, epsilon=None):
        if point_cost:
            return pointcloud.PointCloud(x, y, cost_fn=cost_fn, scale_cost=scale,
                                         epsilon=epsilon)
        return geometry.Geometry(cost_matrix=_masked_matrix(cost_fn, x, a, y, b, scale),
                                 epsilon=epsilon)

    def w_kind(x, a, y, b, epsilon):
        # ott's relative epsilon averages over padding too, so weight the mean ourselves.
        target = epsilon * (a @ geom(x, a, y, b).cost_matrix @ b)
        out = linear.solve(geom(x, a, y, b, annealed_epsilon(target)), a, b,
                           min_iterations=ANNEAL_ITERATIONS, **solver_kwargs)
        return out.primal_cost, out.converged

    def s_kind(x, a, y, b, epsilon):
        if point_cost:
            args = dict(x=x, y=y, cost_fn=cost_fn, scale_cost=scale)
        else:
            args = dict(cost_matrix=tuple(_masked_matrix(cost_fn, p, u, q, v, scale) for
                                          p, u, q, v in ((x, a, y, b), (x, a, x, a),
                                                         (y, b, y, b))))
        value, out = sinkhorn_divergence.sinkhorn_divergence(
            pointcloud.PointCloud if point_cost else geometry.Geometry, a=a, b=b,
            epsilon=epsilon, solve_kwargs=solver_kwargs, **args)
        return value, jnp.all(jnp.asarray(out.converged))

    def gw_solve(x, a, y, b, epsilon):
        geom_x, geom_y = geom(x, a, x, a), geom(y, b, y, b)
        problem = quadratic_problem.QuadraticProblem(geom_x, geom_y, a=a, b=b)
        solver = gromov_wasserstein.GromovWasserstein(
            sinkhorn.Sinkhorn(**solver_kwargs), epsilon=epsilon, threshold=threshold,
            max_iterations=200)
        out = solver(problem)
        return out, geom_x.cost_matrix, geom_y.cost_matrix

    def gw_kind(x, a, y, b, epsilon):
        out, cx, cy = gw_solve(x, a, y, b, epsilon)
        return _gw_objective(cx, cy, out.matrix), out.converged

    def gw_entropic_cost(x, a, y, b, epsilon):
        # GS's terms: _debiased_gw_pairs solves each distinct cloud's self term once.
        out, _, _ = gw_solve(x, a, y, b, epsilon)
        return out.reg_gw_cost, out.converged

    record = get_kind(kind)
    if record.quadratic:
        fn = gw_entropic_cost if record.debiased else gw_kind
    else:
        fn = s_kind if record.debiased else w_kind
    return jax.jit(jax.vmap(fn, in_axes=(0, 0, 0, 0, None)))


def _sinkhorn_pairs(xs_a, ws_a, xs_b, ws_b, index, kind, cost, epsilon, cost_scale,
                    threshold, max_iterations, batch_size, bar) -> tuple[dict, set]:
    """The values of the pairs in ``index`` and the pairs whose solve did not converge."""
    import jax

    if not index:
        return {}, set()

    solve = _batched_solver(kind, cost, float(cost_scale), float(threshold),
                            int(max_iterations))
    dim = xs_a[0].shape[1]
    # Similar sizes share a batch, so padding stays small: whole buckets of points, at most
    # the call's largest cloud rounded up to a multiple of 8 (calls on other clouds, a class
    # at a time, then reuse the compiled shapes, and small clouds stay small).
    order = sorted(index, key=lambda p: max(len(xs_a[p]), len(xs_b[p])))
    largest = max(len(xs_a[order[-1]]), len(xs_b[order[-1]]))
    values, failures = {}, set()
    with jax.enable_x64(True):
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            length = bucket_length(max(max(len(xs_a[p]), len(xs_b[p])) for p in chunk),
                                   _LENGTH_BUCKET, 8 * math.ceil(largest / 8))
            # A short chunk is padded to a power of two, not to batch_size: every padded
            # row is a whole solve, and at most log2(batch_size) + 1 batch shapes compile.
            rows = fill_with_first(chunk, min(batch_size, power_of_two_at_least(len(chunk))))
            x = np.zeros((len(rows), length, dim))
            y = np.zeros((len(rows), length, dim))
            a = np.zeros((len(rows), length))
            b = np.zeros((len(rows), length))
            for r, p in enumerate(rows):
                x[r, :len(xs_a[p])], a[r, :len(xs_a[p])] = xs_a[p], ws_a[p] / ws_a[p].sum()
                y[r, :len(xs_b[p])], b[r, :len(xs_b[p])] = xs_b[p], ws_b[p] / ws_b[p].sum()
            value, converged = solve(x, a, y, b, float(epsilon))
            value, converged = np.asarray(value), np.asarray(converged)
            for r, p in enumerate(chunk):
                values[p] = float(value[r])
                if not converged[r]:
                    failures.add(p)
            bar.update(len(chunk))
    return values, failures


def _cloud_key(points: np.ndarray, weights: np.ndarray) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for array in (points, weights):
        array = np.ascontiguousarray(array)
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.digest()


def _debiased_gw_pairs(xs_a, ws_a, xs_b, ws_b, index, bar, **solve) -> tuple[dict, set]:
    """``GS = GW_eps(a, b) - (GW_eps(a, a) + GW_eps(b, b)) / 2`` of the pairs in ``index``.

    Each distinct cloud's self term is solved once (an ``[A, B]`` matrix takes ``A + B``
    self solves, not ``2 A B``), and a pair of identical clouds is 0 without a solve; the
    values are those of solving the three terms per pair. ``solve`` goes to
    :func:`_sinkhorn_pairs`.
    """
    keys_a = [_cloud_key(xs_a[p], ws_a[p]) for p in index]
    keys_b = [_cloud_key(xs_b[p], ws_b[p]) for p in index]
    first = {}  # a cloud's key -> (points, weights) of its first occurrence
    for p, ka, kb in zip(index, keys_a, keys_b, strict=True):
        first.setdefault(ka, (xs_a[p], ws_a[p]))
        first.setdefault(kb, (xs_b[p], ws_b[p]))
    distinct = list(first)
    points, weights = [first[k][0] for k in distinct], [first[k][1] for k in distinct]
    bar.total += len(distinct)
    bar.refresh()
    self_values, self_failed = _sinkhorn_pairs(points, weights, points, weights,
                                               range(len(distinct)), bar=bar, **solve)
    by_key = {k: i for i, k in enumerate(distinct)}
    cross = [p for p, ka, kb in zip(index, keys_a, keys_b, strict=True) if ka != kb]
    values, failures = _sinkhorn_pairs(xs_a, ws_a, xs_b, ws_b, cross, bar=bar, **solve)
    bar.update(len(index) - len(cross))
    for p, ka, kb in zip(index, keys_a, keys_b, strict=True):
        i, j = by_key[ka], by_key[kb]
        values[p] = 0.0 if i == j else values[p] - 0.5 * (self_values[i] + self_values[j])
        if i in self_failed or j in self_failed:
            failures.add(p)
    return values, failures


# ------------------------------------------------------------------------------ public


def resolve_method(kind: str, max_points: int, max_exact_points: int,
                   method: str = "auto") -> str:
    """``method`` with ``auto`` resolved for clouds of at most ``max_points`` points:
    ``exact`` where ``kind`` has an exact solver and the clouds fit, else ``sinkhorn``."""
    if method != "auto":
        return method
    small = max_points <= max_exact_points
    return "exact" if get_kind(kind).has_exact_solver and small else "sinkhorn"


def neighbour_judge(kind: str, max_points: int, max_exact_points: int,
                    method: str = "auto") -> tuple[str, str]:
    """The OT a ``kind`` run's neighbourhoods are judged by, and how it is solved: the
    kind's unregularised counterpart (``W2`` for ``S2``) exactly where POT applies, else
    ``kind`` itself by :func:`resolve_method`."""
    exact = get_kind(kind).exact
    if exact and max_points <= max_exact_points:
        return exact, "exact"
    return kind, resolve_method(kind, max_points, max_exact_points, method)


def ground_truth_distances(clouds_a, weights_a, clouds_b, weights_b, kind: str = "W2",
                           method: str = "auto", epsilon: float | None = None,
                           max_exact_points: int = 2000, cost: CostLike | None = None,
                           cost_scale: float = 1.0, threshold: float = 1e-5,
                           max_iterations: int = 50_000, batch_size: int = 16,
                           progress: bool | None = None,
                           workers: int | None = None) -> np.ndarray:
    """OT values for ``P`` explicit pairs ``(clouds_a[p], clouds_b[p])``.

    Args:
      clouds_a, clouds_b: ``P`` clouds each, arrays ``[n_p, d]`` (ragged), or
        :class:`~wormhole.data.clouds.PointClouds` (then pass ``weights=None``).
      weights_a, weights_b: ``None`` (uniform) or ``P`` weight arrays ``[n_p]``.
      kind: a kind of :data:`wormhole.ot.kinds.KINDS` (see the module docstring for each
        value).
      method: ``exact`` (kinds with an exact solver: W1/W2), ``sinkhorn`` or ``auto``
        (exact for W1/W2 pairs whose clouds have at most ``max_exact_points`` points,
        Sinkhorn otherwise).
      epsilon: entropic regularisation. For W1/W2 through Sinkhorn, a multiple of the
        pair's mean cost (default 1e-3). For S1/S2/GW/GS, the absolute epsilon that
        defines the quantity, in scaled cost units (default 0.01, the training default;
        pass ``config.ot.epsilon`` to match a run).
      max_exact_points: largest cloud the network simplex is used for under ``auto``.
      cost: ground cost, as training takes it (``ot.cost``): a name of
        :data:`wormhole.ot.costs.COSTS`, an ott-jax ``CostFn``, or an import path
        ``"module:function"`` to a cost-matrix function; ``None`` uses the kind's default
        (Euclidean for W1/S1, squared Euclidean otherwise).
      cost_scale: costs are divided by this before solving.
      threshold, max_iterations: Sinkhorn marginal-error threshold and iteration cap.
      batch_size: pairs solved together by one vmapped Sinkhorn call.
      progress: show a tqdm bar (default: when there are at least 50 pairs).
      workers: exact pairs solved at once, in threads (default: every CPU this process may
        use; 1 solves them one after another). The values do not depend on it.

    Returns:
      ``[P]`` float64 values, in the order of the pairs.
    """
    record = get_kind(kind)
    if method not in ("auto", "exact", "sinkhorn"):
        raise ValueError(f"Unknown method '{method}'; choose 'auto', 'exact' or 'sinkhorn'.")
    if method == "exact" and not record.has_exact_solver:
        raise ValueError(f"{kind} is an entropic quantity defined by its epsilon; it has no "
                         f"exact solver. Use method='sinkhorn' (or 'auto').")
    if cost_scale <= 0:
        raise ValueError(f"cost_scale must be positive, got {cost_scale}.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}.")
    xs_a, ws_a = _as_lists(clouds_a, weights_a, "clouds_a")
    xs_b, ws_b = _as_lists(clouds_b, weights_b, "clouds_b")
    if len(xs_a) != len(xs_b):
        raise ValueError(f"clouds_a has {len(xs_a)} clouds but clouds_b has {len(xs_b)}; "
                         f"ground truth is computed for explicit pairs, one per index.")
    if xs_a[0].shape[1] != xs_b[0].shape[1]:
        raise ValueError(f"clouds_a are {xs_a[0].shape[1]}-D but clouds_b are "
                         f"{xs_b[0].shape[1]}-D.")
    cost = record.default_cost if cost is None else cost
    resolve_cost(cost)  # an unknown name or a failing import path is reported here
    num = len(xs_a)
    if record.has_exact_solver and method != "sinkhorn":
        exact = [p for p in range(num) if method == "exact"
                 or max(len(xs_a[p]), len(xs_b[p])) <= max_exact_points]
    else:
        exact = []
    exact_set = set(exact)
    rest = [p for p in range(num) if p not in exact_set]
    if epsilon is None:
        epsilon = _W_RELATIVE_EPSILON if record.has_exact_solver else _ENTROPIC_DEFAULT_EPSILON
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}.")

    out = np.empty(num, np.float64)
    show = num >= 50 if progress is None else progress
    with tqdm(total=num, desc=f"ground truth {kind}", disable=not show) as bar:
        if exact:
            out[exact] = _exact_pairs(xs_a, ws_a, xs_b, ws_b, exact, cost, cost_scale,
                                      workers or usable_cpus(), bar)
        if rest:
            pairs = _debiased_gw_pairs if record.quadratic and record.debiased \
                else _sinkhorn_pairs
            values, failures = pairs(
                xs_a, ws_a, xs_b, ws_b, rest, kind=kind, cost=cost, epsilon=epsilon,
                cost_scale=cost_scale, threshold=threshold, max_iterations=max_iterations,
                batch_size=batch_size, bar=bar)
            out[rest] = [values[p] for p in rest]
            if failures:
                warnings.warn(f"Sinkhorn did not reach threshold {threshold} within "
                              f"{max_iterations} iterations for {len(failures)} of {len(rest)} "
                              f"{kind} pairs; raise max_iterations or epsilon.",
                              RuntimeWarning, stacklevel=2)
    return out


def cross_ground_truth(clouds_a, clouds_b, kind: str = "W2", **kwargs) -> np.ndarray:
    """The ``[A, B]`` matrix of :func:`ground_truth_distances` from every cloud of
    ``clouds_a`` to every cloud of ``clouds_b`` (both
    :class:`~wormhole.data.clouds.PointClouds`); ``kwargs`` go to that function."""
    rows = np.repeat(np.arange(len(clouds_a)), len(clouds_b))
    cols = np.tile(np.arange(len(clouds_b)), len(clouds_a))
    values = ground_truth_distances(clouds_a.subset(rows), None, clouds_b.subset(cols), None,
                                    kind=kind, **kwargs)
    return values.reshape(len(clouds_a), len(clouds_b))


def pairwise_ground_truth(clouds, weights: Sequence | None = None, kind: str = "W2",
                          **kwargs) -> np.ndarray:
    """The full symmetric ``[N, N]`` matrix of :func:`ground_truth_distances`.

    Solves the ``N (N - 1) / 2`` pairs ``i < j`` once each and mirrors them. The diagonal is
    set to zero, the value every kind takes on identical clouds (entropic GW solvers return
    a small positive number there instead).

    Args:
      clouds: ``N`` clouds ``[n_i, d]`` or a :class:`~wormhole.data.clouds.PointClouds`.
      weights: ``None`` (uniform) or ``N`` weight arrays.
      kind: OT kind; ``kwargs`` go to :func:`ground_truth_distances`.
    """
    xs, ws = _as_lists(clouds, weights, "cloud")
    num = len(xs)
    rows, cols = np.triu_indices(num, k=1)
    values = ground_truth_distances([xs[i] for i in rows], [ws[i] for i in rows],
                                    [xs[j] for j in cols], [ws[j] for j in cols],
                                    kind=kind, **kwargs) if num > 1 else np.zeros(0)
    matrix = np.zeros((num, num), np.float64)
    matrix[rows, cols] = values
    matrix[cols, rows] = values
    return matrix


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square roots of positive semi-definite ``[..., d, d]`` matrices."""
    values, vectors = np.linalg.eigh((matrix + np.swapaxes(matrix, -1, -2)) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))[..., None, :]) @ \
        np.swapaxes(vectors, -1, -2)


def gaussian_w2(mean_a, cov_a, mean_b, cov_b) -> np.ndarray:
    """Squared 2-Wasserstein distance between Gaussians, in closed form (Bures-Wasserstein).

    ``W2^2(N(m1, S1), N(m2, S2)) = |m1 - m2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``
    (Dowson and Landau 1982; Olkin and Pukelsheim 1982): the optimal transport cost with the
    squared Euclidean ground cost between the two *distributions*, the value that ``W2``
    between large samples of them tends to.

    Args:
      mean_a, mean_b: ``[..., d]`` means.
      cov_a, cov_b: ``[..., d, d]`` positive semi-definite covariances; leading axes broadcast.

    Returns:
      ``[...]`` float64 values, in squared coordinate units.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    if mean_a.shape[-1:] != cov_a.shape[-1:] or cov_a.shape[-2:] != cov_b.shape[-2:] \
            or mean_b.shape[-1:] != cov_b.shape[-1:] or cov_a.shape[-1] != cov_a.shape[-2]:
        raise ValueError(f"Means [..., d] and covariances [..., d, d] must share d; got means "
                         f"{mean_a.shape}, {mean_b.shape} and covariances {cov_a.shape}, "
                         f"{cov_b.shape}.")
    root_a = _psd_sqrt(cov_a)
    cross = _psd_sqrt(root_a @ cov_b @ root_a)
    trace = np.trace(cov_a + cov_b - 2.0 * cross, axis1=-2, axis2=-1)
    # Rounding can leave a tiny negative trace for (nearly) equal covariances.
    return np.sum((mean_a - mean_b) ** 2, axis=-1) + np.clip(trace, 0.0, None)
