"""Stationary diagonal state feedback (DSF; Caillon, Fagnou & Allauzen 2025).

BPTT carries the error back through time by the cell Jacobians,
``g_t = e_t + J_t^T g_{t+1}``. DSF replaces every ``J_t`` by one fixed
diagonal matrix ``diag(lambda)``:

    g_t = e_t + lambda * g_{t+1},      e_t = dL_t/dh_t through the readout only,

a reverse-time linear recurrence computed by ``linear_scan``. Parameter
gradients are then ``sum_t (d+h_t/dtheta)^T g_t``, where ``d+`` is the
derivative of one step with the previous state held fixed.

How it is computed, without redoing the forward's arithmetic:

1. the forward runs step by step without autograd and keeps, per step, the
   previous state and the recurrent input ``gh_t = W h_{t-1} + b``;
2. ``e_t`` comes from one backward through the readout over all steps;
3. ``g`` from the scan;
4. the local derivatives of all steps at once: the input projection is
   redone as one batched matmul, the recurrent input reuses the kept
   ``gh_t`` (``known_linear``: its weight gradient is one matrix product over
   all steps), and the cell's ``update`` runs on all steps at once; one
   backward of ``sum_t <g_t, h_t>`` fills ``.grad``.

``lambda`` is drawn once per hidden unit from U[low, high] with the run's
seed and never trained (a constant when low == high); ``lambda = 0`` is fully
truncated BPTT, and for a diagonal linear cell with recurrence ``lambda`` DSF
is exact BPTT. For an LSTM the whole previous state ``(h, c)`` is held fixed
and the feedback runs on ``h`` (the paper uses GRUs, whose state is ``h``).
The model here is one recurrent layer; in a stack, a lower layer's ``e_t``
would be the upper layer's local input derivative applied to its ``g_t``.
"""

from __future__ import annotations

from typing import Any

import torch

from longdeps.cells import State, detach_state
from longdeps.errors import LongdepsError
from longdeps.functional.known_linear import known_linear
from longdeps.functional.scan import linear_scan
from longdeps.gradients.base import GradientEstimator
from longdeps.model import SequenceModel
from longdeps.tasks import Batch, Task, seeded_generator


def stack_states(states: list[State]) -> State:
    """A list of T states -> one state with a leading time dimension."""
    if isinstance(states[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*states))
    return torch.stack(states)


class DSF(GradientEstimator):
    """Gradients through time from fixed diagonal state feedbacks (see the module docstring).

    Args:
        hidden_size: units ``H`` (one feedback coefficient each).
        low, high: range of the uniform draw of ``lambda``.
        seed: the run's seed; ``lambda`` is a function of it alone.
        scan_backend: ``longdeps.functional.scan`` backend.
    """

    name = "dsf"

    def __init__(self, hidden_size: int, low: float = 0.0, high: float = 1.0, seed: int = 0,
                 scan_backend: str = "auto"):
        if not low <= high:
            raise LongdepsError(f"dsf feedback range needs low <= high, got [{low}, {high}]")
        generator = seeded_generator("dsf-feedback", seed)
        self.feedback = low + (high - low) * torch.rand(hidden_size, generator=generator)
        self.low, self.high = low, high
        self.scan_backend = scan_backend

    def backward(self, model: SequenceModel, batch: Batch, task: Task,
                 state: State | None = None) -> tuple[torch.Tensor, State]:
        cell, x = model.cell, batch.x
        states = [cell.initial_state(batch.size) if state is None else state]
        recurrent_inputs = []
        with torch.no_grad():  # 1. the forward, keeping what the local derivatives need
            weights = cell.step_weights()
            for t, u_t in enumerate(cell.project_input(x).unbind(0)):
                recurrent_inputs.append(cell.recurrent_input(cell.hidden(states[-1]), weights))
                states.append(cell.update(u_t, recurrent_inputs[-1], states[-1], t, weights))
        hidden = torch.stack([cell.hidden(s) for s in states[1:]]).requires_grad_()
        losses = task.per_example_loss(model.read(hidden), batch.y)
        losses.mean().backward()  # 2. readout gradients, and e_t in hidden.grad
        feedback = self.feedback.to(device=x.device, dtype=hidden.dtype)
        g = linear_scan(feedback, hidden.grad, self.scan_backend)  # 3.
        weights = cell.step_weights()  # 4. local derivatives of all steps at once
        previous = stack_states(states[:-1])
        gh = known_linear(cell.hidden(previous), weights.recurrent, weights.bias, torch.stack(recurrent_inputs))
        local = cell.update(cell.project_input(x), gh, previous, range(x.shape[0]), weights)
        torch.autograd.backward(cell.hidden(local), g)
        return losses.detach(), detach_state(states[-1])

    def state_dict(self) -> dict[str, Any]:
        return {"feedback": self.feedback}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.feedback = state["feedback"]

    def describe(self) -> dict[str, object]:
        return {"gradient": self.name, "feedback_low": self.low, "feedback_high": self.high,
                "feedback_mean": float(self.feedback.mean())}
