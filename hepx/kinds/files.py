"""What an input file is, in words, for error messages that say what was expected."""

from __future__ import annotations

from pathlib import Path

from hepx.errors import InputError

__all__ = ["describe_file", "is_cms_ntuple", "trees_of"]

_MUON_TREE = "Ntuplizer/MuonTrackTree"


def trees_of(path: Path) -> list[str]:
    """The TTrees of a ROOT file (empty when it cannot be read as one)."""
    from hepx.io.rootfile import list_trees, open_root

    try:
        return list_trees(open_root(path))
    except InputError:
        return []


def is_cms_ntuple(path: Path) -> bool:
    """Whether ``path`` is a file with the CMS muon tree."""
    return Path(path).is_file() and _MUON_TREE in trees_of(Path(path))


def describe_file(path: Path) -> str:
    """``"a CMS muon ntuple (tau3mu)"``, ``"ACTS simulation output (actstrack)"``, ...

    Example
    -------
    >>> describe_file(Path("no-such-file.root"))
    'not a readable ROOT file'
    """
    from hepx.io.rootfile import list_rntuples, list_trees, open_root

    try:
        file = open_root(path)
        trees = list_trees(file)
    except InputError:
        return "not a readable ROOT file"
    if _MUON_TREE in trees:
        return "a CMS muon ntuple (tau3mu)"
    if "hits" in trees or "particles" in trees:
        return "ACTS simulation output (actstrack)"
    rntuples = list_rntuples(file)
    if rntuples and not trees:
        return f"a ROOT file with RNTuple {', '.join(rntuples)} (ROOT 7), which hepx does not read"
    return f"a ROOT file with trees {', '.join(trees) or 'none'}"
