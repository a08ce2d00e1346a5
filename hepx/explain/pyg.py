"""hepx explainers as ``torch_geometric.explain`` algorithms.

Example (a trained classifier ``clf`` and a batch ``b`` of point clouds)::

    from torch_geometric.explain import Explainer
    from hepx.explain.pyg import HepxAlgorithm, PyGModel

    explainer = Explainer(
        model=PyGModel(clf),                       # forward(x, edge_index, *, pos, batch)
        algorithm=HepxAlgorithm("gradgeo"),        # any name of hepx.explain.available_methods()
        explanation_type="model",
        node_mask_type="object",
        model_config=dict(mode="binary_classification", task_level="graph", return_type="raw"),
    )
    expl = explainer(b.x, PyGModel.no_edges(b), pos=b.pos, batch=b.batch)
    expl.node_mask            # [N, 1] point scores

The hepx models build their own graph from ``pos``, so ``edge_index`` is ignored (pass
:meth:`PyGModel.no_edges`, an empty ``[2, 0]`` tensor, or any graph). ``expl.node_mask`` can be
fed to ``torch_geometric.explain.metric.groundtruth_metrics`` etc. For LRI models wrap the LRI
model itself and use ``HepxAlgorithm("lri_bernoulli")`` / ``("lri_gaussian")``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.explain import Explanation
from torch_geometric.explain.algorithm import ExplainerAlgorithm as PyGExplainerAlgorithm
from torch_geometric.explain.config import ExplanationType, MaskType, ModelTaskLevel

from hepx.errors import ConfigError
from hepx.explain.algorithm.base import ExplainerAlgorithm
from hepx.explain.registry import get_explainer

__all__ = ["HepxAlgorithm", "PyGModel"]


class PyGModel(nn.Module):
    """Wrap a hepx classifier / LRI model in PyG's model signature
    ``forward(x, edge_index, *, pos, batch=None) -> logits [B, 1]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # PyG's Explainer restores this flag on the whole wrapper

    @staticmethod
    def no_edges(data: Any = None) -> Tensor:
        dev = data.pos.device if data is not None else None
        return torch.empty(2, 0, dtype=torch.long, device=dev)

    def forward(
        self, x: Tensor | None, edge_index: Tensor | None = None, *, pos: Tensor, batch=None, **_
    ) -> Tensor:
        out = self.model(x, pos, batch)
        return getattr(out, "logits", out)


class HepxAlgorithm(PyGExplainerAlgorithm):
    """A hepx explainer (name or instance) as a PyG ``ExplainerAlgorithm``.

    Supports graph-level binary classification, ``explanation_type="model"`` (or
    ``"phenomenon"``: the target is ignored, the positive logit is explained),
    ``node_mask_type="object"`` (one score per point) and no edge mask.
    """

    def __init__(self, explainer: str | ExplainerAlgorithm, **options: Any) -> None:
        super().__init__()
        self.explainer = (
            get_explainer(explainer, **options) if isinstance(explainer, str) else explainer
        )

    def supports(self) -> bool:
        ec, mc = self.explainer_config, self.model_config
        if ec.node_mask_type != MaskType.object or ec.edge_mask_type is not None:
            raise ConfigError(
                f"{self.explainer.name}: only node_mask_type='object' and no edge mask are supported"
            )
        if mc.task_level != ModelTaskLevel.graph:
            raise ConfigError(f"{self.explainer.name}: only task_level='graph' is supported")
        return ec.explanation_type in (ExplanationType.model, ExplanationType.phenomenon)

    def forward(
        self,
        model: nn.Module,
        x: Tensor,
        edge_index: Tensor,
        *,
        target: Tensor | None = None,
        index: Any = None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        **kwargs: Any,
    ) -> Explanation:
        inner = model.model if isinstance(model, PyGModel) else model
        if pos is None:
            raise ConfigError("pass pos=... (and batch=...) to the Explainer call")
        data = Data(x=x, pos=pos)
        if batch is not None:
            data.batch = batch
        scores = self.explainer(inner, _Batchish(data)).scores
        return Explanation(node_mask=scores.view(-1, 1))


class _Batchish(Data):
    """A ``Data`` with a ``batch`` vector that reports ``num_graphs`` (like a ``Batch``)."""

    def __init__(self, data: Data | None = None) -> None:
        super().__init__()
        if data is not None:
            for k, v in data.items():
                self[k] = v

    @property
    def num_graphs(self) -> int:
        b = self.get("batch")
        return 1 if b is None else (int(b.max()) + 1 if b.numel() else 0)
