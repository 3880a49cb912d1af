"""Test-wide settings."""

import torch

# The tensors in the tests are small: a second intra-op thread only adds
# waiting, and when the cores are busy OpenMP threads spin against each other.
torch.set_num_threads(1)
