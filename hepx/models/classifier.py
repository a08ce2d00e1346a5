"""Point-cloud classifier: graph construction + backbone + global pool + MLP head."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data.data import BaseData
from torch_geometric.nn import global_add_pool
from torch_geometric.utils import degree

from hepx.config.run import GRAPH_SPACES, POOLS
from hepx.data.graph import knn_graph, radius_graph
from hepx.errors import ConfigError, InputError
from hepx.models.backbones.base import PointEncoder, mlp

__all__ = ["GRAPH_SPACES", "GraphSpec", "PointCloudClassifier", "unpack_inputs"]


def unit_directions(pos: Tensor) -> Tensor:
    """Each point's unit direction from the origin, ``[N, D]`` (zero at the origin itself)."""
    return pos / pos.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@dataclass(frozen=True)
class GraphSpec:
    """How the classifier builds its graph from positions.

    All lengths (``r``, ``period``) are in the *backbone frame*, i.e. after multiplication by the
    classifier's ``pos_scale``.

    Attributes:
        kind: ``"knn"`` or ``"radius"``.
        k: neighbours per point for ``"knn"`` (self-loop included).
        r: radius for ``"radius"``.
        max_num_neighbors: most (nearest) neighbours per point for ``"radius"``.
        loop: include self-loops.
        period: per-axis period (``None`` entries for non-periodic axes), or ``None``.
        backend: graph backend, see :mod:`hepx.data.graph`.
        space: where neighbours are searched. ``"position"``: the positions themselves.
            ``"direction"``: each point's unit direction from the origin (``r`` is then an
            angle-like distance on the unit sphere). Only the neighbour *choice* changes; the
            layers still see the positions. On ActsTrack the hits of one track from the
            interaction region point the same way, so the graph follows tracks (docs: design
            decisions).
    """

    kind: str = "knn"
    k: int = 5
    r: float = 1.0
    max_num_neighbors: int = 32
    loop: bool = True
    period: tuple[float | None, ...] | None = None
    backend: str = "auto"
    space: str = "position"

    def __post_init__(self) -> None:
        if self.kind not in ("knn", "radius"):
            raise ConfigError(f"graph kind must be 'knn' or 'radius', got {self.kind!r}")
        if self.space not in GRAPH_SPACES:
            raise ConfigError(
                f"graph space must be one of {', '.join(GRAPH_SPACES)}, got {self.space!r}"
            )
        if self.period is not None:
            object.__setattr__(self, "period", tuple(self.period))
        if self.space == "direction" and self.period is not None:
            if any(p is not None for p in self.period):
                raise ConfigError(
                    "graph space 'direction' needs Cartesian positions, but the data has a "
                    f"periodic axis (period={list(self.period)}); use space 'position'"
                )

    def build(self, pos: Tensor, batch: Tensor | None) -> Tensor:
        """``edge_index [2, E]`` (rows ``(j, i)``) on ``pos [N, D]`` (no gradient)."""
        if self.space == "direction":
            pos = unit_directions(pos)
        if self.kind == "knn":
            return knn_graph(
                pos, self.k, batch, loop=self.loop, period=self.period, backend=self.backend
            )
        return radius_graph(
            pos,
            self.r,
            batch,
            max_num_neighbors=self.max_num_neighbors,
            loop=self.loop,
            period=self.period,
            backend=self.backend,
        )


def unpack_inputs(
    data_or_x: BaseData | Tensor | None,
    pos: Tensor | None = None,
    batch: Tensor | None = None,
) -> tuple[Tensor | None, Tensor, Tensor, int]:
    """Accept a PyG ``Data``/``Batch`` or ``(x, pos, batch)``.

    Returns:
        ``x [N, F] | None``, ``pos [N, D]``, ``batch [N]`` (zeros for a single cloud) and the
        number of clouds ``B``.
    """
    num_graphs = None
    if isinstance(data_or_x, BaseData):
        data = data_or_x
        x, pos, batch = data.x, data.pos, getattr(data, "batch", None)
        if batch is not None:
            num_graphs = int(data.num_graphs)
    else:
        x = data_or_x
    if pos is None:
        raise InputError("pos is missing: pass a Data/Batch with .pos or (x, pos, batch)")
    if pos.dim() != 2:
        raise InputError(f"pos must have shape [N, D], got {tuple(pos.shape)}")
    if x is not None and (x.dim() != 2 or x.shape[0] != pos.shape[0]):
        raise InputError(
            f"x must have shape [N, F] with N = {pos.shape[0]} points, got {tuple(x.shape)}"
        )
    if batch is None:
        batch = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
    if num_graphs is None:
        num_graphs = int(batch.max()) + 1 if batch.numel() else 0
    return x, pos, batch, num_graphs


class PointCloudClassifier(nn.Module):
    """Binary point-cloud classifier ``logits [B, 1]``.

    ``pos * pos_scale (+ pos_noise)`` -> graph (``graph``) -> ``backbone`` node embeddings
    ``h [N, C]`` -> (weighted) global pool ``[B, C]`` -> MLP ``C-2C-C-1``.

    Args:
        backbone: a :class:`~hepx.models.backbones.PointEncoder`.
        graph: graph construction; lengths in the backbone frame.
        unit_direction: replace each position by its unit direction from the origin first.
        pos_scale: positions are multiplied by it before anything else (e.g. ``1e-3`` turns
            ActsTrack millimetres into metres).
        dropout: dropout of the output MLP.
        pool: ``"add"`` (the LRI reference: ``sum_i w_i h_i``) or ``"mean"`` (that sum over
            the cloud's number of points, so the head sees the same scale whatever the event
            size, e.g. full events at high pileup).
    """

    def __init__(
        self,
        backbone: PointEncoder,
        graph: GraphSpec,
        *,
        pos_scale: float = 1.0,
        unit_direction: bool = False,
        dropout: float = 0.2,
        pool: str = "add",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ConfigError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if not (math.isfinite(pos_scale) and pos_scale > 0):
            raise ConfigError(f"pos_scale must be a positive number, got {pos_scale!r}")
        if graph.period is not None and len(graph.period) != backbone.pos_dim:
            raise ConfigError(
                f"graph period has {len(graph.period)} entries, expected pos_dim = {backbone.pos_dim}"
            )
        self.backbone = backbone
        self.graph = graph
        self.pos_scale = float(pos_scale)
        self.unit_direction = bool(unit_direction)
        self.pool = pool
        c = backbone.hidden_channels
        self.head = mlp([c, 2 * c, c, 1], dropout=dropout, norm=False)

    @property
    def hidden_channels(self) -> int:
        return self.backbone.hidden_channels

    @property
    def period(self) -> tuple[float | None, ...] | None:
        return self.graph.period

    def scale_pos(self, pos: Tensor) -> Tensor:
        """Positions in the backbone frame, ``[N, D]``.

        With ``unit_direction`` each point is first replaced by its direction from the origin
        (the LRI reference's ActsTrack representation: the hits of a straight track from the
        interaction point collapse onto one point, those of a curling soft track spread out).
        """
        if self.unit_direction:
            pos = unit_directions(pos)
        return pos * self.pos_scale if self.pos_scale != 1.0 else pos

    def build_graph(self, pos_frame: Tensor, batch: Tensor | None) -> Tensor:
        """Graph on positions already in the backbone frame, ``[2, E]``."""
        return self.graph.build(pos_frame, batch)

    def embed(
        self,
        x: Tensor | None,
        pos_frame: Tensor,
        batch: Tensor,
        edge_index: Tensor,
        edge_weight: Tensor | None = None,
        weighted_layers: int | None = None,
    ) -> Tensor:
        """Node embeddings of the last message-passing layer, ``[N, C]`` (``edge_weight``
        in the first ``weighted_layers`` layers only, when given)."""
        got = 0 if x is None else x.shape[-1]
        if got != self.backbone.x_dim:
            raise InputError(f"x has {got} features per point, model expects {self.backbone.x_dim}")
        if pos_frame.shape[-1] != self.backbone.pos_dim:
            raise InputError(
                f"pos has {pos_frame.shape[-1]} coordinates, model expects {self.backbone.pos_dim}"
            )
        return self.backbone(
            x,
            pos_frame,
            edge_index,
            batch,
            edge_weight,
            period=self.period,
            weighted_layers=weighted_layers,
        )

    def readout(
        self, h: Tensor, batch: Tensor, num_graphs: int, node_weight: Tensor | None = None
    ) -> Tensor:
        """``sum_i w_i h_i`` per cloud (over its point count with ``pool="mean"``), then the MLP
        head: ``[N, C] -> [B, 1]``."""
        if node_weight is not None:
            h = h * node_weight.unsqueeze(-1)
        pooled = global_add_pool(h, batch, size=num_graphs)
        if self.pool == "mean":
            count = degree(batch, num_graphs, dtype=pooled.dtype).clamp(min=1)
            pooled = pooled / count.unsqueeze(-1)
        return self.head(pooled)

    def forward(
        self,
        data_or_x: BaseData | Tensor | None,
        pos: Tensor | None = None,
        batch: Tensor | None = None,
        *,
        edge_weight: Tensor | None = None,
        node_weight: Tensor | None = None,
        pos_noise: Tensor | None = None,
        edge_index: Tensor | None = None,
        return_embeddings: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Logits of a batch of clouds.

        Args:
            data_or_x: a ``Data``/``Batch`` (with ``x``, ``pos``, ``batch``) or ``x [N, F]``.
            pos: ``[N, D]`` when ``data_or_x`` is ``x``.
            batch: ``[N]`` when ``data_or_x`` is ``x`` (``None``: one cloud).
            edge_weight: ``[E]`` message weights; needs ``edge_index`` (the edge order must be
                known to the caller).
            node_weight: ``[N]`` existence weights ``m``: edges are weighted ``m_i m_j``
                (times ``edge_weight``) and the pool ``sum_i m_i h_i``, so a point with ``m = 0``
                has no influence on the logits for a fixed graph (eval mode).
            pos_noise: ``[N, D]`` added to the positions in the backbone frame *before* the graph
                is built.
            edge_index: precomputed graph ``[2, E]`` in the backbone frame (skips the build).
            return_embeddings: also return the last layer's node embeddings ``[N, C]``.

        Returns:
            ``logits [B, 1]`` or ``(logits, h)``.
        """
        x, pos, batch, num_graphs = unpack_inputs(data_or_x, pos, batch)
        pos_frame = self.scale_pos(pos)
        if pos_noise is not None:
            pos_frame = pos_frame + pos_noise
        if edge_index is None:
            if edge_weight is not None:
                raise InputError("edge_weight needs the matching edge_index; pass both")
            edge_index = self.build_graph(pos_frame, batch)
        if node_weight is not None:
            w = node_weight[edge_index[0]] * node_weight[edge_index[1]]
            edge_weight = w if edge_weight is None else edge_weight * w
        h = self.embed(x, pos_frame, batch, edge_index, edge_weight)
        logits = self.readout(h, batch, num_graphs, node_weight)
        return (logits, h) if return_embeddings else logits

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"classifier": [...]}`` (same shape as the LRI models' groups)."""
        return {"classifier": list(self.parameters())}

    def extra_repr(self) -> str:
        return (
            f"pos_scale={self.pos_scale}, unit_direction={self.unit_direction}, graph={self.graph}"
        )
