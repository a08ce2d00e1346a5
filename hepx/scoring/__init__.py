"""A trained run over new events: per-hit importance and per-event scores.

* :class:`EventScorer` (:mod:`~hepx.scoring.events`): a model over reader events (awkward).
* :func:`score_files`, :func:`load_scored` (:mod:`~hepx.scoring.files`): ``hepx score``, the
  batch version over ROOT files, writing friend trees and Parquet.
"""

from hepx.scoring.events import EventScorer
from hepx.scoring.files import load_scored, score_files, score_one

__all__ = ["EventScorer", "load_scored", "score_files", "score_one"]
