"""The algorithm base class: what every point-importance explainer is and does.

An explainer algorithm is called as ``algorithm(model, batch) ->``
:class:`~hepx.explain.explanation.PointExplanation`: one importance score per point of a PyG
``Data``/``Batch`` (higher = more important) with the method and options that produced it.
``model`` is a trained, frozen :class:`~hepx.models.PointCloudClassifier` (post-hoc methods; an
LRI model is explained through its ``.classifier``) or an LRI model (``lri_*`` methods).
Algorithms never change the model's weights and put it in eval mode while they run.

Algorithms that learn a parametric mask over a data set (``bernmask_p``, ``pointmask_posthoc``) have
``requires_fit = True`` and must be :meth:`ExplainerAlgorithm.fit` on a loader first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData

from hepx.errors import InputError
from hepx.explain.explanation import PointExplanation

__all__ = [
    "ExplainerAlgorithm",
    "PointInputs",
    "classifier_of",
    "frozen",
    "point_inputs",
    "replicate",
]


# --------------------------------------------------------------------------- helpers


def classifier_of(model: nn.Module) -> nn.Module:
    """The plain classifier inside ``model`` (``model.classifier`` for LRI models)."""
    return model.classifier if hasattr(model, "extractor") else model


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on all weights for the duration; restored after."""
    training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(f)
        model.train(training)


class PointInputs:
    """``x [N, F] | None``, ``pos [N, D]``, ``batch [N]``, ``num_graphs`` of a batch."""

    __slots__ = ("batch", "num_graphs", "pos", "x")

    def __init__(self, x: Tensor | None, pos: Tensor, batch: Tensor, num_graphs: int) -> None:
        self.x, self.pos, self.batch, self.num_graphs = x, pos, batch, num_graphs

    @property
    def num_points(self) -> int:
        return self.pos.shape[0]


def point_inputs(data: BaseData) -> PointInputs:
    """Unpack a ``Data``/``Batch`` (``pos`` required; ``x`` may have 0 columns)."""
    if not isinstance(data, BaseData):
        raise InputError(f"expected a torch_geometric Data/Batch, got {type(data).__name__}")
    pos = getattr(data, "pos", None)
    if pos is None or pos.dim() != 2:
        raise InputError("the batch has no pos [N, D]; expected point clouds from hepx.data")
    x = getattr(data, "x", None)
    batch = getattr(data, "batch", None)
    if batch is None:
        batch = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
        num_graphs = 1
    else:
        num_graphs = int(data.num_graphs)
    return PointInputs(x, pos.float(), batch, num_graphs)


def replicate(inp: PointInputs, edge_index: Tensor, times: int) -> tuple[Tensor, Tensor, Tensor]:
    """Stack ``times`` copies of a batch into one: returns ``batch [T N]`` (graph ids offset by
    ``B`` per copy), ``edge_index [2, T E]`` (node ids offset by ``N``) and the copy index
    ``[T N]`` of each point."""
    n, b = inp.num_points, inp.num_graphs
    dev = inp.pos.device
    copy = torch.arange(times, device=dev).repeat_interleave(n)
    batch = inp.batch.repeat(times) + copy * b
    e = edge_index.shape[1]
    offs = torch.arange(times, device=dev).repeat_interleave(e) * n
    return batch, edge_index.repeat(1, times) + offs, copy


class ExplainerAlgorithm:
    """Base class of the explainers. Subclasses implement :meth:`explain`.

    Attributes:
        name: the method's name (:mod:`hepx.explain.registry`).
        requires_fit: whether :meth:`fit` must run before the algorithm explains anything.
        fit_on_run_batch: whether its fit takes the run's training batch size (a method whose
            reference schedule is counted in epochs of the dataset's batches).
        stochastic: whether two calls on the same input can differ.
    """

    name: ClassVar[str] = "base"
    requires_fit: ClassVar[bool] = False
    fit_on_run_batch: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False

    def __call__(self, model: nn.Module, data: BaseData) -> PointExplanation:
        """Explain ``model`` on ``data``: scores ``[N]`` with the batch vector ``[N]``."""
        inp = point_inputs(data)
        scores = self.explain(model, data, inp)
        if scores.shape != (inp.num_points,):
            raise RuntimeError(f"{self.name}: scores of shape {tuple(scores.shape)}")
        return PointExplanation(
            scores=scores.detach(),
            batch=inp.batch,
            method=self.name,
            options=dict(self.options()),
        )

    def explain(self, model: nn.Module, data: BaseData, inp: PointInputs) -> Tensor:
        """The scores ``[N]`` (subclasses)."""
        raise NotImplementedError

    def fit(
        self, model: nn.Module, loader, *, epochs: int | None = None, **kwargs: Any
    ) -> ExplainerAlgorithm:
        """Train the explainer's own parameters (no-op for non-parametric methods)."""
        return self

    def options(self) -> Mapping[str, Any]:
        """Constructor options, for reports."""
        return {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"
