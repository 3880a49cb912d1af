"""Recurrent cells behind one interface (see ``longdeps.cells.base``).

``CELLS`` is the registry (``longdeps.registry``): a cell's options are its constructor's keyword
parameters; ``make_cell`` builds one.
"""

from __future__ import annotations

from longdeps.cells.asrnn import ASRNN, OrthogonalRNN
from longdeps.cells.base import RecurrentCell, State, StepWeights, detach_state, map_state
from longdeps.cells.bn_lstm import BNLSTM
from longdeps.cells.gru import GRU
from longdeps.cells.lru import LRU
from longdeps.cells.lstm import LSTM
from longdeps.cells.minimal import MinGRU, MinLSTM
from longdeps.cells.srn import SRN
from longdeps.cells.stack import StackedCell, stacked
from longdeps.config import CellConfig
from longdeps.errors import LongdepsError
from longdeps.registry import Registry, defaults_of

CELLS = Registry("cell", "cell", defaults_of(CellConfig), context=("input_size", "hidden_size", "batch_first"),
                 around=stacked)
CELLS.add("srn", SRN, "Elman simple recurrent network, tanh (or relu); fused nn.RNN kernel")
CELLS.add("lstm", LSTM, "LSTM with forget gate, forget bias 1 by default; fused nn.LSTM kernel")
CELLS.add("gru", GRU, "gated recurrent unit (Cho et al. 2014) as torch.nn.GRU; fused nn.GRU kernel")
CELLS.add("bn-lstm", BNLSTM, "LSTM with recurrent batch normalisation (Cooijmans et al. 2016), statistics per time "
                             "step; batch_norm=false is the paper's unnormalised control")
CELLS.add("asrnn", ASRNN, "adaptive-saturated RNN (Nguyen-Duy et al. 2023): h = D_f^-1 U_f^T tanh(U_f D_f z), W_hh "
                          "and U_f orthogonal (expm/Cayley, dynamic trivialisation optional)")
CELLS.add("orthrnn", OrthogonalRNN, "orthogonal RNN (expRNN-style): W_hh orthogonal, modReLU (default) or linear, "
                                    "the a -> 0 limit of asrnn")
CELLS.add("lru", LRU, "linear recurrent unit (Orvieto et al. 2023): complex diagonal recurrence in a LayerNorm, "
                      "GELU/GLU, residual block; trains as a parallel scan")
CELLS.add("mingru", MinGRU, "minGRU (Feng et al. 2024): gate and candidate from the input alone; trains as a "
                            "parallel scan")
CELLS.add("minlstm", MinLSTM, "minLSTM (Feng et al. 2024): normalised forget and input gates from the input "
                              "alone; trains as a parallel scan")


def make_cell(name: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
              residual: bool = False, compile: bool = False, compile_block: int = CellConfig.compile_block,
              compile_fallback: bool = False, **options) -> RecurrentCell:
    """Build cell ``name`` from ``input_size`` to ``hidden_size`` units; ``options`` are keyword arguments
    of its class (``cell.*`` config fields, ``batch_first``), an option of another cell is refused. With
    ``num_layers`` > 1, a stack of such cells (``longdeps.cells.stack``) with ``dropout`` between layers
    and ``residual`` connections. With ``compile``, its step loop runs as compiled blocks of
    ``compile_block`` steps (``RecurrentCell.compile_loop``)."""
    if not compile and (compile_block, compile_fallback) != (CellConfig.compile_block, False):
        raise LongdepsError("cell.compile_block and cell.compile_fallback apply with cell.compile=true only")
    cell = stacked(lambda size: CELLS.build(name, options, input_size=size or input_size, hidden_size=hidden_size),
                   num_layers=num_layers, dropout=dropout, residual=residual)
    if compile:
        cell.compile_loop(compile_block, compile_fallback)
    return cell


__all__ = ["ASRNN", "BNLSTM", "CELLS", "GRU", "LRU", "LSTM", "MinGRU", "MinLSTM", "OrthogonalRNN", "RecurrentCell", "SRN",
           "StackedCell", "State", "StepWeights", "detach_state", "make_cell", "map_state"]
