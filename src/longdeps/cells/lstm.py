"""Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longdeps.cells.base import RecurrentCell, State, StepWeights
from longdeps.functional.init import init_weight_
from longdeps.functional.scan import linear_scan

#: gate order of ``torch.nn.LSTM``: input, forget, candidate, output
INPUT, FORGET, CANDIDATE, OUTPUT = range(4)


class LSTM(RecurrentCell):
    """LSTM with the parameters of ``torch.nn.LSTM`` (one layer, gate order i, f, g, o).

    ::

        i, f, g, o = split(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
        c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
        h_t = sigmoid(o) * tanh(c_t)

    Its weights live in ``self.lstm`` (an ``nn.LSTM``), so ``forward`` runs the
    fused native kernel; ``unroll``/``step`` compute the same maths step by step.

    Args:
        recurrent_init, input_init: schemes of ``longdeps.functional.init``;
            ``"identity"`` puts the identity on the candidate block.
        forget_bias: initial forget-gate bias (biases start at zero otherwise).
        State: ``(h, c)``, each ``(B, H)``, zeros at the start (``forward``'s:
            each ``(num_layers, B, H)``, as ``torch.nn.LSTM``'s).
        Diffused form: the gates through the logistic approximation, the
        candidate through tanh, each unit as if alone (the product of diffused
        factors stands for the diffused product); ``tanh(c_t)`` stays plain,
        ``c_t`` not being linear in the weights.
    """

    diffused = ("logistic", "tanh")

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 recurrent_init: str = "default", input_init: str = "default", forget_bias: float = 1.0):
        super().__init__(input_size, hidden_size, batch_first, native)
        self.lstm = nn.LSTM(input_size, hidden_size)
        init_weight_(self.lstm.weight_hh_l0, recurrent_init, gates=4, identity_block=CANDIDATE)
        init_weight_(self.lstm.weight_ih_l0, input_init, gates=4)
        with torch.no_grad():
            self.lstm.bias_ih_l0.zero_()
            self.lstm.bias_hh_l0.zero_()
            self.lstm.bias_ih_l0[FORGET * hidden_size:(FORGET + 1) * hidden_size] = forget_bias

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.zeros(batch_size), self.zeros(batch_size)

    def hidden(self, state: State) -> torch.Tensor:
        return state[0]

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.lstm.weight_ih_l0, self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0)

    def step_weights(self) -> StepWeights:
        return StepWeights(self.lstm.weight_hh_l0)

    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int,
               weights: StepWeights) -> tuple[torch.Tensor, torch.Tensor]:
        u, width = self.diffusion_width(u, state)
        i, f, g, o = (u + gh).chunk(4, -1)
        c = (self.activation("logistic", f, width) * state[1]
             + self.activation("logistic", i, width) * self.activation("tanh", g, width))
        return self.activation("logistic", o, width) * torch.tanh(c), c

    def native_forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = state
        outputs, (h_n, c_n) = self.lstm(x, (h.unsqueeze(0), c.unsqueeze(0)))
        return outputs, (h_n[0], c_n[0])

    @torch.no_grad()
    def native_states(self, x: torch.Tensor, state: State) -> tuple[State, torch.Tensor] | None:
        """Every ``h_t`` from the fused kernel; then every gate from one product over all steps
        (each ``h_{t-1}`` being known) and ``c_t = f_t c_{t-1} + i_t g_t`` by a forward scan."""
        if not self.fused:
            return None
        h0, c0 = state
        h = torch.cat([h0[None], self.native_forward(x, state)[0]])
        gh = F.linear(h[:-1], self.lstm.weight_hh_l0)
        i, f, g, _ = (self.project_input(x) + gh).chunk(4, -1)
        forget = torch.sigmoid(f)
        written = torch.sigmoid(i).mul_(torch.tanh(g))
        written[0].addcmul_(forget[0], c0)
        c = linear_scan(forget, written, reverse=False)
        return (h, torch.cat([c0[None], c])), gh
