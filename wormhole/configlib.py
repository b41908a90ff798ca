"""Typed configuration files: dataclass fields with validation, YAML, dotted overrides.

The generic machinery behind every config of the package (the run schema in
:mod:`wormhole.config`, the neural OT estimator's in :mod:`wormhole.neural_ot.config`): a
field declared with :func:`option` carries its allowed values, and :func:`build_dataclass`
checks types, choices and ranges, so a bad file fails on load with a message that names the
dotted key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import field
from typing import Any

import yaml

__all__ = ["ConfigError", "apply_overrides", "build_dataclass", "did_you_mean", "option"]


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the dotted key."""


def option(default: Any = dataclasses.MISSING, *, choices=None, min=None, max=None,
          min_exclusive: bool = False, factory=None, doc: str = ""):
    """A dataclass field with validation metadata (allowed choices and numeric range)."""
    meta = {"choices": choices, "min": min, "max": max, "min_exclusive": min_exclusive,
            "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- conversion


def did_you_mean(key: str, valid) -> str:
    """A " Did you mean 'x'?" hint for a mistyped ``key`` among ``valid`` (or "")."""
    valid = list(valid)
    same_letters = [v for v in valid if isinstance(v, str) and v.lower() == str(key).lower()]
    match = same_letters or difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


_NON_FINITE = ("nan", "inf", "infinity")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _coerce(value: Any, tp, key: str) -> Any:
    """Check ``value`` against ``tp``; ints and numbers written as text are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}.")
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and (_NUMBER.fullmatch(value.strip())
                                       or value.strip().lower().lstrip("+-") in _NON_FINITE):
            # YAML 1.1 reads "1e-3" (no dot) as a string; "nan" / "inf" (and JSON's "NaN",
            # "Infinity") are read as the numbers they name, for the range check to refuse.
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif origin is list:
        if isinstance(value, (list, tuple)):
            (item,) = typing.get_args(tp)
            return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} "
                      f"({type(value).__name__}).")


def _check_range(value: Any, meta: dict, key: str) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        shown = ", ".join("null" if c is None else str(c) for c in choices)
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of: {shown}."
                          f"{did_you_mean(str(value), [c for c in choices if c])}")
    if value is None or isinstance(value, (bool, str, dict, list)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: {value!r} is not allowed; it must be a finite number.")
    low, high = meta.get("min"), meta.get("max")
    if low is not None:
        if meta.get("min_exclusive") and not value > low:
            raise ConfigError(f"{key}: {value!r} is out of range; it must be > {low}.")
        if value < low:
            raise ConfigError(f"{key}: {value!r} is out of range; it must be >= {low}.")
    if high is not None and value > high:
        raise ConfigError(f"{key}: {value!r} is out of range; it must be <= {high}.")


def _build(cls, raw: Any, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        where = prefix or "config"
        raise ConfigError(f"{where}: expected a mapping of keys, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            section = f"section '{prefix}'" if prefix else "the top level"
            raise ConfigError(f"Unknown key '{dotted}' in {section}."
                              f"{did_you_mean(str(key), fields)} Valid keys: "
                              f"{', '.join(fields)}.")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, dotted)
            continue
        value = _coerce(value, tp, dotted)
        _check_range(value, fields[key].metadata, dotted)
        kwargs[key] = value
    return cls(**kwargs)


def build_dataclass(cls, raw: dict | None, prefix: str = ""):
    """Build and validate any config dataclass declared with this module's field specs.

    Other typed configs of the package (e.g. the neural OT estimator's) reuse this, so every
    config file fails the same way on an unknown key, a wrong type or an out-of-range value.
    """
    return _build(cls, raw, prefix)


# --------------------------------------------------------------------------- files and overrides


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to nested plain data."""
    raw = _deep_copy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override '{item}' must look like section.key=value.")
        dotted, text = item.split("=", 1)
        value = yaml.safe_load(text) if text.strip() else None
        parts = dotted.strip().split(".")
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Override '{item}': '{part}' is not a section.")
            node = child
        node[parts[-1]] = value
    return raw


def _deep_copy(raw: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in (raw or {}).items()}
