"""Stationary state feedback (DSF; Caillon, Fagnou & Allauzen 2025).

BPTT carries the error back through time by the cell's step Jacobians
``J_t = d s_t / d s_{t-1}``, ``g_t = e_t + J_{t+1}^T g_{t+1}``. DSF assumes the
dynamics stationary and replaces every ``J_t`` by one fixed matrix ``A``:

    g_t = e_t + A^T g_{t+1},      e_t = dL_t/ds_t through the readout only,

a linear time-invariant reverse-time system. With ``A = P diag(mu) P^-1``
(complex in general) every eigen-coordinate ``u_t = g_t P`` (row vectors) is
an independent scalar recurrence ``u_t = e_t P + mu * u_{t+1}``: one product
into the eigenbasis, the elementwise ``linear_scan`` (a log-depth parallel scan
on GPUs), one product back. Parameter gradients are then
``sum_t (d+s_t/dtheta)^T g_t``, ``d+`` being the derivative of one step with
the previous state held fixed. The state ``s`` is the cell's whole state
(``[h; c]`` for an LSTM, see ``longdeps.gradients.jacobian``); the readout's
error enters through ``h``.

How ``A`` is formed (``feedback``); it is fixed between refreshes and never trained:

- ``stationary``: the mean of the cell's own step Jacobians over
  ``jacobian_steps`` evenly spaced steps and the first ``jacobian_examples``
  examples of a training batch, re-estimated after every ``refresh_every``
  updates from that update's batch. Eigenvalues with ``|mu| > RADIUS`` are
  scaled to ``RADIUS`` (phase kept) so that the feedback stays stable over
  long sequences. Where the eigenvectors are ill-conditioned
  (``cond(P) > MAX_CONDITION``) the scan runs on ``A`` itself, step by step,
  scaled to spectral radius ``RADIUS`` when above it. Each evaluation
  record says which was used and how many eigenvalues were scaled. On a CPU
  the loop backend runs every full ``A`` step by step (see ``scan``).
- ``stationary-diagonal``: the diagonal of that mean, clamped to
  ``[-RADIUS, RADIUS]``.
- ``uniform``: ``diag(lambda)``, ``lambda ~ U[low, high]`` per state unit,
  drawn once from the run's seed (the reading of secondary summaries).
- ``constant``: ``lambda = low = high`` for every unit.

``A = 0`` is fully truncated BPTT; for a linear cell ``s_t = W s_{t-1} + U x_t``
the stationary ``A`` is ``W`` and DSF is exact BPTT.

``exact_window = k > 0`` is a hybrid: every error travels back through the
cell's true Jacobians for its first ``k`` steps back and by ``A`` beyond them:

    g = sum_{j<k} C_j + scan_A(C_k),   C_0 = e,   C_{j+1}[t-1] = J_t^T C_j[t],

where every ``C_{j+1}`` is one vector-Jacobian product of all steps at once
(parallel in time). ``k >= T - 1`` is exact BPTT, and a longer window is cut to
``T - 1`` (``C_{T-1}`` is the last that is not zero); each evaluation record
says the window used. With ``A = 0`` and the loss on the last step alone it is
truncated BPTT through the last ``k + 1`` steps.

How it is computed, without redoing the forward's arithmetic:

1. the forward runs without autograd and keeps every state (through the fused
   kernel where the cell has one, ``RecurrentCell.native_states``; else a
   step loop that also keeps the recurrent inputs ``gh_t = W h_{t-1} + b``);
2. ``e_t`` comes from one backward through the readout over all steps;
3. ``g`` from the scan (and the exact window's products);
4. the local derivatives of many steps at once (blocks of 64): the input
   projection is redone as one batched matmul, the recurrent input reuses the
   kept ``gh_t`` (``known_linear``), and the cell's ``update`` runs on the whole
   block; one backward of ``sum_t <g_t, s_t>`` per block fills ``.grad``. A
   trainable initial state is a parameter of the first step, as in truncated
   BPTT.

A stack of layers (``longdeps.cells.stack``) goes layer by layer through ``cell.layers``, each
with a feedback of its own (its own stationary Jacobian, diagonal, uniform or constant draw) and
its own ``exact_window``: 1. runs bottom up, each layer over the outputs the one below passes up
(``layer_output``, with the dropout masks of this update); then from the top down, a layer's
errors on what it passes up give its ``e_t`` (through ``layer_output``: the readout's for the
top), 3. and 4. run on the layer alone, and 4.'s backward also yields the derivative of
``sum_t <g_t, s_t>`` with respect to the layer's inputs (one vector-Jacobian product of all steps
at once), which is the error on what the layer below passes up. For a stack of linear cells
under the stationary feedback this is exact BPTT again; with ``A = 0`` each layer's state is cut
from its own previous step while the paths between layers are kept.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from longdeps.cells import State, map_state
from longdeps.errors import LongdepsError
from longdeps.functional.known_linear import known_linear
from longdeps.functional.scan import chosen_backend, linear_scan
from longdeps.gradients.base import GradientEstimator
from longdeps.gradients.jacobian import flatten_state, state_parts, step_jacobians, unflatten_state
from longdeps.model import SequenceModel
from longdeps.registry import check_variant
from longdeps.seeding import seeded_generator
from longdeps.tasks.base import Batch, Task

#: each feedback and the options it reads, besides ``exact_window`` (every feedback's)
FEEDBACK_OPTIONS = {
    "stationary": ("refresh_every", "jacobian_steps", "jacobian_examples"),
    "stationary-diagonal": ("refresh_every", "jacobian_steps", "jacobian_examples"),
    "uniform": ("feedback_low", "feedback_high"),
    "constant": ("feedback_low", "feedback_high"),
}
FEEDBACKS = tuple(FEEDBACK_OPTIONS)
RADIUS = 0.999  #: largest |eigenvalue| (or diagonal entry) a stationary feedback keeps
MAX_CONDITION = 1e4  #: above this condition number of the eigenvectors the scan runs on A itself


class DSF(GradientEstimator):
    """Gradients through time from a fixed state feedback (see the module docstring).

    Args:
        feedback: how ``A`` is formed: one of ``FEEDBACKS``.
        feedback_low, feedback_high: ``uniform``'s range (``constant``: both the value).
        seed: the run's seed (``uniform``'s draw is a function of it alone).
        refresh_every: updates between two estimates of a stationary ``A``.
        jacobian_steps, jacobian_examples: the sample the mean Jacobian is taken over.
        exact_window: steps of exact backpropagation before the feedback takes over.
        scan_backend: ``longdeps.functional.scan`` backend.
        block: steps whose local derivatives are formed together.
    """


    def __init__(self, feedback: str = "stationary", feedback_low: float = 0.0, feedback_high: float = 1.0,
                 seed: int = 0, refresh_every: int = 50, jacobian_steps: int = 8, jacobian_examples: int = 8,
                 exact_window: int = 0, scan_backend: str = "auto", block: int = 64):
        given = {"feedback_low": feedback_low, "feedback_high": feedback_high, "refresh_every": refresh_every,
                 "jacobian_steps": jacobian_steps, "jacobian_examples": jacobian_examples}
        check_variant("gradient", "feedback", feedback, FEEDBACK_OPTIONS, given, DSF)
        if not feedback_low <= feedback_high:
            raise LongdepsError(f"dsf feedback range needs low <= high, got [{feedback_low}, {feedback_high}]")
        if feedback == "constant" and feedback_low != feedback_high:
            raise LongdepsError(f"gradient.feedback=constant takes one value: set gradient.feedback_low equal "
                                f"to gradient.feedback_high, got {feedback_low} and {feedback_high}")
        for key, value, least in (("refresh_every", refresh_every, 1), ("jacobian_steps", jacobian_steps, 1),
                                  ("jacobian_examples", jacobian_examples, 1), ("exact_window", exact_window, 0)):
            if not isinstance(value, int) or value < least:
                raise LongdepsError(f"gradient.{key} must be an integer >= {least}, got {value!r}")
        self.kind, self.low, self.high, self.seed = feedback, feedback_low, feedback_high, seed
        self.refresh_every, self.jacobian_steps, self.jacobian_examples = refresh_every, jacobian_steps, jacobian_examples
        self.exact_window, self.scan_backend, self.block = exact_window, scan_backend, block
        self.updates = 0  #: backward passes so far (the refresh clock)
        self.window_used: int | None = None  #: the exact window of the last backward: ``exact_window``, at most T - 1
        #: the feedback in use, one per layer, bottom first: {"diagonal": (S,)}, {"matrix": A} (ill-conditioned
        #: eigenvectors), or A with its eigendecomposition {"matrix": A, "eigenvalues": (S,), "basis": P, "inverse": P^-1}
        self.feedbacks: list[dict[str, torch.Tensor]] = []
        self.infos: list[dict[str, Any]] = []  #: how each layer's feedback was formed

    @property
    def feedback(self) -> dict[str, torch.Tensor] | None:
        """The bottom layer's feedback (a one-layer cell's), None before the first."""
        return self.feedbacks[0] if self.feedbacks else None

    @feedback.setter
    def feedback(self, value: dict[str, torch.Tensor]) -> None:
        self.feedbacks[:1] = [value]

    @property
    def info(self) -> dict[str, Any]:
        """How the bottom layer's feedback was formed."""
        return self.infos[0] if self.infos else {}

    # -- the estimator --------------------------------------------------------
    def backward(self, model: SequenceModel, batch: Batch, task: Task,
                 state: State | None = None) -> tuple[torch.Tensor, State]:
        cell, x = model.cell, batch.x
        state = cell.initial_state(batch.size) if state is None else cell.step_state(state)
        masks = cell.dropout_masks(x.shape[0], batch.size)
        passes, inputs = [], x  # per layer: its inputs, initial state, states 0..T, recurrent inputs
        for index, (layer, initial) in enumerate(zip(cell.layers, cell.layer_states(state))):
            states, recurrent_inputs = self.forward(layer, inputs, initial)  # 1.
            passes.append((inputs, initial, states, recurrent_inputs))
            with torch.no_grad():
                inputs = cell.layer_output(index, layer.hidden(states)[1:], inputs, masks[index])
        outputs = inputs.detach().requires_grad_()
        losses = task.per_example_loss(model.read(outputs), batch.y)
        losses.mean().backward()  # 2. readout gradients, and the errors on the top's outputs in outputs.grad
        if not self.feedbacks:
            self.refresh(cell.layers, passes)
        above = outputs.grad
        for index in reversed(range(cell.num_layers)):
            layer, (inputs, initial, states, recurrent_inputs) = cell.layers[index], passes[index]
            errors, straight = self.layer_errors(cell, index, states, inputs, masks[index], above)
            g = self.propagate(layer, inputs, states, recurrent_inputs, errors, index)  # 3.
            above = self.local_backward(layer, inputs, initial, states, recurrent_inputs, g, index > 0)  # 4.
            if straight is not None:
                above = above + straight
        self.updates += 1
        if self.kind.startswith("stationary") and self.updates % self.refresh_every == 0:
            self.refresh(cell.layers, passes)
        final = cell.joined_state([map_state(lambda s: s[-1].clone(), states) for _, _, states, _ in passes])
        return losses.detach(), cell.boundary_state(final)

    @staticmethod
    def layer_errors(cell, index: int, states: State, inputs: torch.Tensor, mask: torch.Tensor | None,
                     above: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Layer ``index``'s ``e_t`` on its whole state ``(T, B, S)`` from the errors ``above`` ``(T, B, H)``
        on what it passes up (``cell.layer_output``), and the part of them that goes straight to its
        inputs ``(T, B, I)`` (a residual connection; else None)."""
        layer = cell.layers[index]
        kept_hidden = layer.hidden(states)
        with torch.enable_grad():
            hidden = kept_hidden[1:].detach().requires_grad_()
            x = inputs.detach().requires_grad_()
            passed = cell.layer_output(index, hidden, x, mask)
            on_hidden, on_inputs = torch.autograd.grad(passed, (hidden, x), above, allow_unused=True)
        errors = flatten_state(map_state(lambda s: on_hidden if s is kept_hidden else s.new_zeros(s[1:].shape), states))
        return errors, on_inputs

    @staticmethod
    @torch.no_grad()
    def forward(cell, x: torch.Tensor, state: State) -> tuple[State, torch.Tensor | None]:
        """1. Run the cell over ``x`` ``(T, B, I)`` without autograd; returns every state
        ``0..T`` (components ``(T + 1, B, .)``) and every recurrent input ``(T, B, G)``
        (None where a fused kernel ran without forming them: the local pass recomputes
        them, one matrix product per block)."""
        native = cell.native_states(x, state)
        if native is not None:
            return native
        steps = x.shape[0]
        weights = cell.step_weights()
        inputs = cell.project(x)
        states = map_state(lambda s: s.new_empty(steps + 1, *s.shape), state)
        recurrent_inputs = None
        for t in range(steps):
            for buffer, part in zip(state_parts(states), state_parts(state)):
                buffer[t] = part
            gh = cell.recurrent_input(cell.hidden(state), weights)
            if recurrent_inputs is None:
                recurrent_inputs = gh.new_empty(steps, *gh.shape)
            recurrent_inputs[t] = gh
            state = cell.update(inputs[t], gh, state, t, weights)
        for buffer, part in zip(state_parts(states), state_parts(state)):
            buffer[steps] = part
        return states, recurrent_inputs

    def propagate(self, cell, x: torch.Tensor, states: State, recurrent_inputs: torch.Tensor | None,
                  errors: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """3. ``g`` ``(T, B, S)`` from the errors ``e`` ``(T, B, S)`` of one layer, ``cell`` (number
        ``layer``): ``exact_window`` exact steps back (one vector-Jacobian product of all steps each),
        the layer's feedback beyond."""
        total, chain = torch.zeros_like(errors), errors
        self.window_used = min(self.exact_window, x.shape[0] - 1)  # beyond T - 1 steps back every error is spent
        if self.window_used:
            with torch.no_grad():
                weights = cell.step_weights()
        for _ in range(self.window_used):
            total += chain
            chain = self.step_back(cell, x, states, recurrent_inputs, weights, chain)
        return total + self.scan(chain, layer)

    def scan(self, e: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """``g_t = e_t + g_{t+1} A`` (row vectors) with the feedback of ``layer``: ``(T, B, S)``.

        A full ``A`` runs in its eigenbasis with the doubling scan (GPUs), or step by step on
        ``A`` itself with the loop backend (CPUs: T small products cost less there than two
        large complex ones into and out of the eigenbasis) and where the eigenvectors are
        ill-conditioned."""
        fb = self.feedback_on(e.device, layer)
        if "diagonal" in fb:
            return linear_scan(fb["diagonal"].to(e), e, self.scan_backend)
        backend = chosen_backend(self.scan_backend, e.device)
        if backend == "loop" or "eigenvalues" not in fb:
            matrix, g = fb["matrix"].to(e), torch.empty_like(e)
            g[-1] = e[-1]
            for t in range(e.shape[0] - 2, -1, -1):
                torch.addmm(e[t], g[t + 1], matrix, out=g[t])
            return g
        complex_dtype = (e.new_zeros(()) * 1j).dtype
        basis, inverse = fb["basis"].to(complex_dtype), fb["inverse"].to(complex_dtype)
        u = linear_scan(fb["eigenvalues"].to(complex_dtype), e.to(complex_dtype) @ basis, backend)
        return (u @ inverse).real

    def feedback_on(self, device: torch.device, layer: int = 0) -> dict[str, torch.Tensor]:
        """The feedback of ``layer``, moved to ``device`` the first time it is needed there (``uniform``
        is drawn on the CPU, and a checkpoint loads on it)."""
        if any(t.device != device for t in self.feedbacks[layer].values()):
            self.feedbacks[layer] = {name: t.to(device) for name, t in self.feedbacks[layer].items()}
        return self.feedbacks[layer]

    def local_pass(self, cell, x: torch.Tensor, states: State, recurrent_inputs: torch.Tensor | None,
                   start: int, stop: int, weights, previous: State | None = None) -> State:
        """Steps ``start..stop-1`` from their kept previous states (or ``previous``, components
        ``(stop - start, B, .)``) all at once, differentiable for ``weights`` and ``previous``."""
        prev = map_state(lambda s: s[start:stop], states) if previous is None else previous
        if recurrent_inputs is None:
            gh = F.linear(cell.hidden(prev), weights.recurrent, weights.bias)
        else:
            gh = known_linear(cell.hidden(prev), weights.recurrent, weights.bias, recurrent_inputs[start:stop])
        return cell.update(cell.project(x[start:stop]), gh, prev, range(start, stop), weights)

    def step_back(self, cell, x: torch.Tensor, states: State, recurrent_inputs: torch.Tensor | None,
                  weights, chain: torch.Tensor) -> torch.Tensor:
        """``out[t-1] = J_t^T chain[t]`` for every step ``t >= 1`` (``out[T-1] = 0``): ``(T, B, S)``;
        ``weights`` are the cell's ``step_weights()``, formed once for all the window's steps back."""
        out = torch.zeros_like(chain)
        like = map_state(lambda s: s[0], states)
        with torch.enable_grad():
            for start in range(0, x.shape[0], self.block):
                stop = min(x.shape[0], start + self.block)
                prev = flatten_state(map_state(lambda s: s[start:stop], states)).detach().requires_grad_()
                local = self.local_pass(cell, x, states, recurrent_inputs, start, stop, weights,
                                        unflatten_state(prev, like))
                (back,) = torch.autograd.grad(flatten_state(local), prev, chain[start:stop])
                out[max(start - 1, 0):stop - 1] = back[1:] if start == 0 else back
        return out

    def local_backward(self, cell, x: torch.Tensor, initial: State, states: State,
                       recurrent_inputs: torch.Tensor | None, g: torch.Tensor,
                       input_errors: bool = False) -> torch.Tensor | None:
        """4. Accumulate ``sum_t (d+s_t/dtheta)^T g_t`` into ``.grad``, ``block`` steps at a time
        (blocks keep the intermediates small). The per-sequence weights are computed once; their
        gradient, gathered on detached copies, goes through their own graph once at the end. A
        trainable ``initial`` state is a parameter of the first step. With ``input_errors``, returns
        ``sum_t (d+s_t/dx)^T g_t`` ``(T, B, I)``, the derivative with respect to the inputs ``x``."""
        if input_errors:
            x = x.detach().requires_grad_()
        weights = cell.step_weights()
        leaves = weights.detached()
        like = map_state(lambda s: s[0], states)
        for start in range(0, x.shape[0], self.block):
            stop = min(x.shape[0], start + self.block)
            previous = None
            if start == 0 and any(p.requires_grad for p in state_parts(initial)):
                parts = [torch.cat([live[None], s[1:stop]]) for s, live in zip(state_parts(states), state_parts(initial))]
                previous = tuple(parts) if isinstance(states, tuple) else parts[0]
            local = self.local_pass(cell, x, states, recurrent_inputs, start, stop, leaves, previous)
            torch.autograd.backward(state_parts(local), state_parts(unflatten_state(g[start:stop], like)))
        pairs = [(w, leaf.grad) for w, leaf in zip(weights.tensors(), leaves.tensors()) if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([w for w, _ in pairs], [grad for _, grad in pairs])
        if input_errors:
            return torch.zeros_like(x) if x.grad is None else x.grad
        return None

    # -- the feedback ---------------------------------------------------------
    def refresh(self, layers, passes: list[tuple]) -> None:
        """Form every layer's feedback (``uniform`` and ``constant``: once; stationary ones: from this
        batch); ``passes`` holds each layer's inputs, initial state, states and recurrent inputs."""
        if self.kind in ("uniform", "constant") and self.feedbacks:
            return
        formed = [self.layer_feedback(index, layer, inputs, states)
                  for index, (layer, (inputs, _, states, _)) in enumerate(zip(layers, passes))]
        self.feedbacks, self.infos = [f for f, _ in formed], [i for _, i in formed]

    @torch.no_grad()
    def layer_feedback(self, index: int, cell, x: torch.Tensor, states: State) -> tuple[dict[str, torch.Tensor], dict]:
        """The feedback of layer ``index``, ``cell``, over its inputs ``x`` and states, and how it was formed.
        ``uniform``'s draw for the bottom layer is a function of the seed alone, a higher one's of both."""
        size = flatten_state(map_state(lambda s: s[0, :1], states)).shape[-1]
        if self.kind in ("uniform", "constant"):
            generator = seeded_generator("dsf-feedback", self.seed, *([index] if index else []))
            draw = self.low + (self.high - self.low) * torch.rand(size, generator=generator, dtype=torch.float64)
            return {"diagonal": draw}, {"basis": "diagonal", "spectral_radius": float(draw.abs().max())}
        steps = torch.linspace(0, x.shape[0] - 1, min(self.jacobian_steps, x.shape[0])).round().long().unique()
        examples = torch.arange(min(self.jacobian_examples, x.shape[1]))
        mean = step_jacobians(cell, x, states, steps.tolist(), examples).mean((0, 1)).double()
        info = {"refreshed_at": self.updates}
        if self.kind == "stationary-diagonal":
            diagonal = mean.diagonal()
            return {"diagonal": diagonal.clamp(-RADIUS, RADIUS)}, {
                **info, "basis": "diagonal", "scaled": int((diagonal.abs() > RADIUS).sum()),
                "spectral_radius": float(diagonal.abs().max())}
        eigenvalues, basis = torch.linalg.eig(mean)
        radius = float(eigenvalues.abs().max())
        condition = float(torch.linalg.cond(basis))
        info.update(spectral_radius=radius, condition=condition, scaled=int((eigenvalues.abs() > RADIUS).sum()))
        if condition > MAX_CONDITION:
            return {"matrix": mean * min(1.0, RADIUS / radius)}, {**info, "basis": "dense"}
        eigenvalues = eigenvalues * (RADIUS / eigenvalues.abs()).clamp(max=1.0)
        inverse = torch.linalg.inv(basis)
        return {"eigenvalues": eigenvalues, "basis": basis, "inverse": inverse,
                "matrix": ((basis * eigenvalues) @ inverse).real if info["scaled"] else mean}, {**info, "basis": "eigen"}

    def statistics(self) -> dict[str, Any]:
        """What the evaluation record shows of the feedback in use (a stack's: of each layer, bottom first) and,
        with an exact window, the window the last backward used (``exact_window``, at most T - 1 steps)."""
        window = {"exact_window_used": self.window_used} if self.exact_window else {}
        if len(self.infos) > 1:
            return {"feedback": {"kind": self.kind, "layers": self.infos}, **window}
        return {"feedback": {"kind": self.kind, **self.info}, **window}

    def state_dict(self) -> dict[str, Any]:
        return {"feedback": self.feedbacks, "info": self.infos, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        feedback, info = state["feedback"], state["info"]
        if not isinstance(feedback, list):  # checkpoints from before stacks: one layer's, or None
            feedback, info = ([], []) if feedback is None else ([feedback], [info])
        self.feedbacks, self.infos, self.updates = list(feedback), list(info), state["updates"]

    def describe(self) -> dict[str, object]:
        settings = {"gradient": self.name, "feedback": self.kind, "exact_window": self.exact_window}
        if self.kind in ("uniform", "constant"):
            return {**settings, "feedback_low": self.low, "feedback_high": self.high}
        return {**settings, "refresh_every": self.refresh_every, "jacobian_steps": self.jacobian_steps,
                "jacobian_examples": self.jacobian_examples}
