"""The package itself: nothing is written into the installed package."""

import os
import subprocess
import sys
from pathlib import Path

import hepx

PACKAGE = Path(hepx.__file__).resolve().parent


def test_numba_caches_go_to_the_users_cache_directory(tmp_path):
    code = (
        "import numpy as np, hepx.post.kernels as k\n"
        "z = np.zeros(1, np.int64)\n"
        "k.track_reduce(z, z, np.zeros(0, np.int64), np.zeros(0))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    before = {p for p in PACKAGE.rglob("*.nb[ic]")}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=tmp_path)
    cached = list((tmp_path / "cache" / "hepx" / "numba").rglob("*.nbi"))
    assert cached, "no numba index under $XDG_CACHE_HOME/hepx/numba"
    assert {p for p in PACKAGE.rglob("*.nb[ic]")} <= before
    assert hepx.numba_cache_dir() == Path(os.environ["NUMBA_CACHE_DIR"])
