"""A recurrent cell with a linear readout: the network every run trains."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from longdeps.cells import RecurrentCell, State


class SequenceModel(nn.Module):
    """``cell`` followed by ``nn.Linear(H, output_size)``.

    ``readout="last"`` reads the final hidden state only (many-to-one, outputs
    ``(B, O)``); ``readout="all"`` reads every step (many-to-many, ``(T, B, O)``).
    Inputs are time-major ``(T, B, I)``.
    """

    def __init__(self, cell: RecurrentCell, output_size: int, readout: Literal["last", "all"]):
        super().__init__()
        if cell.batch_first:
            raise ValueError("SequenceModel runs its cell time-major; build the cell with batch_first=False")
        self.cell = cell
        self.readout_kind = readout
        self.readout = nn.Linear(cell.hidden_size, output_size)

    def read(self, hidden: torch.Tensor) -> torch.Tensor:
        """Outputs from the hidden sequence ``(T, B, H)``."""
        return self.readout(hidden[-1] if self.readout_kind == "last" else hidden)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Outputs from ``x`` ``(T, B, I)`` and the cell's final state."""
        hidden, state = self.cell(x, state)
        return self.read(hidden), state
