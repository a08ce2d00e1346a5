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
) -> Predictions:
    """Run ``model`` in eval mode over ``batches`` (e.g. a PyG ``DataLoader``).

    Args:
        model: a classifier or an LRI model.
        batches: PyG batches of a hepx dataset.
        device: where the model runs.
        lri: for an LRI model, predict with it (scores, ``sigma``, info loss); ``False`` runs
            its classifier alone (the warm-up epochs of training).
        explainer: take the point scores from this algorithm instead of the model's own.
        progress: a progress bar over the batches (``None``: on a terminal or in a notebook).
        desc: the progress bar's label.

    Returns:
        :class:`Predictions`.
    """
    from hepx.progress import progress_bar

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
        y = data.y.view(-1, 1).float()
        losses.append(float(F.binary_cross_entropy_with_logits(logits, y, reduction="sum")))
        parts["logits"].append(logits.view(-1).cpu().numpy())
        parts["y"].append(y.view(-1).cpu().numpy())
        parts["event_id"].append(data.event_id.cpu().numpy())
        parts["node_label"].append(data.node_label.cpu().numpy())
        parts["hit_index"].append(data.hit_index.cpu().numpy())
        parts["batch"].append(data.batch.cpu().numpy() + n_seen)
        n_seen += data.num_graphs
    arrays = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    return Predictions(
        **{k: arrays[k] for k in (*_SAMPLE_KEYS, *_POINT_KEYS)},
        sigma=arrays["sigma"] if parts["sigma"] else None,
        loss=float(sum(losses) / max(n_seen, 1)),
        info_loss=float(sum(infos) / max(n_seen, 1)) if infos else 0.0,
    )
