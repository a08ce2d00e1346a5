"""Gradient-based post-hoc explainers: GradCAM, GradGeo, Integrated Gradients, GGIG.

All four explain the positive logit of a frozen classifier, vectorised over a PyG batch (in eval
mode the samples of a batch do not interact, so one backward pass of ``logits.sum()`` gives every
sample's own gradients).

Graph during path methods: IG and GGIG evaluate the model at scaled inputs. The graph
(kNN / radius) is built once on the *real* input and kept fixed along the path, so the explained
function is a smooth function of the coordinates and IG's completeness holds exactly (up to the
quadrature error). A kNN graph is unchanged by scaling anyway; a radius graph would grow
along a path from a zero baseline and make the function jump.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData
from torch_geometric.utils import scatter

from hepx.explain.base import (
    Explainer,
    PointInputs,
    classifier_of,
    frozen,
    register,
    replicate,
)

__all__ = [
    "GGIG",
    "GradCAM",
    "GradGeo",
    "IntegratedGradients",
    "data_period",
    "default_baseline",
    "integrated_gradients",
]


def data_period(clf: nn.Module) -> list[float | None] | None:
    """Per-axis period of the positions in the data frame (the classifier stores it in the
    backbone frame, i.e. multiplied by ``pos_scale``)."""
    per = getattr(clf, "period", None)
    if per is None:
        return None
    return [None if p is None else float(p) / clf.pos_scale for p in per]


def _wrap(delta: Tensor, period: Sequence[float | None] | None) -> Tensor:
    if period is None:
        return delta
    out = delta.clone()
    for d, p in enumerate(period):
        if p is not None:
            half = 0.5 * p
            out[:, d] = half - torch.remainder(half - delta[:, d], p)
    return out


def default_baseline(inp: PointInputs, period: Sequence[float | None] | None) -> Tensor:
    """The IG/GGIG baseline positions ``[N, D]``.

    Zero on ordinary axes (the beam spot for ActsTrack, a rotation-invariant point); on a
    periodic axis (Tau3Mu phi) the per-sample circular mean of the coordinate, so the baseline
    moves with a phi shift of the input (the group acts affinely there) and the attribution is
    shift invariant. The path is then ``b + alpha * wrap(pos - b)``.
    """
    base = torch.zeros_like(inp.pos)
    if period is None:
        return base
    for d, p in enumerate(period):
        if p is None:
            continue
        ang = inp.pos[:, d] * (2 * math.pi / p)
        c = scatter(torch.cos(ang), inp.batch, dim=0, dim_size=inp.num_graphs, reduce="sum")
        s = scatter(torch.sin(ang), inp.batch, dim=0, dim_size=inp.num_graphs, reduce="sum")
        base[:, d] = (torch.atan2(s, c) * (p / (2 * math.pi)))[inp.batch]
    return base


def _graph(clf: nn.Module, inp: PointInputs) -> Tensor:
    with torch.no_grad():
        return clf.build_graph(clf.scale_pos(inp.pos), inp.batch)


def _channels(inp: PointInputs) -> Tensor:
    """Input channels ``[N, D + F]`` (positions, then features)."""
    if inp.x is None or inp.x.shape[1] == 0:
        return inp.pos
    return torch.cat([inp.pos, inp.x.float()], dim=1)


def _reduce(attr: Tensor, how: str) -> Tensor:
    if how == "sum":
        return attr.sum(-1)
    if how == "abs_sum":
        return attr.abs().sum(-1)
    if how == "abs":
        return attr.sum(-1).abs()
    if how == "norm":
        return attr.norm(dim=-1)
    raise ValueError(f"unknown reduce {how!r}")


@register("gradcam")
class GradCAM(Explainer):
    """GradCAM on the last message-passing layer: ``score_i = sum_c (d logit / d h_ic) h_ic``.

    (Captum's ``LayerGradCam`` on a node-level layer: no spatial dimension to average the
    gradients over.) ``relu=True`` clips negative scores as in the image GradCAM.
    """

    def __init__(self, relu: bool = False) -> None:
        self.relu = relu

    def options(self):
        return {"relu": self.relu}

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        clf = classifier_of(model)
        ei = _graph(clf, inp)
        with frozen(clf), torch.enable_grad():
            # embed / readout are exactly the two halves of clf.forward
            h = clf.embed(inp.x, clf.scale_pos(inp.pos), inp.batch, ei).detach()
            h.requires_grad_(True)
            logits = clf.readout(h, inp.batch, inp.num_graphs)
            (g,) = torch.autograd.grad(logits.sum(), h)
        s = (g * h).sum(-1)
        return s.clamp_min(0) if self.relu else s


@register("gradgeo")
class GradGeo(Explainer):
    """GradGeo: per point the L2 norm of ``d logit / d pos`` (data frame; graph fixed)."""

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        clf = classifier_of(model)
        ei = _graph(clf, inp)
        with frozen(clf), torch.enable_grad():
            pos = inp.pos.detach().requires_grad_(True)
            logits = clf(inp.x, pos, inp.batch, edge_index=ei)
            (g,) = torch.autograd.grad(logits.sum(), pos)
        return g.norm(dim=-1)


def _path_logits(clf, inp: PointInputs, ei: Tensor, alphas: Tensor, base: Tensor, delta: Tensor):
    """Logits and inputs at ``base + alpha * delta`` for all ``alphas`` at once (one replicated
    batch). Returns ``(logits [S B], chan [S N, C])`` with ``chan`` requiring grad."""
    s = alphas.numel()
    batch, edge_index, copy = replicate(inp, ei, s)
    a = alphas.to(inp.pos)[copy].unsqueeze(-1)
    chan = (base.repeat(s, 1) + a * delta.repeat(s, 1)).detach().requires_grad_(True)
    d = inp.pos.shape[1]
    x = chan[:, d:] if chan.shape[1] > d else (None if inp.x is None else inp.x.repeat(s, 1))
    logits = clf(x, chan[:, :d], batch, edge_index=edge_index)
    return logits, chan


def integrated_gradients(
    model: nn.Module,
    data: BaseData,
    *,
    n_steps: int = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
    baseline: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-channel Integrated Gradients of the positive logit.

    Args:
        model: classifier (or LRI model: its classifier is explained).
        data: ``Data``/``Batch``.
        n_steps: quadrature points of the path integral.
        method: ``"gausslegendre"`` (Captum's default) or ``"riemann_trapezoid"``.
        internal_batch_size: path points evaluated per forward pass (the batch is replicated
            that many times with offset ``batch``/``edge_index``); default: all at once up to
            about 200k points.
        baseline: ``[N, D + F]`` channel baseline; default :func:`default_baseline` for the
            positions and zeros for the features.

    Returns:
        ``(attributions [N, D + F], delta [B])`` with ``delta = f(x) - f(baseline)`` per sample
        (completeness: ``attributions`` summed per sample ``~= delta``).

    Note:
        Completeness needs ``f`` continuous along the path. DGCNN / Point Transformer edge
        features contain the direction ``(p_i - p_j) / |p_i - p_j|``, which is scale invariant
        for ``alpha > 0`` but set to 0 at ``alpha = 0`` where all points coincide on a zero
        baseline: for those backbones ``delta`` differs from the integral by the jump
        ``f(0+) - f(0)``. EGNN (distances only) has no such jump.
    """
    from hepx.explain.base import point_inputs

    inp = point_inputs(data)
    clf = classifier_of(model)
    ei = _graph(clf, inp)
    chan = _channels(inp)
    d = inp.pos.shape[1]
    if baseline is None:
        baseline = torch.zeros_like(chan)
        baseline[:, :d] = default_baseline(inp, data_period(clf))
    delta = chan - baseline
    delta[:, :d] = _wrap(delta[:, :d], data_period(clf))
    if method == "gausslegendre":
        t, w = np.polynomial.legendre.leggauss(n_steps)
        alphas, weights = (t + 1) / 2, w / 2
    elif method == "riemann_trapezoid":
        alphas = np.linspace(0, 1, n_steps)
        weights = np.full(n_steps, 1.0 / (n_steps - 1))
        weights[[0, -1]] *= 0.5
    else:
        raise ValueError(f"unknown IG method {method!r}")
    alphas_t = torch.as_tensor(alphas, dtype=torch.float32)
    weights_t = torch.as_tensor(weights, dtype=torch.float32, device=chan.device)
    per = internal_batch_size or max(1, min(n_steps, 200_000 // max(inp.num_points, 1)))
    grad_sum = torch.zeros_like(chan)
    n = inp.num_points
    with frozen(clf), torch.enable_grad():
        for lo in range(0, n_steps, per):
            hi = min(lo + per, n_steps)
            logits, c = _path_logits(clf, inp, ei, alphas_t[lo:hi], baseline, delta)
            (g,) = torch.autograd.grad(logits.sum(), c)
            g = g.view(hi - lo, n, -1) * weights_t[lo:hi].view(-1, 1, 1)
            grad_sum += g.sum(0)
        with torch.no_grad():
            ends, _ = _path_logits(clf, inp, ei, torch.tensor([0.0, 1.0]), baseline, delta)
    ends = ends.view(2, -1)
    return (grad_sum * delta).detach(), (ends[1] - ends[0]).detach()


@register("ig")
class IntegratedGradients(Explainer):
    """Integrated Gradients (own batched path loop; Captum-compatible quadrature).

    Point score: the sum over the point's channels (coordinates and features) of the
    attributions (``reduce="sum"``), which is exactly invariant under rotations of a
    rotation-invariant model with a rotation-invariant baseline; ``"abs"`` takes its absolute
    value, ``"abs_sum"`` sums absolute per-channel values (not rotation invariant).
    Default 50 Gauss-Legendre steps, as Captum.
    """

    def __init__(
        self,
        n_steps: int = 50,
        method: str = "gausslegendre",
        reduce: str = "sum",
        internal_batch_size: int | None = None,
    ) -> None:
        self.n_steps, self.method, self.reduce = n_steps, method, reduce
        self.internal_batch_size = internal_batch_size

    def options(self):
        return {"n_steps": self.n_steps, "method": self.method, "reduce": self.reduce}

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        attr, _ = integrated_gradients(
            model,
            data,
            n_steps=self.n_steps,
            method=self.method,
            internal_batch_size=self.internal_batch_size,
        )
        return _reduce(attr, self.reduce)


@register("ggig")
class GGIG(Explainer):
    """Geometrically guided integrated gradients (after Rahman, Lewis & Plis, arXiv 2206.05903).

    No public implementation exists; the choices made here:

    * Path and baseline as IG (:func:`default_baseline`, graph fixed), ``m`` interpolation
      points ``alpha_k = k / m``, ``k = 1..m`` (default ``m = 20``).
    * From each interpolation point ``z = b + alpha_k (x - b)`` take ``T`` gradient-guided
      steps (default ``T = 5``): at each step evaluate ``g = d logit / d z``, record the
      candidate attribution ``a = g * (x - b)`` (gradient times input, per channel), then move
      every point along its own normalised gradient, ``z_i += step * |x_i - b_i| g_i / |g_i|``
      with ``step = 1 / (2 m T)``, so the exploration stays within half an interpolation
      interval of the straight path. Normalising per point (not per channel, not ``sign(g)``)
      keeps the search rotation equivariant.
    * Selection rule: per *point*, keep the candidate (over all ``m x T`` evaluations) whose
      channel sum has the largest magnitude *within each starting point*, and average the kept
      (signed) sums over the ``m`` starting points: ``score_i = (1/m) sum_k best_t sum_c a_ic``,
      ``best_t`` picking the step with the largest ``|sum_c a_ic|``. Selecting per point rather than per channel keeps the score rotation
      invariant (see the robustness module); like the paper's method it loses completeness.

    Cost: ``m x T`` gradient evaluations (all ``m`` starting points in one replicated batch).
    """

    def __init__(self, m: int = 20, steps: int = 5, internal_batch_size: int | None = None) -> None:
        self.m, self.steps = m, steps
        self.internal_batch_size = internal_batch_size

    def options(self):
        return {"m": self.m, "steps": self.steps}

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        clf = classifier_of(model)
        ei = _graph(clf, inp)
        chan = _channels(inp)
        d = inp.pos.shape[1]
        n = inp.num_points
        base = torch.zeros_like(chan)
        per = data_period(clf)
        base[:, :d] = default_baseline(inp, per)
        delta = chan - base
        delta[:, :d] = _wrap(delta[:, :d], per)
        scale = delta.norm(dim=-1, keepdim=True)
        step = 1.0 / (2 * self.m * self.steps)
        alphas = torch.arange(1, self.m + 1, dtype=torch.float32) / self.m
        chunk = self.internal_batch_size or max(1, min(self.m, 200_000 // max(n, 1)))
        total = torch.zeros(n, device=chan.device)
        with frozen(clf), torch.enable_grad():
            for lo in range(0, self.m, chunk):
                al = alphas[lo : lo + chunk]
                s = al.numel()
                batch, edge_index, copy = replicate(inp, ei, s)
                z = base.repeat(s, 1) + al.to(chan)[copy].unsqueeze(-1) * delta.repeat(s, 1)
                best = torch.zeros(s * n, device=chan.device)
                for _ in range(self.steps):
                    z = z.detach().requires_grad_(True)
                    x = (
                        z[:, d:]
                        if z.shape[1] > d
                        else (None if inp.x is None else inp.x.repeat(s, 1))
                    )
                    logits = clf(x, z[:, :d], batch, edge_index=edge_index)
                    (g,) = torch.autograd.grad(logits.sum(), z)
                    cand = (g * delta.repeat(s, 1)).sum(-1)
                    best = torch.where(cand.abs() > best.abs(), cand, best)
                    gn = g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                    z = z + step * scale.repeat(s, 1) * g / gn
                total += best.view(s, n).sum(0)
        return total / self.m
