"""Grey-scale images as weighted pixel clouds."""

from __future__ import annotations

import numpy as np

from wormhole.data.clouds import PointClouds

__all__ = ["images_to_clouds"]


def images_to_clouds(images: np.ndarray, labels: np.ndarray | None = None,
                     threshold: float = 0.0, label_names=None,
                     metadata: dict | None = None) -> PointClouds:
    """Turn images ``[N, H, W]`` into clouds of pixel positions weighted by intensity.

    A pixel becomes a point when its intensity is above ``threshold`` times the data set's
    maximum intensity (``threshold=0.5`` keeps about 105 points per MNIST digit, the setting
    of the Wormhole paper). Coordinates are ``(column, H-1-row) / (max(H, W) - 1)`` so the
    image sits upright in ``[0, 1]^2``.

    Raises:
      ValueError: if ``threshold`` is outside ``[0, 1)`` or an image keeps no pixel.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 3:
        raise ValueError(f"Expected images of shape [N, H, W], got {images.shape}.")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}.")
    height, width = images.shape[1:]
    cut = threshold * float(images.max())
    rows, cols = np.mgrid[0:height, 0:width]
    coords = np.stack([cols, height - 1 - rows], axis=-1).reshape(-1, 2)
    coords = coords.astype(np.float32) / max(height - 1, width - 1, 1)
    flat = images.reshape(len(images), -1)
    clouds, weights = [], []
    for i, pixels in enumerate(flat):
        keep = pixels > cut
        if not keep.any():
            raise ValueError(f"image {i} has no pixel above the intensity threshold "
                             f"{threshold} x max = {cut:g}; lower data.options.threshold.")
        clouds.append(coords[keep])
        weights.append(pixels[keep])
    return PointClouds.from_list(clouds, weights, labels=labels, label_names=label_names,
                                 metadata=metadata)
