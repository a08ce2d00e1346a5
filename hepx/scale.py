"""Scale-out over files with dask.distributed: the same per-file work, run on a cluster.

The executor keeps the input order, so results are identical to the single-process run.
Workers of the default ``LocalCluster`` are single-threaded processes started with
``OMP_NUM_THREADS=1`` (dask's default worker environment), so torch does not oversubscribe
the cores, but without dask's default ``MALLOC_TRIM_THRESHOLD_=65536``: setting it turns off
glibc's dynamic mmap threshold, every large NumPy/torch buffer is then mapped and unmapped
again, which slows ``hepx score`` down on every worker (docs: design decisions). Start
remote workers with the same dask config
(:data:`LOCAL_CLUSTER_CONFIG`, e.g. ``pre-spawn-environ: {MALLOC_TRIM_THRESHOLD_: null}``
under ``distributed.nanny`` in a dask YAML config).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hepx.errors import ConfigError

#: dask config under which :func:`dask_executor` starts its ``LocalCluster`` (see above).
LOCAL_CLUSTER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def local_cluster(workers: int):
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded worker processes."""
    import dask.config
    from distributed import LocalCluster

    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        return LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,  # no dashboard; its bare HTTP server on a free local port:
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        )


@contextlib.contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Keep dask's start-up/shutdown chatter out of hepx's log (errors still shown)."""
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def dask_executor(
    scheduler: str | None = None, *, workers: int = 2
) -> Callable[[Callable, Iterable], list]:
    """Return ``executor(func, items) -> list`` running ``func`` over ``items`` on dask.

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``tcp://host:8786``); ``None`` starts a
        ``distributed.LocalCluster`` with ``workers`` single-threaded worker processes
        for each call of the executor.

    Raises
    ------
    ConfigError
        dask.distributed is not installed, ``workers < 1``, or the scheduler address is
        malformed or unreachable (checked here, before any work is done).
    """
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "the dask executor needs dask.distributed: pip install 'hepx[dask]'"
        ) from None
    if workers < 1:
        raise ConfigError(f"the number of dask workers must be >= 1, got {workers}")
    if scheduler is not None:
        _check_scheduler(scheduler)

    def run(func: Callable[[Any], Any], items: Iterable[Any]) -> list:
        items = list(items)
        with _quiet_dask_logs():
            if scheduler is None:
                with _signals_held() as held:  # a half-started cluster could not be closed
                    cluster = local_cluster(workers)
                with cluster, Client(cluster) as client:
                    _deliver(held)
                    return client.gather(client.map(func, items, pure=False))
            try:
                client = Client(scheduler)
            except (OSError, ValueError) as err:
                raise ConfigError(f"cannot use the dask scheduler {scheduler!r}: {err}") from None
            with client:
                return client.gather(client.map(func, items, pure=False))

    return run


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM (main thread only) for the block; yields the list of those that
    arrived, for :func:`_deliver` once the cluster they would interrupt can be closed."""
    import signal
    import threading

    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    kept = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in kept}
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _deliver(held: list[int]) -> None:
    """Raise the signals :func:`_signals_held` kept, now, to their handlers."""
    import signal

    for signum in held:
        signal.raise_signal(signum)


def _check_scheduler(address: str) -> None:
    """Fail fast, with one clear line, on a malformed or unreachable scheduler address."""
    import dask.config
    from dask.utils import parse_timedelta
    from distributed.comm.addressing import get_address_host_port, parse_address

    try:
        scheme, _ = parse_address(address)
        host, port = get_address_host_port(address)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"bad dask scheduler address {address!r} ({err}); expected e.g. tcp://host:8786"
        ) from None
    if scheme != "tcp":
        return  # tls/ucx/...: left to the dask client
    timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise ConfigError(
            f"cannot reach the dask scheduler at {address} ({err.strerror or err}); "
            "start one (dask scheduler) or use a local cluster (no scheduler address)"
        ) from None
