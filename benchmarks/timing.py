"""What the benchmarks share: timing on any device (``synchronize``, ``timed``) and naming it
(``gpu_name``, ``device_label``); for the floor benchmarks (``bn_lstm_floor.py``, ``asrnn_floor.py``)
their arguments, the check that a variant computes the library cell's gradients, and their
interleaved timing."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

CPU = torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait until the work queued on ``device`` is done: a CUDA GPU runs its kernels after the
    Python call that launched them has returned; on the CPU an operation is done when it returns."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], object], device: torch.device = CPU) -> float:
    """Seconds that ``step()`` takes, the work it queues on ``device`` included."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def gpu_name(device: torch.device) -> str | None:
    """The model of CUDA ``device`` (e.g. "NVIDIA H200"); None on any other device."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def device_label(device: torch.device) -> str:
    """``device`` as a header line names it: "cpu", or "cuda (NVIDIA H200)"."""
    return f"{device} ({gpu_name(device)})" if device.type == "cuda" else str(device)


def floor_parser(description: str, steps: int, batch: int, hidden: int, repeats: int, block: int,
                 out: str) -> argparse.ArgumentParser:
    """The arguments of a floor benchmark, with the defaults of its set-up."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--hidden", type=int, default=hidden)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--block", type=int, default=block, help="steps per compiled block (default: %(default)s)")
    parser.add_argument("--out", default=out)
    return parser


def check_gradients(name: str, got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    """Print how far ``got`` is from ``expected`` (relative to the largest entry); stop past 1e-3."""
    error = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(got, expected, strict=True))
    print(f"{name}: gradients within {error:.1e} (relative to the largest) of the library cell's")
    if error > 1e-3:
        raise SystemExit(f"{name} does not compute the library cell's gradients")


def interleaved_medians(variants: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds of each variant over ``repeats`` rounds, after one warm-up call each; every
    round calls every variant once, so that drift of the machine hits all of them alike."""
    for step in variants.values():
        step()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, step in variants.items():
            times[name].append(timed(step))
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
