"""Scale-out over files with dask.distributed: the same per-file work, run on a cluster.

The executor keeps the input order, so results are identical to the single-process run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def dask_executor(
    scheduler: str | None = None, *, workers: int = 2
) -> Callable[[Callable, Iterable], list]:
    """Return ``executor(func, items) -> list`` running ``func`` over ``items`` on dask.

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``tcp://host:8786``); ``None`` starts a
        ``distributed.LocalCluster`` with ``workers`` single-threaded worker processes.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the environment
        from hepx.errors import ConfigError

        raise ConfigError(
            "--executor dask needs dask.distributed: pip install 'hepx[dask]'"
        ) from None

    def run(func: Callable[[Any], Any], items: Iterable[Any]) -> list:
        items = list(items)
        if scheduler is None:
            with (
                LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                Client(cluster) as client,
            ):
                return client.gather(client.map(func, items, pure=False))
        with Client(scheduler) as client:
            return client.gather(client.map(func, items, pure=False))

    return run
