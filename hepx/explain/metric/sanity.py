"""Sanity checks of explanations.

* :func:`model_randomisation` (Adebayo et al. 2018, "Sanity checks for saliency maps"):
  re-initialise the classifier's weights block by block and compare the explanation with the
  original one; a faithful explanation must change (rank correlation towards 0). The
  *cascading* variant re-initialises from the output down, cumulatively, and reports the
  similarity after each block (a curve); the *independent* variant re-initialises one block at a
  time (the others keep their trained weights); *full* re-initialises everything at once.
* :func:`model_perturbation` (Rahman, Lewis and Plis, arXiv 2206.05903): add small Gaussian
  noise to the weights, scaled so that the accuracy stays within a tolerance; a faithful
  explanation should stay similar (rank correlation near 1).

Similarities are per-sample Spearman rank correlations and cosines (offset ``1e-4``, see
:func:`~hepx.explain.metric.robustness.cosine_per_sample`), averaged over the samples.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData

from hepx.explain.algorithm.base import ExplainerAlgorithm, classifier_of, point_inputs
from hepx.explain.metric.robustness import cosine_per_sample, spearman_per_sample

__all__ = [
    "RANDOMISATION_MODES",
    "model_perturbation",
    "model_randomisation",
    "named_reinit_blocks",
    "reinit_blocks",
]

#: The variants of :func:`model_randomisation`.
RANDOMISATION_MODES = ("cascading", "independent", "full")


def named_reinit_blocks(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The model's re-initialisable modules in named blocks, from the output to the input:
    ``"head"`` (the classifier head, and an LRI model's extractor), then each message-passing
    layer with its norm from the last to the first (``"conv<L>"``, ..., ``"conv1"``), then the
    node encoder (``"encoder"``). A model with a mask encoder of its own (PointMask's second
    backbone, ``model.encoder``) has its layers in the blocks of the same depth, so that the
    last block leaves no trained weight behind."""
    clf = classifier_of(model)
    head = [clf.head]
    if hasattr(model, "extractor"):
        head.append(model.extractor)
    blocks: list[tuple[str, list[nn.Module]]] = [("head", head)]
    backbones = [clf.backbone]
    if isinstance(getattr(model, "encoder", None), type(clf.backbone)):
        backbones.append(model.encoder)
    num_layers = len(clf.backbone.convs)
    for i in range(num_layers, 0, -1):
        blocks.append(
            (f"conv{i}", [m for bb in backbones for m in (bb.convs[i - 1], bb.norms[i - 1])])
        )
    blocks.append(("encoder", [bb.node_encoder for bb in backbones]))
    return blocks


def reinit_blocks(model: nn.Module) -> list[list[nn.Module]]:
    """The modules of :func:`named_reinit_blocks`, without the names."""
    return [mods for _, mods in named_reinit_blocks(model)]


def _sub_seed(seed: int, index: int) -> int:
    """An independent seed for item ``index`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def _reinit(module: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default initialisation (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for linear
    layers, identity batch norms), drawn from ``gen``."""
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


def _similarity(e0: Tensor, e1: Tensor, batch: Tensor) -> dict[str, float]:
    return {
        "spearman": float(spearman_per_sample(e1, e0, batch).mean()),
        "cosine": float(cosine_per_sample(e1, e0, batch).mean()),
    }


def _randomisation_schedule(names: list[str], mode: str) -> list[tuple[str, list[str]]]:
    """``(stage name, blocks random at that stage)`` of each stage of ``mode``."""
    if mode == "full":
        return [("all", names)]
    if mode == "cascading":
        return [(n, names[: i + 1]) for i, n in enumerate(names)]
    return [(n, [n]) for n in names]


def _reinit_named(model: nn.Module, blocks: list[str], names: list[str], seed: int) -> None:
    """Re-initialise ``blocks`` of ``model``, each from its own generator (seed and block)."""
    mods = dict(named_reinit_blocks(model))
    for name in blocks:
        gen = torch.Generator().manual_seed(_sub_seed(seed, names.index(name)))
        for m in mods[name]:
            _reinit(m, gen)


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
    """Similarity of explanations before / after re-initialising the weights (Adebayo et al.).

    The blocks are those of :func:`named_reinit_blocks`: ``head``, ``conv<L>``, ...,
    ``conv1``, ``encoder``. The new weights of a block depend only on ``seed`` and the block
    (one generator per block), so a block gets the same random weights in every mode and the
    last cascading stage *is* the fully randomised model.

    Args:
        explainer: an explainer (already fit if it needs it). Parametric explainers are
            re-fit on ``fit_loader`` for every randomised model when given (otherwise their
            trained mask network is reused on the new embeddings).
        model: the trained classifier (or LRI model; its extractor belongs to ``head``).
        data: a batch to explain.
        mode: ``"cascading"``: re-initialise the blocks from the output down, cumulatively,
            one stage per block (stage ``k``: the top ``k`` blocks random);
            ``"independent"``: one stage per block, only that block random;
            ``"full"``: one stage, every block random.
        seed: seed of the new weights.
        fit_loader, fit_kwargs: re-fit of parametric explainers (see ``explainer``).

    Returns:
        A dict with

        * ``"stages"``: one entry per stage, in order, each ``{"block", "randomised",
          "spearman", "cosine"}``: the block re-initialised at that stage (``"all"`` in
          ``full`` mode), the names of all random blocks of that model, and the similarity
          to the original explanation (means over samples);
        * ``"curve"``: ``{block: spearman}`` of the stages (cascading: Adebayo's curve, from
          ``"head"`` to ``"encoder"``);
        * ``"spearman"``, ``"cosine"``: the fully randomised model (cascading: the last stage;
          full: its only stage); in ``independent`` mode, where no stage randomises everything,
          the mean over the stages. Expected: near 0 for a faithful explanation;
        * ``"mode"``, ``"seed"``.
    """
    if mode not in RANDOMISATION_MODES:
        raise ValueError(f"mode must be one of {', '.join(RANDOMISATION_MODES)}, got {mode!r}")
    batch = point_inputs(data).batch
    e0 = explainer(model, data).scores
    names = [name for name, _ in named_reinit_blocks(model)]
    rand, done = None, set()
    stages = []
    for block, randomised in _randomisation_schedule(names, mode):
        if rand is None or mode != "cascading":  # cascading keeps accumulating on one copy
            rand, done = copy.deepcopy(model), set()
        _reinit_named(rand, [n for n in randomised if n not in done], names, seed)
        done.update(randomised)
        expl = explainer
        if fit_loader is not None and explainer.requires_fit:
            expl = copy.deepcopy(explainer).fit(rand, fit_loader, **(fit_kwargs or {}))
        e1 = expl(rand, data).scores
        stages.append(
            {"block": block, "randomised": list(randomised), **_similarity(e0, e1, batch)}
        )
    if mode == "independent":
        top = {k: float(np.mean([s[k] for s in stages])) for k in ("spearman", "cosine")}
    else:
        top = {k: stages[-1][k] for k in ("spearman", "cosine")}
    return {
        **top,
        "stages": stages,
        "curve": {s["block"]: s["spearman"] for s in stages},
        "mode": mode,
        "seed": seed,
    }


@torch.no_grad()
def _accuracy(model: nn.Module, data: BaseData) -> float:
    model.eval()
    out = model(data)
    logits = getattr(out, "logits", out).view(-1)
    return float(((logits > 0) == (data.y.view(-1) > 0.5)).float().mean())


def _perturbed(model: nn.Module, directions: list[Tensor], scale: float) -> nn.Module:
    pert = copy.deepcopy(model)
    with torch.no_grad():
        for p, d in zip(pert.parameters(), directions, strict=True):
            p.add_(d.to(p) * scale)
    return pert


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
    """Similarity of explanations under small weight noise that keeps the accuracy
    (Rahman, Lewis and Plis's model-perturbation check).

    For each of ``n_draws`` draws a noise direction is drawn once (its own generator, seeded
    by ``seed`` and the draw): every parameter tensor ``w`` gets ``z * std(w)``, ``z ~ N(0, 1)``
    per entry (``std`` over the tensor's entries; ``|w|`` for single-entry tensors). The
    perturbed model is ``w + s z std(w)``. The scale search *restarts at ``s = noise`` for every
    draw* and halves ``s`` while the accuracy on ``data`` moves by more than ``acc_tol`` (at
    most ``max_halvings`` times). A draw whose accuracy never came within ``acc_tol`` keeps its
    smallest scale, counts in the result and is flagged (``tolerance_met``, ``n_missed``).
    ``data`` must carry labels ``y``.

    Returns:
        A dict with ``"spearman"``, ``"cosine"`` (means over all draws of the per-sample mean
        similarity to the original explanation; expected: high), ``"spearman_met"`` (the mean
        over the draws that met the tolerance; NaN if none did), ``"tolerance_met"`` (``True``
        only if every draw met it), ``"n_missed"`` (draws that did not), ``"noise"`` (mean of
        the scales used), ``"acc"`` and ``"acc_perturbed"`` (mean over draws), and ``"draws"``:
        per draw ``{"noise", "halvings", "acc_perturbed", "tolerance_met", "spearman",
        "cosine"}``.
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, got {n_draws}")
    batch = point_inputs(data).batch
    e0 = explainer(model, data).scores
    acc0 = _accuracy(model, data)
    draws = []
    for d in range(n_draws):
        gen = torch.Generator().manual_seed(_sub_seed(seed, d))
        directions = []
        for p in model.parameters():
            w = p.detach().cpu().double()
            sd = w.std() if w.numel() > 1 else w.abs().reshape(())
            directions.append(torch.randn(p.shape, generator=gen, dtype=torch.float64) * sd)
        scale = float(noise)  # the search restarts for every draw
        for halvings in range(max_halvings + 1):
            if halvings:
                scale /= 2
            pert = _perturbed(model, directions, scale)
            acc1 = _accuracy(pert, data)
            met = abs(acc1 - acc0) <= acc_tol
            if met:
                break
        sim = _similarity(e0, explainer(pert, data).scores, batch)
        draws.append(
            {
                "noise": scale,
                "halvings": halvings,
                "acc_perturbed": acc1,
                "tolerance_met": met,
                **sim,
            }
        )
    met_sp = [dr["spearman"] for dr in draws if dr["tolerance_met"]]
    n_missed = sum(not dr["tolerance_met"] for dr in draws)
    return {
        "spearman": float(np.mean([dr["spearman"] for dr in draws])),
        "cosine": float(np.mean([dr["cosine"] for dr in draws])),
        "spearman_met": float(np.mean(met_sp)) if met_sp else float("nan"),
        "tolerance_met": n_missed == 0,
        "n_missed": int(n_missed),
        "noise": float(np.mean([dr["noise"] for dr in draws])),
        "acc": acc0,
        "acc_perturbed": float(np.mean([dr["acc_perturbed"] for dr in draws])),
        "draws": draws,
    }
