"""What the ``hepx`` command imports: nothing heavy for its help texts, and (the goal) nothing
that ``hepx convert``'s work does not need. Each check runs in a fresh process; no timings
(benchmarks/cli_startup.py and benchmarks/ingest.py measure them)."""

import json
import subprocess
import sys

import pytest

#: Modules that take seconds to import and that no help text needs.
HEAVY = ("torch", "torch_geometric", "numba", "matplotlib", "uproot", "awkward", "vector", "sympy")

#: Modules that converting ROOT files to a dataset does not need.
NOT_FOR_CONVERT = ("torch", "torch_geometric", "numba", "matplotlib", "vector", "sympy")


def _hepx_in_fresh_process(argv: list[str], tmp_path) -> tuple[int, list[str], str]:
    """Run ``hepx ARGV`` in a fresh Python; (exit code, heavy modules it imported, stdout)."""
    code = (
        "import json, sys\n"
        "from hepx.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as stop:\n"
        "    code = stop.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps([code, heavy]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    *printed, last = proc.stdout.strip().splitlines()
    exit_code, heavy = json.loads(last)
    return exit_code, heavy, "\n".join(printed)


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["convert", "--help"], ["simulate", "tau3mu", "--help"]]
)
def test_help_imports_nothing_heavy(argv, tmp_path):
    exit_code, heavy, out = _hepx_in_fresh_process(argv, tmp_path)
    assert exit_code == 0
    assert out.startswith("usage: hepx") or out.startswith("hepx ")
    assert heavy == []


@pytest.mark.parametrize("kind", ["tau3mu", "actstrack"])
def test_convert_imports_no_torch(kind, cms_ntuple, acts_raw, tmp_path):
    source = cms_ntuple if kind == "tau3mu" else acts_raw
    config = tmp_path / "reader.yaml"
    config.write_text("reader: {min_signal_hits: 1}\n" if kind == "tau3mu" else "reader: {}\n")
    argv = ["-q", "convert", kind, str(source), "--out", str(tmp_path / "ds")]
    exit_code, heavy, _ = _hepx_in_fresh_process([*argv, "--config", str(config)], tmp_path)
    assert exit_code == 0 and (tmp_path / "ds" / "manifest.json").exists()
    assert [m for m in heavy if m in NOT_FOR_CONVERT] == []
