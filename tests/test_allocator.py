"""hepx.allocator: freed large buffers are reused instead of mapped and faulted in again."""

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

import hepx.allocator

_PROBE = """
import json, resource, sys
import numpy as np
import hepx.allocator
applied = hepx.allocator.tune_allocator() if sys.argv[1] == "tuned" else False
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = np.ones(64 * 2**20 // 8)  # 64 MiB, above glibc's largest dynamic mmap threshold
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del a
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _probe(mode: str, env_value: str = "") -> dict:
    env = {**os.environ, hepx.allocator.ENV: env_value}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


glibc = pytest.mark.skipif(
    hepx.allocator._glibc() is None or not ctypes.util.find_library("c"), reason="needs glibc"
)


@glibc
def test_tuned_allocator_reuses_a_freed_64_mib_buffer():
    default, tuned = _probe("default"), _probe("tuned")
    assert tuned["applied"] and not default["applied"]
    # (a fault maps a 4 KiB page or, with transparent huge pages, up to 2 MiB: a 64 MiB buffer
    # faulted in again takes at least 32)
    # glibc's default maps every such buffer afresh and faults it in again, every time
    again = min(default["faults"][1:])
    assert again >= 32
    # tuned: the first buffer is faulted in once, the next ones reuse its pages
    assert tuned["faults"][0] >= 32
    assert max(tuned["faults"][1:]) < 0.1 * again


@glibc
def test_environment_turns_the_tuning_off():
    assert not _probe("tuned", env_value="default")["applied"]


def test_thresholds_must_fit_a_c_int():
    if hepx.allocator._glibc() is None:
        pytest.skip("needs glibc")
    with pytest.raises(ValueError, match="C int"):
        hepx.allocator.tune_allocator(mmap_threshold=2**31)
