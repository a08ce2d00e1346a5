"""PointMask (Taghanaki et al., "PointMask: Towards Interpretable and Bias-Resilient Point Cloud
Processing", 2020), as the LRI paper runs it as a baseline: a mask trained jointly with the
classifier, from scratch.

A second encoder (a copy of the classifier's backbone at construction, trained with it: the
reference's ``one_encoder: false``) embeds the clean cloud, ``h [N, C]``; the extractor MLP
``[C, 2C, C, 2]`` turns it into ``(mu_i, log var_i)``. In training
``z_i = mu_i + sigma_i eps``, ``eps ~ N(0, 1)``; in evaluation ``z_i = mu_i``. The mask
``m_i = min(relu(sigmoid(z_i) - t), 1)`` *scales the point's coordinates*, ``pos_i m_i``, and
the classifier predicts from the scaled cloud (its graph built on it). Loss:
``BCE(f(m * pos), y) + kl_coef * KL`` with ``KL`` the KL divergence of ``N(mu_i, sigma_i^2)``
from ``N(0, 1)`` summed over each cloud's points, averaged over clouds
(``train.info_loss_coef`` is ``kl_coef``). Score: ``m_i``.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData
from torch_geometric.utils import scatter

from hepx.errors import ConfigError
from hepx.models.backbones.base import mlp
from hepx.models.classifier import PointCloudClassifier, unpack_inputs
from hepx.models.lri import LRIOutput

__all__ = ["PointMask", "pointmask_kl"]


def pointmask_kl(mu: Tensor, log_var: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """``KL(N(mu, e^log_var) || N(0, 1))`` summed over each cloud's points (``[N]`` inputs,
    ``batch [N]``), averaged over the ``num_graphs`` clouds: a scalar."""
    per_point = -0.5 * (1.0 + log_var - mu * mu - log_var.exp())
    return scatter(per_point, batch, dim=0, dim_size=num_graphs, reduce="sum").mean()


class PointMask(nn.Module):
    """PointMask (module docstring): ``forward(data) -> LRIOutput`` with the masked-cloud
    ``logits [B, 1]``, ``info_loss`` = the KL term, ``node_scores = node_mask = m [N]``.

    Args:
        classifier: the classifier, trained with the mask from scratch.
        t: the mask's threshold (the reference's 0.2).
        dropout: extractor dropout.
    """

    def __init__(self, classifier: PointCloudClassifier, *, t: float = 0.2, dropout: float = 0.2):
        super().__init__()
        if not 0.0 <= t < 1.0:
            raise ConfigError(f"pointmask t must lie in [0, 1), got {t}")
        self.classifier = classifier
        self.encoder = copy.deepcopy(classifier.backbone)
        c = classifier.hidden_channels
        self.extractor = mlp([c, 2 * c, c, 2], dropout=dropout)
        self.t = float(t)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"classifier": classifier and its mask encoder, "extractor": [...]}``."""
        return {
            "classifier": [*self.classifier.parameters(), *self.encoder.parameters()],
            "extractor": list(self.extractor.parameters()),
        }

    def mask(self, z: Tensor) -> Tensor:
        """``min(relu(sigmoid(z) - t), 1)``, same shape as ``z``."""
        return torch.relu(torch.sigmoid(z) - self.t).clamp(max=1.0)

    def forward(
        self,
        data_or_x: BaseData | Tensor | None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        *,
        stochastic: bool | None = None,
    ) -> LRIOutput:
        """``data`` or ``(x [N, F], pos [N, D], batch [N])`` -> :class:`LRIOutput`."""
        x, pos, batch, num_graphs = unpack_inputs(data_or_x, pos, batch)
        clf = self.classifier
        frame = clf.scale_pos(pos)
        edges = clf.build_graph(frame, batch)
        h = self.encoder(x, frame, edges, batch, period=clf.period)
        params = self.extractor(h)
        mu, log_var = params[:, 0], params[:, 1]
        sample = self.training if stochastic is None else stochastic
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu) if sample else mu
        m = self.mask(z)
        logits = clf(x, pos * m.unsqueeze(-1), batch)
        kl = pointmask_kl(mu, log_var, batch, num_graphs)
        return LRIOutput(logits=logits, info_loss=kl, node_scores=m, node_mask=m, embeddings=h)
