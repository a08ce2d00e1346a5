"""Explanation invariance / equivariance (Crabbe & van der Schaar, NeurIPS 2023) for point clouds.

Groups act on a batch in the *data frame* (mm for ActsTrack, radians for Tau3Mu), one group
element per sample:

* :class:`Permutation`: permutes the points of each sample among themselves
  (scores are expected to be *equivariant*: ``e(P x) = P e(x)``);
* :class:`RotationZ`: rotation about the beam axis ``z`` (ActsTrack ``x, y, z``);
* :class:`PhiShift`: ``phi -> phi + delta`` wrapped into ``(-pi, pi]`` (Tau3Mu ``eta, phi``);
* :class:`E3`: Haar-random ``O(3)`` element (rotation, reflection with probability 1/2) and a
  translation uniform in ``[-translation, translation]^3`` (default 100, data units: mm).

For the geometric groups point scores should be *invariant*: ``rho'(g)`` is the identity.
Scores: per sample, cosine similarity with a ``1e-4`` offset on both vectors and the Spearman
rank correlation, averaged over ``n_draws`` Monte Carlo group elements (default 50).

The offset makes the cosine *scale dependent*: for scores of magnitude ~``1e-4`` or less the
offset dominates both vectors and the cosine is pulled towards 1 whatever the scores are.
``normalise="per_sample"`` divides each sample's score vector by its largest ``|score|``
before the cosine (:func:`normalise_per_sample`), so that the offset is ``1e-4`` of the
sample's largest score. The Spearman correlation is scale free either way.

Which group a model should be invariant under depends on the model (:func:`default_group`):
an EGNN on Cartesian positions in the global frame is ``E(3)`` invariant; every other model on
``(x, y, z)`` (a beam-frame EGNN included) only under rotations about ``z``; a model with a
periodic axis (Tau3Mu ``phi``) under shifts of it.

The model's own invariance (:func:`model_invariance`) is measured per sample: the absolute
logit change ``|f(g x) - f(x)|`` and whether the predicted class is unchanged (for models with
one logit per sample, where a per-sample cosine of two scalars is only their sign agreement),
and the offset cosine of the logit vectors when a sample has several logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData
from torch_geometric.utils import scatter

from hepx.errors import ConfigError
from hepx.explain.algorithm.base import (
    ExplainerAlgorithm,
    classifier_of,
    frozen,
    point_inputs,
)

__all__ = [
    "E3",
    "GROUPS",
    "Group",
    "Permutation",
    "PhiShift",
    "RotationZ",
    "applicable_groups",
    "cosine_per_sample",
    "default_group",
    "explanation_robustness",
    "get_group",
    "is_e3_invariant",
    "model_invariance",
    "normalise_per_sample",
    "spearman_per_sample",
    "summarise",
]

#: The values of the ``normalise`` option of the cosine scores.
NORMALISATIONS = (None, "per_sample")

_SAMPLE_KEYS = {"y", "event_id", "source_file", "ptr", "batch"}


def _point_keys(data: BaseData) -> list[str]:
    n = data.num_nodes
    return [
        k
        for k, v in data.items()
        if k not in _SAMPLE_KEYS and isinstance(v, Tensor) and v.dim() >= 1 and v.shape[0] == n
    ]


@dataclass
class Action:
    """One group element per sample: the transformed batch and, for permutations, the index
    ``perm [N]`` with ``new[j] = old[perm[j]]``."""

    data: BaseData
    perm: Tensor | None = None

    def to_original(self, scores_g: Tensor) -> Tensor:
        """``rho'(g)^{-1}``: scores of ``g x`` back in the order of ``x``."""
        if self.perm is None:
            return scores_g
        out = torch.empty_like(scores_g)
        out[self.perm] = scores_g
        return out

    def act(self, scores: Tensor) -> Tensor:
        """``rho'(g)``: scores of ``x`` in the order of ``g x``."""
        return scores if self.perm is None else scores[self.perm]


class Group:
    """A group acting on batches; :meth:`sample` draws one element per sample."""

    name = "group"
    equivariant = False  # whether rho'(g) is a non-trivial re-indexing

    def sample(self, data: BaseData, gen: torch.Generator) -> Action:
        raise NotImplementedError

    def _per_sample(self, data: BaseData, gen: torch.Generator, lo: float, hi: float) -> Tensor:
        b = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        return lo + (hi - lo) * torch.rand(b, generator=gen, dtype=torch.float64)


def _batch_vec(data: BaseData) -> Tensor:
    b = getattr(data, "batch", None)
    return torch.zeros(data.num_nodes, dtype=torch.long, device=data.pos.device) if b is None else b


class Permutation(Group):
    """Random permutation of the points within each sample (vectorised: sort by
    ``sample + U(0, 1)``)."""

    name = "permutation"
    equivariant = True

    def sample(self, data, gen):
        batch = _batch_vec(data)
        key = batch.double().cpu() + torch.rand(batch.numel(), generator=gen, dtype=torch.float64)
        perm = torch.argsort(key).to(batch.device)
        out = data.clone()
        for k in _point_keys(data):
            out[k] = data[k][perm]
        return Action(out, perm)


def _rotate(v: Tensor, rot: Tensor, batch: Tensor) -> Tensor:
    """``v [N, 3]`` by per-sample ``rot [B, 3, 3]``."""
    return torch.einsum("nij,nj->ni", rot[batch].to(v), v)


class RotationZ(Group):
    """Rotation about the beam axis by an angle uniform in ``[0, 2 pi)`` per sample; also rotates
    ``node_dir`` when present."""

    name = "rotation_z"

    def sample(self, data, gen):
        batch = _batch_vec(data)
        th = self._per_sample(data, gen, 0.0, 2 * math.pi)
        c, s = torch.cos(th), torch.sin(th)
        rot = torch.zeros(len(th), 3, 3, dtype=torch.float64)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = c, -s, s, c
        rot[:, 2, 2] = 1
        rot = rot.to(batch.device)
        out = data.clone()
        out.pos = _rotate(data.pos.double(), rot, batch).to(data.pos.dtype)
        if getattr(data, "node_dir", None) is not None:
            out.node_dir = _rotate(data.node_dir.double(), rot, batch).to(data.node_dir.dtype)
        return Action(out)


def wrap_angle(phi: Tensor) -> Tensor:
    """Wrap angles into ``(-pi, pi]``."""
    return math.pi - torch.remainder(math.pi - phi, 2 * math.pi)


class PhiShift(Group):
    """``phi -> wrap(phi + delta)``, ``delta`` uniform in ``[0, 2 pi)`` per sample, on column
    ``axis`` of ``pos`` (Tau3Mu: 1)."""

    name = "phi_shift"

    def __init__(self, axis: int = 1) -> None:
        self.axis = axis

    def sample(self, data, gen):
        batch = _batch_vec(data)
        dphi = self._per_sample(data, gen, 0.0, 2 * math.pi).to(batch.device)
        out = data.clone()
        pos = data.pos.clone().double()
        pos[:, self.axis] = wrap_angle(pos[:, self.axis] + dphi[batch])
        out.pos = pos.to(data.pos.dtype)
        return Action(out)


def haar_orthogonal(b: int, gen: torch.Generator, *, reflections: bool = True) -> Tensor:
    """``[b, 3, 3]`` Haar-random rotations (QR of Gaussian matrices with the sign fix), each
    multiplied by a reflection with probability 1/2 when ``reflections``."""
    a = torch.randn(b, 3, 3, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    det = torch.linalg.det(q)
    q[:, :, 0] *= det.sign().unsqueeze(-1)  # now in SO(3)
    if reflections:
        flip = torch.rand(b, generator=gen) < 0.5
        q[flip, :, 0] *= -1
    return q


class E3(Group):
    """E(3): Haar ``O(3)`` element and a translation uniform in ``[-t, t]^3`` per sample
    (``t = translation``, data units; default 100 mm)."""

    name = "e3"

    def __init__(self, translation: float = 100.0, reflections: bool = True) -> None:
        self.translation, self.reflections = float(translation), reflections

    def sample(self, data, gen):
        batch = _batch_vec(data)
        b = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
        rot = haar_orthogonal(b, gen, reflections=self.reflections).to(batch.device)
        shift = (torch.rand(b, 3, generator=gen, dtype=torch.float64) * 2 - 1) * self.translation
        out = data.clone()
        out.pos = (_rotate(data.pos.double(), rot, batch) + shift.to(batch.device)[batch]).to(
            data.pos.dtype
        )
        if getattr(data, "node_dir", None) is not None:
            out.node_dir = _rotate(data.node_dir.double(), rot, batch).to(data.node_dir.dtype)
        return Action(out)


GROUPS: dict[str, type[Group]] = {
    "permutation": Permutation,
    "rotation_z": RotationZ,
    "phi_shift": PhiShift,
    "e3": E3,
}


def get_group(name: str, **kwargs: Any) -> Group:
    if name not in GROUPS:
        raise ConfigError(f"unknown group {name!r}; known groups: {', '.join(GROUPS)}")
    return GROUPS[name](**kwargs)


def _periodic_axes(model: nn.Module) -> list[int]:
    period = getattr(classifier_of(model), "period", None)
    return [d for d, p in enumerate(period or ()) if p is not None]


def is_e3_invariant(model: nn.Module) -> bool:
    """Whether ``model`` (a classifier or an LRI model) is invariant under ``E(3)``: an EGNN
    backbone on 3-D Cartesian positions in the global frame, without ``unit_direction``, with a
    graph built on the positions (not their directions) and no periodic axis. A beam-frame
    EGNN is only invariant under rotations about ``z``; the other backbones see edge vectors in
    the data's axes."""
    from hepx.models.backbones.egnn import EGNN

    clf = classifier_of(model)
    bb = getattr(clf, "backbone", None)
    if not isinstance(bb, EGNN) or bb.pos_dim != 3 or bb.frame != "global":
        return False
    if getattr(clf, "unit_direction", False) or _periodic_axes(model):
        return False
    graph = getattr(clf, "graph", None)
    return getattr(graph, "space", "position") == "position"


def default_group(model: nn.Module, pos_dim: int | None = None) -> Group:
    """The geometric group ``model`` should be invariant under, the default of
    :func:`explanation_robustness` and :func:`model_invariance`.

    * a periodic axis (Tau3Mu ``(eta, phi)``): :class:`PhiShift` on it;
    * 3-D positions: :class:`E3` for an ``E(3)``-invariant model (:func:`is_e3_invariant`),
      else :class:`RotationZ` (rotations about the beam axis; beam-frame models included);
    * otherwise :class:`Permutation`.

    ``pos_dim``: coordinates per point (default: the backbone's ``pos_dim``).
    """
    periodic = _periodic_axes(model)
    if periodic:
        return PhiShift(axis=periodic[-1])
    if pos_dim is None:
        pos_dim = getattr(getattr(classifier_of(model), "backbone", None), "pos_dim", None)
    if pos_dim == 3:
        return E3() if is_e3_invariant(model) else RotationZ()
    return Permutation()


def applicable_groups(model: nn.Module, groups: list[Group]) -> list[Group]:
    """``groups`` without those ``model`` is not built to be invariant under: :class:`E3` is
    kept only for an ``E(3)``-invariant model (:func:`is_e3_invariant`)."""
    return [g for g in groups if not isinstance(g, E3) or is_e3_invariant(model)]


# --------------------------------------------------------------------------- similarity


def normalise_per_sample(scores: Tensor, batch: Tensor) -> Tensor:
    """``scores`` divided by their sample's largest ``|score|`` (samples of zeros unchanged)."""
    s = scores.double()
    nb = int(batch.max()) + 1 if batch.numel() else 0
    top = scatter(s.abs(), batch, dim=0, dim_size=nb, reduce="max")
    return (s / torch.where(top > 0, top, torch.ones_like(top))[batch]).to(scores.dtype)


def cosine_per_sample(
    a: Tensor, b: Tensor, batch: Tensor, eps: float = 1e-4, *, normalise: str | None = None
) -> Tensor:
    """Per-sample cosine similarity of ``a + eps`` and ``b + eps`` (``[B]``).

    The offset keeps all-zero vectors defined but makes the score scale dependent: vectors of
    magnitude ~``eps`` or below score near 1 whatever their direction. ``normalise=
    "per_sample"`` first divides each sample's ``a`` and ``b`` by their largest ``|value|``
    (:func:`normalise_per_sample`).
    """
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be None or 'per_sample', got {normalise!r}")
    if normalise == "per_sample":
        a, b = normalise_per_sample(a.double(), batch), normalise_per_sample(b.double(), batch)
    a, b = a.double() + eps, b.double() + eps
    nb = int(batch.max()) + 1 if batch.numel() else 0
    dot = scatter(a * b, batch, dim=0, dim_size=nb, reduce="sum")
    na = scatter(a * a, batch, dim=0, dim_size=nb, reduce="sum").sqrt()
    nbb = scatter(b * b, batch, dim=0, dim_size=nb, reduce="sum").sqrt()
    return (dot / (na * nbb).clamp_min(1e-300)).float()


def _within_ranks(v: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) of ``v`` within each sample."""
    n = len(v)
    order = np.lexsort((v, batch))
    vs, bs = v[order], batch[order]
    new = np.ones(n, dtype=bool)
    new[1:] = (vs[1:] != vs[:-1]) | (bs[1:] != bs[:-1])
    gid = np.cumsum(new) - 1
    avg = np.bincount(gid, weights=np.arange(n, dtype=np.float64)) / np.bincount(gid)
    ranks = np.empty(n)
    ranks[order] = avg[gid]
    return ranks


def spearman_per_sample(a: Tensor, b: Tensor, batch: Tensor) -> Tensor:
    """Per-sample Spearman rank correlation (average ranks for ties), ``[B]``.

    A sample whose two score vectors are both constant counts as 1 (identical rankings); one
    constant and one not as 0.
    """
    a_np = a.detach().double().cpu().numpy()
    b_np = b.detach().double().cpu().numpy()
    bt = batch.detach().cpu().numpy()
    nb = int(bt.max()) + 1 if len(bt) else 0
    ra, rb = _within_ranks(a_np, bt), _within_ranks(b_np, bt)
    cnt = np.bincount(bt, minlength=nb).astype(np.float64)
    ma = np.bincount(bt, weights=ra, minlength=nb) / np.maximum(cnt, 1)
    mb = np.bincount(bt, weights=rb, minlength=nb) / np.maximum(cnt, 1)
    da, db = ra - ma[bt], rb - mb[bt]
    cov = np.bincount(bt, weights=da * db, minlength=nb)
    va = np.bincount(bt, weights=da * da, minlength=nb)
    vb = np.bincount(bt, weights=db * db, minlength=nb)
    tol = 1e-9
    rho = np.where((va > tol) & (vb > tol), cov / np.sqrt(np.maximum(va * vb, 1e-300)), 0.0)
    rho = np.where((va <= tol) & (vb <= tol), 1.0, rho)
    return torch.from_numpy(rho).float()


def summarise(values: Tensor | np.ndarray) -> dict[str, float]:
    """mean, median and 5th percentile of per-sample scores."""
    v = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"mean": float("nan"), "median": float("nan"), "p5": float("nan")}
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p5": float(np.percentile(v, 5)),
    }


# --------------------------------------------------------------------------- the scores


def _logits(model: nn.Module, data: BaseData) -> Tensor:
    """``[B, C]`` logits (``C = 1`` for the binary classifiers)."""
    with frozen(model), torch.no_grad():
        out = model(data)
    out = getattr(out, "logits", out)
    b = int(data.num_graphs) if hasattr(data, "num_graphs") else 1
    return out.reshape(b, -1)


class _ModelInvariance:
    """Per-sample accumulators of the model's invariance over group draws."""

    def __init__(self, f_x: Tensor) -> None:
        self.f_x = f_x.double()
        self.n_logits = f_x.shape[1]
        b = f_x.shape[0]
        self.cls_x = self._cls(self.f_x)
        self.abs_sum = torch.zeros(b, dtype=torch.float64)
        self.abs_max = torch.zeros(b, dtype=torch.float64)
        self.agree = torch.zeros(b, dtype=torch.float64)
        self.cos = torch.zeros(b, dtype=torch.float64)
        self.n = 0

    def _cls(self, f: Tensor) -> Tensor:
        return (f[:, 0] > 0).long() if self.n_logits == 1 else f.argmax(dim=1)

    def add(self, f_g: Tensor) -> None:
        f_g = f_g.double()
        diff = (f_g - self.f_x).abs().amax(dim=1).cpu()
        self.abs_sum += diff
        self.abs_max = torch.maximum(self.abs_max, diff)
        self.agree += (self._cls(f_g) == self.cls_x).double().cpu()
        if self.n_logits > 1:
            rows = torch.arange(f_g.shape[0], device=f_g.device).repeat_interleave(self.n_logits)
            self.cos += cosine_per_sample(f_g.reshape(-1), self.f_x.reshape(-1), rows).cpu()
        self.n += 1

    def result(self) -> dict[str, Any]:
        n = max(self.n, 1)
        abs_diff = (self.abs_sum / n).float()
        agree = (self.agree / n).float()
        cos = (self.cos / n).float() if self.n_logits > 1 else None
        abs_tail = float(np.percentile(abs_diff.numpy(), 95)) if len(abs_diff) else float("nan")
        summary = {
            "abs_diff": {**summarise(abs_diff), "p95": abs_tail},
            "class_agreement": summarise(agree),
        }
        if cos is not None:
            summary["cos"] = summarise(cos)
        return {
            "n_logits": self.n_logits,
            "abs_diff": abs_diff,
            "max_abs_diff": self.abs_max.float(),
            "class_agreement": agree,
            "cos": cos,
            "summary": summary,
            "model_max_abs_diff": float(self.abs_max.max()) if len(self.abs_max) else 0.0,
        }


def explanation_robustness(
    explainer: ExplainerAlgorithm,
    model: nn.Module,
    data: BaseData,
    group: Group | str | None = None,
    *,
    n_draws: int = 50,
    seed: int = 0,
    normalise: str | None = None,
) -> dict[str, Any]:
    """Monte Carlo invariance / equivariance of ``explainer`` under ``group`` on ``data``.

    Per sample and group draw ``g`` (one element per sample, ``n_draws`` draws): the cosine
    with the ``1e-4`` offset (:func:`cosine_per_sample`) and the Spearman rank correlation of
    ``e(g x)`` with ``e(x)`` (invariance) and with ``rho'(g) e(x)`` (equivariance), averaged
    over the draws.

    Args:
        group: a group or its name (:data:`GROUPS`); default: :func:`default_group` of the
            model (``E(3)`` only for an ``E(3)``-invariant EGNN, rotations about ``z`` for
            other 3-D models, ``phi`` shifts for models with a periodic axis).
        normalise: ``None`` (the published score) or ``"per_sample"``: each sample's scores
            are divided by their largest ``|score|`` before the cosine, which removes the
            scale dependence the offset brings (scores of magnitude ~``1e-4`` would otherwise
            be pulled towards a cosine of 1). The Spearman scores are unaffected.

    Returns:
        A dict with per-sample tensors ``[B]`` (averages over the draws):

        * ``invariance_cos``, ``invariance_spearman``: ``s(e(g x), e(x))``;
        * ``equivariance_cos``, ``equivariance_spearman``: ``s(e(g x), rho'(g) e(x))`` (equal
          to the invariance scores for the geometric groups, whose ``rho'`` is the identity);
        * the model's invariance on the same draws (see :func:`model_invariance`):
          ``model_abs_diff`` (mean ``|f(g x) - f(x)|``), ``model_class_agreement`` (fraction of
          draws with the predicted class unchanged), ``model_cos`` (offset cosine of the logit
          vectors; ``None`` for one logit per sample);

        and ``model_max_abs_diff`` (the largest ``|f(g x) - f(x)|`` seen), ``model_summary``
        (mean, median, 5th percentile over samples of the model scores), ``group`` (its
        name), ``n_draws`` and ``normalise``.
    """
    if isinstance(group, str):
        group = get_group(group)
    if group is None:
        group = default_group(model, int(data.pos.shape[1]))
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be None or 'per_sample', got {normalise!r}")
    gen = torch.Generator().manual_seed(seed)
    inp = point_inputs(data)
    batch = inp.batch
    e_x = explainer(model, data).scores
    inv = _ModelInvariance(_logits(model, data))
    z = torch.zeros(inp.num_graphs)
    acc = {k: z.clone() for k in ("inv_cos", "inv_sp", "eq_cos", "eq_sp")}
    for _ in range(n_draws):
        act = group.sample(data, gen)
        e_g = explainer(model, act.data).scores
        acc["inv_cos"] += cosine_per_sample(e_g, e_x, batch, normalise=normalise).cpu()
        acc["inv_sp"] += spearman_per_sample(e_g, e_x, batch)
        ref = act.act(e_x)
        acc["eq_cos"] += cosine_per_sample(e_g, ref, batch, normalise=normalise).cpu()
        acc["eq_sp"] += spearman_per_sample(e_g, ref, batch)
        inv.add(_logits(model, act.data))
    m = inv.result()
    return {
        "group": group.name,
        "n_draws": n_draws,
        "normalise": normalise,
        "invariance_cos": acc["inv_cos"] / n_draws,
        "invariance_spearman": acc["inv_sp"] / n_draws,
        "equivariance_cos": acc["eq_cos"] / n_draws,
        "equivariance_spearman": acc["eq_sp"] / n_draws,
        "model_abs_diff": m["abs_diff"],
        "model_class_agreement": m["class_agreement"],
        "model_cos": m["cos"],
        "model_max_abs_diff": m["model_max_abs_diff"],
        "model_summary": m["summary"],
    }


def model_invariance(
    model: nn.Module,
    data: BaseData,
    group: Group | str | None = None,
    *,
    n_draws: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """The model's own invariance under ``group``, per sample (Crabbe & van der Schaar: an
    explanation cannot be more invariant than the model it explains).

    For each sample ``x`` and Monte Carlo draw ``g`` (one element per sample): the absolute
    logit change ``|f(g x) - f(x)|`` (the largest over the logits when a sample has several)
    and whether the predicted class is unchanged (``logit > 0`` for one logit, else the
    argmax). With one logit per sample (the hepx classifiers) a per-sample cosine of two
    scalars is only their sign agreement (+-1), so no cosine is computed; with several logits
    also the cosine of the logit vectors with the ``1e-4`` offset.

    Args:
        group: a group or its name; default :func:`default_group` of the model.

    Returns:
        ``abs_diff`` (mean over draws), ``max_abs_diff`` (max over draws),
        ``class_agreement`` (fraction of draws with the class unchanged) and ``cos``
        (``None`` for one logit per sample), all per-sample tensors ``[B]``; ``summary``:
        per measure the mean, median and 5th percentile over samples (and, for
        ``abs_diff``, the 95th: its bad tail); ``model_max_abs_diff``: the largest change
        seen; ``n_logits``, ``group``, ``n_draws``.
    """
    if isinstance(group, str):
        group = get_group(group)
    if group is None:
        group = default_group(model, int(data.pos.shape[1]))
    gen = torch.Generator().manual_seed(seed)
    inv = _ModelInvariance(_logits(model, data))
    for _ in range(n_draws):
        inv.add(_logits(model, group.sample(data, gen).data))
    return {"group": group.name, "n_draws": n_draws, **inv.result()}
