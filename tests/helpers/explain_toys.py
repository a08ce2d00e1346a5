"""Hand-built models with known behaviour for the explainer tests."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import global_add_pool

from hepx.models.classifier import unpack_inputs


class ToyClassifier(nn.Module):
    """``logit_b = sum_i m_i x_i g(p_i) + bias`` with the classifier interface (``embed``,
    ``readout``, ``build_graph``, ``node_weight``...). ``x_i`` in {0, 1} flags the points the
    logit depends on. ``g = |p|^2`` (rotation / O(3) / permutation invariant) or
    ``g = p_x^2`` (``invariant=False``: changes under rotations about z)."""

    hidden_channels = 2
    period = None
    pos_scale = 1.0

    def __init__(self, invariant: bool = True, bias: float = 0.5) -> None:
        super().__init__()
        self.invariant = invariant
        self.bias = nn.Parameter(torch.tensor([bias]))
        self.w = nn.Parameter(torch.tensor([1.0, 0.0]))

    def scale_pos(self, pos):
        return pos

    def build_graph(self, pos, batch):
        idx = torch.arange(pos.shape[0], device=pos.device)
        return torch.stack([idx, idx])

    def embed(self, x, pos, batch, edge_index, edge_weight=None):
        g = (pos * pos).sum(-1) if self.invariant else pos[:, 0] ** 2
        h = torch.stack([x[:, 0] * g, x[:, 0]], dim=-1)
        if edge_weight is not None:  # self-loops only: weight m_i^2 -> use sqrt to get m_i
            h = h * edge_weight.clamp_min(0).sqrt().unsqueeze(-1)
        return h

    def readout(self, h, batch, num_graphs, node_weight=None):
        if node_weight is not None:
            h = h * node_weight.unsqueeze(-1)
        return global_add_pool(h, batch, size=num_graphs) @ self.w.view(-1, 1) + self.bias

    def forward(
        self,
        data_or_x,
        pos=None,
        batch=None,
        *,
        edge_weight=None,
        node_weight=None,
        pos_noise=None,
        edge_index=None,
        return_embeddings=False,
    ):
        x, pos, batch, b = unpack_inputs(data_or_x, pos, batch)
        if edge_index is None:
            edge_index = self.build_graph(pos, batch)
        ew = edge_weight
        if node_weight is not None:
            w = node_weight[edge_index[0]] * node_weight[edge_index[1]]
            ew = w if ew is None else ew * w
        h = self.embed(x, pos, batch, edge_index, ew)
        # node weight already applied through the self-loop edge weight
        logits = self.readout(h, batch, b)
        return (logits, h) if return_embeddings else logits


def toy_batch(sizes=(9, 12, 7), dim=3, seed=0, n_flag=3):
    """Point clouds with ``x`` flags on the first ``n_flag`` points of each cloud (shuffled)."""
    g = torch.Generator().manual_seed(seed)
    data = []
    for n in sizes:
        x = torch.zeros(n, 1)
        x[torch.randperm(n, generator=g)[:n_flag]] = 1.0
        pos = torch.randn(n, dim, generator=g) + 0.5
        data.append(Data(pos=pos, x=x, node_label=x[:, 0].long(), y=torch.ones(1, 1)))
    return Batch.from_data_list(data)


def random_batch(sizes=(9, 12, 7), dim=3, x_dim=0, seed=0, scale=100.0, periodic=False):
    g = torch.Generator().manual_seed(seed)
    data = []
    for i, n in enumerate(sizes):
        pos = torch.randn(n, dim, generator=g) * scale
        if periodic:
            pos[:, 1] = (torch.rand(n, generator=g) * 2 - 1) * torch.pi
        x = torch.randn(n, x_dim, generator=g)
        lab = (torch.rand(n, generator=g) < 0.4).long()
        lab[0] = 1
        lab[1] = 0
        data.append(Data(pos=pos, x=x, node_label=lab, y=torch.full((1, 1), float(i % 2))))
    return Batch.from_data_list(data)
