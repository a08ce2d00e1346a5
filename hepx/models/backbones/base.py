"""Shared pieces of the point-cloud backbones: edge geometry, node encoder, the encoder loop."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from hepx.config.run import FRAMES
from hepx.data.graph import edge_vectors
from hepx.errors import ConfigError

__all__ = [
    "FRAMES",
    "Dropout",
    "EdgeGeometry",
    "NodeEncoder",
    "PointEncoder",
    "beam_frame",
    "mlp",
    "project_aggregated",
    "projects_after_aggregation",
]

CURVATURE_SCALE = 0.01  # m^-1: pT ~ 60 GeV at 2 T; see EdgeGeometry.in_beam_frame


class Dropout(nn.Module):
    """Dropout with the distribution of :class:`torch.nn.Dropout` (zero each element with
    probability ``p``, scale the rest by ``1 / (1 - p)``), drawn as ``rand >= p``.

    Why: on CPU ``nn.Dropout`` draws through ``bernoulli_``, which costs about twice one
    uniform draw, and dropout in the edge-level message MLPs (``[E, C]``, ``E ~ 10 N``; off by
    default since ``message_dropout``) made it a large share of a training step
    (``python benchmarks/dropout.py``; docs: design decisions). CUDA keeps the fused kernel.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"dropout must lie in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        """``x [*]`` -> same shape (identity in eval mode)."""
        if not self.training or self.p == 0.0:
            return x
        if x.is_cuda:
            return nn.functional.dropout(x, self.p, True)
        keep = torch.rand_like(x).ge_(self.p)
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


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
            layers.append(Dropout(dropout))
    layers.append(nn.Linear(channels[-2], channels[-1]))
    return nn.Sequential(*layers)


#: Aggregations that commute with an affine map of the messages (the max does not).
LINEAR_AGGREGATIONS = ("add", "sum", "mean")


def projects_after_aggregation(conv: nn.Module) -> bool:
    """Whether ``conv`` applies its message MLP's last Linear to the aggregated nodes
    (:func:`project_aggregated`): for a sum or mean, except while PyTorch Geometric's explain
    mode masks each message (``conv.explain``), which must see the whole message ``W r + b``."""
    return conv.aggr in LINEAR_AGGREGATIONS and not getattr(conv, "explain", False)


def project_aggregated(
    hidden: Tensor,
    last: nn.Linear,
    index: Tensor,
    edge_weight: Tensor | None,
    aggr: str,
) -> Tensor:
    r"""The last Linear of a message MLP, applied after a linear aggregation.

    For ``aggr`` sum or mean, :math:`\square_j w_{ij} (W r_{ij} + b) =
    W\, \square_j w_{ij} r_{ij} + b\, \square_j w_{ij}`: the layer aggregates the weighted
    hidden messages ``w_ij r_ij`` and projects ``[N, C]`` nodes instead of ``[E, C]`` edges
    (same result up to float rounding, ``E / N`` times fewer multiply-adds).

    Args:
        hidden: aggregated weighted hidden messages, ``[N, C_hidden]``.
        last: the message MLP's last Linear, ``C_hidden -> C_out``.
        index: the aggregation index (edge targets ``i``), ``[E]``.
        edge_weight: ``[E]`` or ``None`` (weight 1).
        aggr: ``"add"``/``"sum"`` or ``"mean"``.

    Returns:
        ``[N, C_out]``, what aggregating ``w_ij * last(r_ij)`` gives.
    """
    if aggr not in LINEAR_AGGREGATIONS:
        raise ValueError(f"aggregation {aggr!r} does not commute with a Linear")
    weight = torch.ones_like(index, dtype=hidden.dtype) if edge_weight is None else edge_weight
    reduce = "mean" if aggr == "mean" else "sum"
    weight_agg = scatter(weight, index, dim=0, dim_size=hidden.shape[0], reduce=reduce)
    return torch.addmm(torch.outer(weight_agg, last.bias), hidden, last.weight.t())


@dataclass
class EdgeGeometry:
    """Geometry of the edges ``j -> i`` of a graph.

    Attributes:
        delta: ``p_i - p_j`` with the periodic wrap, ``[E, D]``.
        dist: ``|p_i - p_j|``, ``[E, 1]`` (0 on self-loops).
        unit: ``(p_i - p_j) / |p_i - p_j|``, ``[E, D]`` (0 where the distance is 0).
        curvature: beam-frame only: compressed transverse curvature of the circle through the
            beam line and both points, ``[E, 1]`` (see :meth:`in_beam_frame`); else ``None``.
    """

    delta: Tensor
    dist: Tensor
    unit: Tensor
    curvature: Tensor | None = None

    @classmethod
    def compute(
        cls, pos: Tensor, edge_index: Tensor, period: Sequence[float | None] | None = None
    ) -> EdgeGeometry:
        """Edge geometry with gradients that stay finite on zero-length edges (self-loops)."""
        delta = edge_vectors(pos, edge_index, period)
        dist, unit = _norm_and_unit(delta)
        return cls(delta=delta, dist=dist, unit=unit)

    def in_beam_frame(
        self, pos: Tensor, edge_index: Tensor, curvature_scale: float = CURVATURE_SCALE
    ) -> EdgeGeometry:
        """The same edges seen from the beam line (``z`` axis), for ``(x, y, z)`` points.

        ``delta`` and ``unit`` are expressed in the centre's cylindrical frame
        ``(rho_hat, phi_hat, z_hat)`` (:func:`beam_frame`); all three components are unchanged by
        rotations about the beam axis. ``curvature`` is ``asinh(kappa / curvature_scale)`` with
        ``kappa`` the signed curvature of the transverse circle through the beam line and the two
        points (Menger curvature of the triangle ``0, p_i, p_j`` in ``(x, y)``, as in the
        beam-spot-constrained doublets of track seeding): a track from the beam line of
        transverse momentum ``pT`` in a field ``B`` has ``|kappa| = 0.3 B / pT`` (m^-1, T, GeV),
        the same on every pair of its hits. The ``asinh`` keeps the resolution near 0 (stiff
        tracks) while compressing the large values of pairs from different tracks.
        ``curvature_scale`` is in inverse units of ``pos`` (default 0.01 for metres).
        """
        basis = beam_frame(pos)[edge_index[1]]  # [E, 3, 3], rows rho_hat, phi_hat, z_hat
        delta = (basis @ self.delta.unsqueeze(-1)).squeeze(-1)
        unit = (basis @ self.unit.unsqueeze(-1)).squeeze(-1)
        a, b = pos[edge_index[1], :2], pos[edge_index[0], :2]
        cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
        denom = a.norm(dim=-1) * b.norm(dim=-1) * (a - b).norm(dim=-1)
        ok = denom > 1e-12
        kappa = torch.where(ok, 2 * cross / torch.where(ok, denom, torch.ones_like(denom)), 0.0)
        curvature = torch.asinh(kappa / curvature_scale).unsqueeze(-1)
        return EdgeGeometry(delta=delta, dist=self.dist, unit=unit, curvature=curvature)

    @property
    def extra(self) -> list[Tensor]:
        """Frame-specific extra edge features (the beam frame's ``curvature``), maybe empty."""
        return [] if self.curvature is None else [self.curvature]

    @property
    def features(self) -> Tensor:
        """Edge features ``e_ij = [|p_i - p_j|, (p_i - p_j)/|p_i - p_j|, extra]``,
        ``[E, 1 + D (+ 1)]``."""
        return torch.cat([self.dist, self.unit, *self.extra], dim=-1)


def _norm_and_unit(delta: Tensor) -> tuple[Tensor, Tensor]:
    d2 = (delta * delta).sum(-1, keepdim=True)
    nonzero = d2 > 0
    safe_dist = torch.where(nonzero, d2, torch.ones_like(d2)).sqrt()
    dist = torch.where(nonzero, safe_dist, torch.zeros_like(d2))
    unit = torch.where(nonzero, delta / safe_dist, torch.zeros_like(delta))
    return dist, unit


def beam_frame(pos: Tensor, eps: float = 1e-9) -> Tensor:
    """Per point the orthonormal cylindrical basis about the ``z`` (beam) axis, ``[N, 3, 3]``.

    Rows are ``rho_hat = (x, y, 0) / rho``, ``phi_hat = (-y, x, 0) / rho`` and ``z_hat``; a point
    on the axis (``rho = 0``) gets the Cartesian basis. Differentiable in ``pos [N, 3]``.
    """
    rho = pos[:, :2].norm(dim=-1, keepdim=True)
    on_axis = rho <= eps
    safe_rho = torch.where(on_axis, torch.ones_like(rho), rho)
    c = torch.where(on_axis, torch.ones_like(rho), pos[:, :1] / safe_rho)
    s = torch.where(on_axis, torch.zeros_like(rho), pos[:, 1:2] / safe_rho)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rows = [torch.cat(r, dim=-1) for r in ((c, s, zero), (-s, c, zero), (zero, zero, one))]
    return torch.stack(rows, dim=1)


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

    ``dropout`` acts on each block's node update. ``message_dropout`` (default 0, as in the
    reference implementation) acts inside the per-edge message MLPs of DGCNN and EGNN. Dropout
    there shifts the evaluation-mode logits: the aggregated messages feed a BatchNorm whose
    running statistics were taken with the dropout noise (measured in docs: design decisions,
    ``python benchmarks/dropout_calibration.py``); the node-level and head dropout do not.

    Subclasses implement :meth:`make_conv` (one layer) and :meth:`edge_attr` (which geometric
    edge features their layer consumes). The output of the last block is the node embedding used
    by the classifier head, by LRI extractors and by GradCAM.

    ``aggr`` overrides the layers' neighbourhood aggregation where the layer allows it
    (:attr:`aggregations`; DGCNN: ``"mean"`` as in the LRI reference, ``"add"``, ``"max"`` as in
    the original DGCNN; EGNN: ``"add"``, ``"mean"``). A mean cannot count the neighbours,
    which matters on Tau3Mu, where the three tau muons pile hits into one (eta, phi) region
    (docs: design decisions).

    ``frame`` chooses the coordinates the layers see:

    - ``"global"``: edge vectors in the data's axes; no absolute position enters, so the model is
      translation invariant (and the EGNN is E(n) invariant).
    - ``"beam"`` (3-D ``(x, y, z)`` data with the beam along ``z``): edge vectors in each
      centre's cylindrical frame (:meth:`EdgeGeometry.in_beam_frame`) and the centre's ``(rho, z)``
      appended to its features. Track curvature about the beam line becomes a local edge
      feature; the model is exactly invariant under rotations about the beam axis, the
      detector's symmetry, but no longer under arbitrary rotations or translations.
    """

    def __init__(
        self,
        x_dim: int,
        pos_dim: int,
        hidden_channels: int = 64,
        num_layers: int = 4,
        dropout: float = 0.2,
        frame: str = "global",
        message_dropout: float = 0.0,
        aggr: str | None = None,
    ) -> None:
        super().__init__()
        if aggr is not None and aggr not in self.aggregations:
            allowed = (
                f"allowed: {', '.join(self.aggregations)}"
                if self.aggregations
                else "its layer has no aggregation to set; remove model.aggr"
            )
            raise ConfigError(
                f"aggr {aggr!r} is not available for {type(self).__name__}; {allowed}"
            )
        if frame not in FRAMES:
            raise ConfigError(f"frame must be one of {', '.join(FRAMES)}, got {frame!r}")
        if frame == "beam" and pos_dim != 3:
            raise ConfigError(
                f"frame 'beam' needs 3-D (x, y, z) positions with the beam along z, "
                f"got pos_dim = {pos_dim}; use frame 'global'"
            )
        self.x_dim = x_dim
        self.pos_dim = pos_dim
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.frame = frame
        self.aggr = aggr
        self.node_encoder = NodeEncoder(x_dim + (2 if frame == "beam" else 0), hidden_channels)
        self.convs = nn.ModuleList(
            [self.make_conv(hidden_channels, pos_dim, message_dropout) for _ in range(num_layers)]
        )
        self.norms = nn.ModuleList([nn.BatchNorm1d(hidden_channels) for _ in range(num_layers)])
        self.dropout = Dropout(dropout)
        #: Training steps call the layers compiled (:func:`hepx.models.compile_layers`).
        self.compiled_layers = False

    #: Neighbourhood aggregations the layer supports for ``aggr`` (first: the default).
    aggregations: tuple[str, ...] = ()

    @property
    def aggregation(self) -> str | None:
        """The aggregation the layers use: ``aggr`` if given, else the layer's default."""
        return self.aggr or (self.aggregations[0] if self.aggregations else None)

    @property
    def num_extra_edge_features(self) -> int:
        """Width of :attr:`EdgeGeometry.extra` in this frame (1 for ``"beam"``, else 0)."""
        return 1 if self.frame == "beam" else 0

    def make_conv(self, channels: int, pos_dim: int, dropout: float) -> nn.Module:
        """One message-passing layer ``conv(h, edge_index, edge_attr, edge_weight) -> [N, C]``
        (``dropout``: inside its message MLP)."""
        raise NotImplementedError

    def edge_attr(self, geom: EdgeGeometry) -> Tensor:
        """Edge features fed to every layer, ``[E, edge_dim]``."""
        raise NotImplementedError

    def _layer_runner(self):
        """``run(conv, *args)``: the compiled layer in a training step of a compiled model,
        else the module's own call."""
        if self.compiled_layers and self.training and torch.is_grad_enabled():
            from hepx.models.compile import compiled_layer

            return lambda conv, *args: compiled_layer(type(conv))(conv, *args)
        return lambda conv, *args: conv(*args)

    def forward(
        self,
        x: Tensor | None,
        pos: Tensor,
        edge_index: Tensor,
        batch: Tensor | None = None,
        edge_weight: Tensor | None = None,
        *,
        period: Sequence[float | None] | None = None,
        weighted_layers: int | None = None,
    ) -> Tensor:
        """Node embeddings.

        Args:
            x: node features ``[N, F]`` (``F`` may be 0) or ``None``.
            pos: positions ``[N, D]`` (the frame the graph was built in).
            edge_index: ``[2, E]``, rows ``(j, i)``; self-loops expected.
            batch: event index ``[N]`` (unused by the layers; kept for a uniform API).
            edge_weight: ``[E]`` multiplying each message, or ``None``.
            period: per-axis period of ``pos`` for the wrapped edge vectors.
            weighted_layers: ``edge_weight`` enters only the first ``weighted_layers``
                layers (``None``: all; GMT-lin weights the first one).

        Returns:
            ``h`` ``[N, hidden_channels]``.
        """
        geom = EdgeGeometry.compute(pos, edge_index, period)
        if self.frame == "beam":
            geom = geom.in_beam_frame(pos, edge_index)
            rho_z = torch.stack([pos[:, :2].norm(dim=-1), pos[:, 2]], dim=-1)
            x = rho_z if x is None or x.shape[-1] == 0 else torch.cat([x, rho_z], dim=-1)
        edge_attr = self.edge_attr(geom)
        h = self.node_encoder(x, pos.shape[0])
        n_weighted = self.num_layers if weighted_layers is None else weighted_layers
        run = self._layer_runner()
        for layer, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            weight = edge_weight if layer < n_weighted else None
            out = run(conv, h, edge_index, edge_attr, weight)
            h = h + self.dropout(torch.relu(norm(out)))
        return h
