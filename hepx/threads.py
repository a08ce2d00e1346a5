"""How many CPU threads torch uses: one setting, chosen so that a shared machine does not make
hepx collapse.

With more OpenMP threads than free cores, every parallel region waits for a thread that
another process has pushed off its core, and a training step can take several times as long
as with one thread (measured in ``benchmarks/threads.py``). Waiting passively instead of
spinning (``OMP_WAIT_POLICY=PASSIVE``) does not rescue it and slows the idle case down, so
hepx chooses the *number* of threads instead: by default (``"auto"``) the cores this process
may use (its CPU affinity) that other processes are not keeping busy, measured over a short
interval when a command starts.

The setting, in order of precedence: the ``threads`` argument (``hepx ... --threads N``), the
``HEPX_THREADS`` environment variable, an explicit ``OMP_NUM_THREADS`` (respected as the user's
choice), ``"auto"``.

Results of a training run depend on the thread count (floating-point sums in another order),
so a run is reproducible for one seed *and* one thread count: ``hepx train`` records the count
in ``RUN_DIR/environment.json``; pass it with ``--threads`` to reproduce the run.

Example
-------
>>> import hepx.threads
>>> n = hepx.threads.configure_threads()        # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

from hepx.errors import ConfigError

log = logging.getLogger("hepx")

__all__ = ["ENV", "choose_threads", "configure_threads", "others_busy_cores", "usable_cores"]

#: Environment variable with the thread setting (an integer or ``auto``).
ENV = "HEPX_THREADS"
#: A core counts as free when at least this share of it is idle (others use the rest).
_FREE_SHARE = 0.8


def usable_cores() -> list[int]:
    """The CPUs this process may run on (its affinity; all CPUs where that is unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _cpu_jiffies(cpus: Sequence[int]) -> tuple[float, float] | None:
    """(busy, total) clock ticks of ``cpus`` since boot, from ``/proc/stat``; None elsewhere."""
    try:
        lines = open("/proc/stat").read().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cpus}
    busy = total = 0.0
    for line in lines:
        parts = line.split()
        if parts and parts[0] in wanted:
            ticks = [float(v) for v in parts[1:]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)  # idle + iowait
            total += sum(ticks[:8])  # guest time is already counted in user time
            busy += sum(ticks[:8]) - idle
    return (busy, total) if total else None


def others_busy_cores(interval: float = 0.25, cpus: Sequence[int] | None = None) -> float | None:
    """How many of ``cpus`` other processes keep busy: their CPU time over ``interval``
    seconds, in cores (this process's own time taken out). ``None`` where ``/proc/stat`` is
    not available."""
    cpus = usable_cores() if cpus is None else list(cpus)
    before, own_before, t0 = _cpu_jiffies(cpus), _own_cpu_seconds(), time.perf_counter()
    time.sleep(interval)
    after, own_after, t1 = _cpu_jiffies(cpus), _own_cpu_seconds(), time.perf_counter()
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy_share = (after[0] - before[0]) / (after[1] - before[1])  # of all cpus' time
    own = (own_after - own_before) / max(t1 - t0, 1e-9)  # cores
    return max(0.0, busy_share * len(cpus) - own)


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def choose_threads(setting: int | str | None = None) -> int:
    """The thread count for ``setting`` (see the module docstring for the precedence).

    Raises:
        ConfigError: a setting that is neither a positive integer nor ``auto``.
    """
    if setting is None:
        setting = os.environ.get(ENV) or ("omp" if os.environ.get("OMP_NUM_THREADS") else "auto")
    if setting == "omp":
        return _positive(os.environ["OMP_NUM_THREADS"], "OMP_NUM_THREADS")
    if setting != "auto":
        return _positive(setting, "the thread setting")
    cores = usable_cores()
    busy = others_busy_cores(cpus=cores)
    if busy is None:
        return len(cores)
    free = len(cores) - busy
    return max(1, min(len(cores), int(free + (1.0 - _FREE_SHARE))))


def _positive(value: int | str, what: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ConfigError(f"{what} must be a positive integer or 'auto', got {value!r}")
    return n


def configure_threads(setting: int | str | None = None) -> int:
    """Set torch's intra-op threads from ``setting`` (default: ``HEPX_THREADS``,
    ``OMP_NUM_THREADS`` or ``auto``); returns the count. Call it before the work starts."""
    import torch

    n = choose_threads(setting)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    log.debug("using %d CPU thread(s)", n)
    return n
