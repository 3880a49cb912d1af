"""The interface every recurrent cell shares.

A cell mirrors ``torch.nn.RNN`` / ``torch.nn.LSTM``: ``forward(x, state)``
returns the hidden sequence and the final state. Underneath, one time step is
split in three so that the per-step loop stays lean (one matrix product per
step; ``docs/architecture.md``) and so that gradient estimators can take a
step apart:

- ``project_input(x)``: the part that does not depend on the state, done once
  for all steps in one matmul, ``(..., input_size) -> (..., P)``;
- the recurrent input ``gh_t = h_{t-1} W^T (+ b)``, one matmul per step, with
  ``W`` (and whatever else every step reuses, e.g. a matrix exponential) from
  ``step_weights()``, computed once per sequence;
- ``update(u_t, gh_t, state, t, weights)``: the rest, elementwise or per
  example, so that it also runs on all steps at once (leading dims ``(T, B)``).

``step(x_t, state, t)`` chains the three. Gradient estimators and probes that
need every step's state call ``unroll``; ``forward`` uses a fused native
kernel instead where the cell has one and ``native`` is on, and else, after
``compile_loop(block)`` (``cell.compile=true``), runs the step loop as
torch.compile'd blocks of steps (``longdeps.cells.compiled``).

Gaussian diffusion (``longdeps.continuation``) smooths a cell by replacing
each nonlinearity its ``update`` applies through ``activation`` with its
closed-form diffused version (``longdeps.functional.diffused``) at the
per-example width ``s = sigma * ||[h_{t-1}; x_t; 1]||``, the spread of a
pre-activation when every weight feeding it carries noise ``N(0, sigma^2)``.
``project`` appends ``||x_t||^2 + 1`` to the projected input while a cell is
smoothed and ``diffusion_width`` turns it into ``s``; a smoothed cell runs its
step loop, never the native kernel. Smoothing applies in training mode
only, so that evaluation always scores the network itself.

That width treats ``h_{t-1}`` as fixed. A cell with ``propagates_moments``
can also treat it as random under the weight noise (``set_smoothing(sigma,
propagate=True)``): its state then carries each unit's variance beside its
mean, and the variance arriving from ``h_{t-1}`` widens ``s`` (moment
propagation; see ``SRN``).

A *state* is a tensor ``(B, H)`` or a tuple of them (e.g. ``(h, c)``);
``hidden(state)`` is the ``(B, H)`` part seen by the readout. That is the
per-step state; ``forward`` takes and returns it in torch's layout, every
tensor with a leading ``num_layers`` dim (``boundary_state``, ``step_state``).
A cell is one layer; ``longdeps.cells.stack`` stacks them, and every cell
exposes its ``layers`` and how they connect (``layer_output``), so that an
estimator that takes steps apart can go layer by layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Union

import torch
from torch import nn

from longdeps.cells.compiled import CompiledLoop
from longdeps.errors import LongdepsError
from longdeps.functional.diffused import DIFFUSED, PLAIN

State = Union[torch.Tensor, tuple["State", ...]]

#: the learning-rate groups a cell may put parameters in (``param_groups``; ``longdeps.optim`` sets their rates)
PARAM_GROUPS = ("default", "orthogonal")


def map_state(fn: Callable[[torch.Tensor], torch.Tensor], state: State) -> State:
    """Apply ``fn`` to every tensor of ``state`` (a stack's state nests its layers' states: every level)."""
    return tuple(map_state(fn, s) for s in state) if isinstance(state, tuple) else fn(state)


@dataclass
class StepWeights:
    """What every step of one sequence reuses, computed once per sequence.

    ``recurrent`` ``(G, H)`` and ``bias`` ``(G,)`` (or None) define the
    recurrent input ``gh = h @ recurrent.T + bias``; ``extra`` holds whatever
    else a cell's ``update`` needs.
    """

    recurrent: torch.Tensor
    bias: torch.Tensor | None = None
    extra: Any = None
    recurrent_t: torch.Tensor = field(init=False)  #: ``recurrent.T``, transposed once

    def __post_init__(self):
        self.recurrent_t = self.recurrent.t()

    def tensors(self) -> list[torch.Tensor]:
        """The tensors held here: ``recurrent``, ``bias`` and those in ``extra``."""
        extra = self.extra if isinstance(self.extra, (tuple, list)) else [self.extra]
        return [t for t in (self.recurrent, self.bias, *extra) if isinstance(t, torch.Tensor)]

    def detached(self) -> "StepWeights":
        """A copy whose tensors are new leaves (requiring grad where the originals do), so that
        gradients can be gathered on them and pushed through the originals' graph once."""
        def leaf(t):
            return t.detach().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t
        extra = type(self.extra)(map(leaf, self.extra)) if isinstance(self.extra, (tuple, list)) else leaf(self.extra)
        return StepWeights(leaf(self.recurrent), leaf(self.bias), extra)


def detach_state(state: State) -> State:
    """The same state, cut from the autograd graph."""
    return map_state(torch.Tensor.detach, state)


class RecurrentCell(nn.Module, ABC):
    """Base class of all cells. Subclasses implement the four abstract methods.

    Args:
        input_size: features per time step, ``I``.
        hidden_size: hidden units, ``H``.
        batch_first: inputs and outputs are ``(B, T, .)`` instead of ``(T, B, .)``.
        native: use a fused native kernel in ``forward`` where one computes the
            same maths (``torch.nn.RNN`` / ``torch.nn.LSTM``).
    """

    #: the nonlinearities ``update`` applies through ``activation`` (names of
    #: ``longdeps.functional.diffused``); empty: the cell has no diffused form
    diffused: tuple[str, ...] = ()
    #: whether those nonlinearities' pre-activations read ``hidden(state)``, so that their width counts it
    diffused_reads_state: bool = True
    #: whether training normalises with statistics of the batch, so that examples depend on each other
    batch_statistics: bool = False
    #: whether the cell can carry its state's variance under smoothing (``set_smoothing(propagate=True)``)
    propagates_moments: bool = False
    #: whether the next step reads what ``hidden`` returns (not so where the readout input is an output
    #: computed from the state, e.g. the LRU block's; then ``dL/dh_t`` holds the readout's gradient alone)
    carries_hidden: bool = True

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or value < 1:
                raise LongdepsError(f"{name} must be a positive integer, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.batch_first = batch_first
        self.native = native
        self.smoothing = 0.0  #: diffusion sigma; set with ``set_smoothing``
        self.propagate = False  #: whether smoothing carries the state's variance; set with ``set_smoothing``
        self._widths: list[torch.Tensor] | None = None  #: where ``diffusion_width`` records, while recording
        self.compiled: CompiledLoop | None = None  #: ``forward``'s step loop as compiled blocks (``compile_loop``)

    # -- what a cell defines ------------------------------------------------
    @abstractmethod
    def initial_state(self, batch_size: int) -> State:
        """The state before the first step, for ``batch_size`` sequences."""

    @abstractmethod
    def hidden(self, state: State) -> torch.Tensor:
        """The ``(B, H)`` part of ``state`` that the readout sees."""

    @abstractmethod
    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        """The state-independent part of a step, ``(..., I) -> (..., P)``."""

    @abstractmethod
    def step_weights(self) -> StepWeights:
        """The recurrent matrix and what else every step reuses, computed once per sequence."""

    @abstractmethod
    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int | range, weights: StepWeights) -> State:
        """The new state from the projected input ``u`` ``(..., P)``, the recurrent
        input ``gh`` ``(..., G)`` and the previous ``state``; ``t`` is the step
        (0-based), or a ``range`` of steps when the inputs hold all steps at
        once (leading dims ``(T, B)``); in a compiled block, the step's row of
        ``step_rows`` instead (None for a cell without them). A cell with a
        ``diffused`` form takes ``u`` from ``project`` apart with
        ``diffusion_width`` and applies those nonlinearities through
        ``activation``."""

    def step_rows(self, steps: range) -> Any:
        """What ``update`` reads at ``steps`` through ``t``, as tensors (or nested tuples of them) with one
        row per step, for a compiled block: a step index would change from block to block and make
        torch.compile compile every block again. None here: ``update`` does not read ``t``."""
        return None

    def before_evaluation(self, model: nn.Module, training_inputs: Iterable[torch.Tensor]) -> int:
        """Work a cell does before its ``model`` is evaluated, reading (lazily) time-major training
        input batches ``(T, B, I)``; returns the number of batches read. None here."""
        return 0

    def native_forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State] | None:
        """``forward`` through a fused kernel, time-major; ``None`` where there is none."""
        return None

    @torch.no_grad()
    def native_states(self, x: torch.Tensor, state: State) -> tuple[State, torch.Tensor | None] | None:
        """Every state ``0..T`` (components ``(T + 1, B, .)``) through the fused kernel, without
        autograd, and the recurrent inputs ``(T, B, G)`` where they were formed on the way (else
        None); None where ``forward`` would not run a fused kernel. Here: cells whose state is
        the hidden vector that the kernel returns at every step."""
        if not self.fused or self.hidden(state) is not state:
            return None
        fused = self.native_forward(x, state)
        return None if fused is None else (torch.cat([state[None], fused[0]]), None)

    # -- diffusion ----------------------------------------------------------
    def set_smoothing(self, sigma: float, propagate: bool = False) -> None:
        """Diffuse the cell at weight-noise scale ``sigma`` (0: the plain cell); with ``propagate``,
        carry the state's variance through time as well."""
        if sigma < 0 or sigma != sigma:
            raise LongdepsError(f"smoothing sigma must be >= 0, got {sigma!r}")
        if propagate and not self.propagates_moments:
            # the first class of ours: torch.nn.utils.parametrize subclasses parametrised cells
            name = next(c.__name__ for c in type(self).__mro__ if c.__module__.startswith("longdeps"))
            raise LongdepsError(f"cell {name} has no moment-propagated form; set continuation.propagate=false")
        self.smoothing = float(sigma)
        self.propagate = propagate

    @property
    def smoothed(self) -> bool:
        """Whether ``update`` diffuses its nonlinearities now (smoothing > 0, training mode)."""
        return self.training and self.smoothing > 0

    @property
    def propagating(self) -> bool:
        """Whether the state carries its variance now (smoothed, with ``propagate``)."""
        return self.smoothed and self.propagate

    @property
    def couples_examples(self) -> bool:
        """Whether one example's step depends on the other examples of the batch now (batch statistics)."""
        return self.batch_statistics and self.training

    @property
    def provides(self) -> frozenset[str]:
        """What this cell offers the other axes (``longdeps.registry.CAPABILITIES``)."""
        return frozenset({"diffused form"} if self.diffused else ()) | frozenset(
            () if self.batch_statistics else {"independent examples"}) | frozenset(
            {"carried readout input"} if self.carries_hidden else ())

    @property
    def fused(self) -> bool:
        """Whether ``forward`` runs the native kernel (``native`` on and not smoothed)."""
        return self.native and not self.smoothed

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``project_input(x)``, with ``||x||^2 + 1`` appended as a last column while smoothed:
        ``(..., I) -> (..., P)`` or ``(..., P + 1)``."""
        u = self.project_input(x)
        if not self.smoothed:
            return u
        return torch.cat([u, x.pow(2).sum(-1, keepdim=True) + 1], -1)

    def diffusion_width(self, u: torch.Tensor, state: State,
                        variance: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Split ``project``'s output into the projected input ``(..., P)`` and the width
        ``s = sigma * sqrt(||x||^2 + 1 + ||h_{t-1}||^2)`` ``(..., 1)`` (None unless smoothed;
        without the ``||h_{t-1}||^2`` where the pre-activations do not read it, ``diffused_reads_state``).
        ``variance`` ``(..., G)``, where a propagating cell passes one, is the pre-activations'
        variance from a random ``h_{t-1}``; it is added to ``s^2``, unit by unit."""
        if not self.smoothed:
            return u, None
        squared_norm = u[..., -1:]
        if self.diffused_reads_state:
            squared_norm = squared_norm + self.hidden(state).pow(2).sum(-1, keepdim=True)
        if variance is None:
            width = self.smoothing * torch.sqrt(squared_norm)
        else:
            width = torch.sqrt(self.smoothing ** 2 * squared_norm + variance)
        if self._widths is not None:
            self._widths.append(width.detach())
        return u[..., :-1], width

    @contextmanager
    def recording_widths(self) -> Iterator[list[torch.Tensor]]:
        """Collect every width ``diffusion_width`` forms inside the context (tensors ``(..., 1)``)."""
        self._widths = []
        try:
            yield self._widths
        finally:
            self._widths = None

    @staticmethod
    def activation(name: str, z: torch.Tensor, width: torch.Tensor | None) -> torch.Tensor:
        """Nonlinearity ``name`` of ``z``, diffused at ``width`` unless it is None."""
        return PLAIN[name](z) if width is None else DIFFUSED[name](z, width)

    def perturbed_parameters(self) -> list[nn.Parameter]:
        """What weight-noise injection perturbs: every parameter but torch's second bias
        ``bias_hh_l0``, which only adds to ``bias_ih_l0`` (in a GRU's candidate, after the
        reset gate), so that each unit sees bias noise of scale sigma, as the width assumes."""
        return [p for name, p in self.named_parameters() if not name.endswith("bias_hh_l0")]

    # -- shared machinery ---------------------------------------------------
    def recurrent_input(self, h: torch.Tensor, weights: StepWeights) -> torch.Tensor:
        """``gh = h W^T + b``: ``(B, H) -> (B, G)``."""
        if weights.bias is None:
            return h.mm(weights.recurrent_t)
        return torch.addmm(weights.bias, h, weights.recurrent_t)

    def recur(self, u_t: torch.Tensor, state: State, t: int, weights: StepWeights) -> State:
        """Step ``t`` from the projected input ``u_t`` ``(B, P)``."""
        return self.update(u_t, self.recurrent_input(self.hidden(state), weights), state, t, weights)

    def loop_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, StepWeights]:
        """What a step loop over time-major ``x`` ``(T, B, I)`` reads, each computed once: the projected
        inputs ``project(x)`` ``(T, B, P)`` and the ``step_weights()``."""
        return self.project(x), self.step_weights()

    def step(self, x_t: torch.Tensor, state: State, t: int = 0) -> State:
        """One time step: ``x_t`` ``(B, I)`` -> new state."""
        return self.recur(self.project(x_t), state, t, self.step_weights())

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a one-line error unless ``x`` is ``(T, B, I)`` (or ``(B, T, I)``) and finite."""
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise LongdepsError(f"expected input of shape {layout} with input_size={self.input_size}, got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise LongdepsError(f"input contains non-finite values (nan/inf) at {int((~torch.isfinite(x)).sum())} positions")

    def unroll(self, x: torch.Tensor, state: State | None = None, t0: int = 0,
               states: list[State] | None = None) -> tuple[list[torch.Tensor], State]:
        """Step through time-major ``x`` ``(T, B, I)`` one step at a time.

        Returns the list of the ``T`` hidden outputs ``(B, H)`` (each the very
        tensor the next step reads, so autograd can differentiate with respect
        to it) and the final state. ``t0`` is the time index of ``x[0]``;
        ``states``, where given, receives the state after every step.
        """
        if state is None:
            state = self.initial_state(x.shape[1])
        outputs, (u, weights) = [], self.loop_inputs(x)
        for t, u_t in enumerate(u.unbind(0), start=t0):
            state = self.recur(u_t, state, t, weights)
            outputs.append(self.hidden(state))
            if states is not None:
                states.append(state)
        return outputs, state

    def run(self, x: torch.Tensor, state: State, t0: int = 0) -> tuple[torch.Tensor, State]:
        """``forward``'s work on time-major ``x`` ``(T, B, I)`` from the per-step ``state``
        (``initial_state``'s layout): the outputs ``(T, B, H)`` and the final per-step state,
        through the fused kernel, the compiled loop or ``unroll``."""
        fused = self.native_forward(x, state) if self.fused else None
        if fused is not None:
            return fused
        if self.compiled is not None and self._widths is None and torch.is_grad_enabled():
            # (compiled where autograd records; recording widths is a side effect: eager)
            return self.compiled(x, state, t0)
        hs, state = self.unroll(x, state, t0)
        return torch.stack(hs), state

    def forward(self, x: torch.Tensor, state: State | None = None, t0: int = 0) -> tuple[torch.Tensor, State]:
        """Run the cell over a sequence, as ``torch.nn.LSTM`` does.

        Args:
            x: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first``.
            state: initial state in torch's layout (``boundary_state``): every tensor of the
                per-step state with a leading ``num_layers`` dim, e.g. ``(h, c)`` each
                ``(num_layers, B, H)`` for an LSTM, ``(num_layers, B, H)`` for an SRN or a GRU;
                default ``initial_state(B)``.
            t0: time index of the first step (cells with per-step statistics use it).

        Returns:
            ``(outputs, final_state)``: outputs ``(T, B, H)`` (or ``(B, T, H)``), the final state
            in torch's layout.
        """
        self.check_input(x)
        if self.batch_first:
            x = x.transpose(0, 1)
        state = self.initial_state(x.shape[1]) if state is None else self.step_state(state)
        outputs, state = self.run(x, state, t0)
        return (outputs.transpose(0, 1) if self.batch_first else outputs), self.boundary_state(state)

    # -- layers (``longdeps.cells.stack`` stacks cells; one cell is one layer) ----
    num_layers = 1  #: recurrent layers (``StackedCell``: more)

    @property
    def layers(self) -> tuple["RecurrentCell", ...]:
        """The one-layer cells this cell runs, bottom first: here the cell itself."""
        return (self,)

    def layer_states(self, state: State) -> list[State]:
        """``state`` as one per-step state per layer, bottom first."""
        return [state]

    def joined_state(self, states: list[State]) -> State:
        """The state made of one state per layer (``layer_states``'s inverse)."""
        (state,) = states
        return state

    def dropout_masks(self, steps: int, batch_size: int) -> list[torch.Tensor | None]:
        """One mask per layer for what it passes up (``layer_output``), drawn for a sequence of
        ``steps`` steps: none here."""
        return [None]

    def layer_output(self, index: int, hidden: torch.Tensor, inputs: torch.Tensor,
                     mask: torch.Tensor | None) -> torch.Tensor:
        """What layer ``index`` passes up (to the next layer's input; from the top, to the readout)
        from its hidden outputs ``(..., H)`` and its inputs ``(..., I)``: here its hidden outputs."""
        return hidden

    def boundary_state(self, state: State) -> State:
        """The per-step ``state`` in torch's layout (``forward``'s): each tensor of a layer's state
        stacked over the layers, ``(num_layers, B, .)``, in a tuple where a layer's state is one."""
        per_layer = self.layer_states(state)
        if isinstance(per_layer[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*per_layer))
        return torch.stack(per_layer)

    def step_state(self, state: State) -> State:
        """A state in torch's layout (``boundary_state``) as the per-step state; a one-line error
        unless every tensor of it is ``(num_layers, B, ...)``."""
        parts = [state] if isinstance(state, torch.Tensor) else list(state) if isinstance(state, tuple) else None
        if not parts or any(not isinstance(p, torch.Tensor) or p.dim() < 3 or len(p) != self.num_layers
                            for p in parts):
            shapes = [tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__ for p in parts or [state]]
            raise LongdepsError(f"expected a state of (num_layers={self.num_layers}, batch, units) tensors, as "
                                f"torch.nn.RNN/GRU/LSTM take it (a tuple for a state of several parts), got {shapes}")
        return self.joined_state([map_state(lambda s: s[index], state) for index in range(self.num_layers)])

    def hiddens(self, state: State) -> list[torch.Tensor]:
        """The hidden part ``(B, H)`` of every layer's state in ``state``, bottom first."""
        return [layer.hidden(s) for layer, s in zip(self.layers, self.layer_states(state))]

    def statistics(self) -> dict[str, float]:
        """What the cell adds to every evaluation record: with a compiled loop, the seconds spent
        compiling it so far in this process (``compile_seconds``)."""
        return {} if self.compiled is None else {"compile_seconds": round(self.compiled.seconds, 3)}

    def compile_loop(self, block: int, fallback: bool = False) -> None:
        """Run ``forward``'s step loop as torch.compile'd blocks of ``block`` steps from now on
        (``longdeps.cells.compiled``); ``fallback``: run it eagerly where compilation fails, instead
        of refusing. The parameters and the state dict are unchanged."""
        self.compiled = CompiledLoop(self, block, fallback)

    def zeros(self, batch_size: int) -> torch.Tensor:
        """A ``(B, H)`` zero tensor on the cell's device and dtype."""
        p = next(self.parameters())
        return p.new_zeros(batch_size, self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, batch_first={self.batch_first}, native={self.native}"
