"""Weight initialisations used on long-range tasks.

A recurrent weight in ``torch.nn.RNN`` / ``torch.nn.LSTM`` layout is a stack of
``gates`` square blocks, shape ``(gates * H, H)``; an input weight is
``(gates * H, I)``. Schemes:

- ``"default"``: leave PyTorch's U(-1/sqrt(H), 1/sqrt(H)) as it is.
- ``"orthogonal"``: the whole stacked matrix gets orthonormal columns
  (Saxe et al. 2014; for the LSTM this is the orthogonal (n, 4n) matrix of the
  BN-LSTM code, transposed to PyTorch's layout).
- ``"identity"``: the block ``identity_block`` is the identity (IRNN, Le et al.
  2015; for the LSTM the candidate block, as in the BN-LSTM code), the other
  blocks are orthogonal.
- ``"xavier"``: Glorot-uniform U(-sqrt(6/(fan_in+fan_out)), +...) over the
  block shape (H, H) or (H, I), as in Chernodub & Nowicki's SRN code.
"""

from __future__ import annotations

import torch
from torch import nn

from longdeps.errors import LongdepsError

SCHEMES = ("default", "orthogonal", "identity", "xavier")


@torch.no_grad()
def init_weight_(weight: torch.Tensor, scheme: str, gates: int = 1, identity_block: int = 0) -> torch.Tensor:
    """Initialise ``weight`` of shape ``(gates * H, fan_in)`` in place by ``scheme``."""
    if scheme not in SCHEMES:
        raise LongdepsError(f"unknown initialisation {scheme!r}; choose from {', '.join(SCHEMES)}")
    hidden = weight.shape[0] // gates
    if scheme == "orthogonal":
        nn.init.orthogonal_(weight)
    elif scheme == "xavier":
        bound = (6.0 / (hidden + weight.shape[1])) ** 0.5
        weight.uniform_(-bound, bound)
    elif scheme == "identity":
        if weight.shape[1] != hidden:
            raise LongdepsError(f"identity initialisation needs square blocks, got weight of shape {tuple(weight.shape)}")
        rows = torch.arange(weight.shape[0])
        block = rows // hidden == identity_block
        if gates > 1:
            others = torch.empty(weight.shape[0] - hidden, hidden, dtype=weight.dtype)
            nn.init.orthogonal_(others)
            weight[~block] = others
        weight[block] = torch.eye(hidden, dtype=weight.dtype)
    return weight
