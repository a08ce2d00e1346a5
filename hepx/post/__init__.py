"""Physics post-processing: per-hit importance mapped back onto tracks and muon chambers.

* :mod:`hepx.post.physics`: per-track, per-layer/station and track-ranking reductions and the
  LRI-Gaussian axis angle, on the readers' awkward events (numba kernels in
  :mod:`hepx.post.kernels`, pure awkward/NumPy references in :mod:`hepx.post.reference`);
* :mod:`hepx.post.outputs`: ROOT (friend-ready TTrees) and Parquet writing and reading.

Running a trained model over ROOT files (``hepx score``) is :mod:`hepx.scoring`'s.
"""

from hepx.post.outputs import (
    FriendLayout,
    ParquetAppender,
    RootImportanceWriter,
    importance_from_root,
    read_parquet,
    read_root,
    write_parquet,
    write_root,
)
from hepx.post.physics import (
    annotate,
    attach_importance,
    axis_angles,
    detect_kind,
    flat_importance,
    group_profile,
    roc_auc,
    roc_curve,
    track_importance,
    track_ranking,
)

__all__ = [
    "FriendLayout",
    "ParquetAppender",
    "RootImportanceWriter",
    "annotate",
    "attach_importance",
    "axis_angles",
    "detect_kind",
    "flat_importance",
    "group_profile",
    "importance_from_root",
    "read_parquet",
    "read_root",
    "roc_auc",
    "roc_curve",
    "track_importance",
    "track_ranking",
    "write_parquet",
    "write_root",
]
