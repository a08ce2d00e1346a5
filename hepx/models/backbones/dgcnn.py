"""DGCNN backbone: EdgeConv layers with geometric edge features (Wang et al. 2019)."""

from __future__ import annotations

from torch import Tensor, cat
from torch_geometric.nn import MessagePassing

from hepx.models.backbones.base import EdgeGeometry, PointEncoder, mlp

__all__ = ["DGCNN", "EdgeConv"]


class EdgeConv(MessagePassing):
    r"""EdgeConv with edge features and optional edge weights.

    .. math::
        h_i' = \frac{1}{|\mathcal N(i)|} \sum_{j \in \mathcal N(i)}
               w_{ij}\, \mathrm{MLP}\big([h_i,\; h_j - h_i,\; e_{ij}]\big)

    Shapes: ``x [N, C]``, ``edge_index [2, E]``, ``edge_attr [E, edge_dim]``,
    ``edge_weight [E] | None`` -> ``[N, C]``.
    """

    def __init__(self, channels: int, edge_dim: int, dropout: float = 0.0) -> None:
        super().__init__(aggr="mean")
        self.nn = mlp([2 * channels + edge_dim, channels, channels], dropout=dropout)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        return self.propagate(edge_index, x=x, edge_attr=edge_attr, edge_weight=edge_weight)

    def message(
        self, x_i: Tensor, x_j: Tensor, edge_attr: Tensor, edge_weight: Tensor | None
    ) -> Tensor:
        msg = self.nn(cat([x_i, x_j - x_i, edge_attr], dim=-1))
        return msg if edge_weight is None else msg * edge_weight.unsqueeze(-1)


class DGCNN(PointEncoder):
    """DGCNN encoder: :class:`EdgeConv` layers on ``e_ij = [|p_i - p_j|, unit(p_i - p_j)]``.

    ``forward(x, pos, edge_index, batch, edge_weight=None, *, period=None) -> h [N, hidden]``.
    """

    def make_conv(self, channels: int, pos_dim: int, dropout: float) -> EdgeConv:
        return EdgeConv(channels, 1 + pos_dim + self.num_extra_edge_features, dropout)

    def edge_attr(self, geom: EdgeGeometry) -> Tensor:
        return geom.features
