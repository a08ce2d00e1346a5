"""Reading torch files without unpickling arbitrary objects.

:func:`load_weights_only` is ``torch.load(weights_only=True)`` (optionally with more allowed
classes) whose failures are sorted into two kinds, so that each caller can say in one line what
the file is and what was expected: :class:`RefusedObject` (the file asks for a Python object
outside the allowed ones; its name is kept) and :class:`UnreadableFile` (corrupted, foreign, not
a torch file at all).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["RefusedObject", "UnreadableFile", "load_weights_only"]


class RefusedObject(Exception):
    """The file asks to load the Python object ``name`` (e.g. ``os.system``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class UnreadableFile(Exception):
    """The file is not a readable torch file; ``detail`` says why (may be empty)."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


def first_sentence(text: str, limit: int = 120) -> str:
    """The first sentence of an error text on one line, cut at a word (``...``) past ``limit``
    characters: torch's messages go on with advice that does not apply to hepx's users.

    Example:
        >>> first_sentence("PytorchStreamReader failed reading zip archive. This is an internal")
        'PytorchStreamReader failed reading zip archive'
    """
    line = " ".join(text.split())
    line = re.split(r"(?<=[a-z0-9)\]])\. ", line, maxsplit=1)[0].rstrip(".")
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + " ..."


def load_weights_only(path: str | os.PathLike, allowed: Sequence[Any] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with ``allowed`` classes and
    functions added to torch's safe globals for this call.

    Raises:
        RefusedObject: the file asks for any other Python object.
        UnreadableFile: anything else that stops the load.

    Example
    -------
    >>> state = load_weights_only("run/checkpoints/best.pt")  # doctest: +SKIP
    """
    import torch

    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found is None:
            raise UnreadableFile() from None
        raise RefusedObject(found.group(1)) from None
    except Exception as err:
        raise UnreadableFile(f"{type(err).__name__}: {first_sentence(str(err))}") from None
