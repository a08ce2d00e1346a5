"""Keep large freed buffers in the process (glibc's malloc), so that a step does not map,
fault in and unmap its big tensors again every time.

glibc serves an allocation above its *mmap threshold* with a fresh ``mmap`` and unmaps it on
``free``; the threshold adapts upwards only to 32 MiB. A training or scoring step on events
of thousands of hits allocates many buffers larger than that (edge tensors ``[E, C]``), and
every one of them then costs a page fault per 4 KiB page on first touch and an ``munmap``
afterwards: system time that grows with the event size. :func:`tune_allocator` raises the
mmap threshold and the trim threshold (how much free memory at the top of the heap is kept
rather than returned) so that freed buffers are reused. The cost: the process keeps up to its
peak memory mapped until it exits, instead of returning it between steps.

``hepx`` commands call it when they start; Python users may call it themselves. It is a no-op
(returns ``False``) where the C library is not glibc, and ``HEPX_MALLOC=default`` leaves the
allocator alone.

Example
-------
>>> import hepx.allocator
>>> hepx.allocator.tune_allocator()        # doctest: +SKIP
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("hepx")

__all__ = ["ENV", "tune_allocator"]

#: Environment variable: ``default`` leaves glibc's allocator settings as they are.
ENV = "HEPX_MALLOC"
# mallopt parameters of glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations up to this size come from the heap and are reused after ``free``.
MMAP_THRESHOLD = 1 << 30
#: Free memory at the top of the heap kept rather than returned to the operating system.
TRIM_THRESHOLD = 1 << 30


def tune_allocator(
    mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Raise glibc's mmap and trim thresholds for this process (and the processes it forks).

    Args:
        mmap_threshold: bytes; larger allocations still get their own mapping.
        trim_threshold: bytes of free heap top kept mapped.

    Both are C ``int`` values (below 2 GiB).

    Returns:
        ``True`` if the settings were applied (glibc, not turned off by ``HEPX_MALLOC``).
    """
    if os.environ.get(ENV, "").strip().lower() == "default":
        return False
    libc = _glibc()
    if libc is None:
        return False
    if not (0 < mmap_threshold < 2**31 and 0 < trim_threshold < 2**31):
        raise ValueError("the thresholds are C int byte counts: 1 to 2**31 - 1")
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)))
    ok = bool(libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))) and ok
    if not ok:
        log.debug("mallopt refused the thresholds; glibc's defaults stay")
    return ok


def _glibc() -> ctypes.CDLL | None:
    """The process's C library if it is glibc (it has ``gnu_get_libc_version``), else None."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
