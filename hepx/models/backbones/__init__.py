"""Point-cloud GNN backbones (encoders ``forward(x, pos, edge_index, batch, edge_weight) -> h``)."""

from hepx.models.backbones.base import EdgeGeometry, NodeEncoder, PointEncoder, mlp
from hepx.models.backbones.dgcnn import DGCNN, EdgeConv
from hepx.models.backbones.egnn import EGNN, EGNNConv
from hepx.models.backbones.point_transformer import PointTransformer, PointTransformerConv

BACKBONES: dict[str, type[PointEncoder]] = {
    "dgcnn": DGCNN,
    "point_transformer": PointTransformer,
    "egnn": EGNN,
}

__all__ = [
    "BACKBONES",
    "DGCNN",
    "EGNN",
    "EGNNConv",
    "EdgeConv",
    "EdgeGeometry",
    "NodeEncoder",
    "PointEncoder",
    "PointTransformer",
    "PointTransformerConv",
    "mlp",
]
