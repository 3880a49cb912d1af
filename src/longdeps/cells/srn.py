"""Elman's simple recurrent network: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from longdeps.cells.base import RecurrentCell, State, StepWeights
from longdeps.errors import LongdepsError
from longdeps.functional.diffused import MOMENTS
from longdeps.functional.init import init_weight_

NONLINEARITIES = ("tanh", "relu")


class SRN(RecurrentCell):
    """Simple recurrent network with the parameters of ``torch.nn.RNN`` (one layer).

    Its weights live in ``self.rnn`` (an ``nn.RNN``), so ``forward`` runs the
    fused native kernel; ``unroll``/``step`` compute the same maths step by step.

    Args:
        nonlinearity: ``"tanh"`` (Elman) or ``"relu"``.
        recurrent_init, input_init: schemes of ``longdeps.functional.init``.
        Biases start at zero. State: ``h`` ``(B, H)``, zeros at the start
        (``forward``'s: ``(num_layers, B, H)``, as ``torch.nn.RNN``'s; while propagating ``(m, v)``, each so).
        Diffused form: the nonlinearity (tanh approximately, relu exactly).

    Moment propagation (``set_smoothing(sigma, propagate=True)``): the state is
    ``(m, v)``, the mean and the variance ``(B, H)`` of each unit under weight
    noise ``N(0, sigma^2)``, taking the units of ``h_{t-1}`` as independent of
    each other and of the noise (mean field). The pre-activation of unit ``i``
    then has variance ``sigma^2 (||x_t||^2 + 1 + ||m||^2 + sum(v)) + sum_j
    W_ij^2 v_j``, and ``m``, ``v`` at step ``t`` are the diffused mean and the
    closed-form variance (``functional.diffused.MOMENTS``) at that width.
    """

    propagates_moments = True

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 nonlinearity: str = "tanh", recurrent_init: str = "default", input_init: str = "default"):
        super().__init__(input_size, hidden_size, batch_first, native)
        if nonlinearity not in NONLINEARITIES:
            raise LongdepsError(f"unknown nonlinearity {nonlinearity!r}; choose from {', '.join(NONLINEARITIES)}")
        self.nonlinearity = nonlinearity
        self.diffused = (nonlinearity,)
        self.rnn = nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity)
        init_weight_(self.rnn.weight_hh_l0, recurrent_init)
        init_weight_(self.rnn.weight_ih_l0, input_init)
        with torch.no_grad():
            self.rnn.bias_ih_l0.zero_()
            self.rnn.bias_hh_l0.zero_()

    def initial_state(self, batch_size: int) -> State:
        h = self.zeros(batch_size)
        return (h, torch.zeros_like(h)) if self.propagating else h

    def hidden(self, state: State) -> torch.Tensor:
        return state[0] if isinstance(state, tuple) else state

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.rnn.weight_ih_l0, self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0)

    def step_weights(self) -> StepWeights:
        """``W_hh``; while propagating, also ``(W_hh^2)^T`` (``extra``), which carries the variance."""
        weight = self.rnn.weight_hh_l0
        return StepWeights(weight, extra=weight.pow(2).t() if self.propagating else None)

    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int, weights: StepWeights) -> State:
        if not self.propagating:
            u, width = self.diffusion_width(u, state)
            return self.activation(self.nonlinearity, u + gh, width)
        v = state[1] if isinstance(state, tuple) else torch.zeros_like(gh)  # a given h_0 is exact
        arriving = self.smoothing ** 2 * v.sum(-1, keepdim=True) + v @ weights.extra
        u, width = self.diffusion_width(u, state, arriving)
        return MOMENTS[self.nonlinearity](u + gh, width)

    def native_forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        outputs, h_n = self.rnn(x, state.unsqueeze(0))
        return outputs, h_n[0]
