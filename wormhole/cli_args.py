"""Argument types shared by the command-line scripts in ``scripts/``."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from wormhole.atomic import file_in_the_way


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """An ``argparse`` type: an integer no smaller than ``minimum``, else a usage error that
    says so (a count of 0 or -2 is not silently read as "none" or "all but two")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_number(text: str) -> float:
    """An ``argparse`` type: a finite number above zero (an epsilon, a scale), else a usage
    error that says so."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def check_output_path(path: str | Path, suffixes: Sequence[str], flag: str = "--output"
                      ) -> Path:
    """``path`` as an output file ending in one of ``suffixes``, checked before any work:
    not an existing directory, and not inside a path that is a file. Raises ValueError."""
    path = Path(path)
    if path.suffix not in suffixes:
        raise ValueError(f"{flag} must end in {' or '.join(suffixes)}, got '{path}'")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; name a file in it")
    check_output_dir(path.parent, flag)
    return path


def check_output_dir(path: str | Path, flag: str) -> Path:
    """``path`` as an output directory, checked before any work: neither it nor a parent may
    be a file. Raises ValueError."""
    path = Path(path)
    blocking = file_in_the_way(path)
    if blocking is not None:
        raise ValueError(f"{flag} {path}: {blocking} is a file, not a directory")
    return path


def picture_suffixes() -> tuple[str, ...]:
    """The file types matplotlib can write (``.png``, ``.pdf``, ``.svg``, ...)."""
    from matplotlib.figure import Figure

    return tuple(f".{kind}" for kind in Figure().canvas.get_supported_filetypes())
