"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs all we needed?"): gates and candidate from the
input alone, so that the recurrence ``h_t = a_t * h_{t-1} + b_t`` trains as one parallel scan.

    minGRU:   z_t = sigmoid(W_z x_t + b_z),  h~_t = W_h x_t + b_h,
              h_t = (1 - z_t) * h_{t-1} + z_t * h~_t
    minLSTM:  f_t = sigmoid(W_f x_t + b_f),  i_t = sigmoid(W_i x_t + b_i),  h~_t = W_h x_t + b_h,
              h_t = f_t / (f_t + i_t) * h_{t-1} + i_t / (f_t + i_t) * h~_t

The paper's log-space form (with the candidate through ``g(x) = x + 1/2`` for ``x >= 0``, else
``sigmoid(x)``, so that it is positive) guards a scan written as cumulative products and their
quotients, which overflow; ``linear_scan`` divides by nothing, and products that underflow over
long spans only drop terms below rounding, so the cells use the plain form (docs/modern-recurrences.md
gives the measurement).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from longdeps.cells.base import State, StepWeights
from longdeps.cells.scanned import ScannedCell


class MinimalRecurrence(ScannedCell):
    """A minimal gated recurrence: ``h_t = a_t * h_{t-1} + b_t`` with ``(a_t, b_t) =
    coefficients(W x_t + b)``. ``gates`` (1 or 2) gate rows of ``W`` precede the candidate's.

    State: ``h`` ``(B, H)``, zeros at the start. The step Jacobian is ``diag(a_t)``.
    Parameters: ``self.linear`` (``nn.Linear(I, (gates + 1) H)``, torch's default init).
    A diffused form's width reads no state, so a smoothed cell still runs as a scan.
    """

    gates = 1
    diffused_reads_state = False

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 scan_backend: str = "auto"):
        super().__init__(input_size, hidden_size, batch_first, native, scan_backend)
        self.linear = nn.Linear(input_size, (self.gates + 1) * hidden_size)

    @abstractmethod
    def coefficients(self, u: torch.Tensor, width: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, b)`` ``(..., H)`` from the projected input ``u`` ``(..., (gates + 1) H)``, its
        nonlinearities diffused at ``width`` unless it is None."""

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.zeros(batch_size)

    def hidden(self, state: State) -> torch.Tensor:
        return state

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def step_weights(self) -> StepWeights:
        return StepWeights(self.no_recurrent_matrix(self.linear.weight, self.linear.bias))

    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int | range,
               weights: StepWeights) -> torch.Tensor:
        a, b = self.coefficients(*self.diffusion_width(u, state))
        return torch.addcmul(b, a, state)

    @property
    def fused(self) -> bool:
        """Whether ``forward`` runs the scan: with ``native``, smoothed or not."""
        return self.native

    def native_forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        a, b = self.coefficients(*self.diffusion_width(self.project(x), state))
        h = self.scan(a, b, state)
        return h, h[-1]


class MinGRU(MinimalRecurrence):
    """minGRU (see the module docstring): ``a_t = 1 - z_t``, ``b_t = z_t * h~_t``.

    Diffused form: the gate through the logistic approximation at its width ``sigma *
    sqrt(||x_t||^2 + 1)`` (the gate reads no ``h_{t-1}``); the candidate is linear in weights
    independent of the gate's, so its noise averages out (``h_{t-1}`` held fixed, as for every cell).
    """

    diffused = ("logistic",)

    def coefficients(self, u, width):
        gate, candidate = u.chunk(2, -1)
        z = self.activation("logistic", gate, width)
        return 1 - z, z * candidate


class MinLSTM(MinimalRecurrence):
    """minLSTM (see the module docstring): ``a_t = f_t / (f_t + i_t)``, ``b_t = i_t / (f_t + i_t) * h~_t``.
    No diffused form (the normalised gates are a ratio of two sigmoids)."""

    gates = 2

    def coefficients(self, u, width):
        forget, write, candidate = u.chunk(3, -1)
        f, i = torch.sigmoid(forget), torch.sigmoid(write)
        total = f + i
        return f / total, i / total * candidate
