"""Point Transformer backbone: vector self-attention over graph neighbours (Zhao et al. 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter, softmax

from hepx.models.backbones.base import EdgeGeometry, PointEncoder, mlp

__all__ = ["PointTransformer", "PointTransformerConv"]


class PointTransformerConv(MessagePassing):
    r"""Vector attention layer.

    .. math::
        \delta_{ij} = \mathrm{MLP}_\delta(p_i - p_j), \quad
        a_{ij} = \mathrm{softmax}_j\big(\mathrm{MLP}_\gamma(W_1 h_i - W_2 h_j + \delta_{ij})\big), \quad
        h_i' = \sum_j a_{ij} \odot (W_3 h_j + \delta_{ij})

    The softmax runs per channel over each centre's neighbours. With ``edge_weight`` the
    attention becomes the weighted softmax ``w_ij exp(s_ij) / sum_k w_ik exp(s_ik)``: a neighbour
    of weight 0 neither sends a message nor enters the normalisation, i.e. it is removed exactly
    (a centre whose neighbours all have weight 0 receives 0).

    Shapes: ``x [N, C]``, ``edge_index [2, E]``, ``edge_attr = p_i - p_j [E, D]``,
    ``edge_weight [E] | None`` -> ``[N, C]``.
    """

    def __init__(self, channels: int, pos_dim: int, eps: float = 1e-12) -> None:
        super().__init__(aggr="add")
        self.eps = eps
        self.lin_dst = nn.Linear(channels, channels, bias=False)  # W1
        self.lin_src = nn.Linear(channels, channels, bias=False)  # W2
        self.lin_value = nn.Linear(channels, channels)  # W3
        self.pos_nn = mlp([pos_dim, channels, channels], norm=False)
        self.attn_nn = mlp([channels, channels, channels], norm=False)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        delta = self.pos_nn(edge_attr)
        return self.propagate(
            edge_index,
            q=self.lin_dst(x),
            k=self.lin_src(x),
            v=self.lin_value(x),
            delta=delta,
            edge_weight=edge_weight,
        )

    def message(
        self,
        q_i: Tensor,
        k_j: Tensor,
        v_j: Tensor,
        delta: Tensor,
        edge_weight: Tensor | None,
        index: Tensor,
        ptr: Tensor | None,
        size_i: int | None,
    ) -> Tensor:
        alpha = softmax(self.attn_nn(q_i - k_j + delta), index, ptr, size_i)
        if edge_weight is not None:
            alpha = alpha * edge_weight.unsqueeze(-1)
            norm = scatter(alpha, index, 0, dim_size=size_i, reduce="sum")
            alpha = alpha / (norm[index] + self.eps)
        return alpha * (v_j + delta)


class PointTransformer(PointEncoder):
    """Point Transformer encoder: :class:`PointTransformerConv` layers on ``p_i - p_j``.

    ``forward(x, pos, edge_index, batch, edge_weight=None, *, period=None) -> h [N, hidden]``.
    """

    def make_conv(self, channels: int, pos_dim: int, dropout: float) -> PointTransformerConv:
        return PointTransformerConv(channels, pos_dim + self.num_extra_edge_features)

    def edge_attr(self, geom: EdgeGeometry) -> Tensor:
        return torch.cat([geom.delta, *geom.extra], dim=-1) if geom.extra else geom.delta
