"""The CPU thread setting: precedence, the free-core rule, the measurement, determinism."""

import json
import logging
import shutil

import pytest
import torch
from tiny_runs import tiny_config

from hepx import threads
from hepx.errors import ConfigError
from hepx.training import train


@pytest.fixture
def no_thread_env(monkeypatch):
    monkeypatch.delenv("HEPX_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_precedence_argument_then_env_then_openmp_then_auto(no_thread_env, monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: [0, 1, 2, 3])
    monkeypatch.setattr(threads, "others_busy_cores", lambda **kw: 0.0)
    assert threads.choose_threads() == 4  # auto on an idle machine: every usable core
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_threads() == 3  # the user's OpenMP setting is respected
    monkeypatch.setenv("HEPX_THREADS", "2")
    assert threads.choose_threads() == 2
    monkeypatch.setenv("HEPX_THREADS", "auto")
    assert threads.choose_threads() == 4
    assert threads.choose_threads(1) == 1 and threads.choose_threads("2") == 2
    for bad in ("0", "many", -1):
        with pytest.raises(ConfigError, match="positive integer or 'auto'"):
            threads.choose_threads(bad)


@pytest.mark.parametrize(
    ("busy", "expected"),
    [(0.0, 2), (0.15, 2), (0.3, 1), (1.0, 1), (2.0, 1), (None, 2)],
)
def test_auto_counts_the_cores_others_leave_free(no_thread_env, monkeypatch, busy, expected):
    """A core is free when at least 80 % of it is idle; at least one thread; None (no
    /proc/stat) means every usable core."""
    monkeypatch.setattr(threads, "usable_cores", lambda: [0, 1])
    monkeypatch.setattr(threads, "others_busy_cores", lambda **kw: busy)
    assert threads.choose_threads("auto") == expected


def test_others_busy_takes_this_process_time_out(monkeypatch):
    """busy share x cores - own cores, from two samples of the counters."""
    samples = iter([(100.0, 1000.0), (100.0 + 150.0, 1000.0 + 200.0)])  # 75 % busy of 2 cpus
    own = iter([10.0, 10.0 + 0.125])  # this process: 0.125 s of CPU in 0.25 s = 0.5 core
    clock = iter([0.0, 0.25])
    monkeypatch.setattr(threads, "_cpu_jiffies", lambda cpus: next(samples))
    monkeypatch.setattr(threads, "_own_cpu_seconds", lambda: next(own))
    monkeypatch.setattr(threads.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    busy = threads.others_busy_cores(cpus=[0, 1])
    assert busy == pytest.approx(0.75 * 2 - 0.5)


def test_others_busy_sees_a_busy_process():
    """On Linux: a busy-looping child keeps about one core busy."""
    import subprocess
    import sys

    if threads._cpu_jiffies([0]) is None:
        pytest.skip("no /proc/stat here")
    burn = "import time\nt = time.time()\nwhile time.time() - t < 5:\n    pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn])
    try:
        busy = threads.others_busy_cores(interval=0.5)
    finally:
        child.kill()
        child.wait()
    assert busy is not None and busy >= 0.5


def test_configure_sets_torch(no_thread_env):
    before = torch.get_num_threads()
    try:
        assert threads.configure_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_runs_are_reproducible_for_a_seed_and_thread_count(tau_dataset, tmp_path, caplog):
    """The same seed and thread count give the same run; the count is recorded, and resuming
    with another count warns."""
    before = torch.get_num_threads()
    cfg = tiny_config(tau_dataset, "tau3mu", "lri_bernoulli")
    cfg["train"]["epochs"] = 2
    try:
        torch.set_num_threads(2)
        a = train(cfg, tmp_path / "a", progress=False)
        b = train(cfg, tmp_path / "b", progress=False)
        assert a == b
        env = json.loads((tmp_path / "a" / "environment.json").read_text())
        assert env["threads"] == 2 and env["device"] == "cpu"
        shutil.copytree(tmp_path / "a", tmp_path / "c")
        torch.set_num_threads(1)
        cfg3 = {**cfg, "train": {**cfg["train"], "epochs": 3}}
        with caplog.at_level(logging.WARNING, logger="hepx"):
            train(cfg3, tmp_path / "c", resume=True, progress=False)
        assert "trained with 2 CPU thread(s), resumed with 1" in caplog.text
        assert json.loads((tmp_path / "c" / "environment.json").read_text())["threads"] == 2
    finally:
        torch.set_num_threads(before)
