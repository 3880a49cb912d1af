"""Stacked recurrent layers: ``num_layers`` cells of one kind, each reading the outputs of the one
below (``make_cell(name, input_size, hidden_size, num_layers=3)``).

Layer ``l`` (0-based, bottom first) runs over the sequence ``x_l`` that the layer below passes up:

    x_0 = x,   x_{l+1} = dropout(y_l),   y_l = h_l (+ x_l with ``residual``, where the sizes match),

and the readout reads the top layer's ``y``. Dropout (Zaremba et al. 2014) acts on the connections
between layers only, never on the recurrent ones nor on the top's output: an independent mask per
step, example and unit, in training mode. The state is one state per layer, bottom first, each
that layer's own (``layer_states``); at ``forward``'s boundary it is torch's layout, each tensor
``(num_layers, B, .)`` (``RecurrentCell.boundary_state``).

The stacked-cell contract (``docs/architecture.md``): a stack runs whole sequences (``forward``,
``run``, ``unroll``, ``step``) and exposes its per-step pieces through ``layers``, each a one-layer
cell with the whole cell contract, connected by ``dropout_masks`` and ``layer_output``. It has no
``project_input``, ``step_weights`` or ``update`` of its own, as layer ``l``'s input projection at
step ``t`` reads layer ``l - 1``'s output at the same step: an estimator that takes steps apart
does so layer by layer, over all steps of a layer at once, as DSF does. ``forward`` runs each
layer's own ``run`` over the whole sequence in turn, so a layer with a fused kernel runs it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from longdeps.cells.base import RecurrentCell, State, StepWeights
from longdeps.errors import LongdepsError


class StackedCell(RecurrentCell):
    """``num_layers`` one-layer cells (``layers``, built by ``make_layer(input_size, hidden_size)``)
    with ``dropout`` between them and, with ``residual``, each layer's input added to its output
    where both have ``hidden_size`` units. See the module docstring."""

    def __init__(self, layers: Iterable[RecurrentCell], dropout: float = 0.0, residual: bool = False):
        layers = list(layers)
        first = layers[0]
        super().__init__(first.input_size, first.hidden_size, first.batch_first, first.native)
        if not 0 <= dropout < 1:
            raise LongdepsError(f"cell.dropout must be in [0, 1), got {dropout!r}")
        self.stack = nn.ModuleList(layers)
        for layer in layers:
            layer.batch_first = False  # the stack transposes once, at its boundary
        self.dropout, self.residual = float(dropout), residual
        self.diffused = first.diffused if all(layer.diffused for layer in layers) else ()
        self.batch_statistics = any(layer.batch_statistics for layer in layers)
        self.name = getattr(first, "name", type(first).__name__)

    # -- the layers and their connections --------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.stack)

    @property
    def layers(self) -> tuple[RecurrentCell, ...]:
        return tuple(self.stack)

    def layer_states(self, state: State) -> list[State]:
        return list(state)

    def joined_state(self, states: list[State]) -> State:
        return tuple(states)

    def dropout_masks(self, steps: int, batch_size: int) -> list[torch.Tensor | None]:
        """In training with ``dropout`` > 0, a mask ``(T, B, H)`` for each connection between layers,
        its kept entries ``1 / (1 - dropout)`` (inverted dropout), else None; None for the top."""
        if not (self.training and self.dropout > 0):
            return [None] * self.num_layers
        p = next(self.parameters())
        keep = 1 - self.dropout
        return [torch.bernoulli(p.new_full((steps, batch_size, self.hidden_size), keep)).div_(keep)
                for _ in range(self.num_layers - 1)] + [None]

    def layer_output(self, index: int, hidden: torch.Tensor, inputs: torch.Tensor,
                     mask: torch.Tensor | None) -> torch.Tensor:
        """``y = h (+ x)``, times the connection's ``mask`` where there is one."""
        out = hidden + inputs if self.residual and inputs.shape[-1] == hidden.shape[-1] else hidden
        return out if mask is None else out * mask

    # -- what a cell defines ---------------------------------------------------
    def initial_state(self, batch_size: int) -> State:
        return tuple(layer.initial_state(batch_size) for layer in self.layers)

    def hidden(self, state: State) -> torch.Tensor:
        """The top layer's hidden part (with ``residual``, the readout reads ``layer_output``, not this)."""
        return self.layers[-1].hidden(state[-1])

    def _by_layer(self, what: str) -> LongdepsError:
        return LongdepsError(f"a stack of cells has no {what} of its own (layer l's input at step t is layer "
                             f"l-1's output at step t): go through cell.layers, layer by layer")

    def project_input(self, x: torch.Tensor) -> torch.Tensor:
        raise self._by_layer("project_input")

    def step_weights(self) -> StepWeights:
        raise self._by_layer("step_weights")

    def update(self, u: torch.Tensor, gh: torch.Tensor, state: State, t: int | range, weights: StepWeights) -> State:
        raise self._by_layer("update")

    # -- whole sequences -------------------------------------------------------
    def run(self, x: torch.Tensor, state: State, t0: int = 0) -> tuple[torch.Tensor, State]:
        """Layer by layer over the whole sequence, each through its own ``run`` (fused kernel,
        compiled loop or step loop)."""
        masks = self.dropout_masks(x.shape[0], x.shape[1])
        inputs, finals = x, []
        for index, (layer, layer_state) in enumerate(zip(self.layers, self.layer_states(state))):
            hidden, final = layer.run(inputs, layer_state, t0)
            inputs = self.layer_output(index, hidden, inputs, masks[index])
            finals.append(final)
        return inputs, self.joined_state(finals)

    def unroll(self, x: torch.Tensor, state: State | None = None, t0: int = 0,
               states: list[State] | None = None) -> tuple[list[torch.Tensor], State]:
        """Step by step, every layer at each step (the same maths as ``run``, the same dropout
        draws); returns the top's outputs ``(B, H)`` (``layer_output``) and the final state; with
        ``residual`` off each output is the very tensor the top layer's next step reads."""
        steps, batch = x.shape[0], x.shape[1]
        state = self.initial_state(batch) if state is None else state
        masks = self.dropout_masks(steps, batch)
        first_inputs, first_weights = self.layers[0].loop_inputs(x)
        weights = [first_weights] + [layer.step_weights() for layer in self.layers[1:]]
        per_layer, outputs = self.layer_states(state), []
        for k, t in enumerate(range(t0, t0 + steps)):
            inputs = x[k]
            for index, layer in enumerate(self.layers):
                u = first_inputs[k] if index == 0 else layer.project(inputs)
                per_layer[index] = layer.recur(u, per_layer[index], t, weights[index])
                mask = None if masks[index] is None else masks[index][k]
                inputs = self.layer_output(index, layer.hidden(per_layer[index]), inputs, mask)
            outputs.append(inputs)
            if states is not None:
                states.append(self.joined_state(list(per_layer)))
        return outputs, self.joined_state(per_layer)

    def step(self, x_t: torch.Tensor, state: State, t: int = 0) -> State:
        """One time step through every layer: ``x_t`` ``(B, I)`` -> new state."""
        return self.unroll(x_t[None], state, t)[1]

    def native_states(self, x: torch.Tensor, state: State) -> None:
        """None: a stack's states come layer by layer (``layers``)."""
        return None

    # -- the other capabilities, layer by layer --------------------------------
    @property
    def provides(self) -> frozenset[str]:
        """What every layer provides (a capability of the stack only where each layer has it)."""
        return frozenset.intersection(*(layer.provides for layer in self.layers))

    @property
    def propagates_moments(self) -> bool:
        return False  # the variance of a layer's output does not enter the next layer's widths

    def set_smoothing(self, sigma: float, propagate: bool = False) -> None:
        """Each layer diffuses its own nonlinearities at ``sigma`` (its width from its own input);
        moment propagation is refused: it does not carry a layer's variance into the next layer."""
        if propagate:
            raise LongdepsError(f"a stack of {self.name} cells has no moment-propagated form (the variance would "
                                f"have to cross layers); set continuation.propagate=false or cell.num_layers=1")
        super().set_smoothing(sigma)
        for layer in self.layers:
            layer.set_smoothing(sigma)

    @contextmanager
    def recording_widths(self) -> Iterator[list[torch.Tensor]]:
        """Every width any layer forms inside the context."""
        widths: list[torch.Tensor] = []
        self._widths = widths
        for layer in self.layers:
            layer._widths = widths
        try:
            yield widths
        finally:
            for cell in (self, *self.layers):
                cell._widths = None

    def before_evaluation(self, model: nn.Module, training_inputs: Iterable[torch.Tensor]) -> int:
        """The bottom layer's: the layers are of one kind, and a pass over ``model`` (BN-LSTM's
        population statistics) serves every layer at once."""
        return self.layers[0].before_evaluation(model, training_inputs)

    def perturbed_parameters(self) -> list[nn.Parameter]:
        return [p for layer in self.layers for p in layer.perturbed_parameters()]

    def compile_loop(self, block: int, fallback: bool = False) -> None:
        """Each layer's step loop as compiled blocks (``RecurrentCell.compile_loop``)."""
        for layer in self.layers:
            layer.compile_loop(block, fallback)

    def statistics(self) -> dict[str, Any]:
        seconds = [layer.compiled.seconds for layer in self.layers if layer.compiled is not None]
        return {"compile_seconds": round(sum(seconds), 3)} if seconds else {}

    def extra_repr(self) -> str:
        return f"{self.layers[0].extra_repr()}, num_layers={self.num_layers}, dropout={self.dropout}, residual={self.residual}"


def stacked(make_layer: Callable[[int], RecurrentCell], *, num_layers: int = 1, dropout: float = 0.0,
            residual: bool = False) -> RecurrentCell:
    """``num_layers`` layers from ``make_layer(input_size)`` (called bottom first, the bottom with
    None for the stack's own input size, the others with the hidden size) as one cell: the bottom layer itself where
    ``num_layers`` is 1 (today's cell, its state dict and its draws unchanged), else a
    ``StackedCell`` with ``dropout`` between layers and ``residual`` connections. These are the
    ``cell.num_layers``, ``cell.dropout`` and ``cell.residual`` options of every cell."""
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise LongdepsError(f"cell.num_layers must be a positive integer, got {num_layers!r}")
    if num_layers == 1 and (dropout, residual) != (0.0, False):
        raise LongdepsError(f"cell.dropout={dropout} and cell.residual={residual} act between layers: set "
                            f"cell.num_layers >= 2, or leave them at 0 and false")
    layers = [make_layer(None)]
    layers += [make_layer(layers[0].hidden_size) for _ in range(num_layers - 1)]
    return layers[0] if num_layers == 1 else StackedCell(layers, dropout, residual)
