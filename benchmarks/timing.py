"""Timing pieces shared by the floor benchmarks (``bn_lstm_floor.py``, ``asrnn_floor.py``)."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def interleaved_medians(variants: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each variant over ``repeats`` rounds, after one warm-up call each; every
    round calls every variant once, so that drift of the machine hits all of them alike."""
    for step in variants.values():
        step()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, step in variants.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def matmuls_only(weights: list[torch.Tensor], steps: int, batch: int) -> None:
    """The recurrent matrix products of one training step over ``steps`` steps: for every
    ``(G, H)`` matrix of ``weights`` and every step, the forward product, the gradient of its input
    and the gradient of the matrix, which any cell that multiplies by it at every step must do."""
    for w in weights:
        h, grad = torch.randn(batch, w.shape[1]), torch.randn(batch, w.shape[0])
        grad_w = torch.zeros_like(w)
        for _ in range(steps):
            h.mm(w.t())
            grad.mm(w)
            grad_w.addmm_(grad.t(), h)
