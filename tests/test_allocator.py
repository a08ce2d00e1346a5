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
    # (faults count pages or, with transparent huge pages, 2 MiB pages: compare to the first)
    # glibc's default maps every such buffer afresh and faults it in again, every time
    first = default["faults"][0]
    assert first > 0 and min(default["faults"][1:]) > 0.5 * first
    # tuned: the first buffer is faulted in once, the next ones reuse its pages
    assert tuned["faults"][0] > 0
    assert max(tuned["faults"][1:]) <= 0.05 * tuned["faults"][0]


@glibc
def test_environment_turns_the_tuning_off():
    assert not _probe("tuned", env_value="default")["applied"]


def test_thresholds_must_fit_a_c_int():
    if hepx.allocator._glibc() is None:
        pytest.skip("needs glibc")
    with pytest.raises(ValueError, match="C int"):
        hepx.allocator.tune_allocator(mmap_threshold=2**31)
