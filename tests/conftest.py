import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TESTDATA = SHARED / "testdata"


@pytest.fixture(scope="session")
def foreign_root():
    """A real ROOT file of another kind (written by ROOT itself)."""
    path = TESTDATA / "uproot-HZZ.root"
    if not path.exists():
        pytest.skip("shared/testdata not available")
    return path
