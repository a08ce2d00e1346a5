"""hepx.device: a device torch cannot use here is refused in one line before any work."""

import pytest
import torch

import hepx
from hepx.cli import main
from hepx.device import checked_device
from hepx.errors import ConfigError


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_checked_device(no_cuda):
    assert checked_device(None).type == "cpu"
    assert checked_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="'cuda' requested but CUDA is not available"):
        checked_device("cuda")
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        checked_device("gpu")


def test_cuda_without_cuda_in_score_evaluate_and_load(no_cuda, tau_lri_run, cms_ntuple, tmp_path):
    """hepx score / evaluate with --device cuda: exit 2 and no output; hepx.load raises."""
    with pytest.raises(ConfigError, match="CUDA is not available"):
        hepx.load(tau_lri_run, device="cuda")
    commands = {
        "report": ["evaluate", str(tau_lri_run), "--out", str(tmp_path / "report")],
        "scored": ["score", str(tau_lri_run), str(cms_ntuple), "--out", str(tmp_path / "scored")],
    }
    for out, args in commands.items():
        assert main([*args, "--device", "cuda"]) == 2
        assert not (tmp_path / out).exists()
