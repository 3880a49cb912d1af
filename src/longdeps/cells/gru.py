"""Gated recurrent unit (Cho et al. 2014), as ``torch.nn.GRU`` computes it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longdeps.cells.base import RecurrentCell, State, StepWeights
from longdeps.functional.init import init_weight_


class GRU(RecurrentCell):
    """GRU with the parameters of ``torch.nn.GRU`` (one layer, gate order r, z, n).

    ::

        r = sigmoid(W_ir x_t + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x_t + b_iz + W_hz h + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h + b_hn))
        h_t = (1 - z) * n + z * h

    Its weights live in ``self.gru`` (an ``nn.GRU``), so ``forward`` runs the
    fused native kernel; ``unroll``/``step`` compute the same maths step by
    step. The recurrent input is ``gh = W_hh h + b_hh`` (``b_hn`` must stay
    inside ``r * (...)``).

    Args:
        recurrent_init, input_init: schemes of ``longdeps.functional.init``
            (``"identity"`` puts the identity on the candidate block).
        Biases start at zero. State: ``h`` ``(B, H)``, zeros at the start
        (``forward``'s: ``(num_layers, B, H)``, as ``torch.nn.GRU``'s).
        Diffused form: the gates through the logistic approximation, the
        candidate through tanh, all at the cell's width (for the candidate an
        upper bound: the reset gate ``r <= 1`` scales its recurrent noise).
    """

    diffused = ("logistic", "tanh")

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 recurrent_init: str = "default", input_init: str = "default"):
        super().__init__(input_size, hidden_size, batch_first, native)
        self.gru = nn.GRU(input_size, hidden_size)
        init_weight_(self.gru.weight_hh_l0, recurrent_init, gates=3, identity_block=2)
        init_weight_(self.gru.weight_ih_l0, input_init, gates=3)
        with torch.no_grad():
            self.gru.bias_ih_l0.zero_()
            self.gru.bias_hh_l0.zero_()

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.zeros(batch_size)

    def hidden(self, state: State) -> torch.Tensor:
        return state

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.gru.weight_ih_l0, self.gru.bias_ih_l0)

    def step_weights(self) -> StepWeights:
        return StepWeights(self.gru.weight_hh_l0, self.gru.bias_hh_l0)

    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int, weights: StepWeights) -> torch.Tensor:
        u, width = self.diffusion_width(u, state)
        u_r, u_z, u_n = u.chunk(3, -1)
        gh_r, gh_z, gh_n = gh.chunk(3, -1)
        r = self.activation("logistic", u_r + gh_r, width)
        z = self.activation("logistic", u_z + gh_z, width)
        n = self.activation("tanh", u_n + r * gh_n, width)
        return n + z * (state - n)

    def native_forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        outputs, h_n = self.gru(x, state.unsqueeze(0))
        return outputs, h_n[0]
