"""The one registry of explanation methods: name -> algorithm class, explicit, no import magic.

``get_explainer("ig", n_steps=32)`` returns an algorithm instance; ``available_methods()``
lists the names. Users add their own with :func:`register_explainer` (an
:class:`~hepx.explain.algorithm.base.ExplainerAlgorithm` subclass, or a plain function
``f(model, batch) -> scores [N]``), which makes the name usable everywhere a method is named:
``hepx score --explainer NAME``, ``hepx.load(run).explain(events, explainer=NAME)``,
``hepx evaluate --methods NAME``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData

from hepx.errors import ConfigError
from hepx.explain.algorithm.base import ExplainerAlgorithm, PointInputs
from hepx.explain.algorithm.gradients import GGIG, GradCAM, GradGeo, IntegratedGradients
from hepx.explain.algorithm.library import (
    CaptumGuidedBackprop,
    CaptumIG,
    CaptumInputXGradient,
    CaptumSaliency,
    PyGGNNExplainer,
    PyGPGExplainer,
)
from hepx.explain.algorithm.lri import (
    GMTLinScores,
    GMTSamScores,
    LRIBernoulliScores,
    LRIGaussianScores,
    PointMaskScores,
)
from hepx.explain.algorithm.masks import BernMask, BernMaskP, PointMaskPostHoc

__all__ = [
    "METHODS",
    "POST_HOC",
    "SELF_INTERPRETABLE",
    "FunctionExplainer",
    "available_methods",
    "default_hparams",
    "get_explainer",
    "register_explainer",
    "resolve_explainer",
]

#: name -> algorithm class (post-hoc methods first, then the LRI models' own scores).
METHODS: dict[str, type[ExplainerAlgorithm]] = {
    "bernmask": BernMask,
    "bernmask_p": BernMaskP,
    "ggig": GGIG,
    "gradcam": GradCAM,
    "gradgeo": GradGeo,
    "ig": IntegratedGradients,
    "pointmask_posthoc": PointMaskPostHoc,
    "gnnexplainer": PyGGNNExplainer,
    "pgexplainer": PyGPGExplainer,
    "captum_saliency": CaptumSaliency,
    "captum_input_x_gradient": CaptumInputXGradient,
    "captum_ig": CaptumIG,
    "captum_guided_backprop": CaptumGuidedBackprop,
    "lri_bernoulli": LRIBernoulliScores,
    "lri_gaussian": LRIGaussianScores,
    "gmt_lin": GMTLinScores,
    "gmt_sam": GMTSamScores,
    "pointmask": PointMaskScores,
}

#: Self-interpretable models explained by their own scores (runs trained with that method).
SELF_INTERPRETABLE = ("gmt_lin", "gmt_sam", "lri_bernoulli", "lri_gaussian", "pointmask")

#: Methods that explain a frozen plain classifier (the others are LRI models' own scores).
POST_HOC = (
    "gradcam",
    "gradgeo",
    "bernmask",
    "bernmask_p",
    "pointmask_posthoc",
    "ig",
    "ggig",
    "gnnexplainer",
    "pgexplainer",
    "captum_saliency",
    "captum_input_x_gradient",
    "captum_ig",
    "captum_guided_backprop",
)


class FunctionExplainer(ExplainerAlgorithm):
    """A plain function ``f(model, batch) -> scores [N]`` as an explainer algorithm."""

    def __init__(self, func: Callable[[nn.Module, BaseData], Tensor], name: str) -> None:
        self.func = func
        self.name = name  # type: ignore[misc]

    def explain(self, model: nn.Module, data: BaseData, inp: PointInputs) -> Tensor:
        return torch.as_tensor(self.func(model, data)).reshape(-1)


def register_explainer(
    name: str, method: type[ExplainerAlgorithm] | Callable[[nn.Module, BaseData], Tensor]
) -> None:
    """Make ``method`` available under ``name``: an algorithm class, or a function
    ``f(model, batch) -> scores [N]`` (higher = more important).

    Example
    -------
    >>> register_explainer("x_norm", lambda model, batch: batch.pos.norm(dim=1))  # doctest: +SKIP
    """
    if not (isinstance(method, type) and issubclass(method, ExplainerAlgorithm)):
        if not callable(method):
            raise ConfigError(f"explainer {name!r} must be an algorithm class or a function")
        func = method

        def factory(**options: Any) -> ExplainerAlgorithm:
            if options:
                raise TypeError(f"takes no options, got {', '.join(options)}")
            return FunctionExplainer(func, name)

        METHODS[name] = factory  # type: ignore[assignment]
        return
    METHODS[name] = method


def available_methods() -> list[str]:
    """Registered method names, post-hoc first, then the self-interpretable models (GMT, LRI,
    PointMask)."""
    return sorted(METHODS, key=lambda n: (n in SELF_INTERPRETABLE, n))


def get_explainer(name: str, **options: Any) -> ExplainerAlgorithm:
    """An instance of the method registered as ``name`` (e.g. ``"ig"``, ``"lri_bernoulli"``).

    Raises:
        ConfigError: unknown name (the message lists the known ones) or bad options.

    Example
    -------
    >>> get_explainer("ig", n_steps=16).options()["n_steps"]
    16
    """
    if name not in METHODS:
        raise ConfigError(
            f"unknown explanation method {name!r}; known methods: {', '.join(available_methods())}"
        )
    try:
        return METHODS[name](**options)
    except TypeError as err:
        raise ConfigError(f"method {name!r}: bad options ({err})") from None


def resolve_explainer(
    explainer: str | ExplainerAlgorithm | Callable[[nn.Module, BaseData], Tensor] | None,
) -> ExplainerAlgorithm | None:
    """An algorithm from a name, an algorithm, or a function (``None`` stays ``None``)."""
    if explainer is None or isinstance(explainer, ExplainerAlgorithm):
        return explainer
    if isinstance(explainer, str):
        return get_explainer(explainer)
    if callable(explainer):
        return FunctionExplainer(explainer, getattr(explainer, "__name__", "callable"))
    raise ConfigError(f"explainer must be a method name or a function, got {explainer!r}")


# Reference hyperparameters of the post-hoc baselines (the LRI paper's configs).
# (dataset kind, backbone) -> options; unknown combinations fall back to the ActsTrack/DGCNN ones.
_HPARAMS: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
    "bernmask": {
        ("actstrack", "dgcnn"): {"size_coef": 0.1, "ent_coef": 0.01},
        ("actstrack", "egnn"): {"size_coef": 0.01, "ent_coef": 0.1},
        ("actstrack", "point_transformer"): {"size_coef": 0.1, "ent_coef": 0.01},
        ("tau3mu", "dgcnn"): {"size_coef": 0.1, "ent_coef": 0.01},
        ("tau3mu", "egnn"): {"size_coef": 0.1, "ent_coef": 0.01},
        ("tau3mu", "point_transformer"): {"size_coef": 0.01, "ent_coef": 0.1},
    },
    "bernmask_p": {
        ("actstrack", "dgcnn"): {"size_coef": 0.01, "ent_coef": 0.1, "epochs": 100},
        ("actstrack", "egnn"): {"size_coef": 0.01, "ent_coef": 0.1, "epochs": 100},
        ("actstrack", "point_transformer"): {"size_coef": 0.01, "ent_coef": 1.0, "epochs": 100},
        ("tau3mu", "dgcnn"): {"size_coef": 0.01, "ent_coef": 1.0, "epochs": 50},
        ("tau3mu", "egnn"): {"size_coef": 0.01, "ent_coef": 0.01, "epochs": 50},
        ("tau3mu", "point_transformer"): {"size_coef": 0.01, "ent_coef": 0.1, "epochs": 50},
    },
    "pointmask_posthoc": {
        ("actstrack", "dgcnn"): {"kl_coef": 0.01, "epochs": 100},
        ("actstrack", "egnn"): {"kl_coef": 1.0, "epochs": 100},
        ("actstrack", "point_transformer"): {"kl_coef": 1.0, "epochs": 100},
        ("tau3mu", "dgcnn"): {"kl_coef": 0.01, "epochs": 50},
        ("tau3mu", "point_transformer"): {"kl_coef": 0.01, "epochs": 50},
        ("tau3mu", "egnn"): {"kl_coef": 0.01, "epochs": 50},
    },
}


def default_hparams(method: str, dataset: str | None, backbone: str | None) -> dict[str, Any]:
    """Reference options of ``method`` for a dataset kind and backbone (``{}`` if it has none).

    ``epochs`` (for ``bernmask_p``/``pointmask_posthoc``) is an argument of
    :meth:`~hepx.explain.algorithm.base.ExplainerAlgorithm.fit`, the other keys are
    constructor arguments.
    """
    table = _HPARAMS.get(method)
    if not table:
        return {}
    key = (dataset or "actstrack", backbone or "dgcnn")
    if key not in table:
        key = (key[0], "dgcnn") if (key[0], "dgcnn") in table else ("actstrack", "dgcnn")
    return dict(table[key])
