"""Recurrent cells behind one interface (see ``longdeps.cells.base``).

``CELLS`` maps a registry name to its class; ``make_cell`` builds one.
"""

from __future__ import annotations

import inspect

from longdeps.cells.asrnn import ASRNN, OrthogonalRNN
from longdeps.cells.base import RecurrentCell, State, StepWeights, detach_state, map_state
from longdeps.cells.bn_lstm import BNLSTM
from longdeps.cells.gru import GRU
from longdeps.cells.lstm import LSTM
from longdeps.cells.srn import SRN
from longdeps.errors import LongdepsError

CELLS: dict[str, type[RecurrentCell]] = {"srn": SRN, "lstm": LSTM, "gru": GRU, "bn-lstm": BNLSTM,
                                         "asrnn": ASRNN, "orthrnn": OrthogonalRNN}

#: one line each, for ``longdeps cells``
DESCRIPTIONS = {
    "srn": "Elman simple recurrent network, tanh (or relu); fused nn.RNN kernel",
    "lstm": "LSTM with forget gate, forget bias 1 by default; fused nn.LSTM kernel",
    "gru": "gated recurrent unit (Cho et al. 2014) as torch.nn.GRU; fused nn.GRU kernel",
    "bn-lstm": "LSTM with recurrent batch normalisation (Cooijmans et al. 2016), statistics per time step; "
               "batch_norm=false is the paper's unnormalised control",
    "asrnn": "adaptive-saturated RNN (Nguyen-Duy et al. 2023): h = D_f^-1 U_f^T tanh(U_f D_f z), W_hh and U_f "
             "orthogonal (expm/Cayley, dynamic trivialisation optional)",
    "orthrnn": "orthogonal RNN (expRNN-style): W_hh orthogonal, modReLU (default) or linear, the a -> 0 limit of asrnn",
}


def make_cell(name: str, input_size: int, hidden_size: int, **options) -> RecurrentCell:
    """Build cell ``name``; ``options`` are keyword arguments of its class, checked by name."""
    if name not in CELLS:
        raise LongdepsError(f"unknown cell {name!r}; choose from {', '.join(sorted(CELLS))}")
    accepted = inspect.signature(CELLS[name]).parameters
    for key in options:
        if key not in accepted:
            raise LongdepsError(f"option {key!r} does not apply to cell {name!r}")
    return CELLS[name](input_size, hidden_size, **options)


__all__ = ["ASRNN", "BNLSTM", "CELLS", "DESCRIPTIONS", "GRU", "LSTM", "OrthogonalRNN", "RecurrentCell", "SRN", "State",
           "StepWeights", "detach_state", "make_cell", "map_state"]
