"""Cells whose state recurrence is linear and diagonal, ``h_t = a_t * h_{t-1} + b_t``, with ``a_t``
and ``b_t`` functions of the input alone: ``forward`` runs all steps as one ``linear_scan``
(``longdeps.functional.scan``: a step loop on a CPU, a parallel doubling scan elsewhere, or the
``scan_backend`` named), and ``update`` computes the same step for the step-by-step machinery
(``unroll``, the step Jacobians, DSF's local derivatives).

Such a cell has no recurrent matrix: the recurrent input ``gh = h W^T`` of the cell contract is
empty (``W`` is ``(0, H)``). ``W`` is made from the parameters that set ``a_t``, so that
``gradients.recurrent_parameters`` (the alignment's ``cosine_recurrent``) names them.
"""

from __future__ import annotations

import torch

from longdeps.cells.base import RecurrentCell
from longdeps.errors import LongdepsError
from longdeps.functional.scan import BACKENDS, linear_scan


class ScannedCell(RecurrentCell):
    """Base of the scanned cells (``MinimalRecurrence``, ``LRU``).

    Args:
        scan_backend: ``linear_scan``'s backend for ``forward`` (``"auto"``: per device).
        The rest as ``RecurrentCell``; ``native`` here means: run ``forward`` as a scan.
    """

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 scan_backend: str = "auto"):
        super().__init__(input_size, hidden_size, batch_first, native)
        if scan_backend not in BACKENDS:
            raise LongdepsError(f"unknown cell.scan_backend {scan_backend!r}; choose from {', '.join(BACKENDS)}")
        self.scan_backend = scan_backend

    def no_recurrent_matrix(self, *sources: torch.Tensor) -> torch.Tensor:
        """An empty ``(0, H)`` recurrent matrix, made from the tensors ``sources``."""
        empty = torch.cat([s.reshape(-1)[:0] for s in sources])
        return empty.reshape(0, 1).expand(0, self.hidden_size)

    def scan(self, a: torch.Tensor, b: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
        """Every ``h_t = a_t * h_{t-1} + b_t``, ``(T, B, .)``, from ``h_{-1} = initial`` ``(B, .)``;
        ``a`` is ``(T, B, .)`` or fixed (broadcast against ``b[0]``)."""
        return linear_scan(a, b, self.scan_backend, reverse=False, initial=initial)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scan_backend={self.scan_backend!r}"
