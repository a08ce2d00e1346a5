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
from hepx.explain.algorithm.base import ExplainerAlgorithm, frozen, point_inputs

__all__ = [
    "E3",
    "GROUPS",
    "Group",
    "Permutation",
    "PhiShift",
    "RotationZ",
    "cosine_per_sample",
    "explanation_robustness",
    "get_group",
    "model_invariance",
    "spearman_per_sample",
    "summarise",
]

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


# --------------------------------------------------------------------------- similarity


def cosine_per_sample(a: Tensor, b: Tensor, batch: Tensor, eps: float = 1e-4) -> Tensor:
    """Per-sample cosine similarity of ``a + eps`` and ``b + eps`` (``[B]``)."""
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
    with frozen(model), torch.no_grad():
        out = model(data)
    return getattr(out, "logits", out).view(-1)


def explanation_robustness(
    explainer: ExplainerAlgorithm,
    model: nn.Module,
    data: BaseData,
    group: Group | str,
    *,
    n_draws: int = 50,
    seed: int = 0,
) -> dict[str, Any]:
    """Monte Carlo invariance / equivariance of ``explainer`` under ``group`` on ``data``.

    Returns a dict with per-sample tensors ``[B]`` (averages over the draws):

    * ``invariance_cos``, ``invariance_spearman``: ``s(e(g x), e(x))``;
    * ``equivariance_cos``, ``equivariance_spearman``: ``s(e(g x), rho'(g) e(x))`` (equal to the
      invariance scores for the geometric groups, whose ``rho'`` is the identity);
    * ``model_cos``: per draw the cosine (offset ``1e-4``) of the batch's logit vectors
      ``f(g x)`` and ``f(x)``, averaged (a scalar); ``model_max_abs_diff``: the largest
      ``|f(g x) - f(x)|`` seen;

    and ``group`` (its name) and ``n_draws``.
    """
    if isinstance(group, str):
        group = get_group(group)
    gen = torch.Generator().manual_seed(seed)
    inp = point_inputs(data)
    batch = inp.batch
    e_x = explainer(model, data).scores
    f_x = _logits(model, data)
    z = torch.zeros(inp.num_graphs)
    acc = {k: z.clone() for k in ("inv_cos", "inv_sp", "eq_cos", "eq_sp")}
    mcos, mdiff = 0.0, 0.0
    for _ in range(n_draws):
        act = group.sample(data, gen)
        e_g = explainer(model, act.data).scores
        acc["inv_cos"] += cosine_per_sample(e_g, e_x, batch).cpu()
        acc["inv_sp"] += spearman_per_sample(e_g, e_x, batch)
        ref = act.act(e_x)
        acc["eq_cos"] += cosine_per_sample(e_g, ref, batch).cpu()
        acc["eq_sp"] += spearman_per_sample(e_g, ref, batch)
        f_g = _logits(model, act.data)
        zero = torch.zeros(1, device=f_x.device)
        mcos += float(cosine_per_sample(f_g, f_x, zero.long().expand_as(f_x))[0])
        mdiff = max(mdiff, float((f_g - f_x).abs().max()))
    return {
        "group": group.name,
        "n_draws": n_draws,
        "invariance_cos": acc["inv_cos"] / n_draws,
        "invariance_spearman": acc["inv_sp"] / n_draws,
        "equivariance_cos": acc["eq_cos"] / n_draws,
        "equivariance_spearman": acc["eq_sp"] / n_draws,
        "model_cos": mcos / n_draws,
        "model_max_abs_diff": mdiff,
    }


def model_invariance(
    model: nn.Module, data: BaseData, group: Group | str, *, n_draws: int = 50, seed: int = 0
) -> dict[str, float]:
    """Cosine (offset ``1e-4``) of the batch logit vectors ``f(g x)``, ``f(x)`` averaged over
    draws, and the largest absolute logit change."""
    if isinstance(group, str):
        group = get_group(group)
    gen = torch.Generator().manual_seed(seed)
    f_x = _logits(model, data)
    zeros = torch.zeros_like(f_x, dtype=torch.long)
    cos, diff = 0.0, 0.0
    for _ in range(n_draws):
        f_g = _logits(model, group.sample(data, gen).data)
        cos += float(cosine_per_sample(f_g, f_x, zeros)[0])
        diff = max(diff, float((f_g - f_x).abs().max()))
    return {"model_cos": cos / n_draws, "model_max_abs_diff": diff}
