"""Opening ROOT files and trees with errors that tell the user what is wrong."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import uproot

from hepx.errors import InputError

log = logging.getLogger(__name__)


def open_root(path: str | os.PathLike) -> uproot.ReadOnlyDirectory:
    """Open ``path`` as a ROOT file or raise :class:`InputError` saying why not."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a ROOT file")
    try:
        directory = uproot.open(path, array_cache=None)  # each array is read once
    except ValueError as err:
        if "not a ROOT file" in str(err):
            raise InputError(f"{path}: not a ROOT file (expected the 'root' magic bytes)") from None
        raise InputError(f"{path}: cannot open as ROOT ({_short(err)})") from None
    except Exception as err:  # truncated or corrupted headers surface as assorted errors
        raise InputError(
            f"{path}: cannot open as ROOT, the file may be truncated or corrupted ({_short(err)})"
        ) from None
    recorded, size = int(directory.file.fEND), path.stat().st_size
    if size < recorded:
        raise InputError(
            f"{path}: truncated: the file records {recorded} bytes but has {size} "
            f"({100 * size / recorded:.1f} %); copy it again"
        )
    return directory


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:160]}"


def _classes(directory: uproot.ReadOnlyDirectory) -> dict[str, str]:
    try:
        return directory.classnames(recursive=True)
    except Exception as err:
        raise InputError(f"{directory.file_path}: cannot list keys ({_short(err)})") from None


def list_trees(directory: uproot.ReadOnlyDirectory) -> list[str]:
    """Names (with sub-directory paths, no cycle numbers) of all TTrees in a file."""
    classes = _classes(directory)
    return sorted({k.split(";")[0] for k, c in classes.items() if c in ("TTree", "TNtuple")})


def list_rntuples(directory: uproot.ReadOnlyDirectory) -> list[str]:
    """Names of the RNTuples (ROOT 7's successor of TTree) in a file."""
    classes = _classes(directory)
    return sorted({k.split(";")[0] for k, c in classes.items() if "RNTuple" in c})


def open_tree(path: str | os.PathLike, tree: str) -> uproot.TTree:
    """Open the TTree ``tree`` in ``path``; a missing tree names the trees that were found."""
    file = open_root(path)
    trees = list_trees(file)
    if tree not in trees:
        rntuples = list_rntuples(file)
        if tree in rntuples or (rntuples and not trees):
            raise InputError(
                f"{path}: holds RNTuple {', '.join(rntuples)} (ROOT 7), which hepx does not "
                f"read; expected a TTree '{tree}' (write the file with a TTree writer)"
            )
        found = ", ".join(trees) if trees else "no TTree at all"
        raise InputError(f"{path}: no TTree '{tree}' (found: {found})")
    try:
        obj = file[tree]
    except Exception as err:
        raise InputError(
            f"{path}: cannot read TTree '{tree}', the file may be truncated ({_short(err)})"
        ) from None
    return obj


def require_branches(tree: uproot.TTree, names: Iterable[str], *, what: str = "") -> None:
    """Raise :class:`InputError` naming the branches of ``names`` that ``tree`` lacks."""
    have = set(tree.keys())
    missing = [n for n in names if n not in have]
    if missing:
        label = f" for {what}" if what else ""
        found = ", ".join(sorted(have)[:40]) + (" ..." if len(have) > 40 else "")
        raise InputError(
            f"{tree.file.file_path}:{tree.object_path.lstrip('/').split(';')[0]}: missing "
            f"branch(es) {', '.join(missing)}{label} (found: {found})"
        )


def split_optional(tree: uproot.TTree, optional: Iterable[str]) -> tuple[list[str], list[str]]:
    """The branches of ``optional`` that ``tree`` has, and those it lacks (in that order)."""
    have = set(tree.keys())
    names = list(dict.fromkeys(optional))
    return [n for n in names if n in have], [n for n in names if n not in have]


def warn_missing_optional(tree: uproot.TTree, missing: Sequence[str], effect: str) -> None:
    """Log, once, that ``tree`` lacks the optional branches ``missing`` (nothing if none);
    ``effect`` says what the output then lacks."""
    if missing:
        log.warning(
            "%s:%s: optional branch(es) %s not in the file; read without them (%s)",
            tree.file.file_path,
            tree.object_path.lstrip("/").split(";")[0],
            ", ".join(missing),
            effect,
        )


def iterate(
    tree: uproot.TTree,
    branches: Sequence[str],
    *,
    step_size: int | str = "100 MB",
    library: str = "ak",
):
    """``uproot.TTree.iterate`` over ``branches`` that turns read failures into InputError."""
    try:
        yield from tree.iterate(list(branches), step_size=step_size, library=library)
    except InputError:
        raise
    except Exception as err:
        raise _read_failed(tree, err) from None


def read_range(
    tree: uproot.TTree,
    branches: Sequence[str],
    entry_start: int,
    entry_stop: int,
    *,
    library: str = "np",
):
    """``branches`` of the entries ``entry_start`` to ``entry_stop`` (excluded) in one read
    (``uproot.TTree.arrays``), read failures turned into InputError."""
    try:
        return tree.arrays(
            list(branches), entry_start=entry_start, entry_stop=entry_stop, library=library
        )
    except Exception as err:
        raise _read_failed(tree, err) from None


def _read_failed(tree: uproot.TTree, err: BaseException) -> InputError:
    return InputError(
        f"{tree.file.file_path}: failed reading {tree.name}, the file may be truncated or "
        f"corrupted ({_short(err)})"
    )
