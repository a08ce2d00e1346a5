"""Progress bars (tqdm): on a terminal, in a notebook (widgets), off in logs and batch jobs."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["progress_bar", "show_progress"]


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show_progress(progress: bool | None = None) -> bool:
    """Whether to draw bars: ``progress`` when given, else when stderr is a terminal or the
    code runs in a Jupyter kernel."""
    if progress is not None:
        return bool(progress)
    isatty = getattr(sys.stderr, "isatty", lambda: False)
    return bool(isatty()) or _in_notebook()


def progress_bar(iterable: Iterable[Any] | None = None, *, progress: bool | None = None, **kw):
    """A ``tqdm.auto`` bar (the notebook widget in Jupyter) shown per :func:`show_progress`;
    it disappears when done (``leave=False``) unless ``leave`` is given.

    Example
    -------
    >>> for batch in progress_bar(range(3), progress=False, desc="score"):
    ...     pass
    """
    from tqdm.auto import tqdm

    kw.setdefault("leave", False)
    return tqdm(iterable, disable=not show_progress(progress), **kw)
