"""Point-cloud GNN models: backbones, the classifier, LRI-Bernoulli / LRI-Gaussian, a factory.

* :mod:`hepx.models.backbones`: :class:`DGCNN`, :class:`PointTransformer`, :class:`EGNN`
  encoders ``forward(x, pos, edge_index, batch, edge_weight=None, *, period=None) -> h [N, C]``.
* :class:`PointCloudClassifier`: builds its graph (:class:`GraphSpec`) and returns ``logits [B, 1]``.
* :class:`LRIBernoulli`, :class:`LRIGaussian`, and GMT's :class:`GMTLin`, :class:`GMTSam`
  (:mod:`hepx.models.gmt`): return an :class:`LRIOutput`.
* :func:`build_model`: config dict -> model (validated).
* :func:`compile_layers`: the message-passing layers fused by ``torch.compile`` (``train.compile``).

Design decisions (deliberate departures from / choices within the reference):

* ``pos_scale`` is a plain linear scale (ActsTrack configs use ``0.001``: mm -> m). The reference
  normalises ActsTrack hit positions to unit length; that keeps only the direction from the origin
  and collapses the hits of one straight track onto nearly one point, losing the radial
  information LRI-Gaussian's per-hit noise is meant to probe, so it is not done.
* Existence weights: LRI-Bernoulli weights the messages by ``m_i m_j`` and leaves the pool
  unweighted, as the reference; ``bernoulli.mask_pool`` (and ``node_weight=`` of the
  classifier) also weights the global pool by ``m_i``, so that a point with ``m = 0`` has no
  influence at all.
* Point Transformer: with edge weights the attention is the weighted softmax
  ``w_ij exp(s_ij) / sum_k w_ik exp(s_ik)`` (a weight-0 neighbour is removed exactly).
* EGNN: edge features ``[|p_i - p_j|^2, |p_i - p_j|]`` only; the direction ``unit(p_i - p_j)`` of
  ``e_ij`` would break the E(n) invariance.
* Periodic axes (Tau3Mu phi): graphs and edge vectors use the minimum-image difference.
* Eval-time prediction: LRI-Bernoulli uses the mask ``m = p`` (no sampling); LRI-Gaussian the
  clean (mean) positions; ``stochastic=True`` gives the sampled prediction.
"""

from hepx.models.backbones import (
    BACKBONES,
    DGCNN,
    EGNN,
    EdgeConv,
    EdgeGeometry,
    EGNNConv,
    NodeEncoder,
    PointEncoder,
    PointTransformer,
    PointTransformerConv,
)
from hepx.models.classifier import GraphSpec, PointCloudClassifier, unpack_inputs
from hepx.models.compile import compile_layers
from hepx.models.factory import DEFAULT_CONFIG, METHODS, build_model, resolve_config
from hepx.models.gmt import GMTLin, GMTSam
from hepx.models.lri import (
    LRIBernoulli,
    LRIGaussian,
    LRIOutput,
    bernoulli_kl,
    gaussian_kl,
    gaussian_noise,
    r_schedule,
)
from hepx.models.pointmask import PointMask

__all__ = [
    "BACKBONES",
    "DEFAULT_CONFIG",
    "DGCNN",
    "EGNN",
    "METHODS",
    "EGNNConv",
    "EdgeConv",
    "EdgeGeometry",
    "GMTLin",
    "GMTSam",
    "GraphSpec",
    "LRIBernoulli",
    "LRIGaussian",
    "LRIOutput",
    "NodeEncoder",
    "PointCloudClassifier",
    "PointEncoder",
    "PointMask",
    "PointTransformer",
    "PointTransformerConv",
    "bernoulli_kl",
    "build_model",
    "compile_layers",
    "gaussian_kl",
    "gaussian_noise",
    "r_schedule",
    "resolve_config",
    "unpack_inputs",
]
