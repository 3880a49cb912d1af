"""The one-step Jacobian of a cell, ``J_t = d s_t / d s_{t-1}``, of its whole state ``s``.

A state with several parts (an LSTM's ``(h, c)``) is flattened into one vector
``s = [h; c]`` of ``S`` units. ``step_jacobians`` forms ``J_t`` at chosen steps
for chosen examples in one batched backward pass (a vector-Jacobian product
per state unit, vectorised with ``is_grads_batched``); stationary state
feedback averages them into the fixed matrix it uses in place of every
``J_t``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn

from longdeps.cells import State


def state_parts(state: State) -> tuple[torch.Tensor, ...]:
    """The tensors of ``state``, in order."""
    return state if isinstance(state, tuple) else (state,)


def flatten_state(state: State) -> torch.Tensor:
    """``state``'s parts side by side: ``(..., S)``."""
    return torch.cat(state_parts(state), -1)


def unflatten_state(flat: torch.Tensor, like: State) -> State:
    """Split ``flat`` ``(..., S)`` into parts shaped like the last dims of ``like``'s."""
    parts = flat.split([p.shape[-1] for p in state_parts(like)], -1)
    return tuple(parts) if isinstance(like, tuple) else parts[0]


@contextmanager
def preserved_buffers(module: nn.Module) -> Iterator[None]:
    """Restore ``module``'s buffers afterwards (a probe's forward in training mode must not
    move, for example, batch-norm moving averages)."""
    saved = {name: b.clone() for name, b in module.named_buffers()}
    try:
        yield
    finally:
        module.load_state_dict(saved, strict=False)


def step_jacobians(cell, x: torch.Tensor, states: State, steps: Sequence[int],
                   examples: torch.Tensor) -> torch.Tensor:
    """``J[k, n, i, j] = d s_{t+1}[b, i] / d s_t[b, j]`` at ``t = steps[k]``, ``b = examples[n]``:
    ``(len(steps), len(examples), S, S)``.

    ``x`` is the input ``(T, B, I)`` and ``states`` every state ``0..T`` (parts
    ``(T + 1, B, .)``) of one forward pass. The step runs in the cell's current mode
    on the chosen examples only. For a cell whose step couples the examples
    (``couples_examples``: batch statistics) ``J[k, n]`` is example ``b``'s own block,
    the path through the statistics included, formed one example at a time. Buffers
    are left as they were.
    """
    parts = state_parts(states)
    previous = flatten_state(tuple(p[list(steps)][:, examples] for p in parts)).detach().requires_grad_()
    like = tuple(p[0, :1] for p in parts) if isinstance(states, tuple) else parts[0][0, :1]
    with torch.enable_grad(), preserved_buffers(cell):
        weights = cell.step_weights()
        inputs = cell.project(x[list(steps)][:, examples])
        new = [flatten_state(cell.recur(inputs[k], unflatten_state(previous[k], like), t, weights))
               for k, t in enumerate(steps)]
        new = torch.stack(new)
        size = previous.shape[-1]
        units = torch.eye(size, dtype=previous.dtype, device=previous.device)[:, None, None, :]
        if not cell.couples_examples:  # example b's outputs depend on example b's state alone
            cotangents = units.expand(size, len(steps), len(examples), size)
            (rows,) = torch.autograd.grad(new, previous, cotangents, is_grads_batched=True)
        else:  # one example at a time, so that only its own block is read
            columns = []
            for n in range(len(examples)):
                cotangents = torch.zeros(size, len(steps), len(examples), size, dtype=new.dtype, device=new.device)
                cotangents[:, :, n] = units[:, :, 0]
                (grads,) = torch.autograd.grad(new, previous, cotangents, is_grads_batched=True, retain_graph=True)
                columns.append(grads[:, :, n])
            rows = torch.stack(columns, 2)
    return rows.permute(1, 2, 0, 3).detach()
