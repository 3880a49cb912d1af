"""Orthogonal RNNs: the expRNN-style ``orthrnn`` and the adaptive-saturated ``asrnn``.

asRNN (Nguyen-Duy, Pham & Nguyen 2023)::

    z_t = W_xh x_t + W_hh h_{t-1} + b
    h_t = W_f^-1 tanh(W_f z_t),   W_f = U_f D_f,   D_f = diag(|p| + eps)

with ``W_hh`` and ``U_f`` orthogonal through ``longdeps.functional.orthogonal``
(matrix exponential or Cayley map of a skew parameter; dynamic
trivialisation as an option). ``orientation`` says which way round the
parametrised matrix ``B = base @ phi(A)`` is used: ``W_hh = B`` (``"B"``, the
asRNN code's ``h @ B^T``) or ``W_hh = B^T`` (``"BT"``, the expRNN code's
``h @ B``); each cell defaults to its reference code's (``orthrnn`` ``"BT"``, ``asrnn``
``"B"``). The two describe the same set of matrices but not the same
training: an update of ``A`` moves ``B`` by ``base @ (phi(A + dA) - phi(A))``,
which multiplies ``base`` on the right, and ``B^T`` on the left. ``W_f^-1`` is applied as ``D_f^-1 U_f^T``,
never by inversion.

The step runs in the encoded coordinates ``y_t = W_f z_t``: two matrix
products per step instead of three (at T=1000, batch 128, hidden 138, one
thread: about 1.7x the time of ``torch.nn.RNN`` instead of 2.6x):

    y_t = W_f (W_xh x_t + b) + (W_f W_hh) h_{t-1},   h_t = D_f^-1 U_f^T tanh(y_t)

``project_input`` gives the first term, ``step_weights`` the matrix
``W_f W_hh`` (``recurrent``) and the decoder ``U_f D_f^-1`` (``extra``, the
row form of ``D_f^-1 U_f^T``); ``loop_inputs`` computes every orthogonal matrix
once per sequence (``parametrize.cached``).

With ``U_f = I`` and ``D_f = a I`` the step is ``tanh(a z) / a``; as ``a -> 0``
it tends to the linear orthogonal RNN ``h_t = z_t`` (``orthrnn`` with
``nonlinearity="linear"``), as ``a`` grows it saturates like a tanh RNN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from longdeps.cells.base import PARAM_GROUPS, RecurrentCell, State, StepWeights
from longdeps.errors import LongdepsError, warn
from longdeps.functional.orthogonal import SKEW_INITS, make_orthogonal_, retrivialise

#: which way round the parametrised orthogonal matrix B is used: W_hh = B or W_hh = B^T
ORIENTATIONS = ("B", "BT")


class OrthogonalRNN(RecurrentCell):
    """Orthogonal RNN ``h_t = f(W_xh x_t + W_hh h_{t-1} + b)`` with ``W_hh`` orthogonal at every step.

    ``nonlinearity``:

    - ``"modrelu"`` (default; expRNN, Lezcano-Casado & Martinez-Rubio 2019):
      ``f(z) = sign(z) relu(|z| + b)``, the bias inside modReLU, ``b ~ U(-0.01, 0.01)``,
      ``W_xh`` Kaiming-normal (the expRNN/asRNN code's baseline);
    - ``"linear"``: ``f(z) = z``, ``b = 0``, ``W_xh`` orthogonal: the limit of asRNN
      as its saturation scale goes to 0.

    Args:
        recurrent_init: skew initialisation of ``W_hh = expm(A)``: ``"cayley"`` or ``"henaff"``.
        orthogonal_map: ``"expm"`` or ``"cayley"``.
        rebase_every: dynamic trivialisation every K optimiser updates (and once at
            the start): before the forward of updates 1, K + 1, 2K + 1, ..., as the
            authors' ``dtriv`` mode; None: static.
        project_every: re-project the new bases onto the orthogonal matrices (SVD) at
            every M-th of those rebases (M = 1: each; the references: 30 expRNN, 100 asRNN,
            counting the one at the start as the first, which they never project).
        orientation: ``"BT"`` (``W_hh = B^T``, the expRNN code's ``h @ B``; the default here) or
            ``"B"`` (``W_hh = B``, the asRNN code's; the default of ``ASRNN``), ``B`` being the
            parametrised orthogonal matrix ``self.weight_hh``. Side by side with the expRNN code
            on the copy task (T = 200, 600 updates, 2 seeds; ``benchmarks/peers/``) only ``"BT"``
            followed its learning curve; ``"B"`` learned faster than the reference.
        State: ``h`` ``(B, H)``, zeros at the start (``forward``'s: ``(num_layers, B, H)``). No fused kernel.
    """

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 nonlinearity: str = "modrelu", recurrent_init: str = "cayley", orthogonal_map: str = "expm",
                 rebase_every: int | None = None, orientation: str = "BT", project_every: int = 1):
        super().__init__(input_size, hidden_size, batch_first, native)
        if nonlinearity not in ("modrelu", "linear"):
            raise LongdepsError(f"unknown nonlinearity {nonlinearity!r} for an orthogonal RNN; choose from modrelu, linear")
        if recurrent_init not in SKEW_INITS:
            raise LongdepsError(f"unknown recurrent_init {recurrent_init!r} for an orthogonal RNN; "
                                f"choose from {', '.join(SKEW_INITS)}")
        if orientation not in ORIENTATIONS:
            raise LongdepsError(f"unknown orientation {orientation!r}; choose from {', '.join(ORIENTATIONS)}")
        if rebase_every is not None and rebase_every < 1:
            raise LongdepsError(f"rebase_every must be a positive number of updates or None, got {rebase_every!r}")
        if not isinstance(project_every, int) or project_every < 1:
            raise LongdepsError(f"project_every must be a positive number of rebases, got {project_every!r}")
        self.nonlinearity = nonlinearity
        self.rebase_every = rebase_every
        self.project_every = project_every
        self.orientation = orientation
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.weight_hh = nn.Parameter(SKEW_INITS[recurrent_init](torch.empty(hidden_size, hidden_size)))
        make_orthogonal_(self, "weight_hh", orthogonal_map)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        with torch.no_grad():
            if nonlinearity == "modrelu":
                nn.init.kaiming_normal_(self.weight_ih, nonlinearity="relu")
                self.bias.uniform_(-0.01, 0.01)
            else:
                nn.init.orthogonal_(self.weight_ih)
        if rebase_every is not None:
            self.rebase()

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.zeros(batch_size)

    def hidden(self, state: State) -> torch.Tensor:
        return state

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        """``W_xh x (+ b)``: ``(..., I) -> (..., H)`` (modReLU keeps ``b`` for itself)."""
        return F.linear(x, self.weight_ih, self.bias if self.nonlinearity == "linear" else None)

    def recurrent_matrix(self) -> torch.Tensor:
        """``W_hh`` ``(H, H)``: the parametrised ``B = self.weight_hh``, or ``B^T`` for orientation ``"BT"``."""
        return self.weight_hh.mT if self.orientation == "BT" else self.weight_hh

    def step_weights(self) -> StepWeights:
        return StepWeights(self.recurrent_matrix())

    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int | range, weights: StepWeights) -> torch.Tensor:
        z = u + gh
        if self.nonlinearity == "linear":
            return z
        return torch.sign(z) * torch.relu(z.abs() + self.bias)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Learning-rate groups for ``longdeps.optim``: ``W_hh``'s skew parameter is ``orthogonal``."""
        return {"orthogonal": [self.parametrizations.weight_hh.original]}

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Count updates; rebase the orthogonal matrices every ``rebase_every`` of them."""
        self.updates += 1
        if self.rebase_every is not None and int(self.updates) % self.rebase_every == 0:
            self.rebase()

    @torch.no_grad()
    def rebase(self) -> None:
        """Dynamic trivialisation of every orthogonal matrix of the cell. The n-th rebase
        (n = updates // rebase_every + 1: the one at the start is the first) re-projects
        the bases when n is a multiple of ``project_every``."""
        rebases = int(self.updates) // self.rebase_every + 1
        retrivialise(self, project=rebases % self.project_every == 0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity!r}, orientation={self.orientation!r}"


class ASRNN(OrthogonalRNN):
    """Adaptive-saturated RNN: ``h_t = D_f^-1 U_f^T tanh(U_f D_f z_t)``, ``z_t`` as the linear orthogonal RNN.

    Initialisation as the authors' code: ``W_hh = expm(A)`` from a Cayley or
    Henaff skew ``A``, ``W_xh`` orthogonal, ``b = 0``, ``U_f = I`` (skew 0),
    ``p ~ U(saturation_low, saturation_high)``.

    The defaults are the authors' MNIST settings (a = b = 0.02, eps = 0.01:
    ``D_f = 0.03 I``, almost linear at the start); the authors' other tasks use
    copy memory ``saturation_low=0, saturation_high=0, saturation_eps=1e-5``
    (linear at the start, with ``recurrent_init="henaff"``, ``rebase_every=100``)
    and character-level PTB ``0.8, 3, 0`` (strongly saturating from the start).
    The copy setting is linear throughout: the gradient of ``|p|`` at ``p = 0``
    is 0, so ``p`` never moves (in the authors' code too); building such a cell
    warns.

    Args:
        saturation_low, saturation_high: range of the uniform draw of ``p``.
        saturation_eps: fixed ``eps`` of ``D_f = diag(|p| + eps)``.
        uf_group: learning-rate group of ``U_f``'s skew parameter: ``"default"``
            (the authors' code, which trains it at the large learning rate) or
            ``"orthogonal"`` (with ``W_hh``, at the scaled learning rate).
        recurrent_init, orthogonal_map, rebase_every, project_every, orientation: as ``OrthogonalRNN``; the
            map and the trivialisation apply to ``U_f`` too, as in the authors' code; the
            orientation to ``W_hh`` only (``U_f`` is always ``B``, as in the authors' code).
    """

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 recurrent_init: str = "cayley", orthogonal_map: str = "expm", saturation_low: float = 0.02,
                 saturation_high: float = 0.02, saturation_eps: float = 0.01, uf_group: str = "default",
                 rebase_every: int | None = None, orientation: str = "B", project_every: int = 1):
        super().__init__(input_size, hidden_size, batch_first, native, "linear", recurrent_init, orthogonal_map,
                         rebase_every, orientation, project_every)
        if not saturation_low <= saturation_high:
            raise LongdepsError(f"saturation_low must be <= saturation_high, got {saturation_low} > {saturation_high}")
        if saturation_eps < 0 or (saturation_eps == 0 and saturation_low <= 0 <= saturation_high):
            raise LongdepsError(f"D_f = |p| + eps must start positive: got eps={saturation_eps} with "
                                f"p ~ U({saturation_low}, {saturation_high})")
        if uf_group not in PARAM_GROUPS:
            raise LongdepsError(f"unknown uf_group {uf_group!r}; choose from {', '.join(PARAM_GROUPS)}")
        if saturation_low == saturation_high == 0:
            warn(f"asrnn: the saturation p starts at exactly 0 (saturation_low = saturation_high = 0), where "
                 f"|p| has zero gradient, so D_f stays at eps = {saturation_eps} and the cell trains as a "
                 f"linear orthogonal RNN")
        self.saturation_eps = saturation_eps
        self.uf_group = uf_group
        self.saturation = nn.Parameter(torch.empty(hidden_size).uniform_(saturation_low, saturation_high))
        self.weight_f = nn.Parameter(torch.zeros(hidden_size, hidden_size))
        make_orthogonal_(self, "weight_f", orthogonal_map)

    def saturation_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U_f, d)``: ``U_f`` ``(H, H)`` and the diagonal ``d = |p| + eps`` ``(H,)`` of ``D_f``."""
        return self.weight_f, self.saturation.abs() + self.saturation_eps

    def loop_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, StepWeights]:
        """As ``RecurrentCell.loop_inputs``, with every orthogonal matrix computed once for the sequence."""
        with parametrize.cached():
            return super().loop_inputs(x)

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        """The encoded input part ``W_f (W_xh x + b)``: ``(..., I) -> (..., H)``."""
        rotation, scale = self.saturation_factors()
        w_f = rotation * scale
        return F.linear(x, w_f @ self.weight_ih, w_f @ self.bias)

    def step_weights(self) -> StepWeights:
        """``W_f W_hh`` as ``recurrent``; the decoder ``W_f^-T = U_f D_f^-1`` ``(H, H)`` as ``extra``."""
        rotation, scale = self.saturation_factors()
        return StepWeights((rotation * scale) @ self.recurrent_matrix(), extra=rotation / scale)

    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int | range, weights: StepWeights) -> torch.Tensor:
        """``h = D_f^-1 U_f^T tanh(y)`` from the encoded pre-activation ``y = W_f z = u + gh``,
        in row form ``tanh(y) U_f D_f^-1``, for any leading dims ``(..., H)``."""
        return torch.tanh(u + gh) @ weights.extra

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``W_hh``'s skew parameter in ``orthogonal``; ``U_f``'s in ``uf_group``."""
        groups = super().param_groups()
        groups.setdefault(self.uf_group, []).append(self.parametrizations.weight_f.original)
        return groups

    def extra_repr(self) -> str:
        return (f"{RecurrentCell.extra_repr(self)}, saturation_eps={self.saturation_eps}, uf_group={self.uf_group!r}, "
                f"orientation={self.orientation!r}")
