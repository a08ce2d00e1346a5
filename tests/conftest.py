"""Shared fixtures: tiny datasets of each kind and tiny trained runs, built once per session.

Session fixtures are read-only for tests: a test that writes into a run or dataset directory
copies it first (``shutil.copytree(run, tmp_path / "run")``). With pytest-xdist every worker
builds its own copies.

* raw inputs: ``acts_raw`` (ACTS hits.root + particles.root written by ``acts_files``, 48
  events of known truth), ``cms_ntuple`` (a CMS muon ntuple written by ``cms_files``, 80
  events), ``synmol_parquet`` (the shipped generic example);
* reader events: ``acts_events`` (all tracks kept), ``cms_events`` (``min_signal_hits=1``);
* datasets (``hepx convert``): ``acts_dataset``, ``tau_dataset`` (``min_signal_hits=1``),
  ``generic_dataset``;
* runs (``hepx train``, one epoch of a tiny EGNN, :func:`tiny_runs.tiny_config`):
  ``acts_lri_gaussian_run``, ``acts_lri_bernoulli_run``, ``acts_plain_run``,
  ``tau_lri_run`` (LRI-Bernoulli) and ``tau_plain_run``.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

HELPERS = Path(__file__).resolve().parent / "helpers"
sys.path.insert(0, str(HELPERS))
torch.set_num_threads(1)

import acts_files as af  # noqa: E402
import cms_files as cf  # noqa: E402
from tiny_runs import tiny_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TESTDATA = SHARED / "testdata"
SYNMOL = ROOT / "data" / "synmol_mini.parquet"

#: Events of the session ACTS files and of the session CMS ntuple.
ACTS_EVENTS = 48
CMS_EVENTS = 80


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(directory).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _read_only(directory: Path, value: Path | None = None) -> Iterator[Path]:
    """Yield ``value`` (default: ``directory``) to the tests, then check that none of them
    changed a file of ``directory``."""
    before = _snapshot(directory)
    yield directory if value is None else value
    after = _snapshot(directory)
    assert after == before, (
        f"a test wrote into the session fixture {directory}; copy it first "
        "(shutil.copytree(..., tmp_path / ...))"
    )


@pytest.fixture(scope="session")
def foreign_root():
    """A real ROOT file of another kind (written by ROOT itself)."""
    path = TESTDATA / "uproot-HZZ.root"
    if not path.exists():
        pytest.skip("shared/testdata not available")
    return path


# --------------------------------------------------------------------------- raw inputs


@pytest.fixture(scope="session")
def acts_raw(tmp_path_factory) -> Iterator[Path]:
    """A directory with ``hits.root`` and ``particles.root`` (``acts_files.build_events(48)``)."""
    d = tmp_path_factory.mktemp("acts_raw")
    af.write_acts(d, af.build_events(ACTS_EVENTS))
    yield from _read_only(d)


@pytest.fixture(scope="session")
def cms_ntuple(tmp_path_factory) -> Iterator[Path]:
    """A CMS muon ntuple of 80 random events (``cms_files.random_hits``, seed 3)."""
    import numpy as np

    path = tmp_path_factory.mktemp("cms_raw") / "cms.root"
    counts, fields, is_sig = cf.random_hits(np.random.default_rng(3), CMS_EVENTS)
    cf.write_cms(path, counts, fields, is_sig.astype(int))
    yield from _read_only(path.parent, path)


@pytest.fixture(scope="session")
def synmol_parquet() -> Path:
    """The shipped generic example (SynMol style, 400 samples)."""
    return SYNMOL


# --------------------------------------------------------------------------- reader events


@pytest.fixture(scope="session")
def acts_events(acts_raw):
    """Reader events of ``acts_raw`` with every track kept."""
    from hepx.io import read_acts

    return read_acts(acts_raw / "hits.root", acts_raw / "particles.root", tracks_per_event=None)


@pytest.fixture(scope="session")
def cms_events(cms_ntuple):
    """Reader events of ``cms_ntuple`` (a signal event needs one signal hit)."""
    from hepx.io import read_cms_muon

    return read_cms_muon(cms_ntuple, min_signal_hits=1)


# --------------------------------------------------------------------------- datasets


@pytest.fixture(scope="session")
def acts_dataset(acts_raw, tmp_path_factory) -> Iterator[Path]:
    from hepx.data import convert

    out = tmp_path_factory.mktemp("acts_ds") / "ds"
    convert("actstrack", [acts_raw], out)
    yield from _read_only(out)


@pytest.fixture(scope="session")
def tau_dataset(cms_ntuple, tmp_path_factory) -> Iterator[Path]:
    from hepx.data import convert

    out = tmp_path_factory.mktemp("tau_ds") / "ds"
    convert("tau3mu", [cms_ntuple], out, reader_options={"min_signal_hits": 1})
    yield from _read_only(out)


@pytest.fixture(scope="session")
def generic_dataset(tmp_path_factory) -> Iterator[Path]:
    from hepx.data import convert

    out = tmp_path_factory.mktemp("generic_ds") / "ds"
    convert("generic", [SYNMOL], out)
    yield from _read_only(out)


# --------------------------------------------------------------------------- trained runs


def _train(tmp_path_factory, name: str, dataset: Path, kind: str, method: str) -> Path:
    from hepx.training import train

    run = tmp_path_factory.mktemp(name) / name
    train(tiny_config(dataset, kind, method), run, progress=False)
    return run


def _run(tmp_path_factory, name: str, dataset: Path, kind: str, method: str) -> Iterator[Path]:
    yield from _read_only(_train(tmp_path_factory, name, dataset, kind, method))


@pytest.fixture(scope="session")
def acts_lri_gaussian_run(acts_dataset, tmp_path_factory) -> Iterator[Path]:
    yield from _run(
        tmp_path_factory, "acts_lri_gaussian", acts_dataset, "actstrack", "lri_gaussian"
    )


@pytest.fixture(scope="session")
def acts_lri_bernoulli_run(acts_dataset, tmp_path_factory) -> Iterator[Path]:
    yield from _run(
        tmp_path_factory, "acts_lri_bernoulli", acts_dataset, "actstrack", "lri_bernoulli"
    )


@pytest.fixture(scope="session")
def acts_plain_run(acts_dataset, tmp_path_factory) -> Iterator[Path]:
    yield from _run(tmp_path_factory, "acts_plain", acts_dataset, "actstrack", "plain")


@pytest.fixture(scope="session")
def tau_lri_run(tau_dataset, tmp_path_factory) -> Iterator[Path]:
    yield from _run(tmp_path_factory, "tau_lri", tau_dataset, "tau3mu", "lri_bernoulli")


@pytest.fixture(scope="session")
def tau_plain_run(tau_dataset, tmp_path_factory) -> Iterator[Path]:
    yield from _run(tmp_path_factory, "tau_plain", tau_dataset, "tau3mu", "plain")
