"""Common interface of the point-importance explainers and the name -> class registry.

Every explainer is called as ``explainer(model, batch) -> Tensor [N]``: one importance score per
point of a PyG ``Data``/``Batch`` (higher = more important), detached, on the batch's device.
``model`` is a trained, frozen :class:`~hepx.models.PointCloudClassifier` (post-hoc methods; an
LRI model is explained through its ``.classifier``) or an LRI model (``lri_*`` methods).
Explainers never change the model's weights and put it in eval mode while they run.

Explainers that learn a parametric mask over a data set (``bernmask_p``, ``pointmask``) have
``requires_fit = True`` and must be :meth:`Explainer.fit` on a loader first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData

from hepx.errors import ConfigError, InputError

__all__ = [
    "EXPLAINERS",
    "POST_HOC",
    "Explainer",
    "PointInputs",
    "available_methods",
    "classifier_of",
    "default_hparams",
    "frozen",
    "get_explainer",
    "point_inputs",
    "register",
]

#: name -> explainer class (filled by :func:`register`).
EXPLAINERS: dict[str, type[Explainer]] = {}

#: Methods that explain a frozen plain classifier (the others are LRI models' own scores).
POST_HOC = ("gradcam", "gradgeo", "bernmask", "bernmask_p", "pointmask", "ig", "ggig")


def register(name: str):
    """Class decorator: register an :class:`Explainer` subclass under ``name``."""

    def deco(cls: type[Explainer]) -> type[Explainer]:
        cls.name = name
        EXPLAINERS[name] = cls
        return cls

    return deco


def available_methods() -> list[str]:
    """Registered method names, post-hoc first, then LRI."""
    _load_all()
    return sorted(EXPLAINERS, key=lambda n: (n.startswith("lri"), n))


def _load_all() -> None:
    # registering happens on import of the implementation modules
    from hepx.explain import gradients, lri, masks  # noqa: F401


def get_explainer(name: str, **kwargs: Any) -> Explainer:
    """Instantiate the explainer registered as ``name`` (e.g. ``"ig"``, ``"lri_bernoulli"``).

    Raises:
        ConfigError: unknown name (the message lists the known ones) or bad keyword arguments.
    """
    _load_all()
    if name not in EXPLAINERS:
        raise ConfigError(
            f"unknown explanation method {name!r}; known methods: {', '.join(available_methods())}"
        )
    try:
        return EXPLAINERS[name](**kwargs)
    except TypeError as err:
        raise ConfigError(f"method {name!r}: bad options ({err})") from None


# Reference hyper-parameters of the post-hoc baselines (the LRI paper's configs).
# (dataset kind, backbone) -> options; unknown combinations fall back to the ActsTrack/DGCNN ones.
_HPARAMS: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
    "bernmask": {
        ("actstrack", "dgcnn"): {"size_coef": 0.1, "ent_coef": 0.01},
        ("actstrack", "egnn"): {"size_coef": 0.01, "ent_coef": 0.1},
        ("tau3mu", "dgcnn"): {"size_coef": 0.1, "ent_coef": 0.01},
        ("tau3mu", "egnn"): {"size_coef": 0.1, "ent_coef": 0.01},
    },
    "bernmask_p": {
        ("actstrack", "dgcnn"): {"size_coef": 0.01, "ent_coef": 0.1, "epochs": 100},
        ("actstrack", "egnn"): {"size_coef": 0.01, "ent_coef": 0.1, "epochs": 100},
        ("tau3mu", "dgcnn"): {"size_coef": 0.01, "ent_coef": 1.0, "epochs": 50},
        ("tau3mu", "egnn"): {"size_coef": 0.01, "ent_coef": 0.01, "epochs": 50},
    },
    "pointmask": {
        ("actstrack", "dgcnn"): {"kl_coef": 0.01, "epochs": 100},
        ("actstrack", "egnn"): {"kl_coef": 1.0, "epochs": 100},
        ("tau3mu", "dgcnn"): {"kl_coef": 0.01, "epochs": 50},
        ("tau3mu", "egnn"): {"kl_coef": 0.01, "epochs": 50},
    },
}


def default_hparams(method: str, dataset: str | None, backbone: str | None) -> dict[str, Any]:
    """Reference options of ``method`` for a dataset kind and backbone (``{}`` if it has none).

    ``epochs`` (for ``bernmask_p``/``pointmask``) is a :meth:`Explainer.fit` argument, the other
    keys are constructor arguments.
    """
    table = _HPARAMS.get(method)
    if not table:
        return {}
    key = (dataset or "actstrack", backbone or "dgcnn")
    if key not in table:
        key = (key[0], "dgcnn") if (key[0], "dgcnn") in table else ("actstrack", "dgcnn")
    return dict(table[key])


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


class Explainer:
    """Base class. Subclasses implement :meth:`explain`.

    Attributes:
        name: registry name.
        requires_fit: whether :meth:`fit` must run before :meth:`explain`.
        stochastic: whether two calls on the same input can differ.
    """

    name: ClassVar[str] = "base"
    requires_fit: ClassVar[bool] = False
    stochastic: ClassVar[bool] = False

    def __call__(self, model: nn.Module, data: BaseData) -> Tensor:
        inp = point_inputs(data)
        scores = self.explain(model, data, inp)
        if scores.shape != (inp.num_points,):
            raise RuntimeError(f"{self.name}: scores of shape {tuple(scores.shape)}")
        return scores.detach()

    def explain(self, model: nn.Module, data: BaseData, inp: PointInputs) -> Tensor:
        raise NotImplementedError

    def fit(
        self, model: nn.Module, loader, *, epochs: int | None = None, **kwargs: Any
    ) -> Explainer:
        """Train the explainer's own parameters (no-op for non-parametric methods)."""
        return self

    def options(self) -> Mapping[str, Any]:
        """Constructor options, for reports."""
        return {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"
