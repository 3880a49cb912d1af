"""The linear recurrence g_t = e_t + a_t * g_{t+1} (reverse time, the default) or
g_t = e_t + a_t * g_{t-1} (forward time), elementwise.

``e`` is ``(T, ...)``; ``a`` is either fixed (broadcast against ``e[0]``, e.g. one
coefficient per unit) or has ``e``'s shape (one coefficient per step). Real or
complex dtypes. Two backends compute the same thing:

- ``"loop"``: T steps, one fused multiply-add each, in place; the fastest on a
  CPU (about 10-12 ms at T = 1000, batch 32, 256 units).
- ``"doubling"``: the parallel (Hillis-Steele) scan: ceil(log2 T) passes, pass
  k adding the coefficient product over 2^k steps times the partial sum 2^k
  steps away, each pass one vectorised operation over all steps; made for
  GPUs, where T sequential kernel launches dominate.

``backend="auto"`` picks the loop on a CPU and the doubling scan elsewhere
(``chosen_backend``). On a CPU the loop is the faster one also inside the
scanned cells (``longdeps.cells.scanned``): a training step of lru, mingru or
minlstm at T = 1000, batch 32, 128 units took 1.7 to 3 times longer with the
doubling scan (docs/modern-recurrences.md).
Both are checked against a float64 loop in the tests; with |a| <= 1 they agree
to rounding. Coefficient products that underflow to zero in the doubling scan
are harmless: nothing is divided by them, and the terms they scale are below
rounding anyway.

``linear_scan`` is differentiable in ``a``, ``e`` and the initial value with
either backend: its backward pass is one more scan of the same kind, the other
way in time (``_Scan``), so the loop's in-place steps never enter the autograd
graph.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from longdeps.errors import LongdepsError

BACKENDS = ("auto", "loop", "doubling")


def _loop(a: torch.Tensor, e: torch.Tensor, per_step: bool, reverse: bool,
          initial: torch.Tensor | None) -> torch.Tensor:
    g = e.clone()
    steps = range(e.shape[0] - 1, -1, -1) if reverse else range(e.shape[0])
    first = steps[0]
    if initial is not None:
        g[first].addcmul_(a[first] if per_step else a, initial)
    for previous, t in zip(steps, steps[1:]):
        g[t].addcmul_(a[t] if per_step else a, g[previous])
    return g


def _doubling(a: torch.Tensor, e: torch.Tensor, per_step: bool, reverse: bool,
              initial: torch.Tensor | None) -> torch.Tensor:
    if initial is not None:
        first = -1 if reverse else 0
        e = e.clone()
        e[first].addcmul_(a[first] if per_step else a, initial)
    g, product, shift = e, a, 1
    while shift < e.shape[0]:
        # rows ``near`` add the product times the rows ``shift`` steps before them (``far``); the
        # first ``shift`` rows in the scan's direction stay as they are
        near, far = (slice(None, -shift), slice(shift, None)) if reverse else (slice(shift, None), slice(None, -shift))
        kept = slice(-shift, None) if reverse else slice(None, shift)
        def joined(updated, old):
            return torch.cat([updated, old[kept]] if reverse else [old[kept], updated])
        g = joined(torch.addcmul(g[near], product[near] if per_step else product, g[far]), g)
        product = joined(product[near] * product[far], product) if per_step else product * product
        shift *= 2
    return g


def _scan(a: torch.Tensor, e: torch.Tensor, backend: str, reverse: bool,
          initial: torch.Tensor | None) -> torch.Tensor:
    """The recurrence without autograd."""
    per_step = a.dim() == e.dim()
    return (_loop if chosen_backend(backend, e.device) == "loop" else _doubling)(a, e, per_step, reverse, initial)


class _Scan(torch.autograd.Function):
    """The recurrence, differentiated by its adjoint: the same scan the other way in time, each
    step's coefficient that of the step it came from. For the forward-time ``g_t = e_t + a_t
    g_{t-1}``: ``G_t = dL/dg_t + conj(a_{t+1}) G_{t+1}`` is ``dL/de_t``, ``dL/da_t = G_t
    conj(g_{t-1})`` (``g_{-1}`` the initial value) and ``dL/dinitial = conj(a_0) G_0``; reverse
    time mirrors it. ``conj`` is torch's convention for complex gradients; a fixed ``a`` sums its
    gradient over the steps and the dimensions it broadcasts over."""

    @staticmethod
    def forward(ctx, a, e, initial, backend, reverse):
        g = _scan(a, e, backend, reverse, initial)
        ctx.save_for_backward(a, g, initial)
        ctx.backend, ctx.reverse = backend, reverse
        return g

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        a, g, initial = ctx.saved_tensors
        per_step, reverse = a.dim() == g.dim(), ctx.reverse
        source = a.conj()
        if per_step:  # each step's coefficient moved to the step it feeds, in the adjoint's direction
            edge = torch.zeros_like(a[:1])
            source = torch.cat([edge, source[:-1]] if reverse else [source[1:], edge])
        adjoint = _scan(source, grad, ctx.backend, not reverse, None)
        first = -1 if reverse else 0  # the step that reads the initial value
        grad_a = grad_initial = None
        if ctx.needs_input_grad[0]:
            inner = slice(None, -1) if reverse else slice(1, None)
            previous = g[1:] if reverse else g[:-1]
            grad_a = torch.zeros_like(adjoint) if per_step else None
            terms = adjoint[inner] * previous.conj()
            start = adjoint[first] * initial.conj() if initial is not None else None
            if per_step:
                grad_a[inner] = terms
                if start is not None:
                    grad_a[first] = start
            else:
                grad_a = terms.sum_to_size(a.shape) + (0 if start is None else start.sum_to_size(a.shape))
            if not a.is_complex() and grad_a.is_complex():
                grad_a = grad_a.real
        if initial is not None and ctx.needs_input_grad[2]:
            grad_initial = ((a[first] if per_step else a).conj() * adjoint[first]).sum_to_size(initial.shape)
            if not initial.is_complex() and grad_initial.is_complex():
                grad_initial = grad_initial.real
        return grad_a, adjoint if ctx.needs_input_grad[1] else None, grad_initial, None, None


def linear_scan(a: torch.Tensor, e: torch.Tensor, backend: str = "auto", reverse: bool = True,
                initial: torch.Tensor | None = None) -> torch.Tensor:
    """``g`` ``(T, ...)`` with ``g_t = e_t + a_t * g_{t+1}`` (``reverse``) or ``e_t + a_t * g_{t-1}``;
    ``a`` broadcasts against ``e[0]`` (the same at every step) or has ``e``'s shape; ``initial``
    (broadcast against ``e[0]``) is the value before the first step in the scan's direction
    (``g_T``, or ``g_{-1}``), zero when None. Differentiable in ``a``, ``e`` and ``initial``."""
    if backend not in BACKENDS:
        raise LongdepsError(f"unknown scan backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if e.shape[0] == 0:
        return e
    per_step = a.dim() == e.dim()
    if per_step and a.shape[0] != e.shape[0]:
        raise LongdepsError(f"per-step scan coefficients need {e.shape[0]} steps, got {a.shape[0]}")
    inputs = (a, e) if initial is None else (a, e, initial)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        return _Scan.apply(a, e, initial, backend, reverse)
    return _scan(a, e, backend, reverse, initial)


def chosen_backend(backend: str, device: torch.device) -> str:
    """The backend that runs on ``device``: ``backend`` itself, or for ``auto`` the loop on a CPU
    and the doubling scan elsewhere."""
    if backend != "auto":
        return backend
    return "loop" if device.type == "cpu" else "doubling"
