"""Ensembles of post-hoc explanations over several trained models.

Classifiers trained with different seeds on the same data reach similar predictions through
different internal features, so one model's explanation carries seed noise; averaging the
explanations of several such models keeps what they agree on (xgdl reports that the average
over seeds recovers the decisive points that single models miss).

:class:`EnsembleExplainer` explains a batch with the same post-hoc method on each member,
normalises each member's scores within every sample, and averages them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData

from hepx.errors import ConfigError, InputError
from hepx.explain.algorithm.base import ExplainerAlgorithm, PointInputs, classifier_of

__all__ = ["NORMALISATIONS", "EnsembleExplainer", "normalise_scores"]

#: The per-sample normalisations of :class:`EnsembleExplainer` (the first is the default).
NORMALISATIONS = ("rank", "max")


def _ranks(values: Tensor) -> Tensor:
    """Ranks of ``values`` ``[n]`` scaled to ``[0, 1]`` (0: lowest, 1: highest); ties get their
    mean rank, so all-equal values (and a single value) get 0.5."""
    n = values.shape[0]
    if n == 1:
        return torch.full_like(values, 0.5, dtype=torch.float64)
    srt = values.sort().values
    below = torch.searchsorted(srt, values, right=False)  # points strictly lower
    upto = torch.searchsorted(srt, values, right=True)  # points lower or equal
    return (below + upto - 1).double() / (2 * (n - 1))


def normalise_scores(scores: Tensor, batch: Tensor, rule: str = "rank") -> Tensor:
    """Scores ``[N]`` normalised within each sample of ``batch`` ``[N]``, as float64 ``[N]``.

    * ``"rank"``: the within-sample rank scaled to ``[0, 1]`` (lowest 0, highest 1, ties
      averaged; a sample with all scores equal gets 0.5 everywhere);
    * ``"max"``: the scores divided by the sample's largest ``|score|`` (a sample of zeros
      stays zero).

    Both are unchanged when a model's scores are multiplied by a positive constant; ``"rank"``
    is also unchanged by any increasing transform of them.
    """
    if rule not in NORMALISATIONS:
        raise ConfigError(f"normalise must be one of {', '.join(NORMALISATIONS)}, got {rule!r}")
    s = scores.detach().double()
    out = torch.zeros_like(s)
    for b in torch.unique(batch).tolist():
        idx = (batch == b).nonzero().view(-1)
        if rule == "rank":
            out[idx] = _ranks(s[idx])
        else:
            top = s[idx].abs().max()
            out[idx] = s[idx] / top if top > 0 else s[idx] * 0.0
    return out


class EnsembleExplainer(ExplainerAlgorithm):
    """The mean of one post-hoc method's normalised explanations over several trained models.

    For a batch of ``N`` points in ``B`` samples, each member model ``k`` is explained by its
    own copy of ``explainer`` (scores ``s_k [N]``); each ``s_k`` is normalised within every
    sample (``normalise``) and the ensemble's score is ``mean_k norm(s_k) [N]``.

    **Normalisation.** The members' scores live on different scales (gradients of differently
    trained models; a mask in ``[0, 1]`` of one model against another), so a raw mean would
    follow whichever model has the largest gradients. The default ``"rank"`` replaces each
    sample's scores by their rank in ``[0, 1]``: every member gets one equal vote per sample,
    a single outlier point (gradient norms are heavy-tailed) cannot swamp the others, and the
    result is invariant to any increasing transform of a member's scores. It is also what the
    table's metrics look at: interpretation ROC AUC and precision@k depend only on the order of
    the scores within each sample. ``"max"`` (division by the sample's largest ``|score|``)
    keeps the members' score gaps instead, at the price of the outlier sensitivity.

    **Models.** ``models`` are the members (classifiers, or LRI models explained through their
    ``.classifier``), e.g. plain runs of the same data and backbone trained with different
    seeds, on the device of the batches. The ``model`` argument of a call (and of :meth:`fit`)
    must be one of the members (by identity; it selects nothing, every member is explained):
    the evaluation table passes the first; any other model raises :class:`InputError`, so
    that e.g. a randomised copy of a member is never silently explained by the originals.

    **Fitted methods** (``requires_fit``) are deep-copied once per member at construction and
    each copy is fit once on its own member by :meth:`fit`; ``explainer`` itself is untouched.

    Deterministic: the same members, explainer and batch give the same scores (for a
    ``stochastic`` explainer, as deterministic as it is).

    Args:
        explainer: the post-hoc algorithm applied to every member.
        models: the member models (at least one).
        normalise: ``"rank"`` (default) or ``"max"`` (:func:`normalise_scores`).

    Example
    -------
    >>> from hepx.explain import get_explainer
    >>> ens = EnsembleExplainer(get_explainer("gradcam"), [m1, m2, m3])  # doctest: +SKIP
    >>> ens.name, ens(m1, batch).scores.shape      # scores in [0, 1]      # doctest: +SKIP
    ('gradcam+ens3', torch.Size([N]))
    """

    def __init__(
        self,
        explainer: ExplainerAlgorithm,
        models: Sequence[nn.Module],
        normalise: str = "rank",
    ) -> None:
        models = list(models)
        if not models:
            raise ConfigError("an ensemble needs at least one model")
        if normalise not in NORMALISATIONS:
            raise ConfigError(
                f"normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}"
            )
        self.base = explainer
        self.models = models
        self.normalise = normalise
        self.explainers = [copy.deepcopy(explainer) for _ in models]
        self.name = f"{explainer.name}+ens{len(models)}"  # type: ignore[misc]
        self.requires_fit = explainer.requires_fit  # type: ignore[misc]
        self.stochastic = explainer.stochastic  # type: ignore[misc]

    def options(self) -> dict[str, Any]:
        return {
            **dict(self.base.options()),
            "explainer": self.base.name,
            "members": len(self.models),
            "normalise": self.normalise,
        }

    def _check_member(self, model: nn.Module) -> None:
        if not any(model is m or model is classifier_of(m) for m in self.models):
            raise InputError(
                f"{self.name}: the model to explain must be one of the ensemble's "
                f"{len(self.models)} members (got another {type(model).__name__})"
            )

    def fit(self, model: nn.Module, loader, **kwargs: Any) -> EnsembleExplainer:
        """Fit each member's copy of the explainer once on its member (a no-op for methods
        that are not fit). ``loader``: one loader for all members, or a sequence of one per
        member (e.g. freshly seeded shuffles, so each member sees the batches its own
        single-model fit would); ``kwargs`` go to every fit."""
        self._check_member(model)
        if not self.requires_fit:
            return self
        loaders = list(loader) if isinstance(loader, (list, tuple)) else [loader] * len(self.models)
        if len(loaders) != len(self.models):
            raise ConfigError(f"{self.name}: {len(loaders)} loaders for {len(self.models)} members")
        for expl, member, ld in zip(self.explainers, self.models, loaders, strict=True):
            expl.fit(member, ld, **kwargs)
        return self

    def member_scores(self, data: BaseData) -> list[Tensor]:
        """Each member's normalised scores ``[N]`` (float64) on ``data``."""
        batch = getattr(data, "batch", None)
        out = []
        for expl, member in zip(self.explainers, self.models, strict=True):
            scores = expl(member, data).scores
            b = torch.zeros_like(scores, dtype=torch.long) if batch is None else batch
            out.append(normalise_scores(scores, b.to(scores.device), self.normalise))
        return out

    def explain(self, model: nn.Module, data: BaseData, inp: PointInputs) -> Tensor:
        self._check_member(model)
        mean = torch.stack(self.member_scores(data)).mean(0)
        return mean.to(dtype=inp.pos.dtype, device=inp.pos.device)
