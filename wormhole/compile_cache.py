"""JAX's persistent compilation cache for the command-line scripts.

A script's programs (the train step, the encoder, the held-out targets) compile again in
every process; with the cache a resumed run, a second evaluation or an embedding of new
clouds reads them from disk instead. The scripts turn it on; the library never does.

Where: ``$JAX_COMPILATION_CACHE_DIR`` when set (JAX reads it itself, and it wins), else
``$WORMHOLE_COMPILE_CACHE``, else ``$XDG_CACHE_HOME/wormhole/jax`` (``~/.cache/wormhole/jax``).
``WORMHOLE_COMPILE_CACHE=off`` turns it off (the benchmarks do, to time a first run).
Programs that compile in under JAX's threshold (``jax_persistent_cache_min_compile_time_secs``,
1 s by default) are not kept. The directory only grows (one file per program); delete it to
clear it. Whoever can write to it can run code in the processes that read it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["COMPILE_CACHE_ENV", "default_cache_dir", "enable_compile_cache"]

COMPILE_CACHE_ENV = "WORMHOLE_COMPILE_CACHE"
_OFF = ("0", "off", "false", "no")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/wormhole/jax``, by default ``~/.cache/wormhole/jax``."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "wormhole" / "jax"


def enable_compile_cache() -> Path | None:
    """Turn on the persistent compilation cache of this process (see the module docstring).

    Returns the directory in use, or ``None`` when it is off or cannot be created (then every
    program compiles as without it; nothing else changes).
    """
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    setting = os.environ.get(COMPILE_CACHE_ENV, "").strip()
    if setting.lower() in _OFF:
        return None
    try:
        directory = Path(setting).expanduser() if setting else default_cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError):  # no home directory, a path that cannot be made
        return None
    if not os.access(directory, os.W_OK | os.X_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    return directory
