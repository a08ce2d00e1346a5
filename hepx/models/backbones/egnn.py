"""E(n)-invariant EGNN backbone (Satorras et al. 2021) with frozen coordinates."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing

from hepx.models.backbones.base import (
    EdgeGeometry,
    PointEncoder,
    mlp,
    project_aggregated,
    projects_after_aggregation,
)

__all__ = ["EGNN", "EGNNConv"]


class EGNNConv(MessagePassing):
    r"""EGNN layer without coordinate update (invariant).

    .. math::
        m_{ij} = w_{ij}\, \phi_e\big([h_i,\; h_j,\; |p_i - p_j|^2,\; e_{ij}]\big), \quad
        h_i' = \phi_h\big([h_i,\; \textstyle\sum_j m_{ij}]\big)

    The sum over neighbours becomes a mean with ``aggr="mean"``. ``edge_attr`` must be
    rotation/translation invariant (the encoder passes
    ``[|p_i - p_j|^2, |p_i - p_j|]``).

    Shapes: ``x [N, C]``, ``edge_index [2, E]``, ``edge_attr [E, edge_dim]``,
    ``edge_weight [E] | None`` -> ``[N, C]``.
    """

    def __init__(
        self, channels: int, edge_dim: int, dropout: float = 0.0, aggr: str = "add"
    ) -> None:
        super().__init__(aggr=aggr)
        self.edge_nn = mlp([2 * channels + edge_dim, channels, channels], dropout=dropout)
        self.node_nn = mlp([2 * channels, channels, channels], dropout=dropout)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        # The first Linear of phi_e acts on [h_i, h_j, e_ij] = W_i h_i + W_j h_j + W_e e_ij:
        # project the nodes once ([N, C]) instead of the concatenated edges ([E, 2C + e]).
        # Its last Linear commutes with the (sum or mean) aggregation: applied to the
        # aggregated nodes, not to every edge (project_aggregated).
        w = self.edge_nn[0].weight
        c = x.shape[-1]
        hidden = self.propagate(
            edge_index,
            a=x @ w[:, :c].t(),
            b=x @ w[:, c : 2 * c].t(),
            edge_attr=edge_attr,
            edge_weight=edge_weight,
        )
        if projects_after_aggregation(self):
            hidden = project_aggregated(
                hidden, self.edge_nn[-1], edge_index[1], edge_weight, self.aggr
            )
        return self.node_nn(torch.cat([x, hidden], dim=-1))

    def message(
        self, a_i: Tensor, b_j: Tensor, edge_attr: Tensor, edge_weight: Tensor | None
    ) -> Tensor:
        """The weighted messages, ``[E, C]``: ``w_ij r_ij`` before phi_e's last Linear, which
        :func:`project_aggregated` applies to the nodes (the whole message in explain mode)."""
        first = self.edge_nn[0]
        pre = torch.addmm(first.bias, edge_attr, first.weight[:, -edge_attr.shape[-1] :].t())
        body = self.edge_nn[1:-1] if projects_after_aggregation(self) else self.edge_nn[1:]
        msg = body(pre + a_i + b_j)
        return msg if edge_weight is None else msg * edge_weight.unsqueeze(-1)


class EGNN(PointEncoder):
    """Invariant EGNN encoder.

    Edge features are ``[|p_i - p_j|^2, |p_i - p_j|]``: the direction part ``unit(p_i - p_j)`` of
    the other backbones' ``e_ij`` is left out on purpose, since it would break the E(n)
    invariance of the model (rotations of ``pos`` would change the logits). With
    ``frame="beam"`` the direction in the centre's beam frame and the beam-line curvature are
    appended: they are invariant under rotations about the beam axis, the symmetry such a model
    keeps.

    ``forward(x, pos, edge_index, batch, edge_weight=None, *, period=None) -> h [N, hidden]``.
    """

    aggregations = ("add", "mean")

    def make_conv(self, channels: int, pos_dim: int, dropout: float) -> EGNNConv:
        beam = pos_dim + self.num_extra_edge_features if self.frame == "beam" else 0
        return EGNNConv(channels, 2 + beam, dropout, aggr=self.aggregation)

    def edge_attr(self, geom: EdgeGeometry) -> Tensor:
        parts = [geom.dist * geom.dist, geom.dist]
        if self.frame == "beam":
            parts += [geom.unit, *geom.extra]
        return torch.cat(parts, dim=-1)
