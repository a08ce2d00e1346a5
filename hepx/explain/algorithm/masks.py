"""Mask-based post-hoc explainers: BernMask, BernMask-P, PointMask.

The mask multiplies the classifier's messages ``m_i m_j`` and its pool ``sum_i m_i h_i``
(``node_weight=`` of :class:`~hepx.models.PointCloudClassifier`), on the graph of the full cloud,
so a point with ``m = 0`` has no influence. The target is the frozen model's own predicted class
(``logit > 0``): the mask must *keep the prediction* (GNNExplainer/PGExplainer convention).
"""

from __future__ import annotations

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

__all__ = ["BernMask", "BernMaskP", "PointMask"]


def _entropy(p: Tensor, eps: float = 1e-6) -> Tensor:
    p = p.clamp(eps, 1 - eps)
    return -(p * torch.log(p) + (1 - p) * torch.log1p(-p))


class BernMask(ExplainerAlgorithm):
    """BernMask (GNNExplainer-style): per-point mask logits optimised per sample.

    All samples of a batch are optimised jointly (one parameter vector ``[N]``, one Adam; the
    loss is a sum of per-sample losses, so samples do not interact):
    ``BCE(f(x; m), c) + size_coef * mean_i m_i + ent_coef * mean_i H(m_i)`` per sample,
    ``m = sigmoid(logit)``, ``c`` the model's predicted class. Reference: Adam lr 0.1,
    500 iterations; coefficients per dataset/backbone in :func:`~hepx.explain.default_hparams`.

    The logits start at the constant ``init`` (not random): the explainer is then deterministic
    and exactly permutation equivariant (randomness shared between ``x`` and ``g x``).
    """

    name = "bernmask"

    def __init__(
        self,
        iterations: int = 500,
        lr: float = 0.1,
        size_coef: float = 0.1,
        ent_coef: float = 0.01,
        init: float = 0.0,
    ) -> None:
        if iterations < 1:
            raise ConfigError(f"bernmask iterations must be >= 1, got {iterations}")
        self.iterations, self.lr = int(iterations), float(lr)
        self.size_coef, self.ent_coef, self.init = float(size_coef), float(ent_coef), float(init)

    def options(self):
        return {
            "iterations": self.iterations,
            "lr": self.lr,
            "size_coef": self.size_coef,
            "ent_coef": self.ent_coef,
        }

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        clf = classifier_of(model)
        ei = fixed_graph(clf, inp)
        b = inp.num_graphs
        with frozen(clf), torch.enable_grad():
            with torch.no_grad():
                target = (clf(inp.x, inp.pos, inp.batch, edge_index=ei) > 0).float()
            logit = torch.full((inp.num_points,), self.init, device=inp.pos.device)
            logit.requires_grad_(True)
            opt = torch.optim.Adam([logit], lr=self.lr)
            for _ in range(self.iterations):
                m = torch.sigmoid(logit)
                out = clf(inp.x, inp.pos, inp.batch, edge_index=ei, node_weight=m)
                pred = F.binary_cross_entropy_with_logits(out, target, reduction="sum")
                size = scatter(m, inp.batch, dim=0, dim_size=b, reduce="mean").sum()
                ent = scatter(_entropy(m), inp.batch, dim=0, dim_size=b, reduce="mean").sum()
                loss = pred + self.size_coef * size + self.ent_coef * ent
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return torch.sigmoid(logit.detach())


class _ParametricMask(ExplainerAlgorithm):
    """Shared parts of BernMask-P and PointMask: an MLP on the frozen classifier's clean-cloud
    node embeddings, trained over a data set."""

    requires_fit = True
    out_dim = 1

    def __init__(self, lr: float = 1e-3, seed: int = 0) -> None:
        self.lr, self.seed = float(lr), int(seed)
        self.net: nn.Module | None = None

    def _embed(self, clf, inp: PointInputs):
        ei = fixed_graph(clf, inp)
        with torch.no_grad():
            logits, h = clf(inp.x, inp.pos, inp.batch, edge_index=ei, return_embeddings=True)
        return ei, logits, h

    def _loss(self, out: Tensor, target: Tensor, params: Tensor, m: Tensor) -> Tensor:
        raise NotImplementedError

    def _mask(self, params: Tensor, gen: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def fit(
        self,
        model: nn.Module,
        loader,
        *,
        epochs: int | None = None,
        max_batches: int | None = None,
        device: str | torch.device | None = None,
    ) -> _ParametricMask:
        """Train the mask network over ``loader`` (e.g. the training split) with the classifier
        frozen. ``epochs`` default: 100 (the ActsTrack reference; Tau3Mu used 50)."""
        clf = classifier_of(model)
        epochs = 100 if epochs is None else int(epochs)
        dev = torch.device(device) if device is not None else next(clf.parameters()).device
        c = clf.hidden_channels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = mlp([c, c, self.out_dim], norm=False).to(dev)
        gen = torch.Generator(device=dev).manual_seed(self.seed + 1)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.net.train()
        with frozen(clf), torch.enable_grad():
            for _ in range(epochs):
                for i, data in enumerate(loader):
                    if max_batches is not None and i >= max_batches:
                        break
                    inp = point_inputs(data.to(dev))
                    ei, logits, h = self._embed(clf, inp)
                    target = (logits > 0).float()
                    params = self.net(h)
                    m = self._mask(params, gen)
                    out = clf(inp.x, inp.pos, inp.batch, edge_index=ei, node_weight=m)
                    loss = self._loss(out, target, params, m)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
        self.net.eval()
        return self

    def _score(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def explain(self, model, data: BaseData, inp: PointInputs) -> Tensor:
        if self.net is None:
            raise ConfigError(f"{self.name} must be fit on a data set first (call .fit)")
        clf = classifier_of(model)
        with frozen(clf):
            _, _, h = self._embed(clf, inp)
            self.net.to(h.device)
            with torch.no_grad():
                return self._score(self.net(h))


def _uniform(like: Tensor, gen: torch.Generator | None) -> Tensor:
    return torch.rand(like.shape, generator=gen, device=like.device, dtype=like.dtype)


class BernMaskP(_ParametricMask):
    """BernMask-P (PGExplainer-style): an MLP ``h_i -> a_i`` on the frozen classifier's node
    embeddings, trained over a data set with the relaxed Bernoulli mask
    ``m = sigmoid((a + log u - log(1 - u)) / T)``; loss
    ``BCE(f(x; m), c) + size_coef * mean m + ent_coef * mean H(sigmoid(a))``.
    Score: ``sigmoid(a)``. Reference: T = 1; ActsTrack 100 epochs, Tau3Mu 50.
    """

    name = "bernmask_p"

    def __init__(
        self,
        size_coef: float = 0.01,
        ent_coef: float = 0.1,
        temperature: float = 1.0,
        lr: float = 1e-3,
        seed: int = 0,
    ) -> None:
        super().__init__(lr=lr, seed=seed)
        self.size_coef, self.ent_coef = float(size_coef), float(ent_coef)
        self.temperature = float(temperature)

    def options(self) -> dict[str, Any]:
        return {
            "size_coef": self.size_coef,
            "ent_coef": self.ent_coef,
            "temperature": self.temperature,
        }

    def _mask(self, params, gen):
        a = params.squeeze(-1)
        u = _uniform(a, gen).clamp(1e-6, 1 - 1e-6)
        return torch.sigmoid((a + torch.log(u) - torch.log1p(-u)) / self.temperature)

    def _loss(self, out, target, params, m):
        p = torch.sigmoid(params.squeeze(-1))
        pred = F.binary_cross_entropy_with_logits(out, target)
        return pred + self.size_coef * m.mean() + self.ent_coef * _entropy(p).mean()

    def _score(self, params):
        return torch.sigmoid(params.squeeze(-1))


class PointMask(_ParametricMask):
    """PointMask (Taghanaki et al. 2020): an MLP ``h_i -> (mu_i, log var_i)``; training mask
    ``m = sigmoid(mu + sigma * eps)``; loss ``BCE(f(x; m), c) + kl_coef * mean KL(N(mu, sigma^2)
    || N(0, 1))``. Score ``clamp(relu(sigmoid(mu) - t), max=1)``, ``t = 0.2``.
    """

    out_dim = 2

    name = "pointmask"

    def __init__(
        self, kl_coef: float = 0.01, t: float = 0.2, lr: float = 1e-3, seed: int = 0
    ) -> None:
        super().__init__(lr=lr, seed=seed)
        self.kl_coef, self.t = float(kl_coef), float(t)

    def options(self) -> dict[str, Any]:
        return {"kl_coef": self.kl_coef, "t": self.t}

    def _mask(self, params, gen):
        mu, logvar = params[:, 0], params[:, 1].clamp(-10, 10)
        eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
        return torch.sigmoid(mu + torch.exp(0.5 * logvar) * eps)

    def _loss(self, out, target, params, m):
        mu, logvar = params[:, 0], params[:, 1].clamp(-10, 10)
        kl = 0.5 * (mu * mu + logvar.exp() - 1 - logvar)
        return F.binary_cross_entropy_with_logits(out, target) + self.kl_coef * kl.mean()

    def _score(self, params):
        return torch.relu(torch.sigmoid(params[:, 0]) - self.t).clamp(max=1.0)
