"""Any explainer made invariant (equivariant) under a symmetry group by averaging over it."""

from __future__ import annotations

import torch
from torch import Tensor

from hepx.explain.algorithm.base import ExplainerAlgorithm
from hepx.explain.metric.robustness import Group, get_group

__all__ = ["Symmetrised"]


class Symmetrised(ExplainerAlgorithm):
    """``e_sym(x) = mean over g of rho'(g)^{-1} e(g x)`` over ``n`` group elements (the identity
    and ``n - 1`` random draws, re-drawn with the same seed at every call, so the result is
    deterministic). Invariant/equivariant up to Monte Carlo error, at ``n`` times the cost.

    Args:
        explainer: the algorithm to symmetrise.
        group: a group of :mod:`hepx.explain.metric.robustness` or its name.
        n: group elements averaged over.
        seed: seed of the draws.
    """

    def __init__(
        self, explainer: ExplainerAlgorithm, group: Group | str, n: int = 8, seed: int = 0
    ) -> None:
        self.base = explainer
        self.group = get_group(group) if isinstance(group, str) else group
        self.n, self.seed = int(n), int(seed)
        self.name = f"{explainer.name}+sym"  # type: ignore[misc]
        self.requires_fit = explainer.requires_fit  # type: ignore[misc]

    def options(self):
        return {"explainer": self.base.name, "group": self.group.name, "n": self.n}

    def fit(self, model, loader, **kwargs):
        self.base.fit(model, loader, **kwargs)
        return self

    def explain(self, model, data, inp) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        total = self.base(model, data).scores.clone()
        for _ in range(self.n - 1):
            act = self.group.sample(data, gen)
            total += act.to_original(self.base(model, act.data).scores)
        return total / self.n
