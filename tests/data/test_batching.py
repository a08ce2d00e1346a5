"""Batches by points (hepx.data.batching): hand-made packings, coverage, seeded shuffles, DDP
shares, the budget as a bound on every batch but single oversized samples, and the loaders."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader as TorchLoader
from torch.utils.data import Subset
from torch_geometric.loader import DataLoader
from torch_geometric.loader.dataloader import Collater

from hepx.data.batching import (
    PointBudgetBatchSampler,
    batch_sizes,
    make_loader,
    pack_by_points,
    point_counts,
)
from hepx.data.dataset import PointCloudArrays, PointCloudDataset
from hepx.errors import ConfigError

SIZES = [5, 3, 9, 2, 20, 1]


def _dataset(sizes) -> PointCloudDataset:
    """Samples of the given point counts; ``event_id`` = the sample's index."""
    sizes = np.asarray(sizes, dtype=np.int64)
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    n, s = int(ptr[-1]), len(sizes)
    rng = np.random.default_rng(0)
    arrays = PointCloudArrays(
        ptr=ptr,
        point={
            "pos": rng.normal(size=(n, 3)).astype(np.float32),
            "x": np.zeros((n, 0), np.float32),
            "node_label": np.zeros(n, np.int8),
            "hit_index": np.arange(n),
        },
        sample={"y": np.zeros(s), "event_id": np.arange(s), "source_file": np.zeros(s, int)},
        meta={"kind": "generic", "pos_dim": 3, "x_dim": 0},
    )
    return PointCloudDataset(arrays)


def _lists(batches):
    return [list(map(int, b)) for b in batches]


def test_hand_made_packings():
    # 5+3 = 8 (+9 > 10) | 9 (+2 > 10) | 2 (+20 > 10) | 20 > 10 alone | 1
    assert _lists(pack_by_points(np.array(SIZES), 10)) == [[0, 1], [2], [3], [4], [5]]
    assert list(PointBudgetBatchSampler(SIZES, max_points=10)) == [[0, 1], [2], [3], [4], [5]]
    # exactly at the budget stays in; zero-point samples cost nothing
    assert _lists(pack_by_points(np.array([4, 4, 2, 5, 5, 10, 0]), 10)) == [
        [0, 1, 2],
        [3, 4],
        [5, 6],
    ]
    # the cap on samples cuts first when the points allow more
    assert _lists(pack_by_points(np.ones(5, int), 10, max_samples=2)) == [[0, 1], [2, 3], [4]]
    # a budget above the total: one batch (with the cap: batch_size samples)
    assert _lists(pack_by_points(np.array(SIZES), 1000)) == [[0, 1, 2, 3, 4, 5]]
    assert _lists(pack_by_points(np.array(SIZES), 1000, max_samples=4)) == [[0, 1, 2, 3], [4, 5]]
    # every sample larger than the budget: one batch each
    assert _lists(pack_by_points(np.array(SIZES), 1)) == [[0], [1], [2], [3], [4], [5]]
    assert pack_by_points(np.zeros(0, int), 10) == []
    assert list(PointBudgetBatchSampler([], max_points=10)) == []


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, None])
def test_bad_budgets(bad):
    with pytest.raises(ConfigError, match="max_points must be an integer >= 1"):
        PointBudgetBatchSampler(SIZES, max_points=bad)
    with pytest.raises(ConfigError, match="max_samples must be an integer >= 1"):
        pack_by_points(np.array(SIZES), 10, max_samples=0)
    with pytest.raises(ConfigError, match=r"rank must be in \[0, 2\)"):
        PointBudgetBatchSampler(SIZES, max_points=10, num_replicas=2, rank=2)


def _random_sizes(n=500, seed=1):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 60, n)
    sizes[rng.choice(n, 10, replace=False)] = rng.integers(300, 900, 10)  # oversized events
    return sizes


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_index_once_and_no_batch_over_budget_but_single_samples(shuffle):
    sizes = _random_sizes()
    budget, cap = 200, 16
    sampler = PointBudgetBatchSampler(sizes, budget, max_samples=cap, shuffle=shuffle, seed=4)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(sampler) == len(batches)
        assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
        for b in batches:
            assert len(b) <= cap
            assert sizes[b].sum() <= budget or len(b) == 1
        # greedy: no batch could have taken the next sample of the packing order
        order = [i for b in batches for i in b]
        ends = np.cumsum([len(b) for b in batches])[:-1]
        for b, nxt in zip(batches, (order[e] for e in ends), strict=False):
            assert len(b) == cap or sizes[b].sum() + sizes[nxt] > budget
        assert sum(sizes[b].sum() > budget for b in batches) == (sizes > budget).sum()


def test_unshuffled_order_is_the_index_order_every_epoch():
    sizes = _random_sizes()
    sampler = PointBudgetBatchSampler(sizes, 150)
    first = list(sampler)
    assert [i for b in first for i in b] == list(range(len(sizes)))
    sampler.set_epoch(5)
    assert list(sampler) == first
    assert list(PointBudgetBatchSampler(sizes, 150)) == first


def test_seeded_shuffles_reproducible_and_different_across_epochs():
    sizes = _random_sizes()

    def epoch(seed, e):
        s = PointBudgetBatchSampler(sizes, 150, shuffle=True, seed=seed)
        s.set_epoch(e)
        return list(s)

    assert epoch(7, 0) == epoch(7, 0)
    assert epoch(7, 3) == epoch(7, 3)
    assert epoch(7, 0) != epoch(7, 1)
    assert epoch(7, 0) != epoch(8, 0)
    # the order is a permutation packed in order: no reordering beyond the shuffle
    s = PointBudgetBatchSampler(sizes, 150, shuffle=True, seed=7)
    s.set_epoch(2)
    assert [i for b in s for i in b] == s.order().tolist()


def test_ddp_shares_hand_made():
    # 5 batches [[0, 1], [2], [3], [4], [5]] dealt to 2 ranks; rank 1 is one short and gets the
    # first batch again, so both run 3 steps
    shares = [list(PointBudgetBatchSampler(SIZES, 10, num_replicas=2, rank=r)) for r in (0, 1)]
    assert shares == [[[0, 1], [3], [5]], [[2], [4], [0, 1]]]


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ddp_shares_disjoint_covering_and_equal_in_steps(world):
    sizes = _random_sizes()
    samplers = [
        PointBudgetBatchSampler(
            sizes, 150, max_samples=8, shuffle=True, seed=2, num_replicas=world, rank=r
        )
        for r in range(world)
    ]
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        shares = [list(s) for s in samplers]
        every = [list(map(int, b)) for b in samplers[0].epoch_batches()]
        n = len(every)
        assert {len(sh) for sh in shares} == {-(-n // world)}  # the same steps on every rank
        dealt = [b for step in zip(*shares, strict=True) for b in step]  # round-robin order
        assert dealt[:n] == every  # each batch of the epoch exactly once ...
        assert dealt[n:] == every[: len(dealt) - n]  # ... then the padding: the first ones
        unique = [i for b in dealt[:n] for i in b]
        assert sorted(unique) == list(range(len(sizes)))  # disjoint and covering
        # every rank sees the same epoch (the shuffle does not depend on the rank)
        assert all(s.order().tolist() == samplers[0].order().tolist() for s in samplers)


def test_point_counts_from_datasets_and_views():
    ds = _dataset(SIZES)
    assert point_counts(ds).tolist() == SIZES
    assert point_counts(SIZES).tolist() == SIZES
    view = ds.index_select(torch.tensor([4, 0, 2]))
    assert point_counts(view).tolist() == [20, 5, 9]
    assert point_counts(view.index_select(torch.tensor([2, 0]))).tolist() == [9, 20]
    assert point_counts(Subset(ds, [1, 4])).tolist() == [3, 20]

    class Plain(torch.utils.data.Dataset):  # no offsets: asked once per sample
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            return ds[i]

    assert point_counts(Plain()).tolist() == SIZES


def test_loaders_pyg_and_torch_collater_and_the_budget_in_points():
    ds = _dataset(SIZES)
    sampler = PointBudgetBatchSampler(ds, 10)
    pyg = list(DataLoader(ds, batch_sampler=sampler))
    torch_ = list(TorchLoader(ds, batch_sampler=sampler, collate_fn=Collater(ds)))
    assert [b.event_id.tolist() for b in pyg] == [[0, 1], [2], [3], [4], [5]]
    assert [b.event_id.tolist() for b in torch_] == [[0, 1], [2], [3], [4], [5]]
    assert batch_sizes(pyg) == [(2, 8), (1, 9), (1, 2), (1, 20), (1, 1)]
    # a view: indices into the view, point counts of the view's samples
    view = ds.index_select(torch.tensor([4, 5, 1, 3]))
    loader = make_loader(view, batch_size=8, max_points=10)
    assert [b.event_id.tolist() for b in loader] == [[4], [5, 1, 3]]
    # no budget: the plain loader of batch_size samples
    plain = make_loader(ds, batch_size=4)
    assert [b.event_id.tolist() for b in plain] == [[0, 1, 2, 3], [4, 5]]
    with pytest.raises(ValueError, match="shuffles only under a point budget"):
        make_loader(ds, batch_size=4, shuffle=True)


def test_peak_points_bounded_by_the_budget():
    """Memory follows the largest batch: its point count never exceeds the budget unless it is
    one sample, whatever the event sizes."""
    sizes = _random_sizes(n=300, seed=3)
    ds = _dataset(sizes)
    budget = 250
    loader = make_loader(ds, batch_size=64, max_points=budget, shuffle=True, seed=0, epoch=1)
    got = batch_sizes(loader)
    assert sum(s for s, _ in got) == len(sizes)
    assert max(p for s, p in got if s > 1) <= budget
    assert max(p for _, p in got) == sizes.max()  # the largest event, alone
    # event-count batches of the same data reach many times the budget
    assert max(p for _, p in batch_sizes(make_loader(ds, batch_size=64))) > 4 * budget
