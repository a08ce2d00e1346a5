"""Learnable Randomness Injection (LRI, Miao et al., ICLR 2023): Bernoulli and Gaussian variants.

Both wrap a :class:`~hepx.models.classifier.PointCloudClassifier` and an *extractor* MLP fed by
the classifier backbone's node embeddings of the clean cloud ("one encoder"): a first pass over
the un-noised cloud gives ``h [N, C]``, the extractor turns it into per-point parameters of the
injected randomness, and a second pass predicts from the randomised cloud. The training loss is

    BCEWithLogits(output.logits, y) + beta * output.info_loss

Evaluation (``model.eval()``, or ``stochastic=False``) is deterministic:

* LRI-Bernoulli predicts with the mask ``m = p = sigmoid(a)`` (the expected mask, no sampling
  noise); the point score is ``p``.
* LRI-Gaussian predicts from the *mean* positions (no noise), i.e. the clean cloud; the point
  score is ``-det(Sigma_i)`` and ``Sigma [N, d, d]`` is returned.

``stochastic=True`` forces the sampled (training-time) prediction, e.g. to report the noised
prediction on a validation set.

BatchNorm running statistics come from the prediction pass only (the clean pass normalises with
batch statistics and does not update them, :func:`batch_statistics_only`), so that evaluation
normalises the prediction pass with the statistics it was trained with.

Warm-up is up to the trainer: train ``model.classifier`` alone first, then both parameter groups
(:meth:`parameter_groups`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data.data import BaseData

from hepx.errors import ConfigError
from hepx.models.backbones.base import mlp
from hepx.models.classifier import PointCloudClassifier, unpack_inputs

__all__ = [
    "CloudGraph",
    "LRIBernoulli",
    "LRIGaussian",
    "LRIOutput",
    "batch_statistics_only",
    "bernoulli_kl",
    "gaussian_kl",
    "gaussian_noise",
    "r_schedule",
]


def r_schedule(
    epoch: int,
    init_r: float = 0.9,
    decay_r: float = 0.1,
    decay_interval: int = 10,
    final_r: float = 0.5,
) -> float:
    """Prior keep-probability of LRI-Bernoulli at ``epoch`` (0-based):
    ``max(init_r - decay_r * floor(epoch / decay_interval), final_r)``."""
    if epoch < 0:
        raise ConfigError(f"epoch must be >= 0, got {epoch}")
    if decay_interval < 1:
        raise ConfigError(f"decay_interval must be a positive integer, got {decay_interval}")
    r = init_r - decay_r * (epoch // decay_interval)
    return max(round(r, 12), final_r)


def bernoulli_kl(p: Tensor, r: float, eps: float = 1e-6) -> Tensor:
    """Elementwise ``KL(Bern(p) || Bern(r)) = p log(p/r) + (1-p) log((1-p)/(1-r))``.

    ``p`` is clamped to ``[eps, 1 - eps]`` for finite logs. Shape: as ``p``.
    """
    p = p.clamp(eps, 1.0 - eps)
    return p * torch.log(p / r) + (1.0 - p) * torch.log((1.0 - p) / (1.0 - r))


def gaussian_kl(sigma: Tensor) -> Tensor:
    """Closed-form ``KL(N(0, Sigma) || N(0, I)) = (tr Sigma - d - log det Sigma) / 2``.

    Args:
        sigma: symmetric positive-definite ``[..., d, d]``.

    Returns:
        ``[...]``.
    """
    d = sigma.shape[-1]
    chol = torch.linalg.cholesky(sigma)
    logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    trace = torch.diagonal(sigma, dim1=-2, dim2=-1).sum(-1)
    return 0.5 * (trace - d - logdet)


def gaussian_noise(scales: Tensor, u: Tensor) -> Tensor:
    """Reparametrised sample ``eps ~ N(0, a1 U U^T + a2 I)``:
    ``eps = sqrt(a1) U z1 + sqrt(a2) z2`` with ``z1, z2 ~ N(0, I)`` independent (exact, no
    Cholesky needed).

    Args:
        scales: ``[N, 2]`` columns ``a1 = softplus(s1)``, ``a2 = softplus(s2)``.
        u: ``[N, d, d]``.

    Returns:
        ``[N, d]``, differentiable with respect to ``scales`` and ``u``.
    """
    n, d = u.shape[0], u.shape[-1]
    z1 = torch.randn(n, d, 1, dtype=u.dtype, device=u.device)
    z2 = torch.randn(n, d, dtype=u.dtype, device=u.device)
    return scales[:, :1].sqrt() * (u @ z1).squeeze(-1) + scales[:, 1:].sqrt() * z2


@contextlib.contextmanager
def batch_statistics_only(module: nn.Module) -> Iterator[None]:
    """In training mode, BatchNorm layers of ``module`` normalise with the batch statistics
    but leave their running statistics alone for the duration (no effect in eval mode).

    Why: an LRI model runs its classifier twice per step, on the clean cloud (for the
    extractor) and on the masked / noised one (for the prediction). If both passes fed the
    running statistics, evaluation would normalise the prediction pass with a mixture of the
    two distributions and shift every logit: the ROC AUC stays, the accuracy at logit 0 falls
    (docs: design decisions). The clean pass is then normalised with the prediction pass's
    statistics in evaluation, which leaves the interpretation AUC as it was.
    """
    norms = [
        m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
    ]
    flags = [m.track_running_stats for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, f in zip(norms, flags, strict=True):
            m.track_running_stats = f


@dataclass
class LRIOutput:
    """What an LRI model returns.

    Attributes:
        logits: ``[B, 1]`` prediction (masked/noised in training, deterministic in eval).
        info_loss: scalar, mean KL over points.
        node_scores: ``[N]`` importance (higher = more important).
        node_mask: ``[N]`` mask used for the prediction (Bernoulli only).
        sigma: ``[N, d, d]`` noise covariances in the ``pos_coef`` frame (Gaussian only).
        embeddings: ``[N, C]`` clean-cloud node embeddings that fed the extractor.
    """

    logits: Tensor
    info_loss: Tensor
    node_scores: Tensor
    node_mask: Tensor | None = None
    sigma: Tensor | None = None
    embeddings: Tensor | None = None


class CloudGraph(NamedTuple):
    """A batch of clouds as the prediction pass takes it: features ``x [N, F]`` (or None),
    positions in the backbone's frame ``pos_frame [N, D]``, ``batch [N]``, ``num_graphs`` and
    the clean cloud's graph ``edge_index [2, E]``."""

    x: Tensor | None
    pos_frame: Tensor
    batch: Tensor
    num_graphs: int
    edge_index: Tensor


class _LRIBase(nn.Module):
    def __init__(self, classifier: PointCloudClassifier, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.classifier = classifier
        c = classifier.hidden_channels
        self.extractor = mlp([c, 2 * c, c, out_dim], dropout=dropout)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"classifier": [...], "extractor": [...]}`` for separate optimiser groups / warm-up."""
        return {
            "classifier": list(self.classifier.parameters()),
            "extractor": list(self.extractor.parameters()),
        }

    def _clean_pass(
        self, data_or_x: BaseData | Tensor | None, pos: Tensor | None, batch: Tensor | None
    ) -> tuple[CloudGraph, Tensor]:
        """The clouds and the clean pass's node embeddings ``h [N, C]``."""
        x, pos, batch, num_graphs = unpack_inputs(data_or_x, pos, batch)
        pos_frame = self.classifier.scale_pos(pos)
        edge_index = self.classifier.build_graph(pos_frame, batch)
        with batch_statistics_only(self.classifier):
            h = self.classifier.embed(x, pos_frame, batch, edge_index)
        return CloudGraph(x, pos_frame, batch, num_graphs, edge_index), h


class LRIBernoulli(_LRIBase):
    """LRI-Bernoulli (existence importance).

    Extractor: ``h_i -> a_i`` (logit). Training: ``m_i = sigmoid((a_i + log u - log(1-u)) / T)``,
    ``u ~ U(0, 1)``; messages weighted ``m_i m_j`` and the pool unweighted, as in the
    reference; ``mask_pool=True`` (hepx's variant) also weights the pool ``sum_i m_i h_i``, so
    that a point with ``m = 0`` has no influence at all. Info loss:
    ``mean_i KL(Bern(p_i) || Bern(r))``, ``p_i = sigmoid(a_i)``, ``r`` from :func:`r_schedule`
    (call :meth:`set_epoch` each epoch) unless passed to :meth:`forward`.

    Args:
        classifier: the wrapped classifier.
        temperature: relaxation temperature ``T``.
        init_r, decay_r, decay_interval, final_r: the ``r`` schedule.
        mask_pool: weight the global pool by the mask too.
        dropout: extractor dropout.
    """

    def __init__(
        self,
        classifier: PointCloudClassifier,
        *,
        temperature: float = 1.0,
        init_r: float = 0.9,
        decay_r: float = 0.1,
        decay_interval: int = 10,
        final_r: float = 0.5,
        mask_pool: bool = False,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(classifier, 1, dropout)
        if not 0.0 < final_r < 1.0:
            raise ConfigError(f"final_r must lie in (0, 1), got {final_r}")
        if not 0.0 < init_r <= 1.0:  # 1: a prior that keeps everything (GMT-sam on ActsTrack)
            raise ConfigError(f"init_r must lie in (0, 1], got {init_r}")
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.mask_pool = bool(mask_pool)
        self.schedule = {
            "init_r": float(init_r),
            "decay_r": float(decay_r),
            "decay_interval": int(decay_interval),
            "final_r": float(final_r),
        }
        self.r = float(init_r)

    def set_epoch(self, epoch: int) -> float:
        """Set ``self.r`` from the schedule for ``epoch`` and return it."""
        self.r = r_schedule(epoch, **self.schedule)
        return self.r

    #: Layers whose messages the mask weights, from the first (None: every layer).
    weighted_layers: int | None = None

    def draw_mask(self, logit: Tensor, sample: bool) -> Tensor:
        """The node mask ``m [N]`` from the extractor's logits ``a [N]``: a relaxed Bernoulli
        draw ``sigmoid((a + log u - log(1 - u)) / T)`` (``sample``), else ``p = sigmoid(a)``."""
        if not sample:
            return torch.sigmoid(logit)
        u = torch.rand_like(logit).clamp(1e-6, 1.0 - 1e-6)
        return torch.sigmoid((logit + torch.log(u) - torch.log1p(-u)) / self.temperature)

    def predict(self, cloud: CloudGraph, logit: Tensor, sample: bool) -> tuple[Tensor, Tensor]:
        """The prediction ``[B, 1]`` and the node mask ``m [N]`` it used: one
        :meth:`draw_mask` from the extractor's ``logit [N]``, then :meth:`masked_logits`."""
        mask = self.draw_mask(logit, sample)
        return self.masked_logits(cloud, mask), mask

    def masked_logits(self, cloud: CloudGraph, mask: Tensor) -> Tensor:
        """The prediction ``[B, 1]`` from the clouds with messages weighted ``m_i m_j``
        (``mask [N]``; and the pool ``m_i`` with ``mask_pool``)."""
        x, pos_frame, batch, num_graphs, edge_index = cloud
        edge_weight = mask[edge_index[0]] * mask[edge_index[1]]
        h = self.classifier.embed(
            x, pos_frame, batch, edge_index, edge_weight, weighted_layers=self.weighted_layers
        )
        return self.classifier.readout(h, batch, num_graphs, mask if self.mask_pool else None)

    def forward(
        self,
        data_or_x: BaseData | Tensor | None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        *,
        r: float | None = None,
        stochastic: bool | None = None,
    ) -> LRIOutput:
        """``data`` or ``(x [N, F], pos [N, D], batch [N])`` -> :class:`LRIOutput`
        (``logits [B, 1]``, ``node_scores = p [N]``, ``node_mask = m [N]``)."""
        cloud, h = self._clean_pass(data_or_x, pos, batch)
        logit = self.extractor(h).squeeze(-1)  # [N]
        p = torch.sigmoid(logit)
        sample = self.training if stochastic is None else stochastic
        logits, m = self.predict(cloud, logit, sample)
        # r = 1 only at GMT-sam's start; its KL is finite with r just below 1 (as the reference)
        info = bernoulli_kl(p, min(self.r if r is None else r, 1.0 - 1e-6)).mean()
        return LRIOutput(logits=logits, info_loss=info, node_scores=p, node_mask=m, embeddings=h)


class LRIGaussian(_LRIBase):
    """LRI-Gaussian (location importance).

    Extractor: ``h_i -> (s1_i, s2_i, U_i [d, d])``;
    ``Sigma_i = softplus(s1) U U^T + softplus(s2) I`` (``softplus(s2)`` floored at ``min_var``).
    Training: ``eps_i = sqrt(softplus(s1)) U z1 + sqrt(softplus(s2)) z2 ~ N(0, Sigma_i)``
    (``z1, z2 ~ N(0, I)``), and the backbone sees ``pos * pos_scale + eps / pos_coef``: the noise
    lives in the frame ``pos * pos_scale * pos_coef`` where the prior is ``N(0, I)`` (i.e. the prior
    standard deviation in the backbone frame is ``1 / pos_coef``). The graph is rebuilt on the
    noised positions. Info loss: ``mean_i KL(N(0, Sigma_i) || N(0, I))``. Score: ``-det(Sigma_i)``.

    Args:
        classifier: the wrapped classifier.
        pos_coef: scale of the noise frame relative to the backbone frame.
        min_var: numerical floor on ``softplus(s2)``.
        dropout: extractor dropout.
    """

    def __init__(
        self,
        classifier: PointCloudClassifier,
        *,
        pos_coef: float = 1.0,
        min_var: float = 1e-6,
        dropout: float = 0.2,
    ) -> None:
        d = classifier.backbone.pos_dim
        super().__init__(classifier, 2 + d * d, dropout)
        if not (math.isfinite(pos_coef) and pos_coef > 0):
            raise ConfigError(f"pos_coef must be a positive number, got {pos_coef}")
        self.pos_dim = d
        self.pos_coef = float(pos_coef)
        self.min_var = float(min_var)

    def covariance(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Node embeddings ``[N, C]`` -> ``Sigma [N, d, d]``, ``[softplus(s1), softplus(s2)] [N, 2]``
        and ``U [N, d, d]``."""
        out = self.extractor(h)
        d = self.pos_dim
        a1 = F.softplus(out[:, 0])
        a2 = F.softplus(out[:, 1]).clamp_min(self.min_var)
        u = out[:, 2:].reshape(-1, d, d)
        eye = torch.eye(d, dtype=h.dtype, device=h.device)
        sigma = a1[:, None, None] * (u @ u.transpose(-1, -2)) + a2[:, None, None] * eye
        return sigma, torch.stack([a1, a2], dim=-1), u

    @staticmethod
    def log_det(scales: Tensor, u: Tensor) -> Tensor:
        """``log det Sigma = d log a2 + log det(I + (a1 / a2) U^T U)``, ``[N]``.

        The second matrix has all eigenvalues >= 1, so its Cholesky factorisation stays well
        conditioned even when ``Sigma`` is strongly anisotropic.
        """
        d = u.shape[-1]
        ratio = (scales[:, 0] / scales[:, 1])[:, None, None]
        eye = torch.eye(d, dtype=u.dtype, device=u.device)
        chol = torch.linalg.cholesky(eye + ratio * (u.transpose(-1, -2) @ u))
        inner = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return d * torch.log(scales[:, 1]) + inner

    def forward(
        self,
        data_or_x: BaseData | Tensor | None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        *,
        stochastic: bool | None = None,
    ) -> LRIOutput:
        """``data`` or ``(x [N, F], pos [N, D], batch [N])`` -> :class:`LRIOutput`
        (``logits [B, 1]``, ``node_scores = -det Sigma [N]``, ``sigma [N, d, d]``)."""
        (x, pos_frame, batch, num_graphs, _), h = self._clean_pass(data_or_x, pos, batch)
        sigma, scales, u = self.covariance(h)
        if self.training if stochastic is None else stochastic:
            eps = gaussian_noise(scales, u)
            noisy = pos_frame + eps / self.pos_coef
            noisy_edges = self.classifier.build_graph(noisy, batch)
            h_noisy = self.classifier.embed(x, noisy, batch, noisy_edges)
            logits = self.classifier.readout(h_noisy, batch, num_graphs)
        else:
            logits = self.classifier.readout(h, batch, num_graphs)
        logdet = self.log_det(scales, u)
        trace = scales[:, 0] * (u * u).sum((-1, -2)) + self.pos_dim * scales[:, 1]
        info = (0.5 * (trace - self.pos_dim - logdet)).mean()
        scores = -torch.exp(logdet)
        return LRIOutput(
            logits=logits, info_loss=info, node_scores=scores, sigma=sigma, embeddings=h
        )
