"""Batches capped by a point budget instead of an event count.

A batch of 128 events of 1,000 hits costs about ten times the memory of 128 events of 100
hits: memory follows the points (and the graph edges, at most ``k`` per point for kNN and
radius graphs), not the events. :class:`PointBudgetBatchSampler` packs samples, in order,
into batches of at most ``max_points`` points (and at most ``max_samples`` samples); a sample
larger than the budget forms a batch alone. Peak memory then depends on the budget, not on
the event size, except for such single oversized samples.

Packing is greedy and keeps the given order (after a seeded shuffle when training), so the
batches are reproducible. Point counts come from the dataset's ``ptr`` offsets (PyG's
``slices``), read once; no Python loop over the samples.

Example
-------
>>> sampler = PointBudgetBatchSampler([5, 3, 9, 2, 20, 1], max_points=10)
>>> list(sampler)
[[0, 1], [2], [3], [4], [5]]
>>> loader = make_loader(dataset, batch_size=128, max_points=50_000)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from hepx.errors import ConfigError

__all__ = [
    "PointBudgetBatchSampler",
    "batch_sizes",
    "check_budget",
    "make_loader",
    "pack_by_points",
    "point_counts",
]


def point_counts(dataset: Any) -> np.ndarray:
    """Points per sample, ``[S]`` int64, from the dataset's offsets.

    Accepts a sequence or array of counts (returned as int64), a
    :class:`~hepx.data.dataset.PointCloudArrays` (``diff(ptr)``), a PyG ``InMemoryDataset``
    such as :class:`~hepx.data.dataset.PointCloudDataset`, index-selected views included
    (``diff(slices["pos"])`` at the view's indices), or a ``torch.utils.data.Subset`` of one.
    Any other dataset is asked for ``dataset[i].num_nodes`` once per sample (a Python loop,
    run once, not per epoch).

    Example
    -------
    >>> point_counts([3, 0, 2]).tolist()
    [3, 0, 2]
    >>> point_counts(splits["train"])  # doctest: +SKIP
    array([17, 12, 25, ...])
    """
    from torch.utils.data import Dataset, Subset

    if isinstance(dataset, Subset):
        return point_counts(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    ptr = getattr(dataset, "ptr", None)
    if isinstance(ptr, np.ndarray) and hasattr(dataset, "point"):  # PointCloudArrays
        return np.diff(ptr).astype(np.int64)
    slices = getattr(dataset, "slices", None)
    if isinstance(slices, dict) and "pos" in slices:
        counts = np.diff(slices["pos"].numpy()).astype(np.int64)
        indices = getattr(dataset, "_indices", None)
        return counts if indices is None else counts[np.asarray(dataset.indices(), np.int64)]
    if isinstance(dataset, Dataset):
        return np.array([dataset[i].num_nodes for i in range(len(dataset))], dtype=np.int64)
    return np.asarray(dataset, dtype=np.int64).reshape(-1)


def pack_by_points(
    counts: np.ndarray, max_points: int, max_samples: int | None = None
) -> list[np.ndarray]:
    """Greedy packing of consecutive samples: a batch takes the next samples while its point
    total stays ``<= max_points`` and it holds at most ``max_samples`` of them; a sample with
    more than ``max_points`` points forms a batch alone.

    Args:
        counts: ``[S]`` points per sample, in the order to pack.
        max_points: the point budget per batch (>= 1).
        max_samples: the most samples per batch (``None``: no cap).

    Raises:
        ConfigError: ``max_points`` or ``max_samples`` is not an integer >= 1.

    Returns:
        Position arrays into ``counts`` (``[b_i]`` each, consecutive, covering ``0..S-1``).

    Example
    -------
    >>> [b.tolist() for b in pack_by_points(np.array([5, 3, 9, 2, 20, 1]), 10)]
    [[0, 1], [2], [3], [4], [5]]
    >>> [b.tolist() for b in pack_by_points(np.array([1, 1, 1, 1, 1]), 10, max_samples=2)]
    [[0, 1], [2, 3], [4]]
    """
    check_budget(max_points, max_samples)
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    if n == 0:
        return []
    cum = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=cum[1:])
    cap = n if max_samples is None else max_samples
    bounds = [0]
    start = 0
    while start < n:  # one iteration per batch, not per sample
        stop = int(np.searchsorted(cum, cum[start] + max_points, side="right")) - 1
        start = min(max(stop, start + 1), start + cap, n)
        bounds.append(start)
    return np.split(np.arange(n, dtype=np.int64), bounds[1:-1])


def check_budget(max_points: Any, max_samples: Any = None) -> None:
    """Raise :class:`~hepx.errors.ConfigError` unless both are integers >= 1 (``max_samples``
    may be ``None``: no cap).

    Example
    -------
    >>> check_budget(100_000, 128)
    >>> check_budget(0)
    Traceback (most recent call last):
    hepx.errors.ConfigError: max_points must be an integer >= 1, got 0
    """
    for name, value in (("max_points", max_points), ("max_samples", max_samples)):
        if value is None and name == "max_samples":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")


class PointBudgetBatchSampler(Sampler[list[int]]):
    """Batches of sample indices with at most ``max_points`` points each (a larger sample
    alone), for ``DataLoader(dataset, batch_sampler=...)`` (PyG's or torch's with PyG's
    ``Collater``).

    Without ``shuffle`` the samples are packed in index order, the same every epoch. With it,
    every epoch packs a permutation drawn from ``(seed, epoch)`` (:meth:`set_epoch`, as
    ``DistributedSampler``): reproducible, different from epoch to epoch, and the same on every
    process. With ``num_replicas`` processes the epoch's batches are dealt round-robin: rank
    ``r`` gets batches ``r, r + num_replicas, ...``; when their number is not a multiple of
    ``num_replicas`` the first batches are dealt again to the ranks short of one, so that every
    rank runs the same number of steps (``DistributedSampler`` pads its samples the same way).

    Args:
        dataset: what :func:`point_counts` accepts (a dataset or the counts themselves).
        max_points: points per batch (>= 1).
        max_samples: samples per batch at most (``None``: no cap), e.g. ``train.batch_size``.
        shuffle: draw a new order every epoch.
        seed: the seed of the shuffles.
        num_replicas: processes sharing the batches (DDP world size).
        rank: this process.

    Example
    -------
    >>> s = PointBudgetBatchSampler([5, 3, 9, 2, 20, 1], max_points=10, num_replicas=2, rank=1)
    >>> list(s), len(s)
    ([[2], [4], [0, 1]], 3)
    """

    def __init__(
        self,
        dataset: Any,
        max_points: int,
        *,
        max_samples: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ConfigError(f"rank must be in [0, {num_replicas}), got {rank}")
        check_budget(max_points, max_samples)
        self.counts = point_counts(dataset)
        self.max_points, self.max_samples = int(max_points), max_samples
        self.shuffle, self.seed = shuffle, int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration packs (only matters with ``shuffle``)."""
        self.epoch = int(epoch)

    def order(self) -> np.ndarray:
        """``[S]`` the sample indices in packing order for the current epoch."""
        n = len(self.counts)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def epoch_batches(self) -> list[np.ndarray]:
        """All processes' batches of the current epoch (index arrays), before dealing."""
        order = self.order()
        packed = pack_by_points(self.counts[order], self.max_points, self.max_samples)
        return [order[b] for b in packed]

    def _batches(self) -> list[list[int]]:
        key = self.epoch if self.shuffle else 0
        if self._cache is None or self._cache[0] != key:
            every = self.epoch_batches()
            if every and len(every) % self.num_replicas:
                pad = self.num_replicas - len(every) % self.num_replicas
                every = every + [every[i % len(every)] for i in range(pad)]
            mine = every[self.rank :: self.num_replicas]
            self._cache = (key, [b.tolist() for b in mine])
        return self._cache[1]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())

    def __repr__(self) -> str:
        return (
            f"PointBudgetBatchSampler(samples={len(self.counts)}, max_points={self.max_points}, "
            f"max_samples={self.max_samples}, shuffle={self.shuffle})"
        )


def make_loader(
    dataset: Any,
    *,
    batch_size: int,
    max_points: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    **loader_kw: Any,
):
    """A PyG ``DataLoader`` over ``dataset``: ``batch_size`` samples per batch when
    ``max_points`` is ``None`` (a plain loader, unshuffled; shuffled loaders without a budget
    are the caller's), else a :class:`PointBudgetBatchSampler` with ``batch_size`` as the cap
    on samples.

    Args:
        dataset: a PyG dataset of samples.
        batch_size: samples per batch (the cap under a budget).
        max_points: the point budget per batch, or ``None``.
        shuffle, seed, epoch, num_replicas, rank: the sampler's (with a budget).
        loader_kw: more ``DataLoader`` arguments (e.g. ``num_workers``).

    Example
    -------
    >>> loader = make_loader(splits["val"], batch_size=256, max_points=200_000)  # doctest: +SKIP
    >>> max(b.num_nodes for b in loader if b.num_graphs > 1) <= 200_000  # doctest: +SKIP
    True
    """
    from torch_geometric.loader import DataLoader

    if max_points is None:
        if shuffle:
            raise ValueError("make_loader shuffles only under a point budget")
        return DataLoader(dataset, batch_size=batch_size, **loader_kw)
    sampler = PointBudgetBatchSampler(
        dataset,
        max_points,
        max_samples=batch_size,
        shuffle=shuffle,
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
    )
    sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_sampler=sampler, **loader_kw)


def batch_sizes(loader: Iterable[Any]) -> list[tuple[int, int]]:
    """``(samples, points)`` of each batch of ``loader`` (for checks and logs).

    Example
    -------
    >>> batch_sizes(make_loader(ds, batch_size=4, max_points=100))  # doctest: +SKIP
    [(4, 91), (3, 97), (1, 130)]
    """
    return [(int(b.num_graphs), int(b.num_nodes)) for b in loader]
