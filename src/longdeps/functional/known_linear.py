"""A linear map whose output is already known, differentiated as if computed here."""

from __future__ import annotations

import torch


class _KnownLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, weight, bias, output):
        ctx.save_for_backward(input, weight)
        ctx.has_bias = bias is not None
        return output

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        grad_input = grad_output.matmul(weight) if ctx.needs_input_grad[0] else None
        grad = grad_output.reshape(-1, grad_output.shape[-1])
        grad_weight = grad.T.mm(input.reshape(-1, input.shape[-1])) if ctx.needs_input_grad[1] else None
        grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_input, grad_weight, grad_bias, None


def known_linear(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 output: torch.Tensor) -> torch.Tensor:
    """``output`` (which must equal ``F.linear(input, weight, bias)``), with the gradients of
    ``input`` ``(..., H)``, ``weight`` ``(G, H)`` and ``bias`` ``(G,)`` as if it had been
    computed here. Saves recomputing a product the forward pass already made: the weight
    gradient over all leading dims is one matrix product."""
    return _KnownLinear.apply(input, weight, bias, output)
