"""scikit-learn's bundled 8x8 handwritten digits: the embedded default data set."""

from __future__ import annotations

from wormhole.data.clouds import PointClouds
from wormhole.data.images import images_to_clouds

__all__ = ["load_digits"]


def load_digits(path: str | None = None, seed: int = 0, threshold: float = 0.0) -> PointClouds:
    """1,797 digits as pixel clouds (about 33 points each), labelled 0-9; no download.

    Args:
      path: unused (the data ship with scikit-learn).
      seed: unused (the data are fixed).
      threshold: keep pixels above this fraction of the maximum intensity.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return images_to_clouds(bunch.images, bunch.target, threshold,
                            label_names=[str(d) for d in range(10)])
