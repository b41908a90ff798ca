"""The one padding-length rule: crop a batch's padding to a multiple of a bucket size."""

from __future__ import annotations

import math

__all__ = ["bucket_length", "power_of_two_at_least"]


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
