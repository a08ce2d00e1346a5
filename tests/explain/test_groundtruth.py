"""Ground-truth metrics against their published definitions, by hand and by a plain loop."""

import numpy as np
import pytest

from hepx.explain.metric.groundtruth import (
    capped_precision_at_k,
    interpretation_roc_auc,
    per_sample_interpretation_auc,
    precision_at_k,
)


def _reference_precision(scores, labels, batch, y, k):
    """The LRI reference's rule, one sample at a time: top-k by score, hits / k, samples whose
    points are all or none ground truth skipped, only positive samples."""
    values = []
    for s in np.unique(batch):
        sel = batch == s
        lab, sc = labels[sel], scores[sel]
        if y[s] < 0.5 or lab.sum() == 0 or lab.sum() == len(lab):
            continue
        top = np.argsort(-sc, kind="stable")[:k]
        values.append(lab[top].sum() / k)
    return float(np.mean(values))


def test_precision_at_k_divides_by_k_even_for_small_samples():
    # sample 0: 5 points, ground truth at 0 and 3; top-2 by score = points 3 and 1 -> 1 hit
    # sample 1: 2 points, one ground truth, ranked first -> 1 hit
    # sample 2: negative, ignored; sample 3: all ground truth, skipped
    scores = np.array([0.2, 0.8, 0.1, 0.9, 0.0, 0.7, 0.3, 0.5, 0.6, 0.4, 0.3])
    labels = np.array([1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 1])
    batch = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3])
    y = np.array([1, 1, 0, 1])
    got = precision_at_k(scores, labels, batch, y, ks=[2, 3])
    assert got[2] == pytest.approx((1 / 2 + 1 / 2) / 2)
    # k = 3: sample 0 top-3 = 3, 1, 0 -> 2 hits; sample 1 has 2 points, 1 hit, still / 3
    assert got[3] == pytest.approx((2 / 3 + 1 / 3) / 2)
    capped = capped_precision_at_k(scores, labels, batch, y, ks=[3])
    assert capped[3] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_precision_at_k_matches_the_reference_rule_on_random_clouds():
    rng = np.random.default_rng(7)
    sizes = rng.integers(2, 15, size=40)
    batch = np.repeat(np.arange(40), sizes)
    scores = rng.normal(size=len(batch))
    labels = (rng.random(len(batch)) < 0.3).astype(int)
    y = (rng.random(40) < 0.7).astype(int)
    got = precision_at_k(scores, labels, batch, y, ks=[3, 7, 10])
    for k in (3, 7, 10):
        assert got[k] == pytest.approx(_reference_precision(scores, labels, batch, y, k))


def test_precision_at_k_rejects_k_below_one():
    with pytest.raises(ValueError, match="k >= 1"):
        precision_at_k([1.0, 0.0], [1, 0], [0, 0], [1], ks=[0])


def test_interpretation_auc_pools_points_across_samples():
    # each sample alone is ranked perfectly (per-sample AUC 1), but sample 1's scores all lie
    # below sample 0's: pooled, its ground-truth point (0.3) is below sample 0's background
    # point (0.5). Pairs (gt, bg): (0.9,0.5) (0.9,0.1) (0.3,0.5) (0.3,0.1) -> 3 of 4 ordered.
    scores = np.array([0.9, 0.5, 0.3, 0.1, 5.0, 6.0])
    labels = np.array([1, 0, 1, 0, 1, 0])
    batch = np.array([0, 0, 1, 1, 2, 2])
    y = np.array([1, 1, 0])  # sample 2 is negative: its inverted ranking must not count
    assert interpretation_roc_auc(scores, labels, batch, y) == pytest.approx(0.75)
    assert per_sample_interpretation_auc(scores, labels, batch, y) == pytest.approx(1.0)
