"""How fast can a BN-LSTM training step be made here? Eager, compiled and hand-fused variants beside nn.LSTM.

At the paper's set-up (T = 784, batch 100, hidden 100, input size 1) this
times forward+backward of one step, interleaved, median over repeats:

- ``nn.LSTM``: torch's fused oneDNN kernel, the reference of ``throughput.py``;
- ``matmuls only``: the three (B, H) x (H, 4H) products of every step
  (forward, gradient of h, gradient of W_h), which any LSTM must do;
- ``bn-lstm``: the library cell under autograd;
- ``bn-lstm, no autograd``: the same maths as straight-line torch calls, the
  backward written out by hand, with torch's batch-norm kernels: about the
  fewest calls an eager implementation can make;
- ``bn-lstm, compiled`` (with ``--compile``): ``torch.compile`` (inductor, C++)
  of a block of ``--block`` steps, called T / block times; compiling takes
  about half a minute.
- ``bn-lstm, fused C++ kernel`` (with ``--kernel``): the whole time loop,
  forward and backward, in the hand-written C++ of ``bn_lstm_kernel.cpp``
  (batch norms, gates and cell update fused into loops; the matrix products
  through oneDNN with prepacked weights), built on first use with
  ``torch.utils.cpp_extension`` (needs a C++ compiler and ``pip install
  ninja``; about 10 s). It is first checked by finite differences in float64.
  The library does not use it.

The last three skip the monitoring moving averages (the kernel keeps the
input term's); all are first checked to give the library cell's gradients.
Ratios are given to ``nn.LSTM`` and to the matrix products. Freed memory is
kept for the next step, as the ``longdeps`` commands do
(``longdeps.allocator``).

    python benchmarks/bn_lstm_floor.py [--compile] [--kernel] [--repeats 7] [--out FILE]
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from longdeps.allocator import keep_freed_memory
from longdeps.cells import make_cell

from figures import store_figures
from timing import check_gradients, floor_parser, interleaved_medians, matmuls_only

EPS = 1e-5
batch_norm_backward = torch.ops.aten.native_batch_norm_backward


def sequence_loss(outputs: torch.Tensor) -> torch.Tensor:
    """The loss every variant differentiates: squared last output, summed."""
    return outputs[-1].square().sum()


class Unrolled:
    """BN-LSTM (training mode, batch statistics) as plain torch calls with a hand-written backward.

    Weights are taken from a library ``BNLSTM`` cell; ``step()`` runs forward and backward
    and returns the gradients of ``weight_hh`` and ``weight_ih``.
    """

    def __init__(self, cell, x: torch.Tensor):
        self.cell, self.x = cell, x
        self.hidden = cell.hidden_size

    @torch.no_grad()
    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        cell, n = self.cell, self.hidden
        w_hh, gamma_h, gamma_x = cell.weight_hh, cell.norm_h.weight, cell.norm_x.weight
        gamma_c, beta_c = cell.norm_c.weight, cell.norm_c.bias
        steps, batch = self.x.shape[:2]
        wx = F.linear(self.x, cell.weight_ih)
        h, c = cell.h0.expand(batch, n), cell.c0.expand(batch, n)
        saved = []
        for t in range(steps):
            gh = h.mm(w_hh.t())
            z_h, mean_h, invstd_h = torch.native_batch_norm(gh, gamma_h, None, None, None, True, 0.0, EPS)
            z_x, mean_x, invstd_x = torch.native_batch_norm(wx[t], gamma_x, None, None, None, True, 0.0, EPS)
            z = z_h.add_(z_x).add_(cell.bias)
            gates = torch.sigmoid(z)
            g = torch.tanh(z[:, 2 * n:3 * n])
            c_new = torch.addcmul(gates[:, n:2 * n] * c, gates[:, :n], g)
            c_norm, mean_c, invstd_c = torch.native_batch_norm(c_new, gamma_c, beta_c, None, None, True, 0.0, EPS)
            tanh_c = torch.tanh(c_norm)
            saved.append((h, c, gh, mean_h, invstd_h, mean_x, invstd_x, gates, g, c_new, mean_c, invstd_c, tanh_c))
            h, c = gates[:, 3 * n:] * tanh_c, c_new
        grad_h = 2 * h  # d sequence_loss / d h_T
        grad_c = torch.zeros_like(c)
        grad_w_hh = torch.zeros_like(w_hh)
        grad_wx = torch.empty_like(wx)
        grad_z = torch.empty(batch, 4 * n)
        for t in reversed(range(steps)):
            h_prev, c_prev, gh, mean_h, invstd_h, mean_x, invstd_x, gates, g, c_new, mean_c, invstd_c, tanh_c = saved[t]
            i, f, o = gates[:, :n], gates[:, n:2 * n], gates[:, 3 * n:]
            torch.mul(grad_h * tanh_c, o * (1 - o), out=grad_z[:, 3 * n:])
            grad_c_norm = grad_h * o * (1 - tanh_c * tanh_c)
            grad_c = grad_c + batch_norm_backward(grad_c_norm, c_new, gamma_c, None, None, mean_c, invstd_c,
                                                  True, EPS, [True, False, False])[0]
            torch.mul(grad_c * g, i * (1 - i), out=grad_z[:, :n])
            torch.mul(grad_c * c_prev, f * (1 - f), out=grad_z[:, n:2 * n])
            torch.mul(grad_c * i, 1 - g * g, out=grad_z[:, 2 * n:3 * n])
            grad_c = grad_c * f
            grad_wx[t] = batch_norm_backward(grad_z, wx[t], gamma_x, None, None, mean_x, invstd_x,
                                             True, EPS, [True, False, False])[0]
            grad_gh = batch_norm_backward(grad_z, gh, gamma_h, None, None, mean_h, invstd_h,
                                          True, EPS, [True, False, False])[0]
            grad_w_hh.addmm_(grad_gh.t(), h_prev)
            grad_h = grad_gh.mm(w_hh)
        grad_w_ih = grad_wx.flatten(0, 1).t().mm(self.x.flatten(0, 1))
        return grad_w_hh, grad_w_ih


def functional_step(cell, u: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of ``cell``'s maths as autograd-able torch calls (batch statistics, no moving
    averages), from the input projection ``u`` ``(B, 4H)``."""
    z = (F.batch_norm(h.mm(cell.weight_hh.t()), None, None, cell.norm_h.weight, None, True, 0.0, EPS)
         + F.batch_norm(u, None, None, cell.norm_x.weight, None, True, 0.0, EPS) + cell.bias)
    i, f, g, o = z.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    c_norm = F.batch_norm(c, None, None, cell.norm_c.weight, cell.norm_c.bias, True, 0.0, EPS)
    return torch.sigmoid(o) * torch.tanh(c_norm), c


def compiled_blocks(cell, block: int):
    """A forward over ``(T, B, 1)`` inputs that runs ``functional_step`` ``block`` steps at a
    time, each block compiled once by torch.compile."""
    def run_block(u, h, c):
        outputs = []
        for u_t in u.unbind(0):
            h, c = functional_step(cell, u_t, h, c)
            outputs.append(h)
        return torch.stack(outputs), c

    compiled = torch.compile(run_block, dynamic=False)

    def forward(x):
        u = F.linear(x, cell.weight_ih)
        h, c = cell.initial_state(x.shape[1])
        outputs = []
        for u_block in u.split(block):  # one backward node for all blocks (a slice each would add a zero-filled (T, B, 4H) gradient)
            out, c = compiled(u_block, h, c)
            h = out[-1]
            outputs.append(out)
        return torch.cat(outputs)
    return forward


def fused_kernel(cell):
    """A forward over ``(T, B, 1)`` inputs through the C++ kernel of ``bn_lstm_kernel.cpp``
    (built here on first use), as one autograd node."""
    from torch.utils.cpp_extension import load

    try:
        load(name="longdeps_bn_lstm_kernel", sources=[str(Path(__file__).with_name("bn_lstm_kernel.cpp"))],
             extra_cflags=["-O3", "-march=native"], is_python_module=False)
    except (RuntimeError, OSError) as error:
        raise SystemExit(f"--kernel needs a C++ compiler and ninja (pip install ninja): {error}") from None
    ops = torch.ops.longdeps_bench

    def packed(weight: torch.Tensor, batch: int) -> torch.Tensor | None:
        """``weight`` in oneDNN's layout for products with ``batch`` rows (float32 only)."""
        usable = weight.dtype == torch.float32 and torch.backends.mkldnn.is_available()
        return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), batch) if usable else None

    class Sequence(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, h0, c0, weight_hh, gamma_h, gamma_c, beta_c):
            saved = ops.bn_lstm_forward(u, h0, c0, weight_hh, gamma_h, gamma_c, beta_c, EPS,
                                        packed(weight_hh, u.shape[1]))
            ctx.packed_t = packed(weight_hh.t(), u.shape[1])
            ctx.save_for_backward(h0, c0, weight_hh, gamma_h, gamma_c, *saved)
            outputs, cells = saved[0], saved[3]
            return outputs, cells[-1]

        @staticmethod
        @once_differentiable
        def backward(ctx, grad_outputs, grad_c):
            h0, c0, weight_hh, gamma_h, gamma_c, *saved = ctx.saved_tensors
            return tuple(ops.bn_lstm_backward(grad_outputs, grad_c, h0, c0, weight_hh, gamma_h, gamma_c, EPS,
                                              ctx.packed_t, saved))

    inputs = [torch.randn(4, 5, 12), torch.randn(5, 3), torch.randn(5, 3), torch.randn(12, 3),
              torch.rand(12) + 0.5, torch.rand(3) + 0.5, torch.randn(3)]
    if not torch.autograd.gradcheck(Sequence.apply, [t.double().requires_grad_() for t in inputs]):
        raise SystemExit("the fused kernel's gradients disagree with finite differences")
    print("fused C++ kernel: float64 gradients agree with finite differences")

    def forward(x):
        u = cell.norm_x(F.linear(x, cell.weight_ih), range(x.shape[0])).add_(cell.bias)
        h0, c0 = cell.initial_state(x.shape[1])
        return Sequence.apply(u, h0.contiguous(), c0.contiguous(), cell.weight_hh, cell.norm_h.weight,
                              cell.norm_c.weight, cell.norm_c.bias)
    return forward


def main() -> None:
    parser = floor_parser(__doc__.splitlines()[0], steps=784, batch=100, hidden=100, repeats=7, block=16,
                          out="longdeps-results/benchmarks/bn_lstm_floor.json")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd blocks of steps")
    parser.add_argument("--kernel", action="store_true", help="also time the fused C++ kernel of bn_lstm_kernel.cpp")
    args = parser.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    x = torch.randn(args.steps, args.batch, 1)
    cell = make_cell("bn-lstm", 1, args.hidden)
    native = torch.nn.LSTM(1, args.hidden)
    unrolled = Unrolled(cell, x)

    def through_autograd(forward):
        def step():
            cell.zero_grad(set_to_none=True)
            native.zero_grad(set_to_none=True)
            out = forward(x)
            sequence_loss(out[0] if isinstance(out, tuple) else out).backward()
        return step

    variants = {"nn.LSTM": through_autograd(native),
                "matmuls only": lambda: matmuls_only([cell.weight_hh.detach()], args.steps, args.batch),
                "bn-lstm": through_autograd(cell),
                "bn-lstm, no autograd": unrolled.step}
    # every BN-LSTM variant must give the library cell's gradients
    through_autograd(cell)()
    expected = (cell.weight_hh.grad.clone(), cell.weight_ih.grad.clone())
    check_gradients("bn-lstm, no autograd", unrolled.step(), expected)
    if args.compile:
        name = f"bn-lstm, compiled ({args.block}-step blocks)"
        variants[name] = through_autograd(compiled_blocks(cell, args.block))
        start = time.perf_counter()
        variants[name]()  # compiles
        print(f"compiling took {time.perf_counter() - start:.0f} s")
        check_gradients(name, (cell.weight_hh.grad, cell.weight_ih.grad), expected)
    if args.kernel:
        name = "bn-lstm, fused C++ kernel"
        start = time.perf_counter()
        variants[name] = through_autograd(fused_kernel(cell))
        print(f"building and checking the kernel took {time.perf_counter() - start:.0f} s")
        variants[name]()
        check_gradients(name, (cell.weight_hh.grad, cell.weight_ih.grad), expected)
    medians = interleaved_medians(variants, args.repeats)
    rows = [{"variant": name, "ms": round(median * 1e3, 1), "ratio": round(median / medians["nn.LSTM"], 2),
             "ratio_to_matmuls": round(median / medians["matmuls only"], 2)} for name, median in medians.items()]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, T {args.steps}, batch {args.batch}, "
          f"hidden {args.hidden}, median of {args.repeats}")
    for row in rows:
        print(f"  {row['variant']:34s} {row['ms']:8.1f} ms  {row['ratio']:5.2f}x nn.LSTM  "
              f"{row['ratio_to_matmuls']:5.2f}x matmuls only")
    store_figures(args.out, steps=args.steps, batch=args.batch, hidden=args.hidden, repeats=args.repeats, rows=rows)


if __name__ == "__main__":
    main()
