"""Explainers of PyTorch Geometric's ``torch_geometric.explain`` run on hepx's models.

GNNExplainer, PGExplainer and Captum's attribution methods (through PyG's
``CaptumExplainer``) are used as the library implements them; hepx only adapts its models to
PyG's signature. A point cloud may have no features at all (ActsTrack), so the one node input
PyG's explainers mask or attribute is each point's *existence* ``e_i`` (all ones for the real
cloud): :class:`ExistenceModel` weights the messages of the edge ``j -> i`` by ``e_i e_j``, the
same mechanism as the mask baselines and LRI-Bernoulli (the pool stays unweighted). The graph
is built once from the real positions and kept fixed.

* ``gnnexplainer``: PyG's ``GNNExplainer`` learns a node mask on ``e`` (``node_mask_type=
  "object"``) for the model's prediction; score = the mask.
* ``pgexplainer``: PyG's ``PGExplainer`` (an edge-mask network, fitted over a data set, for
  the model's predicted class as the "phenomenon"); PyG masks the messages inside each
  ``MessagePassing`` layer. Score of a point = mean mask of the edges it sends or receives.
* ``captum_saliency``, ``captum_input_x_gradient``, ``captum_ig``,
  ``captum_guided_backprop``: PyG's ``CaptumExplainer`` with that Captum method, attributing
  the probability of the class the model predicts (``p`` or ``1 - p``; PyG requires
  probabilities for binary models) to ``e``; score = the attribution. IG's path runs from the empty cloud (``e = 0``) to
  the real one. Captum's ``DeepLift`` is not offered: PyG's ``CaptumExplainer`` does not support
  it (its Captum model takes one input at a time, DeepLift evaluates input and baseline in one
  batch).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData
from torch_geometric.utils import scatter

from hepx.errors import ConfigError
from hepx.explain.algorithm.base import (
    ExplainerAlgorithm,
    PointInputs,
    classifier_of,
    frozen,
    point_inputs,
)
from hepx.explain.algorithm.gradients import fixed_graph

__all__ = [
    "CaptumAttribution",
    "CaptumGuidedBackprop",
    "CaptumIG",
    "CaptumInputXGradient",
    "CaptumSaliency",
    "ExistenceModel",
    "PyGGNNExplainer",
    "PyGPGExplainer",
    "per_graph_coeffs",
]

_BINARY = {"mode": "binary_classification", "task_level": "graph"}


class ExistenceModel(nn.Module):
    """A hepx classifier in PyG's model signature, with each point's existence as input.

    ``forward(e [N, 1], edge_index [2, E], pos [N, D], batch [N], features [N, F] | None)``
    -> logits ``[B, 1]`` (or probabilities with ``probs=True``); the messages ``j -> i`` are
    weighted ``e_i e_j`` on the given (fixed) graph.
    """

    def __init__(self, classifier: nn.Module, probs: bool = False) -> None:
        super().__init__()
        self.classifier = classifier
        self.probs = probs
        self.train(classifier.training)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        pos: Tensor,
        batch: Tensor,
        features: Tensor | None = None,
    ) -> Tensor:
        e = x[:, 0]
        weight = e[edge_index[0]] * e[edge_index[1]]
        out = self.classifier(features, pos, batch, edge_index=edge_index, edge_weight=weight)
        return torch.sigmoid(out) if self.probs else out


def _inputs(clf: nn.Module, inp: PointInputs) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """The existence input ``[N, 1]``, the fixed graph and the keyword inputs of the model."""
    edge_index = fixed_graph(clf, inp)
    ones = torch.ones(inp.num_points, 1, device=inp.pos.device)
    return ones, edge_index, {"pos": inp.pos, "batch": inp.batch, "features": inp.x}


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class PyGGNNExplainer(ExplainerAlgorithm):
    """PyG's ``GNNExplainer`` (Ying et al. 2019) on the points' existence (module docstring).

    ``epochs`` / ``lr``: the library's optimisation (its defaults, 100 and 0.01); the mask's
    random start is drawn under ``seed``. Explains the model's own prediction
    (``explanation_type="model"``). Scores ``[N]`` in (0, 1).
    """

    name = "gnnexplainer"

    def __init__(self, epochs: int = 100, lr: float = 0.01, seed: int = 0) -> None:
        self.epochs, self.lr, self.seed = int(epochs), float(lr), int(seed)

    def options(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "lr": self.lr, "seed": self.seed}

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        from torch_geometric.explain import Explainer, GNNExplainer

        clf = classifier_of(model)
        with frozen(clf), _seeded(self.seed), torch.enable_grad():
            x, edge_index, kwargs = _inputs(clf, inp)
            explainer = Explainer(
                ExistenceModel(clf),
                GNNExplainer(epochs=self.epochs, lr=self.lr),
                explanation_type="model",
                node_mask_type="object",
                model_config={**_BINARY, "return_type": "raw"},
            )
            return explainer(x, edge_index, **kwargs).node_mask.detach().view(-1)


def per_graph_coeffs(edge_size: float, num_graphs: int) -> dict[str, Any]:
    """PyG ``PGExplainer`` coefficients for one training call on a batch of ``num_graphs``
    graphs: its defaults with the size coefficient ``edge_size / num_graphs``.

    PyG's loss is the prediction loss averaged over the graphs plus ``edge_size`` times the
    mask *summed* over every edge it is given; its documented graph-level use, like the
    paper's loss, takes one graph at a time. Dividing by the number of graphs makes a batch's
    loss the mean over its graphs of the per-graph loss (the entropy term, which PyG averages
    over all edges of the batch, then weights graphs by their edge counts).

    Example
    -------
    >>> per_graph_coeffs(0.05, 64)["edge_size"]
    0.00078125
    """
    from torch_geometric.explain import PGExplainer

    return {**PGExplainer.coeffs, "edge_size": edge_size / max(int(num_graphs), 1)}


class PyGPGExplainer(ExplainerAlgorithm):
    """PyG's ``PGExplainer`` (Luo et al. 2020): an edge-mask network trained over a data set
    (:meth:`fit`) to keep the model's predicted class; a point's score is the mean mask of its
    edges (both directions, its self-loop included). ``epochs`` / ``lr``: the library's
    training (PyG's example values 30 and 0.003); ``edge_size``: the size coefficient per
    graph (PyG's default), trained on batches as :func:`per_graph_coeffs` says."""

    name = "pgexplainer"
    requires_fit = True

    def __init__(
        self, epochs: int = 30, lr: float = 0.003, edge_size: float = 0.05, seed: int = 0
    ) -> None:
        self.epochs, self.lr, self.seed = int(epochs), float(lr), int(seed)
        self.edge_size = float(edge_size)
        self._explainer = None

    def options(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "lr": self.lr,
            "edge_size": self.edge_size,
            "seed": self.seed,
        }

    def _target(self, wrapper: ExistenceModel, x, edge_index, kwargs) -> Tensor:
        with torch.no_grad():
            return (wrapper(x, edge_index, **kwargs) > 0).float()

    def fit(
        self,
        model: nn.Module,
        loader,
        *,
        epochs: int | None = None,
        max_batches: int | None = None,
        device: str | torch.device | None = None,
        **_: Any,
    ) -> PyGPGExplainer:
        """Train PyG's edge-mask network over ``loader`` for ``epochs`` (default: the
        constructor's) with the classifier frozen."""
        from torch_geometric.explain import Explainer, PGExplainer

        clf = classifier_of(model)
        epochs = self.epochs if epochs is None else int(epochs)
        dev = torch.device(device) if device is not None else next(clf.parameters()).device
        wrapper = ExistenceModel(clf)
        with frozen(clf), _seeded(self.seed), torch.enable_grad():
            self._explainer = Explainer(
                wrapper,
                PGExplainer(epochs=epochs, lr=self.lr).to(dev),
                explanation_type="phenomenon",
                edge_mask_type="object",
                model_config={**_BINARY, "return_type": "raw"},
            )
            for epoch in range(epochs):
                for i, data in enumerate(loader):
                    if max_batches is not None and i >= max_batches:
                        break
                    x, edge_index, kwargs = _inputs(clf, point_inputs(data.to(dev)))
                    target = self._target(wrapper, x, edge_index, kwargs)
                    algorithm = self._explainer.algorithm
                    algorithm.coeffs = per_graph_coeffs(self.edge_size, target.shape[0])
                    with warnings.catch_warnings():  # PyG's float(loss) of a graph tensor
                        warnings.filterwarnings("ignore", message="Converting a tensor with")
                        self._explainer.algorithm.train(
                            epoch, wrapper, x, edge_index, target=target, **kwargs
                        )
        return self

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        if self._explainer is None:
            raise ConfigError("pgexplainer must be fit on a data set first (call .fit)")
        clf = classifier_of(model)
        wrapper = ExistenceModel(clf)
        with frozen(clf):
            x, edge_index, kwargs = _inputs(clf, inp)
            target = self._target(wrapper, x, edge_index, kwargs)
            self._explainer.model = wrapper
            mask = self._explainer(x, edge_index, target=target, **kwargs).edge_mask.detach()
        ends = torch.cat([edge_index[0], edge_index[1]])
        return scatter(mask.repeat(2), ends, dim=0, dim_size=inp.num_points, reduce="mean")


@contextlib.contextmanager
def _eval_with_gradients(model: nn.Module) -> Iterator[None]:
    """Eval mode with the weights' gradients on (Captum's guided backpropagation hooks the
    inputs of every ReLU, which must require gradients), ``.grad`` restored after."""
    training = model.training
    grads = [p.grad for p in model.parameters()]
    model.eval()
    try:
        yield
    finally:
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g
        model.train(training)


class CaptumAttribution(ExplainerAlgorithm):
    """A Captum attribution method through PyG's ``CaptumExplainer`` (module docstring):
    the attribution ``[N]`` of the predicted class's probability to each point's existence.
    Subclasses name the Captum method; ``options`` are passed to its ``attribute``."""

    method: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.attribute_options = dict(options)

    def options(self) -> dict[str, Any]:
        return dict(self.attribute_options)

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        from torch_geometric.explain import Explainer
        from torch_geometric.explain.algorithm import CaptumExplainer

        clf = classifier_of(model)
        with _eval_with_gradients(clf), torch.enable_grad():
            x, edge_index, kwargs = _inputs(clf, inp)
            explainer = Explainer(
                ExistenceModel(clf, probs=True),
                CaptumExplainer(self.method, **self.attribute_options),
                explanation_type="model",
                node_mask_type="attributes",
                model_config={**_BINARY, "return_type": "probs"},
            )
            with _quiet_captum():
                mask = explainer(x.requires_grad_(True), edge_index, **kwargs).node_mask
        return mask.detach().view(-1)


@contextlib.contextmanager
def _quiet_captum() -> Iterator[None]:
    """Captum warns that it set ``requires_grad`` and hooked the ReLUs, on every call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require")
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        yield


class CaptumSaliency(CaptumAttribution):
    """Captum's ``Saliency``: ``|d p / d e_i|`` (``p``: the predicted class's probability)."""

    name = "captum_saliency"
    method = "Saliency"


class CaptumInputXGradient(CaptumAttribution):
    """Captum's ``InputXGradient``: ``e_i d p / d e_i`` (``e_i = 1``: the signed gradient)."""

    name = "captum_input_x_gradient"
    method = "InputXGradient"


class CaptumIG(CaptumAttribution):
    """Captum's ``IntegratedGradients`` from the empty cloud ``e = 0`` (``n_steps``, Captum's
    default 50; PyG runs one path step per internal batch)."""

    name = "captum_ig"
    method = "IntegratedGradients"

    def __init__(self, n_steps: int = 50, **options: Any) -> None:
        super().__init__(n_steps=int(n_steps), **options)


class CaptumGuidedBackprop(CaptumAttribution):
    """Captum's ``GuidedBackprop``: gradients with negative parts clipped at every ``nn.ReLU``
    module (hepx's backbones also apply ``torch.relu`` between layers, which Captum does not
    hook: there the plain gradient passes)."""

    name = "captum_guided_backprop"
    method = "GuidedBackprop"
