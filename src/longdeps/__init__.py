"""longdeps: recurrent networks on long-term dependencies."""

from longdeps.cells import CELLS, LSTM, SRN, RecurrentCell, make_cell
from longdeps.errors import LongdepsError

__version__ = "0.1.0"
__all__ = ["CELLS", "LSTM", "LongdepsError", "RecurrentCell", "SRN", "make_cell"]
