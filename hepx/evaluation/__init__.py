"""The evaluation table: every applicable explanation method on trained runs (``hepx evaluate``).

* :func:`evaluate`, :data:`OPTIONS` (:mod:`~hepx.evaluation.table`);
* :func:`write_report` (:mod:`~hepx.evaluation.report`).
"""

from hepx.evaluation.report import write_report
from hepx.evaluation.table import OPTIONS, evaluate, open_run

__all__ = ["OPTIONS", "evaluate", "open_run", "write_report"]
