"""The error of a feature whose optional package is not installed."""

from __future__ import annotations


class MissingExtra(ImportError):
    """A feature needs an optional package; the message says which and how to install it."""
