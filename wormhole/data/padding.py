"""Padding rules: crop a batch's padding to a multiple of a bucket size, and fill a short
batch up to a compiled size."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bucket_length", "fill_with_first", "power_of_two_at_least"]


def bucket_length(largest: int, bucket: int, limit: int) -> int:
    """Points per row for a batch whose largest cloud has ``largest`` points.

    Rounded up to a multiple of ``bucket`` (a few distinct lengths, hence few compilations),
    never above ``limit`` (the padded length of the clouds); ``bucket = 0`` keeps ``limit``.
    """
    if not bucket:
        return limit
    return min(limit, int(math.ceil(largest / bucket)) * bucket)


def power_of_two_at_least(count: int) -> int:
    """The smallest power of two ``>= count`` (at least 1): row counts of compiled calls
    padded this way take a handful of shapes whatever the number of queries."""
    return 1 << max(0, count - 1).bit_length()


def fill_with_first(index, size: int) -> np.ndarray:
    """``index`` followed by copies of its first entry, ``size`` entries in all: a short batch
    filled with a real item (every solve stays well posed) whose results are dropped."""
    index = np.asarray(index)
    return np.concatenate([index, np.repeat(index[:1], size - len(index))])
