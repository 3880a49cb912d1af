"""What bounds an asRNN training step here? The library cell, eager and compiled, beside nn.RNN and its matrix products.

At issue 20's set-up (T = 1000, batch 128, hidden 138, input size 1) this
times forward+backward of one step (loss: the squared last output, as
``throughput.py``), interleaved, median over repeats:

- ``nn.RNN (tanh)``: torch's fused tanh kernel, the reference;
- ``products, 1 per step``: the recurrent products nn.RNN must do (forward,
  gradient of h, gradient of W_hh at every step);
- ``products, 2 per step``: the same for the two matrices an asRNN step
  multiplies by in the library's encoded coordinates (``W_f W_hh`` and the
  decoder ``U_f D_f^-1``);
- ``asrnn``: the library cell (its step loop under autograd);
- ``asrnn, compiled``: the same with ``cell.compile=true`` (blocks of
  ``--block`` steps; about 10 s compiling);
- ``asrnn, fused tanh kernel on W_f h``: the other way to one product per
  step: in ``a_t = W_f h_t`` the recurrence is an Elman RNN with recurrent
  matrix ``W_f W_hh W_f^-1``, which torch's fused kernel runs; ``h_t = W_f^-1
  a_t`` then costs one batched product over all steps (a cell's forward
  returns every ``h_t``). Checked here against the cell's gradients.

Ratios are given to nn.RNN and to the two-product floor.

    python benchmarks/asrnn_floor.py [--repeats 5] [--block 16] [--out FILE]
"""

from __future__ import annotations

import torch
from torch.nn.utils import parametrize

from longdeps.allocator import keep_freed_memory
from longdeps.cells import make_cell
from longdeps.config import CellConfig

from figures import store_figures
from timing import check_gradients, floor_parser, interleaved_medians, matmuls_only


def fused_on_encoded_state(cell):
    """A forward over ``(T, B, I)`` inputs: torch's tanh kernel on ``a = W_f h``, then ``h`` from
    every ``a_t`` in one product (module docstring)."""
    def forward(x):
        with parametrize.cached():
            rotation, scale = cell.saturation_factors()
            encoder, decoder = rotation * scale, rotation / scale  # W_f; W_f^-1 = decoder^T
            weights = [encoder @ cell.weight_ih, encoder @ cell.recurrent_matrix() @ decoder.T,
                       encoder @ cell.bias, torch.zeros_like(cell.bias)]
        a0 = cell.initial_state(x.shape[1])[None]  # W_f h_0 with h_0 = 0
        encoded, _ = torch.ops.aten.rnn_tanh.input(x, a0, weights, True, 1, 0.0, True, False, False)
        return encoded @ decoder, None
    return forward


def main() -> None:
    parser = floor_parser(__doc__.splitlines()[0], steps=1000, batch=128, hidden=138, repeats=5,
                          block=CellConfig.compile_block, out="longdeps-results/benchmarks/asrnn_floor.json")
    args = parser.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    x = torch.randn(args.steps, args.batch, 1)
    cell = make_cell("asrnn", 1, args.hidden)
    compiled = make_cell("asrnn", 1, args.hidden, compile=True, compile_block=args.block)
    compiled.load_state_dict(cell.state_dict())
    native = torch.nn.RNN(1, args.hidden)
    square = torch.randn(args.hidden, args.hidden)

    def through_autograd(module, forward=None):
        def step():
            module.zero_grad(set_to_none=True)
            out, _ = (forward or module)(x)
            out[-1].square().sum().backward()
        return step

    def gradients(module):
        return [p.grad.clone() for p in module.parameters()]

    through_autograd(cell)()
    expected = gradients(cell)
    compiled_name = f"asrnn, compiled ({args.block}-step blocks)"
    checked = {compiled_name: (through_autograd(compiled), compiled),
               "asrnn, fused tanh kernel on W_f h": (through_autograd(cell, fused_on_encoded_state(cell)), cell)}
    for name, (step, module) in checked.items():  # compiles the compiled cell on its first call
        step()
        check_gradients(name, gradients(module), expected)
    print(f"compiling took {compiled.statistics()['compile_seconds']:.0f} s")
    variants = {"nn.RNN (tanh)": through_autograd(native),
                "products, 1 per step": lambda: matmuls_only([square], args.steps, args.batch),
                "products, 2 per step": lambda: matmuls_only([square, square], args.steps, args.batch),
                "asrnn": through_autograd(cell),
                **{name: step for name, (step, _) in checked.items()}}
    medians = interleaved_medians(variants, args.repeats)
    rows = [{"variant": name, "ms": round(median * 1e3, 1), "ratio": round(median / medians["nn.RNN (tanh)"], 2),
             "ratio_to_products": round(median / medians["products, 2 per step"], 2)}
            for name, median in medians.items()]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, T {args.steps}, batch {args.batch}, "
          f"hidden {args.hidden}, median of {args.repeats}")
    for row in rows:
        print(f"  {row['variant']:36s} {row['ms']:8.1f} ms  {row['ratio']:5.2f}x nn.RNN  "
              f"{row['ratio_to_products']:5.2f}x two products per step")
    store_figures(args.out, steps=args.steps, batch=args.batch, hidden=args.hidden, repeats=args.repeats,
                  block=args.block, rows=rows)


if __name__ == "__main__":
    main()
