"""A synthetic spatial tissue with known niche compositions, as an AnnData.

Each sample is a unit-square slide with cells placed uniformly at random. The slide is cut
into ``regions_per_sample`` Voronoi regions around random centres, and each region is given
one of ``num_niche_types`` niche types. A niche type is a known composition: a probability
vector over ``num_cell_types`` cell types (Dirichlet with a small concentration, so each type
is dominated by a few cell types). A cell's type is drawn from its region's composition, and
its features are its type's mean (a random point of ``N(0, I)`` in ``num_features``
dimensions) plus isotropic Gaussian noise of ``noise`` standard deviation.

So the niche of a cell away from region borders is a sample of its niche type's mixture:
niches of one type are close in Wasserstein distance and niches of different types far,
which a niche embedding must recover (``obs['niche_type']`` is the label to test against).

Fields: ``X`` ``[cells, num_features]`` float32 features, ``obsm['spatial']`` ``[cells, 2]``
slide coordinates, ``obs['sample']``, ``obs['cell_type']``, ``obs['niche_type']`` (all
categorical), ``uns['niche_compositions']`` ``[num_niche_types, num_cell_types]`` and
``uns['cell_type_means']`` ``[num_cell_types, num_features]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_tissue"]


def synthetic_tissue(num_cells: int = 10_000, num_samples: int = 3, num_features: int = 50,
                     num_cell_types: int = 10, num_niche_types: int = 5,
                     regions_per_sample: int = 12, concentration: float = 0.3,
                     noise: float = 0.3, seed: int = 0):
    """A seeded synthetic tissue of ``num_cells`` cells over ``num_samples`` slides.

    Args:
      num_cells: cells in all samples together (split as evenly as possible).
      num_samples: slides; a niche never crosses from one to another.
      num_features: feature dimension of every cell.
      num_cell_types, num_niche_types: sizes of the two vocabularies.
      regions_per_sample: Voronoi regions per slide (at least ``num_niche_types`` makes every
        niche type likely to occur on every slide).
      concentration: Dirichlet concentration of the niche compositions (smaller: purer).
      noise: standard deviation of a cell's features around its type's mean.
      seed: the one seed every draw comes from.

    Returns:
      An ``anndata.AnnData`` (see the module docstring for its fields).
    """
    import anndata
    import pandas as pd

    if num_cells < num_samples:
        raise ValueError(f"num_cells ({num_cells}) must be at least num_samples "
                         f"({num_samples}).")
    rng = np.random.default_rng(seed)
    compositions = rng.dirichlet(np.full(num_cell_types, concentration), num_niche_types)
    means = rng.standard_normal((num_cell_types, num_features))
    per_sample = np.full(num_samples, num_cells // num_samples)
    per_sample[: num_cells % num_samples] += 1
    sample = np.repeat(np.arange(num_samples), per_sample)
    coords = rng.uniform(0.0, 1.0, (num_cells, 2))
    niche = np.empty(num_cells, np.int64)
    for s in range(num_samples):
        cells = np.flatnonzero(sample == s)
        centres = rng.uniform(0.0, 1.0, (regions_per_sample, 2))
        region_type = rng.integers(0, num_niche_types, regions_per_sample)
        # Cycle through the niche types first, so that every type occurs when there are
        # enough regions.
        region_type[: min(regions_per_sample, num_niche_types)] = rng.permutation(
            num_niche_types)[:regions_per_sample]
        nearest = np.argmin(((coords[cells, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        niche[cells] = region_type[nearest]
    # A cell's type by inverse-CDF sampling from its niche type's composition.
    cumulative = np.cumsum(compositions, axis=1)[niche]
    cell_type = np.minimum((rng.uniform(size=(num_cells, 1)) > cumulative).sum(1),
                           num_cell_types - 1)
    features = means[cell_type] + noise * rng.standard_normal((num_cells, num_features))
    obs = pd.DataFrame({
        "sample": pd.Categorical.from_codes(sample, [f"slide_{s}" for s in range(num_samples)]),
        "cell_type": pd.Categorical.from_codes(cell_type,
                                               [f"type_{t}" for t in range(num_cell_types)]),
        "niche_type": pd.Categorical.from_codes(niche,
                                                [f"niche_{n}" for n in range(num_niche_types)]),
    }, index=[f"cell_{i}" for i in range(num_cells)])
    adata = anndata.AnnData(X=features.astype(np.float32), obs=obs)
    adata.obsm["spatial"] = coords.astype(np.float32)
    adata.uns["niche_compositions"] = compositions
    adata.uns["cell_type_means"] = means
    return adata
