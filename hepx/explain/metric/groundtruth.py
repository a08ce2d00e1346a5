"""Prediction and interpretation metrics, as reported in the LRI paper (vectorised).

All per-point inputs are flat over a batch of samples with ``batch`` [N] giving each point's
sample index (sorted, as in PyG batches).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def prediction_metrics(logits, y) -> dict[str, float]:
    """ROC AUC and accuracy (threshold logit 0) of per-sample predictions.

    Parameters
    ----------
    logits : array [S] or [S, 1]
    y : array [S] or [S, 1], 0/1 labels
    """
    logits, y = _np(logits).reshape(-1), _np(y).reshape(-1)
    auc = float(roc_auc_score(y, logits)) if len(np.unique(y)) == 2 else float("nan")
    return {"auc": auc, "acc": float(np.mean((logits > 0) == (y > 0.5)))}


def interpretation_roc_auc(scores, node_label, batch, y) -> float:
    """One ROC AUC over all points of the positive samples pooled (the paper's metric).

    As in the LRI reference: the scores of every point of every positive sample enter one
    ROC curve, so scores are compared across samples too (not the mean of per-sample AUCs,
    which is :func:`per_sample_interpretation_auc`).

    Parameters
    ----------
    scores : array [N], importance per point (higher = more important)
    node_label : array [N], ground-truth 0/1 per point
    batch : array [N], sample index of each point
    y : array [S], sample labels; only points of samples with ``y == 1`` count
    """
    scores, node_label, batch, y = (_np(a).reshape(-1) for a in (scores, node_label, batch, y))
    keep = y[batch] > 0.5
    lab = node_label[keep] > 0
    if lab.all() or not lab.any():
        return float("nan")
    return float(roc_auc_score(lab, scores[keep]))


def _top_k_hits(scores, node_label, batch, y, ks: Sequence[int], capped: bool) -> dict[int, float]:
    scores, node_label, batch, y = (_np(a).reshape(-1) for a in (scores, node_label, batch, y))
    n_samples = len(y)
    # rank of each point inside its sample, by decreasing score (ties: point order)
    order = np.lexsort((-scores.astype(np.float64), batch))
    counts = np.bincount(batch, minlength=n_samples)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(scores), dtype=np.int64)
    rank[order] = np.arange(len(scores)) - start[batch[order]]
    n_true = np.bincount(batch, weights=(node_label > 0), minlength=n_samples)
    valid = (y > 0.5) & (n_true > 0) & (n_true < counts)
    out = {}
    for k in ks:
        if int(k) < 1:
            raise ValueError(f"precision@k needs k >= 1, got {k}")
        hits = np.bincount(batch, weights=(node_label > 0) & (rank < k), minlength=n_samples)
        denominator = np.maximum(np.minimum(k, counts), 1) if capped else k
        out[int(k)] = float((hits / denominator)[valid].mean()) if valid.any() else float("nan")
    return out


def precision_at_k(scores, node_label, batch, y, ks: Sequence[int]) -> dict[int, float]:
    """Precision@k as published: mean over positive samples of ``(ground-truth points among the
    k highest scores) / k``.

    This is the LRI paper's definition (and xgdl's): the denominator is ``k`` even when a
    sample has fewer than ``k`` points, so such a sample cannot reach 1. Samples whose points
    are all ground truth or all not are skipped, as in the reference. Ties are broken by point
    order. :func:`capped_precision_at_k` is the variant that divides by ``min(k, n)``.

    Parameters
    ----------
    scores : array [N], importance per point (higher = more important)
    node_label : array [N], ground-truth 0/1 per point
    batch : array [N], sample index of each point (sorted)
    y : array [S], sample labels; only samples with ``y == 1`` count
    ks : the values of k

    Returns
    -------
    ``{k: precision}`` (NaN when no sample counts).

    Example
    -------
    >>> precision_at_k([0.9, 0.8, 0.1], [1, 0, 0], [0, 0, 0], [1], ks=[2, 5])
    {2: 0.5, 5: 0.2}
    """
    return _top_k_hits(scores, node_label, batch, y, ks, capped=False)


def capped_precision_at_k(scores, node_label, batch, y, ks: Sequence[int]) -> dict[int, float]:
    """A variant of :func:`precision_at_k` (not the published metric): a sample with
    ``n < k`` points divides by ``n``, so its precision is the fraction of its points that are
    ground truth. Arguments as :func:`precision_at_k`.

    Example
    -------
    >>> capped_precision_at_k([0.9, 0.8, 0.1], [1, 0, 0], [0, 0, 0], [1], ks=[2, 5])
    {2: 0.5, 5: 0.3333333333333333}
    """
    return _top_k_hits(scores, node_label, batch, y, ks, capped=True)


def per_sample_interpretation_auc(scores, node_label, batch, y) -> float:
    """Mean over positive samples (with both point classes) of each sample's own ROC AUC.

    Computed through the Mann-Whitney statistic on within-sample ranks (average ranks for ties).
    """
    from scipy.stats import rankdata

    scores, node_label, batch, y = (_np(a).reshape(-1) for a in (scores, node_label, batch, y))
    n_samples = len(y)
    # within-sample average ranks: rank globally on (batch, score), then subtract offsets
    key = batch.astype(np.float64) * (np.abs(scores).max() * 4 + 4) + scores.astype(np.float64)
    ranks = rankdata(key)
    counts = np.bincount(batch, minlength=n_samples)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ranks = ranks - start[batch]
    pos = node_label > 0
    n_pos = np.bincount(batch, weights=pos, minlength=n_samples)
    n_neg = counts - n_pos
    sum_pos_ranks = np.bincount(batch, weights=np.where(pos, ranks, 0.0), minlength=n_samples)
    valid = (y > 0.5) & (n_pos > 0) & (n_neg > 0)
    auc = (sum_pos_ranks - n_pos * (n_pos + 1) / 2) / np.maximum(n_pos * n_neg, 1)
    return float(auc[valid].mean()) if valid.any() else float("nan")
