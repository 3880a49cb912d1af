"""A linear map whose output is already known, differentiated for its weights only."""

from __future__ import annotations

import torch


class _KnownLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, bias, output):
        ctx.save_for_backward(input)
        ctx.has_bias = bias is not None
        return output

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        grad = grad_output.reshape(-1, grad_output.shape[-1])
        grad_weight = grad.T.mm(input.reshape(-1, input.shape[-1]))
        return None, grad_weight, grad.sum(0) if ctx.has_bias else None, None


def known_linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 output: torch.Tensor) -> torch.Tensor:
    """``output`` (which must equal ``F.linear(input, weight, bias)``), with gradients for
    ``weight`` ``(G, H)`` and ``bias`` ``(G,)`` as if it had been computed here; ``input``
    ``(..., H)`` is held constant. Saves recomputing a product the forward pass already made:
    the weight gradient over all leading dims is one matrix product."""
    return _KnownLinear.apply(input, weight, bias, output)
