"""Mask-based post-hoc explainers: BernMask, BernMask-P and a post-hoc PointMask variant.

As in the LRI reference, a mask ``m [N]`` weights the classifier's messages by ``m_i m_j``
(``edge_weight=`` of :class:`~hepx.models.PointCloudClassifier`) on the graph of the full
cloud, and the global pool stays unweighted. ``mask_pool=True`` also weights the pool
``sum_i m_i h_i`` (hepx's variant: a point with ``m = 0`` then has no influence at all). The
target is soft: the frozen model's own predicted probability ``sigmoid(f(x))``, which the
masked prediction must reproduce (binary cross-entropy against it).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
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
from hepx.models.backbones.base import mlp

__all__ = ["BernMask", "BernMaskP", "PointMaskPostHoc", "mask_entropy", "masked_logits"]


def mask_entropy(p: Tensor) -> Tensor:
    """Elementwise binary entropy ``-p log(p + 1e-10) - (1 - p) log(1 - p + 1e-10)`` of a
    mask in [0, 1] (the reference's regulariser), same shape as ``p``."""
    return -p * torch.log(p + 1e-10) - (1 - p) * torch.log(1 - p + 1e-10)


def masked_logits(
    clf: nn.Module, inp: PointInputs, edge_index: Tensor, mask: Tensor, mask_pool: bool = False
) -> Tensor:
    """``[B, 1]`` logits of ``clf`` with messages weighted ``m_i m_j`` (``mask [N]``) on the
    fixed graph ``edge_index [2, E]``; the pool weighted by ``m`` too when ``mask_pool``."""
    edge_weight = mask[edge_index[0]] * mask[edge_index[1]]
    if mask_pool:
        return clf(inp.x, inp.pos, inp.batch, edge_index=edge_index, node_weight=mask)
    return clf(inp.x, inp.pos, inp.batch, edge_index=edge_index, edge_weight=edge_weight)


def _soft_target(clf: nn.Module, inp: PointInputs, edge_index: Tensor) -> Tensor:
    with torch.no_grad():
        return torch.sigmoid(clf(inp.x, inp.pos, inp.batch, edge_index=edge_index))


class BernMask(ExplainerAlgorithm):
    """BernMask (the LRI paper's GNNExplainer-style baseline): mask logits ``a [N]`` optimised
    per batch with Adam, ``m = sigmoid(a)``.

    Loss, as the reference: ``BCE(f(x; m), sigmoid(f(x)))`` (mean over samples)
    ``+ size_coef * mean_i m_i + ent_coef * mean_i H(m_i)`` (means over all points of the
    batch). The logits start from ``N(1, std^2)`` with ``std = gain(relu) sqrt(2 / (2 N))`` and
    ``N`` the number of points of the batch, drawn from a generator seeded by ``seed``: the same
    batch gives the same scores, but the draw is not shared between a batch and a permuted copy.
    Every point's logit receives only its own sample's gradient, so samples do not mix. Score:
    ``m``. Reference: Adam lr 0.1, 500 iterations; coefficients per dataset / backbone in
    :func:`~hepx.explain.default_hparams`.
    """

    name = "bernmask"

    def __init__(
        self,
        iterations: int = 500,
        lr: float = 0.1,
        size_coef: float = 0.1,
        ent_coef: float = 0.01,
        seed: int = 0,
        mask_pool: bool = False,
    ) -> None:
        if iterations < 1:
            raise ConfigError(f"bernmask iterations must be >= 1, got {iterations}")
        self.iterations, self.lr = int(iterations), float(lr)
        self.size_coef, self.ent_coef = float(size_coef), float(ent_coef)
        self.seed, self.mask_pool = int(seed), bool(mask_pool)

    def options(self):
        return {
            "iterations": self.iterations,
            "lr": self.lr,
            "size_coef": self.size_coef,
            "ent_coef": self.ent_coef,
            "seed": self.seed,
            "mask_pool": self.mask_pool,
        }

    def initial_logits(self, num_points: int, device: torch.device | str = "cpu") -> Tensor:
        """The starting mask logits ``[num_points]``: ``N(1, std^2)``, seeded."""
        std = nn.init.calculate_gain("relu") * math.sqrt(2.0 / (2 * max(num_points, 1)))
        gen = torch.Generator().manual_seed(self.seed)
        return (1.0 + std * torch.randn(num_points, generator=gen)).to(device)

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        clf = classifier_of(model)
        ei = fixed_graph(clf, inp)
        with frozen(clf), torch.enable_grad():
            target = _soft_target(clf, inp, ei)
            logit = self.initial_logits(inp.num_points, inp.pos.device).requires_grad_(True)
            opt = torch.optim.Adam([logit], lr=self.lr)
            for _ in range(self.iterations):
                m = torch.sigmoid(logit)
                out = masked_logits(clf, inp, ei, m, self.mask_pool)
                pred = F.binary_cross_entropy_with_logits(out, target)
                loss = pred + self.size_coef * m.mean() + self.ent_coef * mask_entropy(m).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return torch.sigmoid(logit.detach())


class _ParametricMask(ExplainerAlgorithm):
    """Shared parts of BernMask-P and the post-hoc PointMask: a network on the frozen
    classifier's clean-cloud node embeddings, trained over a data set."""

    requires_fit = True
    out_dim = 1

    def __init__(
        self, lr: float = 1e-3, weight_decay: float = 0.0, seed: int = 0, mask_pool: bool = False
    ) -> None:
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.seed, self.mask_pool = int(seed), bool(mask_pool)
        self.net: nn.Module | None = None
        self.selected_epoch: int | None = None

    def _make_net(self, channels: int) -> nn.Module:
        return mlp([channels, channels, self.out_dim], norm=False)

    def _embed(self, clf, inp: PointInputs):
        ei = fixed_graph(clf, inp)
        with torch.no_grad():
            logits, h = clf(inp.x, inp.pos, inp.batch, edge_index=ei, return_embeddings=True)
        return ei, logits, h

    def _loss(self, out: Tensor, target: Tensor, params: Tensor, m: Tensor, batch: Tensor):
        raise NotImplementedError

    def _mask(self, params: Tensor, gen: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def _step(self, clf, data, dev, gen) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Loss, its prediction term (the masked prediction's BCE against the soft target),
        masked logits ``[B]`` and labels ``[B]`` of one batch (sampled mask)."""
        inp = point_inputs(data.to(dev))
        ei, logits, h = self._embed(clf, inp)
        params = self.net(h)
        m = self._mask(params, gen)
        out = masked_logits(clf, inp, ei, m, self.mask_pool)
        target = torch.sigmoid(logits)
        loss = self._loss(out, target, params, m, inp.batch)
        pred_loss = F.binary_cross_entropy_with_logits(out.detach(), target)
        return loss, pred_loss, out.view(-1), data.y.view(-1)

    def fit(
        self,
        model: nn.Module,
        loader,
        *,
        epochs: int | None = None,
        max_batches: int | None = None,
        device: str | torch.device | None = None,
        valid_loader=None,
    ) -> _ParametricMask:
        """Train the mask network over ``loader`` (e.g. the training split) with the classifier
        frozen; ``epochs`` default 100 (the ActsTrack reference).

        With ``valid_loader`` the network of the epoch with the best validation ROC AUC of the
        masked prediction (sampled masks; ties to the lower validation prediction loss, the
        BCE term alone) is kept, as in the reference's selection; ``selected_epoch`` records
        it. Without, the last epoch's.
        """
        clf = classifier_of(model)
        epochs = 100 if epochs is None else int(epochs)
        dev = torch.device(device) if device is not None else next(clf.parameters()).device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = self._make_net(clf.hidden_channels).to(dev)
        gen = torch.Generator(device=dev).manual_seed(self.seed + 1)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        best: tuple[float, float] | None = None
        best_state = None
        with frozen(clf), torch.enable_grad():
            for epoch in range(epochs):
                self.net.train()
                for i, data in enumerate(loader):
                    if max_batches is not None and i >= max_batches:
                        break
                    loss = self._step(clf, data, dev, gen)[0]
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                if valid_loader is None:
                    continue
                score = self._validate(clf, valid_loader, dev, gen, max_batches)
                if best is None or score > best:
                    best, best_state = score, copy.deepcopy(self.net.state_dict())
                    self.selected_epoch = epoch
        if best_state is not None:
            self.net.load_state_dict(best_state)
        else:
            self.selected_epoch = epochs - 1
        self.net.eval()
        return self

    def _validate(self, clf, loader, dev, gen, max_batches) -> tuple[float, float]:
        """(ROC AUC of the masked prediction, minus the mean prediction loss) on ``loader``:
        larger is better. The prediction loss is the BCE term without the size and entropy
        regularisers, the reference's tie-breaker."""
        from hepx.explain.metric.groundtruth import prediction_metrics

        self.net.eval()
        losses, outs, ys = [], [], []
        with torch.no_grad():
            for i, data in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                _, pred_loss, out, y = self._step(clf, data, dev, gen)
                losses.append(float(pred_loss))
                outs.append(out.cpu())
                ys.append(y.cpu())
        auc = prediction_metrics(torch.cat(outs), torch.cat(ys))["auc"]
        auc = -math.inf if math.isnan(auc) else auc
        return auc, -sum(losses) / max(len(losses), 1)

    def _score(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        if self.net is None:
            raise ConfigError(f"{self.name} must be fit on a data set first (call .fit)")
        clf = classifier_of(model)
        with frozen(clf):
            _, _, h = self._embed(clf, inp)
            self.net.to(h.device).eval()
            with torch.no_grad():
                return self._score(self.net(h))


def _uniform(like: Tensor, gen: torch.Generator | None) -> Tensor:
    return torch.rand(like.shape, generator=gen, device=like.device, dtype=like.dtype)


class BernMaskP(_ParametricMask):
    """BernMask-P (the LRI paper's PGExplainer-style baseline): an extractor ``h_i -> a_i`` on
    the frozen classifier's node embeddings, trained over a data set.

    Extractor as the reference's: MLP ``[C, 2C, C, 1]`` with BatchNorm and dropout ``dropout``
    (Adam, ``lr``, ``weight_decay``). Training mask ``m = sigmoid((a + log u - log(1 - u)) / T)``,
    ``u ~ U(0, 1)``; loss ``BCE(f(x; m), sigmoid(f(x))) + size_coef * mean_i sigmoid(a_i)
    + ent_coef * mean over samples of (mean_i H(sigmoid(a_i)))``. Score ``sigmoid(a)``.
    Reference: T = 1, lr 1e-3, weight decay 1e-5, ActsTrack 100 epochs, Tau3Mu 50, the epoch
    chosen on the validation split (:meth:`fit` with ``valid_loader``).
    """

    name = "bernmask_p"
    fit_on_run_batch = True  # the reference trains it with the dataset's batch size

    def __init__(
        self,
        size_coef: float = 0.01,
        ent_coef: float = 0.1,
        temperature: float = 1.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        dropout: float = 0.2,
        seed: int = 0,
        mask_pool: bool = False,
    ) -> None:
        super().__init__(lr=lr, weight_decay=weight_decay, seed=seed, mask_pool=mask_pool)
        self.size_coef, self.ent_coef = float(size_coef), float(ent_coef)
        self.temperature, self.dropout = float(temperature), float(dropout)

    def options(self) -> dict[str, Any]:
        return {
            "size_coef": self.size_coef,
            "ent_coef": self.ent_coef,
            "temperature": self.temperature,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "dropout": self.dropout,
            "mask_pool": self.mask_pool,
        }

    def _make_net(self, channels: int) -> nn.Module:
        return mlp([channels, 2 * channels, channels, 1], dropout=self.dropout)

    def _mask(self, params, gen):
        a = params.squeeze(-1)
        u = _uniform(a, gen).clamp(1e-10, 1 - 1e-10)
        return torch.sigmoid((a + torch.log(u) - torch.log1p(-u)) / self.temperature)

    def _loss(self, out, target, params, m, batch):
        p = torch.sigmoid(params.squeeze(-1))
        pred = F.binary_cross_entropy_with_logits(out, target)
        ent = scatter(mask_entropy(p), batch, dim=0, reduce="mean").mean()
        return pred + self.size_coef * p.mean() + self.ent_coef * ent

    def _score(self, params):
        return torch.sigmoid(params.squeeze(-1))


class PointMaskPostHoc(_ParametricMask):
    """A post-hoc variant of PointMask (not the published method, which trains the mask jointly
    with the classifier from scratch): an MLP ``h_i -> (mu_i, log var_i)`` on the frozen
    classifier's embeddings; training mask ``m = sigmoid(mu + sigma * eps)``; loss
    ``BCE(f(x; m), sigmoid(f(x))) + kl_coef * mean KL(N(mu, sigma^2) || N(0, 1))``. Score
    ``clamp(relu(sigmoid(mu) - t), max=1)``, ``t = 0.2``.
    """

    out_dim = 2

    name = "pointmask_posthoc"

    def __init__(
        self,
        kl_coef: float = 0.01,
        t: float = 0.2,
        lr: float = 1e-3,
        seed: int = 0,
        mask_pool: bool = False,
    ) -> None:
        super().__init__(lr=lr, seed=seed, mask_pool=mask_pool)
        self.kl_coef, self.t = float(kl_coef), float(t)

    def options(self) -> dict[str, Any]:
        return {"kl_coef": self.kl_coef, "t": self.t, "mask_pool": self.mask_pool}

    def _mask(self, params, gen):
        mu, logvar = params[:, 0], params[:, 1].clamp(-10, 10)
        eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
        return torch.sigmoid(mu + torch.exp(0.5 * logvar) * eps)

    def _loss(self, out, target, params, m, batch):
        mu, logvar = params[:, 0], params[:, 1].clamp(-10, 10)
        kl = 0.5 * (mu * mu + logvar.exp() - 1 - logvar)
        return F.binary_cross_entropy_with_logits(out, target) + self.kl_coef * kl.mean()

    def _score(self, params):
        return torch.relu(torch.sigmoid(params[:, 0]) - self.t).clamp(max=1.0)
