"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting recurrent neural networks for long
sequences"), in the residual block the paper stacks.

One step, from the input ``x_t`` ``(I)`` to the block output ``y_t`` ``(H)``::

    v_t = E x_t                                    (the paper's linear encoder; identity when I = H)
    n_t = LayerNorm(v_t)
    h_t = lambda * h_{t-1} + gamma * (B n_t)       (complex state, N units; lambda, gamma diagonal)
    z_t = Re(C h_t) + D * n_t
    y_t = v_t + GLU(W GELU(z_t))                   (GLU(a; b) = a * sigmoid(b), W: H -> 2H)

``lambda = exp(-exp(nu_log) + i exp(theta_log))``, initialised uniformly on the ring of radii
``[r_min, r_max]`` (``|lambda|^2`` uniform in ``[r_min^2, r_max^2]``, uniform in area) with phase
uniform in ``[0, max_phase]``; ``gamma = exp(gamma_log)``, initialised to ``sqrt(1 - |lambda|^2)``
and trained; ``B`` ``(N, H)`` and ``C`` ``(H, N)`` complex, real and imaginary parts ``~ N(0, 1 /
(2 H))`` and ``~ N(0, 1 / N)``; ``D`` ``(H)`` real ``~ N(0, 1)``. The norm is LayerNorm (the paper
allows batch or layer norm; LayerNorm keeps the examples independent).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from longdeps.cells.base import State, StepWeights
from longdeps.cells.scanned import ScannedCell
from longdeps.errors import LongdepsError


class LRU(ScannedCell):
    """LRU block (see the module docstring). ``hidden_size`` is the model width ``H``.

    Args:
        state_size: complex state units ``N`` (0: ``H``).
        r_min, r_max: the ring ``|lambda|`` is initialised on, ``0 <= r_min <= r_max < 1``.
        max_phase: ``arg(lambda)`` is initialised uniformly in ``[0, max_phase]`` (radians).
        scan_backend: see ``ScannedCell``.

    State: ``(h, y)``: ``h`` ``(B, 2N)``, the complex state as pairs ``(Re h_k, Im h_k)`` side by
    side (the memory layout of a complex tensor, so that the scan views it without copying), and
    ``y`` ``(B, H)`` the last block output, which ``hidden`` returns (it reads the input as well as
    ``h``); zeros at the start. The step Jacobian ``d h_t / d h_{t-1}`` is constant and block
    diagonal: per unit the 2 x 2 block ``[[Re l, -Im l], [Im l, Re l]]`` of multiplying by ``l =
    lambda_k``; ``y_t`` reads no ``y_{t-1}``. No diffused form (GELU and the norm have none here).
    As ``y_{t-1}`` is not read, ``dL/dy_t`` is the readout's gradient alone (``carries_hidden``):
    the gradient profile is flat and sgr refuses the cell.
    """

    carries_hidden = False

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 scan_backend: str = "auto", state_size: int = 0, r_min: float = 0.9, r_max: float = 0.999,
                 max_phase: float = 2 * math.pi):
        super().__init__(input_size, hidden_size, batch_first, native, scan_backend)
        if not isinstance(state_size, int) or state_size < 0:
            raise LongdepsError(f"cell.state_size must be an integer >= 0 (0: hidden_size), got {state_size!r}")
        if not 0 <= r_min <= r_max < 1:
            raise LongdepsError(f"lru needs 0 <= cell.r_min <= cell.r_max < 1, got r_min={r_min}, r_max={r_max}")
        if not max_phase > 0:
            raise LongdepsError(f"cell.max_phase must be > 0 radians, got {max_phase!r}")
        self.state_size = state_size or hidden_size
        self.r_min, self.r_max, self.max_phase = r_min, r_max, max_phase
        n, h = self.state_size, hidden_size
        self.encoder = nn.Identity() if input_size == hidden_size else nn.Linear(input_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size)
        radius_squared = torch.empty(n).uniform_(r_min ** 2, r_max ** 2)
        phase = max_phase * torch.rand(n).clamp(min=1e-12)  # (a zero phase has no log)
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(radius_squared)))
        self.theta_log = nn.Parameter(torch.log(phase))
        self.gamma_log = nn.Parameter(0.5 * torch.log(1 - radius_squared))
        self.input_weight = nn.Parameter(torch.randn(n, 2, h) / math.sqrt(2 * h))  #: B: [k, 0] = Re B_k, [k, 1] = Im B_k
        self.output_weight = nn.Parameter(torch.randn(h, n, 2) / math.sqrt(n))  #: C: [:, k, 0] = Re C_k, [:, k, 1] = Im C_k
        self.skip = nn.Parameter(torch.randn(h))  #: D
        self.mlp = nn.Linear(h, 2 * h)

    def eigenvalues(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Re lambda, Im lambda)``, each ``(N,)``."""
        radius, phase = torch.exp(-torch.exp(self.nu_log)), torch.exp(self.theta_log)
        return radius * torch.cos(phase), radius * torch.sin(phase)

    def initial_state(self, batch_size: int) -> State:
        return self.nu_log.new_zeros(batch_size, 2 * self.state_size), self.zeros(batch_size)

    def hidden(self, state: State) -> torch.Tensor:
        return state[1]

    def input_parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The state-independent parts of a step: the drive ``gamma B n`` as pairs ``(..., 2N)``, ``D n``
        and ``v`` ``(..., H)``."""
        v = self.encoder(x)
        n = self.norm(v)
        gamma = torch.exp(self.gamma_log).repeat_interleave(2)[:, None]
        return F.linear(n, gamma * self.input_weight.flatten(0, 1)), self.skip * n, v

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        """``input_parts`` side by side: ``(..., I) -> (..., 2N + 2H)``."""
        return torch.cat(self.input_parts(x), -1)

    def step_weights(self) -> StepWeights:
        """No recurrent matrix; ``extra``: ``Re lambda``, ``Im lambda`` and the readout ``(H, 2N)`` of the
        pairs, ``Re(C h) = sum_k Re C_k Re h_k - Im C_k Im h_k``."""
        readout = torch.stack([self.output_weight[..., 0], -self.output_weight[..., 1]], -1).flatten(1)
        return StepWeights(self.no_recurrent_matrix(self.nu_log, self.theta_log),
                           extra=(*self.eigenvalues(), readout))

    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int | range,
               weights: StepWeights) -> State:
        n, h = self.state_size, self.hidden_size
        drive, skip, v = u.split([2 * n, h, h], -1)
        drive_re, drive_im = drive.unflatten(-1, (n, 2)).unbind(-1)
        real, imaginary = state[0].unflatten(-1, (n, 2)).unbind(-1)
        lam_re, lam_im, readout = weights.extra
        new = torch.stack([lam_re * real - lam_im * imaginary + drive_re,
                           lam_re * imaginary + lam_im * real + drive_im], -1).flatten(-2)
        return new, self.block_output(new, skip, v, readout)

    def block_output(self, h: torch.Tensor, skip: torch.Tensor, v: torch.Tensor,
                     readout: torch.Tensor) -> torch.Tensor:
        """``y = v + GLU(W GELU(Re(C h) + D n))`` from ``h`` ``(..., 2N)``, ``D n`` and ``v`` ``(..., H)``."""
        return v + F.glu(self.mlp(F.gelu(F.linear(h, readout) + skip)), -1)

    def scanned(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, torch.Tensor]:
        """Every ``h_t`` ``(T, B, 2N)`` and ``y_t`` ``(T, B, H)`` over ``x`` ``(T, B, I)``, as one complex scan."""
        drive, skip, v = self.input_parts(x)
        lam_re, lam_im, readout = self.step_weights().extra
        pairs = (self.state_size, 2)
        h = self.scan(torch.complex(lam_re, lam_im), torch.view_as_complex(drive.unflatten(-1, pairs)),
                      torch.view_as_complex(state[0].unflatten(-1, pairs).contiguous()))
        h = torch.view_as_real(h).flatten(-2)
        return h, self.block_output(h, skip, v, readout)

    def native_forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, y = self.scanned(x, state)
        return y, (h[-1], y[-1])

    @torch.no_grad()
    def native_states(self, x: torch.Tensor, state: State) -> tuple[State, None] | None:
        if not self.fused:
            return None
        h, y = self.scanned(x, state)
        return (torch.cat([state[0][None], h]), torch.cat([state[1][None], y])), None

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, state_size={self.state_size}, r_min={self.r_min}, r_max={self.r_max}, "
                f"max_phase={self.max_phase:.4g}")
