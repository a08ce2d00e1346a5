"""The result of an explainer: per-point scores and what produced them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["PointExplanation"]


@dataclass
class PointExplanation:
    """Importance scores of the points of a batch of point clouds.

    Attributes:
        scores: ``[N]`` one score per point, higher = more important (detached).
        batch: ``[N]`` the sample index of each point (as in PyG batches).
        method: the method's name (``"gradcam"``, ``"lri_bernoulli"``, ...).
        options: the method's settings.

    Example
    -------
    >>> explanation = GradCAM()(model, batch)                   # doctest: +SKIP
    >>> explanation.scores.shape, explanation.method           # doctest: +SKIP
    (torch.Size([1720]), 'gradcam')
    """

    scores: Tensor
    batch: Tensor
    method: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return int(self.scores.shape[0])

    def numpy(self) -> np.ndarray:
        """The scores as a float32 numpy array ``[N]``."""
        return self.scores.float().cpu().numpy()

    def to_pyg(self):
        """A :class:`torch_geometric.explain.Explanation` with ``node_mask [N, 1]`` (for PyG's
        explanation metrics)."""
        from torch_geometric.explain import Explanation

        return Explanation(node_mask=self.scores.view(-1, 1))
