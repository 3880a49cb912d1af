"""How close an estimator's gradient is to the exact one (BPTT) on one batch."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from longdeps.cells import State
from longdeps.gradients.base import GradientEstimator
from longdeps.gradients.bptt import BPTT
from longdeps.gradients.jacobian import preserved_buffers
from longdeps.model import SequenceModel
from longdeps.tasks.base import Batch, Task


def recurrent_parameters(cell: nn.Module) -> list[nn.Parameter]:
    """The parameters the recurrent matrix ``step_weights().recurrent`` of the cell (of every layer of
    a stack) is made from."""
    params = [p for p in cell.parameters() if p.requires_grad]
    with torch.enable_grad():
        total = sum(layer.step_weights().recurrent.sum() for layer in cell.layers)
        grads = torch.autograd.grad(total, params, allow_unused=True)
    return [p for p, g in zip(params, grads) if g is not None]


@contextmanager
def untouched(model: nn.Module, estimator: GradientEstimator) -> Iterator[None]:
    """Leave ``.grad``, buffers, the global random generator and the estimator's state as they were."""
    grads = {p: p.grad for p in model.parameters()}
    rng = torch.get_rng_state()
    state = copy.deepcopy(estimator.state_dict())
    try:
        with preserved_buffers(model):
            yield
    finally:
        for p, grad in grads.items():
            p.grad = grad
        torch.set_rng_state(rng)
        estimator.load_state_dict(state)


def _gradient(model: SequenceModel, batch: Batch, task: Task, estimator: GradientEstimator,
              params: list[nn.Parameter], state: State | None) -> list[torch.Tensor]:
    for p in model.parameters():
        p.grad = None
    rng = torch.get_rng_state()
    estimator.backward(model, batch, task, state)
    torch.set_rng_state(rng)  # both estimators see the same random draws (e.g. noise on h_0)
    return [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]


def _cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    a, b = torch.cat([t.flatten() for t in a]).double(), torch.cat([t.flatten() for t in b]).double()
    norms = a.norm() * b.norm()
    return float(a @ b / norms) if norms > 0 else float("nan")


def _compare(estimate: list[torch.Tensor], exact: list[torch.Tensor], recurrent: list[bool]) -> dict[str, float]:
    """``cosine``, ``cosine_recurrent`` and ``norm_ratio`` of two gradients (lists of tensors, ``recurrent``
    marking those of the recurrent matrices)."""
    pick = [i for i, mark in enumerate(recurrent) if mark]
    exact_norm = float(torch.cat([t.flatten() for t in exact]).norm())
    return {"cosine": _cosine(estimate, exact),
            "cosine_recurrent": _cosine([estimate[i] for i in pick], [exact[i] for i in pick]),
            "norm_ratio": float(torch.cat([t.flatten() for t in estimate]).norm()) / exact_norm if exact_norm > 0 else float("nan")}


def alignment(model: SequenceModel, batch: Batch, task: Task, estimator: GradientEstimator,
              state: State | None = None) -> dict[str, float | list[dict[str, float]]]:
    """Compare ``estimator``'s gradient of the batch's mean loss with exact BPTT's.

    Returns ``cosine`` (over all cell parameters), ``cosine_recurrent`` (over the
    parameters of the recurrent matrix alone, ``recurrent_parameters``) and
    ``norm_ratio`` (``||estimate|| / ||exact||`` over the cell parameters); for a stack of
    layers also ``layers``, the same three over each layer's parameters, bottom first. The
    readout's gradient is the same under every estimator and is left out. Nothing is changed:
    ``.grad``, buffers, random generators and the estimator's state are restored.
    """
    params = [p for p in model.cell.parameters() if p.requires_grad]
    recurrent = {id(p) for p in recurrent_parameters(model.cell)}
    with untouched(model, estimator):
        estimate = _gradient(model, batch, task, estimator, params, state)
        exact = _gradient(model, batch, task, BPTT(), params, state)
    result: dict[str, float | list[dict[str, float]]] = _compare(estimate, exact, [id(p) in recurrent for p in params])
    if model.cell.num_layers > 1:
        position = {id(p): i for i, p in enumerate(params)}
        layers = [[position[id(p)] for p in layer.parameters() if id(p) in position] for layer in model.cell.layers]
        result["layers"] = [_compare([estimate[i] for i in own], [exact[i] for i in own],
                                     [id(params[i]) in recurrent for i in own]) for own in layers]
    return result
