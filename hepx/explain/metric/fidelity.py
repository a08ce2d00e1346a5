"""Fidelity of point scores: prediction change when removing / keeping the top-k points."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData

from hepx.explain.algorithm.base import classifier_of, frozen, point_inputs
from hepx.explain.algorithm.gradients import fixed_graph

__all__ = ["fidelity", "topk_mask"]


def topk_mask(scores: Tensor, batch: Tensor, k: int) -> Tensor:
    """``[N]`` bool: the ``k`` highest-scoring points of every sample (ties by point order)."""
    n = scores.numel()
    order = torch.argsort(scores.double(), descending=True, stable=True)
    order = order[torch.argsort(batch[order], stable=True)]  # group by sample, keep score order
    counts = torch.bincount(batch)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long, device=scores.device)
    rank[order] = torch.arange(n, device=scores.device) - start[batch[order]]
    return rank < k


@torch.no_grad()
def fidelity(model: nn.Module, data: BaseData, scores: Tensor, k: int) -> dict[str, Tensor]:
    """Per-sample fidelity of ``scores`` with the top-``k`` points ``S`` of each sample.

    The classifier's probability of its predicted class ``c`` on the full cloud, ``p``, is
    compared with the probability when ``S`` is removed (``fid_plus = p - p(x without S)``,
    high = the points matter) and when only ``S`` is kept (``fid_minus = p - p(x_S)``, low = the
    points suffice). Points are removed through the classifier's existence weights on the graph
    of the full cloud (``node_weight`` 0/1), not by rebuilding the graph.

    Returns:
        ``{"fid_plus": [B], "fid_minus": [B]}``.
    """
    clf = classifier_of(model)
    inp = point_inputs(data)
    ei = fixed_graph(clf, inp)
    keep = topk_mask(scores.to(inp.pos.device), inp.batch, k).float()
    with frozen(clf):
        z = clf(inp.x, inp.pos, inp.batch, edge_index=ei).view(-1)
        z_rm = clf(inp.x, inp.pos, inp.batch, edge_index=ei, node_weight=1 - keep).view(-1)
        z_keep = clf(inp.x, inp.pos, inp.batch, edge_index=ei, node_weight=keep).view(-1)
    sign = torch.where(z > 0, 1.0, -1.0)

    def prob(v):
        return torch.sigmoid(sign * v)

    return {"fid_plus": prob(z) - prob(z_rm), "fid_minus": prob(z) - prob(z_keep)}
