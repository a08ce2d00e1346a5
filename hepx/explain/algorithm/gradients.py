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

from hepx.config.evaluate import PATH_BASELINES
from hepx.errors import ConfigError
from hepx.explain.algorithm.base import (
    ExplainerAlgorithm,
    PointInputs,
    classifier_of,
    frozen,
    point_inputs,
    replicate,
)

__all__ = [
    "BASELINES",
    "GGIG",
    "GradCAM",
    "GradGeo",
    "IntegratedGradients",
    "data_period",
    "default_baseline",
    "fixed_graph",
    "integrated_gradients",
    "path_baseline",
    "point_score",
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


#: Baselines of the path methods (see :func:`path_baseline`).
BASELINES = PATH_BASELINES


def path_baseline(
    inp: PointInputs, period: Sequence[float | None] | None, kind: str = "origin"
) -> Tensor:
    """The IG/GGIG baseline positions ``[N, D]``.

    * ``"origin"``: zero on ordinary axes (the beam spot for ActsTrack, a rotation-invariant
      point).
    * ``"centroid"``: each sample's mean position on ordinary axes, so the path collapses a
      sample onto its own centre instead of a fixed point. It moves with rotations and
      translations of the sample, so the attribution of a translation-invariant model is
      translation invariant, and for (eta, phi) data the path of a one-endcap sample stays
      inside the endcap (the origin is at eta = 0). On Tau3Mu-sim it ranked the tau-muon hits
      worse than the origin (docs: design decisions): the magnitude score grows with the
      distance from the baseline, and those collimated hits lie near the centroid.

    Either way, on a periodic axis (Tau3Mu phi) the baseline is the per-sample circular mean of
    the coordinate, so it moves with a phi shift of the input (the group acts affinely there) and
    the attribution is shift invariant. The path is ``b + alpha * wrap(pos - b)``.
    """
    _check_baseline(kind)
    if kind == "centroid":
        mean = scatter(inp.pos, inp.batch, dim=0, dim_size=inp.num_graphs, reduce="mean")
        base = mean[inp.batch]
    else:
        base = torch.zeros_like(inp.pos)
    for d, p in enumerate(period or ()):
        if p is not None:
            ang = inp.pos[:, d] * (2 * math.pi / p)
            c = scatter(torch.cos(ang), inp.batch, dim=0, dim_size=inp.num_graphs, reduce="sum")
            s = scatter(torch.sin(ang), inp.batch, dim=0, dim_size=inp.num_graphs, reduce="sum")
            base[:, d] = (torch.atan2(s, c) * (p / (2 * math.pi)))[inp.batch]
    return base


def default_baseline(inp: PointInputs, period: Sequence[float | None] | None) -> Tensor:
    """``path_baseline(inp, period, "origin")``, the default IG/GGIG baseline."""
    return path_baseline(inp, period, "origin")


def fixed_graph(clf: nn.Module, inp: PointInputs) -> Tensor:
    """The classifier's graph ``[2, E]`` on the real input, without gradient (kept fixed
    while an explainer moves or masks the points)."""
    with torch.no_grad():
        return clf.build_graph(clf.scale_pos(inp.pos), inp.batch)


def _channels(inp: PointInputs) -> Tensor:
    """Input channels ``[N, D + F]`` (positions, then features)."""
    if inp.x is None or inp.x.shape[1] == 0:
        return inp.pos
    return torch.cat([inp.pos, inp.x.float()], dim=1)


#: Point scores of the path methods (see :func:`point_score`).
POINT_SCORES = ("magnitude", "sum", "abs", "abs_sum", "norm")


def point_score(grad: Tensor, disp: Tensor, pos_dim: int, how: str = "magnitude") -> Tensor:
    """One score per point from a (path-averaged) gradient and the displacement from the baseline.

    Args:
        grad: ``[N, D + F]`` gradient of the logit per input channel (positions, then features).
        disp: ``[N, D + F]`` displacement ``x - baseline`` per channel.
        pos_dim: ``D``, the number of position channels.
        how: ``"magnitude"``: ``|g_pos| |disp_pos| + sum_f |g_f disp_f|``, the position block
            taken as one vector and each feature as a scalar; an upper bound of ``|sum|``
            (Cauchy-Schwarz) that is exactly rotation invariant and also counts the part of the
            gradient perpendicular to the path. ``"sum"``: the signed channel sum of the
            attributions ``g * disp`` (completeness; rotation invariant). ``"abs"``: its absolute
            value. ``"abs_sum"`` / ``"norm"``: sum of absolute values / L2 norm of the
            per-channel attributions (not rotation invariant: the per-channel products do not
            rotate as a vector).

    Returns:
        ``[N]`` scores.
    """
    if how == "magnitude":
        out = grad[:, :pos_dim].norm(dim=-1) * disp[:, :pos_dim].norm(dim=-1)
        if grad.shape[1] > pos_dim:
            out = out + (grad[:, pos_dim:] * disp[:, pos_dim:]).abs().sum(-1)
        return out
    attr = grad * disp
    if how == "sum":
        return attr.sum(-1)
    if how == "abs":
        return attr.sum(-1).abs()
    if how == "abs_sum":
        return attr.abs().sum(-1)
    if how == "norm":
        return attr.norm(dim=-1)
    raise ConfigError(f"unknown point score {how!r}; expected one of {', '.join(POINT_SCORES)}")


class GradCAM(ExplainerAlgorithm):
    """GradCAM on the output of the last convolution, as in the LRI reference.

    The last layer adds ``a = relu(norm(conv(h)))`` ``[N, C]`` to its input (a residual
    block); GradCAM takes that block output ``a``, the rectified activation of the last
    convolution, not the summed embedding ``h + a``: ``score_i = sum_c (d S / d a_ic) a_ic``
    with ``S`` the sum of the batch's signal logits (the reference's binary target). On a
    node-level layer there is no spatial dimension to average the gradients over, so, as in
    the reference, gradient and activation multiply per point and channel. ``relu=True``
    clips negative scores as the image GradCAM does (off in the reference). A classifier
    without hepx's residual blocks (no ``backbone.norms``) is taken at its embedding.
    """

    name = "gradcam"

    def __init__(self, relu: bool = False) -> None:
        self.relu = relu

    def options(self):
        return {"relu": self.relu}

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        clf = classifier_of(model)
        ei = fixed_graph(clf, inp)
        captured: list[Tensor] = []
        norms = getattr(getattr(clf, "backbone", None), "norms", None)
        hook = (
            norms[-1].register_forward_hook(lambda m, i, out: captured.append(out))
            if norms
            else None
        )
        try:
            with frozen(clf), torch.enable_grad():
                # embed / readout are exactly the two halves of clf.forward
                h = clf.embed(inp.x, clf.scale_pos(inp.pos), inp.batch, ei).detach()
                h.requires_grad_(True)
                logits = clf.readout(h, inp.batch, inp.num_graphs)
                # d S / d a = d S / d h: the last block's output is added to h unscaled (eval)
                (g,) = torch.autograd.grad(logits.sum(), h)
        finally:
            if hook is not None:
                hook.remove()
        a = torch.relu(captured[-1].detach()) if captured else h.detach()
        s = (g * a).sum(-1)
        return s.clamp_min(0) if self.relu else s


class GradGeo(ExplainerAlgorithm):
    """GradGeo: per point the L2 norm of ``d logit / d pos`` (data frame; graph fixed)."""

    name = "gradgeo"

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        clf = classifier_of(model)
        ei = fixed_graph(clf, inp)
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
    baseline: Tensor | str = "origin",
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
        baseline: ``[N, D + F]`` channel baseline, or the name of a position baseline
            (:func:`path_baseline`: ``"origin"`` or ``"centroid"``) with zeros for the features.

    Returns:
        ``(attributions [N, D + F], delta [B])`` with ``delta = f(x) - f(baseline)`` per sample
        (completeness: ``attributions`` summed per sample ``~= delta``).

    Note:
        Completeness needs ``f`` continuous along the path. At ``alpha = 0`` a zero baseline
        puts all points of a sample on one spot, where edge directions are undefined (DGCNN /
        Point Transformer set them to 0) and so are the beam-frame features (the transverse
        curvature of ``alpha p`` grows as ``1 / alpha``). For those models ``delta`` differs from
        the integral by the jump ``f(0+) - f(0)``. An EGNN in the global frame (distances only)
        has no such jump.
    """
    grad, disp, delta = _path_integral(
        model,
        data,
        n_steps=n_steps,
        method=method,
        internal_batch_size=internal_batch_size,
        baseline=baseline,
    )
    return grad * disp, delta


def _path_integral(
    model: nn.Module,
    data: BaseData,
    *,
    n_steps: int,
    method: str,
    internal_batch_size: int | None,
    baseline: Tensor | str,
) -> tuple[Tensor, Tensor, Tensor]:
    """Path-averaged gradient ``[N, D + F]``, displacement ``x - baseline`` ``[N, D + F]`` and
    ``f(x) - f(baseline)`` ``[B]`` (see :func:`integrated_gradients`)."""
    inp = point_inputs(data)
    clf = classifier_of(model)
    ei = fixed_graph(clf, inp)
    chan = _channels(inp)
    d = inp.pos.shape[1]
    if isinstance(baseline, str):
        kind = baseline
        baseline = torch.zeros_like(chan)
        baseline[:, :d] = path_baseline(inp, data_period(clf), kind)
    disp = chan - baseline
    disp[:, :d] = _wrap(disp[:, :d], data_period(clf))
    if method == "gausslegendre":
        t, w = np.polynomial.legendre.leggauss(n_steps)
        alphas, weights = (t + 1) / 2, w / 2
    elif method == "riemann_trapezoid":
        alphas = np.linspace(0, 1, n_steps)
        weights = np.full(n_steps, 1.0 / (n_steps - 1))
        weights[[0, -1]] *= 0.5
    else:
        raise ConfigError(
            f"unknown IG method {method!r}; expected 'gausslegendre' or 'riemann_trapezoid'"
        )
    alphas_t = torch.as_tensor(alphas, dtype=torch.float32)
    weights_t = torch.as_tensor(weights, dtype=torch.float32, device=chan.device)
    per = internal_batch_size or max(1, min(n_steps, 200_000 // max(inp.num_points, 1)))
    grad_sum = torch.zeros_like(chan)
    n = inp.num_points
    with frozen(clf), torch.enable_grad():
        for lo in range(0, n_steps, per):
            hi = min(lo + per, n_steps)
            logits, c = _path_logits(clf, inp, ei, alphas_t[lo:hi], baseline, disp)
            (g,) = torch.autograd.grad(logits.sum(), c)
            g = g.view(hi - lo, n, -1) * weights_t[lo:hi].view(-1, 1, 1)
            grad_sum += g.sum(0)
        with torch.no_grad():
            ends, _ = _path_logits(clf, inp, ei, torch.tensor([0.0, 1.0]), baseline, disp)
    ends = ends.view(2, -1)
    return grad_sum.detach(), disp.detach(), (ends[1] - ends[0]).detach()


class IntegratedGradients(ExplainerAlgorithm):
    """Integrated Gradients (own batched path loop; Captum-compatible quadrature).

    Point score (``score``, see :func:`point_score`): by default ``"magnitude"``,
    ``|g_pos| |x_pos - b_pos|`` plus ``|g_f x_f|`` per feature, with ``g`` the path-averaged
    gradient. Why not the signed channel sum of the attributions (``score="sum"``, the one that
    keeps completeness)? The straight path from a zero baseline moves every hit *radially*,
    so the sum only credits the radial component of the gradient. A tracking model responds
    to the transverse (curvature) direction, and on ActsTrack-sim the signed sum ranks the
    signal hits at chance (docs: design decisions). Both scores
    are exactly invariant under rotations of a rotation-invariant model. Default 50
    Gauss-Legendre steps, as Captum. Baseline (``baseline``, :func:`path_baseline`): the origin
    (beam spot; eta = 0 for (eta, phi) data) or each sample's centroid.
    """

    name = "ig"

    def __init__(
        self,
        n_steps: int = 50,
        method: str = "gausslegendre",
        score: str = "magnitude",
        baseline: str = "origin",
        internal_batch_size: int | None = None,
    ) -> None:
        _check_score(score)
        _check_baseline(baseline)
        self.n_steps, self.method, self.score = n_steps, method, score
        self.baseline = baseline
        self.internal_batch_size = internal_batch_size

    def options(self):
        return {
            "n_steps": self.n_steps,
            "method": self.method,
            "score": self.score,
            "baseline": self.baseline,
        }

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        grad, disp, _ = _path_integral(
            model,
            data,
            n_steps=self.n_steps,
            method=self.method,
            internal_batch_size=self.internal_batch_size,
            baseline=self.baseline,
        )
        return point_score(grad, disp, inp.pos.shape[1], self.score)


def _check_baseline(baseline: str) -> None:
    if baseline not in BASELINES:
        raise ConfigError(
            f"unknown IG baseline {baseline!r}; expected one of {', '.join(BASELINES)}"
        )


def _check_score(score: str) -> None:
    if score not in POINT_SCORES:
        raise ConfigError(
            f"unknown point score {score!r}; expected one of {', '.join(POINT_SCORES)}"
        )


class GGIG(ExplainerAlgorithm):
    """Geometrically guided integrated gradients (after Rahman, Lewis & Plis, arXiv 2206.05903).

    No public implementation exists; the choices made here:

    * Path and baseline as IG (:func:`path_baseline`, graph fixed), ``m`` interpolation
      points ``alpha_k = k / m``, ``k = 1..m`` (default ``m = 20``).
    * From each interpolation point ``z = b + alpha_k (x - b)`` take ``T`` gradient-guided
      steps (default ``T = 5``): at each step evaluate ``g = d logit / d z``, record each
      point's candidate score (below), then move every point along its own normalised
      gradient, ``z_i += step * |x_i - b_i| g_i / |g_i|``
      with ``step = 1 / (2 m T)``, so the exploration stays within half an interpolation
      interval of the straight path. Normalising per point (not per channel, not ``sign(g)``)
      keeps the search rotation equivariant.
    * Candidate score of a point at each step: :func:`point_score` of ``(g, x - b)``, by
      default the rotation-invariant ``"magnitude"`` (as for IG, the signed channel sum
      ``score="sum"`` only sees the gradient's component along the radial path).
    * Selection rule: per *point*, keep the candidate with the largest magnitude among the
      ``T`` steps *from each starting point*, and average the kept values over the ``m``
      starting points: ``score_i = (1/m) sum_k best_t c_ikt``. Selecting per point rather than
      per channel keeps the score rotation invariant (see the robustness module); like the
      paper's method it loses completeness.

    Cost: ``m x T`` gradient evaluations (all ``m`` starting points in one replicated batch).
    """

    name = "ggig"

    def __init__(
        self,
        m: int = 20,
        steps: int = 5,
        score: str = "magnitude",
        baseline: str = "origin",
        internal_batch_size: int | None = None,
    ) -> None:
        _check_score(score)
        _check_baseline(baseline)
        self.m, self.steps, self.score = m, steps, score
        self.baseline = baseline
        self.internal_batch_size = internal_batch_size

    def options(self):
        return {"m": self.m, "steps": self.steps, "score": self.score, "baseline": self.baseline}

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        clf = classifier_of(model)
        ei = fixed_graph(clf, inp)
        chan = _channels(inp)
        d = inp.pos.shape[1]
        n = inp.num_points
        base = torch.zeros_like(chan)
        per = data_period(clf)
        base[:, :d] = path_baseline(inp, per, self.baseline)
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
                    cand = point_score(g, delta.repeat(s, 1), d, self.score)
                    best = torch.where(cand.abs() > best.abs(), cand, best)
                    gn = g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                    z = z + step * scale.repeat(s, 1) * g / gn
                total += best.view(s, n).sum(0)
        return total / self.m
