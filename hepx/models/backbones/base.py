"""Shared pieces of the point-cloud backbones: edge geometry, node encoder, the encoder loop."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hepx.data.graph import edge_vectors

__all__ = ["EdgeGeometry", "NodeEncoder", "PointEncoder", "mlp"]


def mlp(channels: Sequence[int], *, dropout: float = 0.0, norm: bool = True) -> nn.Sequential:
    """``Linear -> [BatchNorm] -> ReLU -> [Dropout]`` blocks, the last ``Linear`` left bare.

    Args:
        channels: ``[in, hidden..., out]`` (at least two entries).
        dropout: dropout probability after each hidden activation.
        norm: insert ``BatchNorm1d`` after each hidden ``Linear``.
    """
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(channels[:-1]):
        layers.append(nn.Linear(a, b))
        if norm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(channels[-2], channels[-1]))
    return nn.Sequential(*layers)


@dataclass
class EdgeGeometry:
    """Geometry of the edges ``j -> i`` of a graph.

    Attributes:
        delta: ``p_i - p_j`` with the periodic wrap, ``[E, D]``.
        dist: ``|p_i - p_j|``, ``[E, 1]`` (0 on self-loops).
        unit: ``(p_i - p_j) / |p_i - p_j|``, ``[E, D]`` (0 where the distance is 0).
    """

    delta: Tensor
    dist: Tensor
    unit: Tensor

    @classmethod
    def compute(
        cls, pos: Tensor, edge_index: Tensor, period: Sequence[float | None] | None = None
    ) -> EdgeGeometry:
        """Edge geometry with gradients that stay finite on zero-length edges (self-loops)."""
        delta = edge_vectors(pos, edge_index, period)
        d2 = (delta * delta).sum(-1, keepdim=True)
        nonzero = d2 > 0
        safe_d2 = torch.where(nonzero, d2, torch.ones_like(d2))
        safe_dist = safe_d2.sqrt()
        dist = torch.where(nonzero, safe_dist, torch.zeros_like(d2))
        unit = torch.where(nonzero, delta / safe_dist, torch.zeros_like(delta))
        return cls(delta=delta, dist=dist, unit=unit)

    @property
    def features(self) -> Tensor:
        """Edge features ``e_ij = [|p_i - p_j|, (p_i - p_j)/|p_i - p_j|]``, ``[E, 1 + D]``."""
        return torch.cat([self.dist, self.unit], dim=-1)


class NodeEncoder(nn.Module):
    """Initial node embedding: linear map of the features, or a learned constant when the points
    carry no features (``x`` of shape ``[N, 0]`` or ``None``).

    Shapes: ``x [N, F] -> h [N, hidden]``.
    """

    def __init__(self, x_dim: int, hidden_channels: int) -> None:
        super().__init__()
        self.x_dim = x_dim
        if x_dim > 0:
            self.lin: nn.Linear | None = nn.Linear(x_dim, hidden_channels)
            self.register_parameter("constant", None)
        else:
            self.lin = None
            self.constant = nn.Parameter(torch.randn(hidden_channels) * 0.1)

    def forward(self, x: Tensor | None, num_nodes: int) -> Tensor:
        if self.lin is None:
            return self.constant.unsqueeze(0).expand(num_nodes, -1)
        assert x is not None and x.shape[-1] == self.x_dim
        return self.lin(x)


class PointEncoder(nn.Module):
    """Backbone skeleton: node encoder, then ``num_layers`` residual message-passing blocks
    ``h <- h + Dropout(ReLU(BatchNorm(conv(h))))``.

    Subclasses implement :meth:`make_conv` (one layer) and :meth:`edge_attr` (which geometric
    edge features their layer consumes). The output of the last block is the node embedding used
    by the classifier head, by LRI extractors and by GradCAM.
    """

    def __init__(
        self,
        x_dim: int,
        pos_dim: int,
        hidden_channels: int = 64,
        num_layers: int = 4,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.x_dim = x_dim
        self.pos_dim = pos_dim
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.node_encoder = NodeEncoder(x_dim, hidden_channels)
        self.convs = nn.ModuleList(
            [self.make_conv(hidden_channels, pos_dim, dropout) for _ in range(num_layers)]
        )
        self.norms = nn.ModuleList([nn.BatchNorm1d(hidden_channels) for _ in range(num_layers)])
        self.dropout = nn.Dropout(dropout)

    def make_conv(self, channels: int, pos_dim: int, dropout: float) -> nn.Module:
        """One message-passing layer ``conv(h, edge_index, edge_attr, edge_weight) -> [N, C]``."""
        raise NotImplementedError

    def edge_attr(self, geom: EdgeGeometry) -> Tensor:
        """Edge features fed to every layer, ``[E, edge_dim]``."""
        raise NotImplementedError

    def forward(
        self,
        x: Tensor | None,
        pos: Tensor,
        edge_index: Tensor,
        batch: Tensor | None = None,
        edge_weight: Tensor | None = None,
        *,
        period: Sequence[float | None] | None = None,
    ) -> Tensor:
        """Node embeddings.

        Args:
            x: node features ``[N, F]`` (``F`` may be 0) or ``None``.
            pos: positions ``[N, D]`` (the frame the graph was built in).
            edge_index: ``[2, E]``, rows ``(j, i)``; self-loops expected.
            batch: event index ``[N]`` (unused by the layers; kept for a uniform API).
            edge_weight: ``[E]`` multiplying each message, or ``None``.
            period: per-axis period of ``pos`` for the wrapped edge vectors.

        Returns:
            ``h`` ``[N, hidden_channels]``.
        """
        geom = EdgeGeometry.compute(pos, edge_index, period)
        edge_attr = self.edge_attr(geom)
        h = self.node_encoder(x, pos.shape[0])
        for conv, norm in zip(self.convs, self.norms, strict=True):
            out = conv(h, edge_index, edge_attr, edge_weight)
            h = h + self.dropout(torch.relu(norm(out)))
        return h
