"""Samples of random distributions as point clouds, with their generating parameters.

Each cloud is an i.i.d. sample of one random member of a family of distributions; clouds are
labelled by family (``label_names`` lists the families asked for, in order), so one data set
can mix families. Every cloud keeps the exact moments of its distribution,
``metadata["mean"] [N, d]`` and ``metadata["cov"] [N, d, d]``, plus its family's own
parameters; a key that does not apply to a cloud's family is NaN for that cloud.

Families in any dimension ``dim``:

=========== ================================================================================
gaussians   N(mean, cov): mean uniform in ``[-spread, spread]^d``; cov = Q diag(s^2) Q^T with
            a Haar-random orthogonal Q and standard deviations s uniform in ``scale``.
boxes       uniform in an axis-aligned box: centre uniform in ``[-spread, spread]^d``, half
            sides uniform in ``scale``. Metadata ``low``, ``high`` [N, d].
mixtures    ``components`` Gaussians drawn as above, Dirichlet(1) mixture weights. Metadata
            ``component_weights`` [N, k], ``component_means`` [N, k, d],
            ``component_covs`` [N, k, d, d].
=========== ================================================================================

One-dimensional families (``dim=1``; ``family="1d"`` takes all seven), as in the Siamese
DeepSets experiments of Sehanobish et al., "Permutation invariant networks to learn Wasserstein
metrics" (2020), with parameter ranges of our own choosing. Metadata
``params`` [N, 2] holds the two parameters below (NaN where a family has one):

=========== ===================================================================
normal      loc ~ U[-1, 1], scale ~ U[0.1, 1]
uniform     low ~ U[-1, 0.5], high = low + U[0.2, 1.5]
beta        a ~ U[0.5, 5], b ~ U[0.5, 5]
gamma       shape ~ U[1, 5], scale ~ U[0.1, 0.5]
exponential scale ~ U[0.2, 1]
laplace     loc ~ U[-1, 1], scale ~ U[0.1, 0.7]
lognormal   mu ~ U[-1, 0.5], sigma ~ U[0.1, 0.6] (of the underlying normal)
=========== ===================================================================

Everything is drawn from one ``numpy`` generator seeded by ``seed``, so a data set is
determined by its options and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from wormhole.configlib import did_you_mean
from wormhole.data.clouds import PointClouds

__all__ = ["FAMILIES", "FAMILIES_1D", "FAMILIES_ND", "load_synthetic"]

FAMILIES_ND = ("gaussians", "boxes", "mixtures")
FAMILIES_1D = ("normal", "uniform", "beta", "gamma", "exponential", "laplace", "lognormal")
FAMILIES = FAMILIES_ND + FAMILIES_1D

# One drawn distribution: its sample, exact mean [d] and covariance [d, d], extra parameters.
Draw = tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]


def _orthogonal(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A Haar-random orthogonal matrix [dim, dim]: QR of a Gaussian matrix, signs fixed."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def _random_gaussian(rng, dim, spread, scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean [d], covariance [d, d] and a square root A (cov = A A^T) of a random Gaussian."""
    mean = rng.uniform(-spread, spread, dim)
    root = _orthogonal(rng, dim) * rng.uniform(scale[0], scale[1], dim)
    return mean, root @ root.T, root


def _gaussians(rng, n, dim, spread, scale, components) -> Draw:
    mean, cov, root = _random_gaussian(rng, dim, spread, scale)
    return mean + rng.standard_normal((n, dim)) @ root.T, mean, cov, {}


def _boxes(rng, n, dim, spread, scale, components) -> Draw:
    centre = rng.uniform(-spread, spread, dim)
    half = rng.uniform(scale[0], scale[1], dim)
    low, high = centre - half, centre + half
    points = rng.uniform(low, high, (n, dim))
    return points, centre, np.diag((2 * half) ** 2 / 12), {"low": low, "high": high}


def _mixtures(rng, n, dim, spread, scale, components) -> Draw:
    weights = rng.dirichlet(np.ones(components))
    drawn = [_random_gaussian(rng, dim, spread, scale) for _ in range(components)]
    means = np.stack([m for m, _, _ in drawn])
    covs = np.stack([c for _, c, _ in drawn])
    which = rng.choice(components, n, p=weights)
    noise = rng.standard_normal((n, dim))
    points = means[which] + np.einsum("nij,nj->ni", np.stack([a for _, _, a in drawn])[which],
                                      noise)
    mean = weights @ means
    # Law of total covariance: E[cov] + cov of the component means.
    centred = means - mean
    cov = np.einsum("k,kij->ij", weights, covs) + np.einsum("k,ki,kj->ij", weights, centred,
                                                            centred)
    return points, mean, cov, {"component_weights": weights, "component_means": means,
                               "component_covs": covs}


def _one_d(sample: Callable, draw: Callable, moments: Callable) -> Callable[..., Draw]:
    """A 1-D family from its parameter draw, its sampler and its exact mean and variance."""

    def family(rng, n, dim, spread, scale, components) -> Draw:
        params = draw(rng)
        mean, var = moments(*params)
        points = sample(rng, *params, n)[:, None]
        padded = np.full(2, np.nan)
        padded[: len(params)] = params
        return points, np.array([mean]), np.array([[var]]), {"params": padded}

    return family


def _uniform_bounds(rng):
    low = rng.uniform(-1, 0.5)
    return low, low + rng.uniform(0.2, 1.5)


_SAMPLERS: dict[str, Callable[..., Draw]] = {
    "gaussians": _gaussians,
    "boxes": _boxes,
    "mixtures": _mixtures,
    "normal": _one_d(lambda rng, loc, s, n: rng.normal(loc, s, n),
                     lambda rng: (rng.uniform(-1, 1), rng.uniform(0.1, 1)),
                     lambda loc, s: (loc, s**2)),
    "uniform": _one_d(lambda rng, lo, hi, n: rng.uniform(lo, hi, n), _uniform_bounds,
                      lambda lo, hi: ((lo + hi) / 2, (hi - lo) ** 2 / 12)),
    "beta": _one_d(lambda rng, a, b, n: rng.beta(a, b, n),
                   lambda rng: (rng.uniform(0.5, 5), rng.uniform(0.5, 5)),
                   lambda a, b: (a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1)))),
    "gamma": _one_d(lambda rng, k, s, n: rng.gamma(k, s, n),
                    lambda rng: (rng.uniform(1, 5), rng.uniform(0.1, 0.5)),
                    lambda k, s: (k * s, k * s**2)),
    "exponential": _one_d(lambda rng, s, n: rng.exponential(s, n),
                          lambda rng: (rng.uniform(0.2, 1),),
                          lambda s: (s, s**2)),
    "laplace": _one_d(lambda rng, loc, s, n: rng.laplace(loc, s, n),
                      lambda rng: (rng.uniform(-1, 1), rng.uniform(0.1, 0.7)),
                      lambda loc, s: (loc, 2 * s**2)),
    "lognormal": _one_d(lambda rng, mu, s, n: rng.lognormal(mu, s, n),
                        lambda rng: (rng.uniform(-1, 0.5), rng.uniform(0.1, 0.6)),
                        lambda mu, s: (np.exp(mu + s**2 / 2),
                                       (np.exp(s**2) - 1) * np.exp(2 * mu + s**2))),
}


def _families(family: str | Sequence[str]) -> list[str]:
    names = [family] if isinstance(family, str) else list(family)
    expanded: list[str] = []
    for name in names:
        if name == "1d":
            expanded.extend(FAMILIES_1D)
        elif name in _SAMPLERS:
            expanded.append(name)
        else:
            raise ValueError(f"data.options.family: unknown family {name!r}."
                             f"{did_you_mean(str(name), FAMILIES + ('1d',))} Available: "
                             f"{', '.join(FAMILIES)}, or 1d for all one-dimensional ones.")
    if not expanded:
        raise ValueError("data.options.family: no family given.")
    if len(set(expanded)) != len(expanded):
        raise ValueError(f"data.options.family: a family is listed twice in {expanded}.")
    return expanded


def _stack_metadata(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-cloud parameter dicts to [N, ...] arrays; NaN where a cloud's family lacks a key."""
    keys = dict.fromkeys(k for row in rows for k in row)
    out = {}
    for key in keys:
        shape = next(np.shape(row[key]) for row in rows if key in row)
        out[key] = np.stack([np.asarray(row[key], np.float64) if key in row
                             else np.full(shape, np.nan) for row in rows])
    return out


def load_synthetic(path: str | None = None, seed: int = 0,
                   family: str | Sequence[str] = "gaussians", num_clouds: int = 1000,
                   points: int = 100, min_points: int | None = None, dim: int | None = None,
                   spread: float = 1.0, scale: Sequence[float] = (0.1, 0.5),
                   components: int = 3) -> PointClouds:
    """Random distributions of the chosen families, one i.i.d. sample per cloud.

    Args:
      path: unused (the data are generated).
      seed: seed of every random draw.
      family: a family name, a list of them (each cloud draws its family uniformly), or
        ``"1d"`` for all one-dimensional families; see the module docstring.
      num_clouds: number of clouds ``N``.
      points: points per cloud; with ``min_points`` the largest size.
      min_points: if given, each cloud's size is uniform in ``[min_points, points]``.
      dim: dimension ``d`` (default 1 when all families are one-dimensional, else 2).
      spread: means and box centres are uniform in ``[-spread, spread]^d``.
      scale: ``(low, high)`` range of standard deviations along the principal axes
        (Gaussians, mixture components) and of box half sides.
      components: Gaussians per mixture.

    Returns:
      Clouds ``[N, points, d]`` labelled by family, with ``metadata["mean"]`` ``[N, d]``,
      ``metadata["cov"]`` ``[N, d, d]`` and each family's parameters.
    """
    families = _families(family)
    one_d = [f for f in families if f in FAMILIES_1D]
    dim = (1 if len(one_d) == len(families) else 2) if dim is None else dim
    if dim < 1:
        raise ValueError(f"data.options.dim: must be at least 1, got {dim}.")
    if one_d and dim != 1:
        raise ValueError(f"data.options.dim: the families {', '.join(one_d)} are "
                         f"one-dimensional; set dim: 1 (got {dim}).")
    if num_clouds < 1 or points < 1:
        raise ValueError(f"data.options: num_clouds and points must be positive, got "
                         f"{num_clouds} and {points}.")
    if min_points is not None and not 1 <= min_points <= points:
        raise ValueError(f"data.options.min_points: must be in [1, points={points}], got "
                         f"{min_points}.")
    if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
        raise ValueError(f"data.options.scale: expected [low, high] with 0 < low <= high, got "
                         f"{list(scale)}.")
    if components < 1:
        raise ValueError(f"data.options.components: must be at least 1, got {components}.")
    rng = np.random.default_rng(seed)
    labels = rng.integers(len(families), size=num_clouds)
    sizes = (np.full(num_clouds, points) if min_points is None
             else rng.integers(min_points, points + 1, size=num_clouds))
    clouds, rows = [], []
    for label, size in zip(labels, sizes, strict=True):
        sample, mean, cov, params = _SAMPLERS[families[label]](rng, int(size), dim, spread,
                                                               scale, components)
        clouds.append(sample)
        rows.append({"mean": mean, "cov": cov, **params})
    return PointClouds.from_list(clouds, labels=labels.astype(np.int32), label_names=families,
                                 metadata=_stack_metadata(rows))
