"""Outputs written under a temporary name and renamed at the end: nothing half-written, nothing
a user already had moved or lost.

* :func:`atomic_file` / :func:`atomic_dir` yield a hidden temporary path next to the final
  one and rename it into place when the block succeeds (removed on an error).
* :func:`check_output` refuses, before any work, an output path that is a user's file, a
  symbolic link or a directory hepx did not write, unless ``overwrite`` is given.
* Temporaries carry the writing process's id (``.NAME.tmp-PID-XXXXXXXX``); those of processes
  that are gone (killed with ``kill -9``, a node that went down) are removed the next time the
  same output is written.
* :func:`make_dir` creates output directories with a one-line error where a parent is a file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from hepx.errors import InputError

log = logging.getLogger("hepx")

__all__ = [
    "atomic_dir",
    "atomic_file",
    "check_creatable",
    "check_files_free",
    "check_output",
    "make_dir",
    "output_dir",
    "remove_stale_temporaries",
]

_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}$")


def _tmp_sibling(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(final: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``final`` left by processes that no longer run; returns them."""
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    for p in final.parent.iterdir():
        m = _TMP.match(p.name)
        if (
            m
            and m["name"] == final.name
            and int(m["pid"]) != os.getpid()
            and not _alive(int(m["pid"]))
        ):
            _remove(p)
            removed.append(p)
    if removed:
        log.info("removed %d stale temporary output(s) of %s", len(removed), final)
    return removed


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def make_dir(path: str | os.PathLike) -> Path:
    """``mkdir -p path``, with a one-line :class:`InputError` when a parent is a file."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        raise InputError(
            f"cannot create the directory {path}: {blocker} is a file; choose another output"
        ) from None
    except PermissionError:
        raise InputError(f"cannot create the directory {path}: permission denied") from None
    return path


def check_creatable(path: str | os.PathLike, *, what: str = "output directory") -> Path:
    """Check, before any work, that the directory ``path`` exists or can be created: it is no
    file and no file stands where one of its parents should be (one-line :class:`InputError`)."""
    path = Path(path)
    if path.is_symlink() and not path.is_dir():
        raise InputError(f"{path}: a link to nothing; expected the {what}")
    if path.exists() and not path.is_dir():
        raise InputError(f"{path} is a file; expected the {what} (choose another path)")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InputError(
            f"cannot create the {what} {path}: {blocker} is a file; choose another path"
        )
    return path


def check_files_free(
    paths: Iterable[str | os.PathLike], *, overwrite: bool = False, what: str = "output"
) -> None:
    """Refuse, before any work, to replace files a user has where a command writes its files
    into an existing directory (one-line :class:`InputError` naming the first one), unless
    ``overwrite``."""
    if overwrite:
        return
    for path in map(Path, paths):
        if path.exists() or path.is_symlink():
            raise InputError(
                f"{path} exists; choose another {what} directory or pass --overwrite to replace it"
            )


@contextlib.contextmanager
def output_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Create the directory ``path`` (:func:`make_dir`, parents too) for the block; if the
    block fails (an error, Ctrl-C, SIGTERM), the directories created here that are still empty
    are removed again."""
    path = Path(path)
    created = [d for d in (path, *path.parents) if not d.exists()]
    make_dir(path)
    try:
        yield path
    except BaseException:
        for directory in created:  # deepest first
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise


def check_output(
    final: str | os.PathLike,
    *,
    overwrite: bool = False,
    is_ours: Callable[[Path], bool] | None = None,
    what: str = "output",
) -> Path:
    """Refuse, before any work, to replace what a user has at ``final``.

    A path that does not exist is fine. A symbolic link, a file, or a directory for which
    ``is_ours(path)`` is false (default: any existing directory) is refused with a one-line
    :class:`InputError` unless ``overwrite``; an output hepx wrote itself (``is_ours`` true)
    may be replaced.
    """
    final = Path(final)
    if not (final.exists() or final.is_symlink()):
        return final
    if overwrite:
        return final
    if final.is_symlink():
        found = "a symbolic link"
    elif not final.is_dir():
        found = "a file"
    elif is_ours is not None and is_ours(final):
        return final
    else:
        found = "a directory hepx did not write"
    raise InputError(
        f"{final} exists and is {found}; choose another {what} or pass --overwrite to replace it"
    )


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` on success.

    On an exception the temporary file is removed and ``final`` is left untouched.
    """
    final = Path(final)
    make_dir(final.parent)
    remove_stale_temporaries(final)
    if final.is_dir() and not final.is_symlink():
        raise InputError(f"{final} is a directory; expected a file name")
    tmp = _tmp_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(
    final: str | os.PathLike,
    *,
    overwrite: bool = True,
    check: Callable[[Path], object] | None = None,
) -> Iterator[Path]:
    """Yield a temporary directory next to ``final``; move it into place on success.

    An existing ``final`` is replaced only after the new content is complete, and only when
    ``overwrite``; callers check first with :func:`check_output` that it is theirs to replace.
    ``check(final)`` (e.g. that same :func:`check_output`) runs again just before the rename,
    so that what a user put at ``final`` while the output was being written is not replaced
    either: it raises, and the new output is discarded.
    """
    final = Path(final)
    make_dir(final.parent)
    remove_stale_temporaries(final)
    tmp = _tmp_sibling(final)
    tmp.mkdir()
    try:
        yield tmp
        if check is not None:
            check(final)
        _move_into_place(tmp, final, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, final: Path, overwrite: bool) -> None:
    """Rename ``tmp`` to ``final``, replacing what is there (moved aside first, removed after)."""
    if final.exists() or final.is_symlink():
        if not overwrite:
            raise InputError(f"{final} exists; pass overwrite=True to replace it")
        old = _tmp_sibling(final)
        os.replace(final, old)
        try:
            os.replace(tmp, final)
        except OSError:
            os.replace(old, final)  # put it back
            raise
        _remove(old)
        return
    try:
        os.replace(tmp, final)
    except OSError as err:  # another process created ``final`` meanwhile
        raise InputError(
            f"{final} was written by another process at the same time ({err.strerror}); "
            "this run's output was discarded"
        ) from None
