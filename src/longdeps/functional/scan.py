"""The reverse-time linear recurrence g_t = e_t + a * g_{t+1}, g_{T-1} = e_{T-1}.

``a`` is fixed per unit (broadcast over the trailing dimensions of ``e``),
``e`` is ``(T, ...)``. Two backends compute the same thing:

- ``"loop"``: T steps, one fused multiply-add each; the fastest on a CPU
  (shared/design/performance.md measured 10-12 ms at T = 1000).
- ``"doubling"``: the parallel (Hillis-Steele) scan: ceil(log2 T) passes, pass
  k adding a^(2^k) times the partial sum 2^k steps later, each pass one
  vectorised operation over all steps; made for GPUs, where T sequential
  kernel launches dominate.

``backend="auto"`` picks the loop on a CPU and the doubling scan elsewhere.
Both are checked against a float64 loop in the tests; with |a| <= 1 they agree
to rounding.
"""

from __future__ import annotations

import torch

from longdeps.errors import LongdepsError

BACKENDS = ("auto", "loop", "doubling")


def _loop(a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    g = torch.empty_like(e)
    g[-1] = e[-1]
    for t in range(e.shape[0] - 2, -1, -1):
        torch.addcmul(e[t], a, g[t + 1], out=g[t])
    return g


def _doubling(a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    g, power, shift = e, a, 1
    while shift < e.shape[0]:
        g = torch.cat([torch.addcmul(g[:-shift], power, g[shift:]), g[-shift:]])
        power, shift = power * power, shift * 2
    return g


def linear_scan(a: torch.Tensor, e: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """``g`` ``(T, ...)`` with ``g_t = e_t + a * g_{t+1}``; ``a`` broadcasts against ``e[0]``."""
    if backend not in BACKENDS:
        raise LongdepsError(f"unknown scan backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if e.shape[0] == 0:
        return e
    if backend == "auto":
        backend = "loop" if e.device.type == "cpu" else "doubling"
    return _loop(a, e) if backend == "loop" else _doubling(a, e)
