"""Scale-out with dask.distributed: identical results to the single-process run."""

import numpy as np
import pytest

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
