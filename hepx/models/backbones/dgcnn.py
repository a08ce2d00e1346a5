"""DGCNN backbone: EdgeConv layers with geometric edge features (Wang et al. 2019)."""

from __future__ import annotations

from torch import Tensor, addmm
from torch_geometric.nn import MessagePassing

from hepx.models.backbones.base import (
    EdgeGeometry,
    PointEncoder,
    mlp,
    project_aggregated,
    projects_after_aggregation,
)

__all__ = ["DGCNN", "EdgeConv"]


class EdgeConv(MessagePassing):
    r"""EdgeConv with edge features and optional edge weights.

    .. math::
        h_i' = \square_{j \in \mathcal N(i)}
               w_{ij}\, \mathrm{MLP}\big([h_i,\; h_j - h_i,\; e_{ij}]\big)

    with the aggregation :math:`\square` = ``aggr`` (``"mean"``, the LRI reference; ``"add"``;
    ``"max"``, the original DGCNN).

    Shapes: ``x [N, C]``, ``edge_index [2, E]``, ``edge_attr [E, edge_dim]``,
    ``edge_weight [E] | None`` -> ``[N, C]``.
    """

    def __init__(
        self, channels: int, edge_dim: int, dropout: float = 0.0, aggr: str = "mean"
    ) -> None:
        super().__init__(aggr=aggr)
        self.nn = mlp([2 * channels + edge_dim, channels, channels], dropout=dropout)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        # The first Linear acts on [h_i, h_j - h_i, e_ij] = (W_1 - W_2) h_i + W_2 h_j + W_e e_ij:
        # project the nodes once ([N, C]) instead of the concatenated edges ([E, 2C + e]).
        w = self.nn[0].weight
        c = x.shape[-1]
        w_diff = w[:, c : 2 * c]
        out = self.propagate(
            edge_index,
            a=x @ (w[:, :c] - w_diff).t(),
            b=x @ w_diff.t(),
            edge_attr=edge_attr,
            edge_weight=edge_weight,
        )
        if not projects_after_aggregation(self):
            return out
        # sum and mean commute with the MLP's last Linear: project nodes, not edges.
        return project_aggregated(out, self.nn[-1], edge_index[1], edge_weight, self.aggr)

    def message(
        self, a_i: Tensor, b_j: Tensor, edge_attr: Tensor, edge_weight: Tensor | None
    ) -> Tensor:
        """Weighted messages, ``[E, C]``: before the MLP's last Linear when the aggregation
        is linear (:func:`project_aggregated` applies it to the nodes), after it for the max
        and in explain mode."""
        first = self.nn[0]
        pre = addmm(first.bias, edge_attr, first.weight[:, -edge_attr.shape[-1] :].t())
        body = self.nn[1:-1] if projects_after_aggregation(self) else self.nn[1:]
        msg = body(pre + a_i + b_j)
        return msg if edge_weight is None else msg * edge_weight.unsqueeze(-1)


class DGCNN(PointEncoder):
    """DGCNN encoder: :class:`EdgeConv` layers on ``e_ij = [|p_i - p_j|, unit(p_i - p_j)]``.

    ``forward(x, pos, edge_index, batch, edge_weight=None, *, period=None) -> h [N, hidden]``.
    """

    aggregations = ("mean", "add", "max")

    def make_conv(self, channels: int, pos_dim: int, dropout: float) -> EdgeConv:
        edge_dim = 1 + pos_dim + self.num_extra_edge_features
        return EdgeConv(channels, edge_dim, dropout, aggr=self.aggregation)

    def edge_attr(self, geom: EdgeGeometry) -> Tensor:
        return geom.features
