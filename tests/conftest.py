"""Test-wide settings."""

import os
from pathlib import Path

import torch

# The tensors in the tests are small: a second intra-op thread only adds
# waiting, and when the cores are busy OpenMP threads spin against each other.
torch.set_num_threads(1)

# Real data sets: the project's shared copies, unless the environment names others.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "LONGDEPS_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["LONGDEPS_DATA"] = str(SHARED_DATA)
