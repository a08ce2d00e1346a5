"""Scale-out with dask.distributed: identical results to the single-process run."""

import numpy as np
import pytest
from tiny_runs import tiny_tau3mu_config

from hepx.cli import main
from hepx.data import load_arrays


@pytest.mark.slow
def test_convert_on_local_cluster_matches_single_process(tmp_path):
    pytest.importorskip("distributed")
    from hepx.sim import simulate_tau3mu

    files = []
    for i in range(3):
        simulate_tau3mu(tmp_path / f"f{i}", events=400, seed=10 + i)
        files.append(str(tmp_path / f"f{i}" / "ntuple.root"))
    assert main(["-q", "convert", "tau3mu", *files, "--out", str(tmp_path / "local")]) == 0
    assert (
        main(
            [
                "-q",
                "convert",
                "tau3mu",
                *files,
                "--out",
                str(tmp_path / "dask"),
                "--executor",
                "dask",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    a, b = load_arrays(tmp_path / "local"), load_arrays(tmp_path / "dask")
    np.testing.assert_array_equal(a.ptr, b.ptr)
    for k in a.point:
        np.testing.assert_array_equal(a.point[k], b.point[k])
    for k in a.sample:
        np.testing.assert_array_equal(a.sample[k], b.sample[k])
    assert set(np.unique(b.sample["source_file"])) == {0, 1, 2}


def _score_outputs_equal(a, b):
    """Same manifest entries and array-equal ROOT trees and Parquet events."""
    import awkward as ak

    from hepx.post import read_root
    from hepx.scoring import load_scored

    ma, ea = load_scored(a)
    mb, eb = load_scored(b)
    assert ma["outputs"] == mb["outputs"]
    assert ak.array_equal(ea, eb, equal_nan=True)
    for o in ma["outputs"]:
        ta, tb = read_root(a / o["root"]), read_root(b / o["root"])
        assert set(ta) == set(tb)
        for name in ta:
            assert ak.array_equal(ta[name], tb[name], equal_nan=True), name


@pytest.mark.slow
def test_score_on_local_cluster_matches_single_process(tmp_path):
    pytest.importorskip("distributed")
    from hepx.data import convert
    from hepx.sim import simulate_tau3mu
    from hepx.training import train

    files = []
    for i in range(3):
        simulate_tau3mu(tmp_path / f"f{i}", events=300, seed=i)
        files.append(str(tmp_path / f"f{i}" / "ntuple.root"))
    convert("tau3mu", files, tmp_path / "ds")
    cfg = tiny_tau3mu_config(tmp_path / "ds")
    train(cfg, tmp_path / "run", progress=False)
    # small chunks: each file is scored in several chunks on its worker
    common = ["-q", "score", str(tmp_path / "run"), *files, "--chunk-entries", "128"]
    assert main([*common, "--out", str(tmp_path / "local"), "--no-progress"]) == 0
    dask_args = ["--executor", "dask", "--workers", "2"]
    assert main([*common, "--out", str(tmp_path / "dask"), *dask_args]) == 0
    _score_outputs_equal(tmp_path / "local", tmp_path / "dask")

    # a bad scheduler address: one clear line, exit code 2, nothing written
    for address in ["tcp://127.0.0.1:1", "not-an-address"]:
        out = tmp_path / "bad"
        assert main([*common, "--out", str(out), "--executor", "dask", "--scheduler", address]) == 2
        assert not out.exists()
