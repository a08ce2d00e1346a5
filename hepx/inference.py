"""The one inference loop: a model (and optionally an explainer) over batches of point clouds.

Validation during training, the evaluation table, ``hepx score`` and ``hepx.load(run)`` all
run :func:`predict`, so a model's scores are the same numbers wherever they are computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hepx.explain.algorithm.base import ExplainerAlgorithm, classifier_of

__all__ = ["Predictions", "is_lri", "predict"]


def is_lri(model: nn.Module) -> bool:
    """Whether ``model`` is an LRI model (it has an extractor and its own point scores)."""
    return hasattr(model, "extractor")


@dataclass
class Predictions:
    """Per-sample and per-point outputs of :func:`predict`, as flat numpy arrays.

    Attributes:
        logits: ``[S]`` the model's logit per sample.
        y: ``[S]`` labels (0/1).
        event_id: ``[S]`` the samples' event ids.
        scores: ``[N]`` point importance (LRI scores or the explainer's; empty without).
        node_label: ``[N]`` ground truth per point.
        batch: ``[N]`` sample index of each point (0..S-1 over the whole loop).
        hit_index: ``[N]`` each point's index in its input.
        sigma: ``[N, d, d]`` LRI-Gaussian noise covariances, or ``None``.
        loss: mean binary cross-entropy of the logits.
        info_loss: mean LRI information loss (0 without LRI).
    """

    logits: np.ndarray
    y: np.ndarray
    event_id: np.ndarray
    scores: np.ndarray
    node_label: np.ndarray
    batch: np.ndarray
    hit_index: np.ndarray
    sigma: np.ndarray | None = None
    loss: float = 0.0
    info_loss: float = 0.0

    @property
    def num_samples(self) -> int:
        return len(self.logits)

    def probabilities(self) -> np.ndarray:
        """``sigmoid(logits)`` in float64, ``[S]``."""
        return 1.0 / (1.0 + np.exp(-self.logits.astype(np.float64)))


_POINT_KEYS = ("scores", "node_label", "batch", "hit_index")
_SAMPLE_KEYS = ("logits", "y", "event_id")


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    device: torch.device | str = "cpu",
    lri: bool = True,
    explainer: ExplainerAlgorithm | None = None,
    progress: bool | None = False,
    desc: str = "predict",
    batch_size: int | None = None,
    max_points: int | None = None,
) -> Predictions:
    """Run ``model`` in eval mode over ``batches`` (e.g. a PyG ``DataLoader``).

    In eval mode every sample's outputs are its own: they do not depend on how the samples are
    batched (up to floating-point summation order).

    Args:
        model: a classifier or an LRI model.
        batches: PyG batches of a hepx dataset, or the dataset itself (a
            ``torch.utils.data.Dataset`` of samples), then batched here in order by
            :func:`hepx.data.batching.make_loader`.
        device: where the model runs.
        lri: for an LRI model, predict with it (scores, ``sigma``, info loss); ``False`` runs
            its classifier alone (the warm-up epochs of training).
        explainer: take the point scores from this algorithm instead of the model's own.
        progress: a progress bar over the batches (``None``: on a terminal or in a notebook).
        desc: the progress bar's label.
        batch_size: for a dataset: samples per batch (default 64), the cap on samples under
            ``max_points``.
        max_points: for a dataset: points per batch at most (a larger sample alone), so that
            memory does not grow with the event size; ``None``: ``batch_size`` samples.

    Returns:
        :class:`Predictions` (``[S]`` per sample, ``[N]`` per point, in the dataset's order).

    Raises:
        ConfigError: ``batch_size`` or ``max_points`` given with batches instead of a dataset.

    Example
    -------
    >>> pred = predict(model, splits["test"], max_points=100_000)   # doctest: +SKIP
    >>> pred.logits.shape, pred.scores.shape                          # doctest: +SKIP
    ((1200,), (40213,))
    """
    from hepx.progress import progress_bar

    batches = _as_batches(batches, batch_size, max_points)
    model.eval()
    use_lri = is_lri(model) and lri
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (*_SAMPLE_KEYS, *_POINT_KEYS, "sigma")}
    losses, infos, n_seen = [], [], 0
    for data in progress_bar(batches, progress=progress, desc=desc, unit="batch"):
        data = data.to(device)
        if use_lri:
            res = model(data)
            logits = res.logits
            infos.append(float(res.info_loss) * data.num_graphs)
            if explainer is None:
                parts["scores"].append(res.node_scores.float().cpu().numpy())
                if res.sigma is not None:
                    parts["sigma"].append(res.sigma.float().cpu().numpy())
        else:
            logits = classifier_of(model)(data)
        if explainer is not None:
            with torch.enable_grad():
                parts["scores"].append(explainer(model, data).numpy())
        losses.append(_append_batch(parts, data, logits, n_seen))
        n_seen += data.num_graphs
    arrays = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    return Predictions(
        **{k: arrays[k] for k in (*_SAMPLE_KEYS, *_POINT_KEYS)},
        sigma=arrays["sigma"] if parts["sigma"] else None,
        loss=float(sum(losses) / max(n_seen, 1)),
        info_loss=float(sum(infos) / max(n_seen, 1)) if infos else 0.0,
    )


def _append_batch(
    parts: dict[str, list[np.ndarray]], data: Any, logits: torch.Tensor, n_seen: int
) -> float:
    """Add a batch's per-sample and per-point arrays to ``parts``; returns its summed
    cross-entropy."""
    y = data.y.view(-1, 1).float()
    parts["logits"].append(logits.view(-1).cpu().numpy())
    parts["y"].append(y.view(-1).cpu().numpy())
    parts["event_id"].append(data.event_id.cpu().numpy())
    parts["node_label"].append(data.node_label.cpu().numpy())
    parts["hit_index"].append(_input_hit_index(data))
    parts["batch"].append(data.batch.cpu().numpy() + n_seen)
    return float(F.binary_cross_entropy_with_logits(logits, y, reduction="sum"))


def _as_batches(batches: Any, batch_size: int | None, max_points: int | None) -> Iterable[Any]:
    """``batches`` as they are, or a dataset batched by ``batch_size`` / ``max_points``."""
    from torch.utils.data import Dataset

    from hepx.errors import ConfigError

    if not isinstance(batches, Dataset):
        if batch_size is not None or max_points is not None:
            raise ConfigError(
                "predict: batch_size / max_points batch a dataset; these are batches already"
            )
        return batches
    from hepx.data.batching import make_loader

    return make_loader(batches, batch_size=batch_size or 64, max_points=max_points)


def _input_hit_index(data: Any) -> np.ndarray:
    """``[N]`` each point's ``hit_index`` as its sample stores it. PyG's collation adds the
    point counts of the preceding samples of the batch to every key named ``*index*`` (as to
    ``edge_index``); that increment is undone here, so the indices do not depend on the
    batching."""
    hit = data.hit_index
    inc = getattr(data, "_inc_dict", None)
    inc = inc.get("hit_index") if isinstance(inc, dict) else None
    if isinstance(inc, torch.Tensor) and inc.numel() and getattr(data, "batch", None) is not None:
        hit = hit - inc.to(hit.device)[data.batch]
    return hit.cpu().numpy()
