"""The scripts' persistent compilation cache: where it goes, what turns it off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_SCRIPT = """
import jax, jax.numpy as jnp
from wormhole.compile_cache import enable_compile_cache
where = enable_compile_cache()
print(where)
print(float(jax.jit(lambda x: jnp.sin(x) * 2)(jnp.ones(3)).sum()))
"""


def _run(tmp_path, **env):
    base = {k: v for k, v in os.environ.items()
            if k not in ("JAX_COMPILATION_CACHE_DIR", "WORMHOLE_COMPILE_CACHE")}
    base.update(XDG_CACHE_HOME=str(tmp_path / "xdg"),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", **env)
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          env=base, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()[0]


def _entries(path):
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.parametrize("setting", ["default", "named"])
def test_compiled_programs_are_kept_in_the_cache_directory(tmp_path, setting):
    env = {} if setting == "default" else {"WORMHOLE_COMPILE_CACHE": str(tmp_path / "mine")}
    expected = tmp_path / ("xdg/wormhole/jax" if setting == "default" else "mine")
    assert _run(tmp_path, **env) == str(expected)
    assert _entries(expected), "nothing was written to the cache"


def test_off_writes_no_cache_and_jax_own_setting_wins(tmp_path):
    assert _run(tmp_path, WORMHOLE_COMPILE_CACHE="off") == "None"
    assert not _entries(tmp_path / "xdg")
    where = _run(tmp_path, WORMHOLE_COMPILE_CACHE=str(tmp_path / "mine"),
                 JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax"))
    assert where == str(tmp_path / "jax")
    assert not _entries(tmp_path / "mine") and _entries(tmp_path / "jax")
