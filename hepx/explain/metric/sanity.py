"""Sanity checks of explanations.

* :func:`model_randomisation` (Adebayo et al. 2018): re-initialise the classifier's weights,
  cascading from the output layer down to the input (or all at once); a faithful explanation
  must change, i.e. the rank correlation with the original explanation should drop towards 0.
* :func:`model_perturbation` (Rahman et al., arXiv 2206.05903): add small Gaussian noise to the
  weights, scaled so that the accuracy stays within a tolerance; a faithful explanation should
  stay similar (rank correlation near 1).

Both return per-sample mean similarities (Spearman and cosine with the ``1e-4`` offset).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data.data import BaseData

from hepx.explain.algorithm.base import ExplainerAlgorithm, classifier_of, point_inputs
from hepx.explain.metric.robustness import cosine_per_sample, spearman_per_sample

__all__ = ["model_perturbation", "model_randomisation", "reinit_blocks"]


def reinit_blocks(model: nn.Module) -> list[list[nn.Module]]:
    """The model's re-initialisable modules grouped in blocks from the output to the input:
    the head (and an LRI extractor), then each message-passing layer from the last to the
    first, then the node encoder."""
    clf = classifier_of(model)
    blocks: list[list[nn.Module]] = [[clf.head]]
    if hasattr(model, "extractor"):
        blocks[0].append(model.extractor)
    bb = clf.backbone
    for conv, norm in reversed(list(zip(bb.convs, bb.norms, strict=True))):
        blocks.append([conv, norm])
    blocks.append([bb.node_encoder])
    return blocks


def _reinit(module: nn.Module, gen: torch.Generator) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / np.sqrt(m.in_features)
            with torch.no_grad():
                m.weight.copy_(torch.empty_like(m.weight).uniform_(-bound, bound, generator=gen))
                if m.bias is not None:
                    m.bias.copy_(torch.empty_like(m.bias).uniform_(-bound, bound, generator=gen))
        elif isinstance(m, nn.BatchNorm1d):
            m.reset_parameters()
    for name, p in module.named_parameters(recurse=False):
        if name == "constant":  # the feature-less node encoder's learned constant
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def _similarity(e0, e1, batch) -> dict[str, float]:
    return {
        "spearman": float(spearman_per_sample(e1, e0, batch).mean()),
        "cosine": float(cosine_per_sample(e1, e0, batch).mean()),
    }


def model_randomisation(
    explainer: ExplainerAlgorithm,
    model: nn.Module,
    data: BaseData,
    *,
    mode: str = "cascading",
    seed: int = 0,
    fit_loader=None,
    fit_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Similarity of explanations before / after re-initialising the weights.

    Args:
        explainer: an explainer (already fit if it needs it). Parametric explainers are
            re-fit on ``fit_loader`` for every randomised model when given (otherwise their
            trained mask network is reused on the new embeddings).
        model: the trained classifier (or LRI model; its extractor belongs to the first block).
        data: a batch to explain.
        mode: ``"cascading"`` (re-initialise block after block from the output, report every
            stage) or ``"full"`` (everything at once).
        seed: seed of the new weights.

    Returns:
        ``{"spearman", "cosine"}`` of the fully randomised model (expected: low), and
        ``"stages"``: a list of ``{"blocks", "spearman", "cosine"}`` (cascading mode).
    """
    if mode not in ("cascading", "full"):
        raise ValueError(f"mode must be 'cascading' or 'full', got {mode!r}")
    batch = point_inputs(data).batch
    e0 = explainer(model, data).scores
    rand = copy.deepcopy(model)
    blocks = reinit_blocks(rand)
    gen = torch.Generator().manual_seed(seed)
    stages = []
    groups = [[m for b in blocks for m in b]] if mode == "full" else blocks
    for i, group in enumerate(groups):
        for m in group:
            _reinit(m, gen)
        if fit_loader is not None and explainer.requires_fit:
            explainer = copy.deepcopy(explainer).fit(rand, fit_loader, **(fit_kwargs or {}))
        e1 = explainer(rand, data).scores
        stages.append(
            {"blocks": i + 1 if mode == "cascading" else len(blocks), **_similarity(e0, e1, batch)}
        )
    return {**{k: stages[-1][k] for k in ("spearman", "cosine")}, "stages": stages, "mode": mode}


@torch.no_grad()
def _accuracy(model: nn.Module, data: BaseData) -> float:
    model.eval()
    out = model(data)
    logits = getattr(out, "logits", out).view(-1)
    return float(((logits > 0) == (data.y.view(-1) > 0.5)).float().mean())


def model_perturbation(
    explainer: ExplainerAlgorithm,
    model: nn.Module,
    data: BaseData,
    *,
    noise: float = 0.05,
    acc_tol: float = 0.01,
    n_draws: int = 3,
    max_halvings: int = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Similarity of explanations under small weight noise that keeps the accuracy.

    Each parameter ``w`` gets ``N(0, (noise * std(w))^2)`` noise (``std`` over the tensor's
    entries; ``|w|`` for single-entry tensors). While the accuracy on ``data`` moves by more
    than ``acc_tol`` the noise scale is halved (at most ``max_halvings`` times). ``n_draws``
    perturbed models are averaged. ``data`` must carry labels ``y``.

    Returns:
        ``{"spearman", "cosine"}`` (expected: high), the ``noise`` scale used, ``acc`` and
        ``acc_perturbed`` (mean over draws).
    """
    batch = point_inputs(data).batch
    e0 = explainer(model, data).scores
    acc0 = _accuracy(model, data)
    gen = torch.Generator().manual_seed(seed)
    sims, accs = [], []
    scale = noise
    for _ in range(n_draws):
        for _ in range(max_halvings + 1):
            pert = copy.deepcopy(model)
            with torch.no_grad():
                for p in pert.parameters():
                    sd = p.detach().std() if p.numel() > 1 else p.detach().abs().reshape(())
                    p.add_(torch.randn(p.shape, generator=gen).to(p) * scale * sd)
            acc1 = _accuracy(pert, data)
            if abs(acc1 - acc0) <= acc_tol:
                break
            scale /= 2
        sims.append(_similarity(e0, explainer(pert, data).scores, batch))
        accs.append(acc1)
    return {
        "spearman": float(np.mean([s["spearman"] for s in sims])),
        "cosine": float(np.mean([s["cosine"] for s in sims])),
        "noise": scale,
        "acc": acc0,
        "acc_perturbed": float(np.mean(accs)),
    }
