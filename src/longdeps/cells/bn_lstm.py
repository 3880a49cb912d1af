"""LSTM with recurrent batch normalisation (BN-LSTM; Cooijmans et al. 2016).

::

    i, f, g, o = BN(W_h h_{t-1}; gamma_h) + BN(W_x x_t; gamma_x) + b
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(BN(c_t; gamma_c, beta_c))

Every BN keeps statistics per time step (``TimeBatchNorm``); gamma starts at
0.1 and beta at 0; eps 1e-5; the batch variance is the biased one. The
recurrent and input terms are normalised separately and have no beta of their
own (the bias ``b``, forget slice 1, plays that part); ``c_t`` is carried
forward unnormalised. ``h_0`` and ``c_0`` are trainable. From the authors'
code: forget bias 1; with ``recurrent_init="identity"`` the identity sits on
the candidate block (their MNIST set-up), the rest orthogonal.

``batch_norm=False`` gives the paper's control: the same parameters and
initialisation, with every BN replaced by the identity (plus beta where BN
has one), so that a comparison isolates the normalisation.

``initial_noise`` adds N(0, sigma^2) to ``h_0`` in training (the authors used
0.1 on sequential MNIST, where the first ~100 pixels are constant and the
batch variance would be exactly 0; their code also adds it at inference,
which makes test predictions random; we do not).
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from longdeps.cells.base import RecurrentCell, State, StepWeights
from longdeps.functional.batchnorm import TimeBatchNorm, recompute_population_statistics
from longdeps.functional.init import init_weight_

#: gate order, as in ``torch.nn.LSTM``: input, forget, candidate, output
INPUT, FORGET, CANDIDATE, OUTPUT = range(4)


class BNLSTM(RecurrentCell):
    """Batch-normalised LSTM (see the module docstring); state ``(h, c)``, each ``(B, H)``
    (``forward``'s: each ``(num_layers, B, H)``, as ``torch.nn.LSTM``'s).

    Args:
        recurrent_init, input_init: schemes of ``longdeps.functional.init`` (default orthogonal).
        forget_bias: initial forget-gate bias.
        gamma: initial BN scale.
        batch_norm: False for the unnormalised control.
        initial_noise: std of the noise added to ``h_0`` in training.
        statistics_momentum: rate of the monitoring moving average (0.01 on MNIST in the authors' code).
    """

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 recurrent_init: str = "orthogonal", input_init: str = "orthogonal", forget_bias: float = 1.0,
                 gamma: float = 0.1, batch_norm: bool = True, initial_noise: float = 0.0,
                 statistics_momentum: float = 0.01):
        super().__init__(input_size, hidden_size, batch_first, native)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        self.h0 = nn.Parameter(torch.zeros(hidden_size))
        self.c0 = nn.Parameter(torch.zeros(hidden_size))
        init_weight_(self.weight_hh, recurrent_init, gates=4, identity_block=CANDIDATE)
        init_weight_(self.weight_ih, input_init, gates=4)
        with torch.no_grad():
            self.bias[FORGET * hidden_size:(FORGET + 1) * hidden_size] = forget_bias
        self.batch_statistics = batch_norm
        self.initial_noise = initial_noise
        if batch_norm:
            self.norm_h = TimeBatchNorm(4 * hidden_size, gamma, bias=False, momentum=statistics_momentum)
            self.norm_x = TimeBatchNorm(4 * hidden_size, gamma, bias=False, momentum=statistics_momentum)
            self.norm_c = TimeBatchNorm(hidden_size, gamma, bias=True, momentum=statistics_momentum)
        else:
            self.beta_c = nn.Parameter(torch.zeros(hidden_size))

    def before_evaluation(self, model: nn.Module, training_inputs: Iterable[torch.Tensor]) -> int:
        """The population statistics: the average batch statistics of one pass over the inputs."""
        return recompute_population_statistics(model, training_inputs) if self.batch_statistics else 0

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.h0.expand(batch_size, -1)
        if self.training and self.initial_noise > 0:
            h = h + self.initial_noise * torch.randn_like(h)
        return h, self.c0.expand(batch_size, -1)

    def hidden(self, state: State) -> torch.Tensor:
        return state[0]

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_ih)

    def step_weights(self) -> StepWeights:
        return StepWeights(self.weight_hh)

    def step_rows(self, steps: range) -> tuple[tuple[torch.Tensor, ...], ...] | None:
        """The statistics rows of each batch norm (recurrent, input, cell) at ``steps`` (``TimeBatchNorm.rows``)."""
        if not self.batch_statistics:
            return None
        return tuple(norm.rows(steps) for norm in (self.norm_h, self.norm_x, self.norm_c))

    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int | range | tuple,
               weights: StepWeights) -> tuple[torch.Tensor, torch.Tensor]:
        # t: the step(s), or in a compiled block each norm's statistics at the step (step_rows)
        t_h, t_x, t_c = t if isinstance(t, tuple) else (t, t, t)
        if self.batch_statistics:
            gh, u = self.norm_h(gh, t_h), self.norm_x(u, t_x)
        i, f, g, o = (gh + u + self.bias).chunk(4, -1)
        c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
        c_out = self.norm_c(c, t_c) if self.batch_statistics else c + self.beta_c
        return torch.sigmoid(o) * torch.tanh(c_out), c
