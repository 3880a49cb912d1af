"""A cell's step loop as ``torch.compile``'d blocks of steps (``cell.compile=true``).

``RecurrentCell.compile_loop(block)`` makes ``forward`` run, where it has no fused kernel to run,
blocks of ``block`` steps, each one call of a function that torch.compile (inductor) fuses into a
few kernels: one autograd node per block instead of a dozen per step. It computes the same maths
as the step loop ``unroll`` (to float rounding), and ``unroll`` itself stays eager: the hidden
outputs it returns are the very tensors the next step reads, which a block's are not.

Only a forward that autograd records (a training step) runs the compiled blocks; a forward
without autograd (evaluation, BN-LSTM's population pass) runs the eager loop: each mode and batch
size of those passes is a graph of its own, and compiling them cost more than they saved (200
BN-LSTM updates on permuted MNIST: 132 s compiling, 326 s in all against 214 s eager; training
graph only: 55 s compiling, 219 s in all; ``docs/results/benchmarks/compile-end-to-end.md``).

The block function is compiled once per kind of input and reused, by every cell of the same kind
and options in the process (dynamo guards on what its trace read, not on the cell object). Its
inputs are the block's projected inputs, the state, the step weights and, for cells with per-step
statistics (BN-LSTM), their rows for the block's steps as tensors (``RecurrentCell.step_rows``)
instead of the step index, an int that would change from one block to the next and make dynamo
compile every block. New graphs are compiled for a new mode (training or evaluation under
autograd), the first change of batch size or of smoothing sigma (after which dynamo keeps them
symbolic) and a shorter last block; a new graph's backward is compiled at once, so that the time
spent compiling can be counted (``CompiledLoop.seconds``).

Compilation needs a working C++ compiler on CPU (torch's inductor backend). Where torch.compile
fails, the first call raises a one-line ``LongdepsError`` naming the problem; with ``fallback``
it warns in one line instead and the cell goes back to its eager loop for good.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

import torch

from longdeps.errors import LongdepsError, warn

#: graphs dynamo may compile for the block function before it gives up and runs it eagerly (its
#: default, 8, is soon reached by the modes and shapes above for a few kinds of cell)
RECOMPILE_LIMIT = 64
graphs_compiled = 0  #: graphs compiled in this process (``count_graphs``)


def row(rows: Any, k: int) -> Any:
    """Row ``k`` of every tensor in the nested tuples ``rows``."""
    return rows[k] if isinstance(rows, torch.Tensor) else tuple(row(r, k) for r in rows)


def tensors(state: Any) -> list[torch.Tensor]:
    """The tensors of a state (a tensor or a tuple of them)."""
    return list(state) if isinstance(state, tuple) else [state]


def as_block_input(state: Any) -> Any:
    """The initial state as every later block receives its state: contiguous, and requiring grad
    while autograd records (a leaf of its own where it did not), so that the first block does not
    compile a graph of its own."""
    if isinstance(state, tuple):
        return tuple(as_block_input(s) for s in state)
    state = state.contiguous()
    if torch.is_grad_enabled() and not state.requires_grad:
        state = state.detach().requires_grad_()
    return state


def block(cell, u: torch.Tensor, state: Any, weights: Any, rows: Any) -> tuple[torch.Tensor, Any]:
    """``len(u)`` steps of ``cell`` from ``state`` over the projected inputs ``u`` ``(n, B, P)`` with its
    ``weights``; ``rows``: the cell's ``step_rows`` for them, or None. Returns the hidden outputs
    ``(n, B, H)`` and the final state."""
    outputs = []
    for k, u_t in enumerate(u.unbind(0)):
        state = cell.recur(u_t, state, None if rows is None else row(rows, k), weights)
        outputs.append(cell.hidden(state))
    return torch.stack(outputs), state


def count_graphs(graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Callable:
    """The inductor backend, counting the graphs it compiles in ``graphs_compiled``."""
    from torch._inductor.compile_fx import compile_fx  # (dynamo and inductor take seconds to import)

    global graphs_compiled
    graphs_compiled += 1
    return compile_fx(graph, example_inputs)


@functools.cache
def compiled_block() -> Callable:
    """``block`` through torch.compile, one for the process: a graph serves every cell of the same
    kind and options (dynamo guards on what the trace read, not on the cell object)."""
    return torch.compile(block, backend=count_graphs)


class CompiledLoop:
    """The step loop of ``cell`` as compiled blocks of ``block`` steps; ``fallback``: run the eager
    loop, after a one-line warning, where torch.compile fails (else refuse, in one line).

    ``seconds`` is the time this loop spent compiling (forward and backward graphs); ``compiled`` is
    None once it has fallen back to eager.
    """

    def __init__(self, cell, block: int, fallback: bool = False):
        if not isinstance(block, int) or block < 1:
            raise LongdepsError(f"cell.compile_block must be a positive number of steps, got {block!r}")
        self.cell, self.block, self.fallback = cell, block, fallback
        self.seconds = 0.0
        try:
            self.compiled = compiled_block()
        except Exception as error:  # where torch.compile is unsupported, it refuses at once
            self.give_up(error)

    def __call__(self, x: torch.Tensor, state: Any, t0: int = 0) -> tuple[torch.Tensor, Any]:
        """``forward``'s loop over time-major ``x`` ``(T, B, I)`` from ``state``, the first step being
        ``t0``: the hidden outputs ``(T, B, H)`` and the final state."""
        from torch._dynamo.exc import TorchDynamoException

        if self.compiled is None:
            hs, final = self.cell.unroll(x, state, t0)
            return torch.stack(hs), final
        u, weights = self.cell.loop_inputs(x)
        outputs, carried = [], as_block_input(state)
        # no donated buffers: they would forbid the second backward through a block that ``run`` takes
        with (torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT),
              torch._functorch.config.patch(donated_buffer=False)):
            # one backward node for all blocks (a slice each would add a zero-filled (T, B, P) gradient)
            for start, u_block in zip(range(t0, t0 + len(u), self.block), u.split(self.block)):
                rows = self.cell.step_rows(range(start, start + len(u_block)))
                try:
                    out, carried = self.run(u_block, carried, weights, rows)
                except TorchDynamoException as error:
                    self.give_up(error)
                    return self(x, state, t0)
                outputs.append(out)
        return torch.cat(outputs), carried

    def run(self, u: torch.Tensor, state: Any, weights: Any, rows: Any) -> tuple[torch.Tensor, Any]:
        """One block. Where it compiles a graph, the block's backward graph is compiled at once too,
        by a backward through this block alone, so that ``seconds`` counts both."""
        graphs, start = graphs_compiled, time.perf_counter()
        out, final = self.compiled(self.cell, u, state, weights, rows)
        if graphs_compiled > graphs:
            results = [r for r in [out, *tensors(final)] if r.requires_grad]
            inputs = [t for t in [u, *tensors(state)] if t.requires_grad]
            if results and inputs:
                torch.autograd.grad(results, inputs, [torch.ones_like(r) for r in results], retain_graph=True,
                                    allow_unused=True)
            self.seconds += time.perf_counter() - start
        return out, final

    def give_up(self, error: Exception) -> None:
        """Refuse in one line, or with ``fallback`` warn in one line and run eagerly from now on."""
        error = getattr(error, "inner_exception", error)  # what the backend raised, for dynamo's wrapper
        problem = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
        message = (f"cell.compile: torch.compile cannot compile the step loop of cell "
                   f"{getattr(self.cell, 'name', type(self.cell).__name__)!r} here ({problem})")
        if not self.fallback:
            raise LongdepsError(f"{message}; set cell.compile=false, or cell.compile_fallback=true to run "
                                f"it eagerly") from None
        warn(f"{message}; running it eagerly (cell.compile_fallback=true)")
        self.compiled = None
