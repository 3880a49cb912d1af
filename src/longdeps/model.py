"""A recurrent cell with a linear readout: the network every run trains."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from longdeps.cells import RecurrentCell, State
from longdeps.errors import LongdepsError

READOUT_INITS = ("default", "kaiming", "uniform")


@torch.no_grad()
def init_readout_(linear: nn.Linear, init: str = "default", scale: float = 0.1) -> nn.Linear:
    """Initialise the readout ``linear`` (weight ``(O, H)``) in place.

    - ``"default"``: PyTorch's ``nn.Linear`` init, left as it is
      (weight and bias ``~ U(-1/sqrt(H), 1/sqrt(H))``);
    - ``"kaiming"``: weight ``~ N(0, 2/H)`` (Kaiming-normal, fan-in, ReLU gain), bias 0:
      the expRNN and asRNN reference code;
    - ``"uniform"``: weight ``~ U(-scale, scale)``, bias 0.
    """
    if init not in READOUT_INITS:
        raise LongdepsError(f"unknown readout init {init!r}; choose from {', '.join(READOUT_INITS)}")
    if init == "uniform" and not scale > 0:
        raise LongdepsError(f"readout scale must be positive for the uniform init, got {scale!r}")
    if init == "kaiming":
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
    elif init == "uniform":
        linear.weight.uniform_(-scale, scale)
    if init != "default":
        linear.bias.zero_()
    return linear


class SequenceModel(nn.Module):
    """``cell`` followed by ``nn.Linear(H, output_size)``.

    ``readout="last"`` reads the final hidden state only (many-to-one, outputs
    ``(B, O)``); ``readout="all"`` reads every step (many-to-many, ``(T, B, O)``).
    Inputs are time-major ``(T, B, I)``. ``readout_init`` and ``readout_scale``
    initialise the readout (see ``init_readout_``).
    """

    def __init__(self, cell: RecurrentCell, output_size: int, readout: Literal["last", "all"],
                 readout_init: str = "default", readout_scale: float = 0.1):
        super().__init__()
        if cell.batch_first:
            raise ValueError("SequenceModel runs its cell time-major; build the cell with batch_first=False")
        self.cell = cell
        self.readout_kind = readout
        self.readout = init_readout_(nn.Linear(cell.hidden_size, output_size), readout_init, readout_scale)

    def read(self, hidden: torch.Tensor) -> torch.Tensor:
        """Outputs from the hidden sequence ``(T, B, H)``."""
        return self.readout(hidden[-1] if self.readout_kind == "last" else hidden)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Outputs from ``x`` ``(T, B, I)`` and the cell's final state."""
        hidden, state = self.cell(x, state)
        return self.read(hidden), state
