"""Compiled message passing: the layers' per-edge work fused by ``torch.compile``.

A message-passing layer's edge work (gathers, the message MLP's adds, BatchNorm and ReLU over
``[E, C]`` tensors, the edge weights, the scatter) is a chain of memory-bound elementwise
kernels in eager PyTorch. TorchInductor fuses it into fewer passes over the edges; the layers
then compute the same function up to float rounding (other summation orders). Only the layers
are compiled, with dynamic shapes, so that batches of any size reuse the compiled graphs, and
only in training with gradients, where the time goes; graph building, the rest of the model,
evaluation and inference stay eager.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

from hepx.errors import ConfigError
from hepx.models.backbones.base import PointEncoder

__all__ = ["compile_layers", "compiled_layer"]


def compile_layers(model: nn.Module) -> int:
    """Run the message-passing layers of every backbone in ``model`` compiled when training.

    Each :class:`PointEncoder` is switched to call its layers through one compiled function per
    layer class (:func:`compiled_layer`) while it trains with gradients; evaluation, inference
    and BatchNorm recalibration run the eager layers. The module tree, the parameters and the
    ``state_dict`` are unchanged, so checkpoints load into uncompiled models, and copies of the
    model (the weight average) compute with their own weights. The first training batches pay
    the compilation.

    Args:
        model: a classifier or an LRI / GMT model (any module holding :class:`PointEncoder`\\ s).

    Returns:
        The number of layers that run compiled.

    Raises:
        ConfigError: ``torch.compile`` cannot run here (e.g. no C++ compiler for the CPU
            backend), with its reason.

    Example:
        >>> from hepx.models import build_model, compile_layers
        >>> model = build_model({"backbone": "egnn"}, pos_dim=3, x_dim=0)
        >>> compile_layers(model)
        4
    """
    _check_compiler()
    count = 0
    for module in model.modules():
        if isinstance(module, PointEncoder):
            module.compiled_layers = True
            count += len(module.convs)
    return count


@functools.cache
def compiled_layer(layer_class: type[nn.Module]) -> Callable[..., Tensor]:
    """``layer_class.forward`` compiled with dynamic shapes: ``f(layer, *args) -> Tensor``.

    One function per class serves every instance (the layer is an argument, its parameters
    inputs of the graph), so the layers of a backbone, and of its copies, share the compiled
    graphs. Graphs are specialised on what changes between LRI's passes (edge weights or none,
    batch statistics recorded or not), a handful per class.
    """
    return torch.compile(layer_class.forward, dynamic=True)


def _check_compiler() -> None:
    """Compile a one-line function once, so that a missing compiler is said before training."""
    try:
        torch.compile(lambda t: t * 2 + 1, dynamic=False)(torch.ones(3))
    except Exception as exc:  # inductor raises many kinds; each is one reason to report
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"train.compile needs torch.compile, which fails here ({reason[:200]}); "
            "set train.compile false"
        ) from None
