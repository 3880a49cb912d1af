"""longdeps: recurrent networks on long-term dependencies.

The cells are imported on first use, so that ``longdeps --help`` does not wait for torch.
"""

from longdeps.errors import LongdepsError

__version__ = "0.1.0"
__all__ = ["CELLS", "LSTM", "LongdepsError", "RecurrentCell", "SRN", "make_cell"]


def __getattr__(name: str):
    if name in __all__:
        from longdeps import cells

        return getattr(cells, name)
    raise AttributeError(f"module 'longdeps' has no attribute {name!r}")
