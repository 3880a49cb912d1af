"""Time forward+backward of one training step for each cell, next to torch's fused kernels.

Batch 32, hidden 128, input size 1, T in {100, 784, 1000} by default; the
median over repeats, variants interleaved so that drift hits all alike.
Prints a table of milliseconds and ratios to the native reference, with the
minor page faults of a step (memory the kernel had to map afresh), and stores
the figures as JSON. Like the ``longdeps`` commands, it first has malloc keep
freed memory for the next step (``longdeps.allocator``); with
``--system-allocator`` it keeps the C library's defaults, under which large
tensors are mapped anew at every step: the native LSTM's time at T = 784 then
moves between about 100 and 280 ms with its page faults.

With ``--compile [BLOCK]`` every variant that runs a step loop (the cells
without a fused kernel, the ``step loop`` variants and the smoothed SRN) is
also timed compiled (``cell.compile=true``, blocks of BLOCK steps, by default
the config's), as ``<name>, compiled``; the seconds its warm-up step spent
compiling (forward and backward) are shown apart, in their own column.

    python benchmarks/throughput.py [--device cpu] [--lengths 100 784 1000] [--repeats 7] [--compile [BLOCK]] [--out FILE]
    python benchmarks/throughput.py --lengths 1000 --batch 128 --hidden 138 --variants asrnn orthrnn

The scanned cells (``lru``, its complex state ``N = H``; ``mingru``, ``minlstm``) are timed with
each ``linear_scan`` backend, the loop (``auto``'s choice on a CPU) and ``, doubling``, next to
``nn.GRU``.

``--variants`` times only the named ones (and the native references they are
compared with). ``--device`` (default cpu) puts the modules and the input on
that device, e.g. ``cuda``, where the fused references are cuDNN's kernels; the
clock then waits for the GPU's queued work at both ends of a step, and the
page faults, which count only the CPU process's memory, say little.

    python benchmarks/throughput.py --device cuda --lengths 1000 4000 --batch 32 --hidden 256 --variants bn-lstm asrnn
"""

from __future__ import annotations

import argparse
import resource
import statistics

import torch

from longdeps.allocator import keep_freed_memory
from longdeps.cells import RecurrentCell, make_cell
from longdeps.config import CellConfig

from figures import store_figures
from timing import device_label, gpu_name, timed


#: the variants that run a cell's step loop: name -> (cell, its options, the native reference)
LOOPS = {
    "srn, step loop": ("srn", {"native": False}, "nn.RNN (tanh)"),
    "srn, smoothed": ("srn", {}, "nn.RNN (tanh)"),
    "srn, propagated": ("srn", {}, "nn.RNN (tanh)"),
    "asrnn": ("asrnn", {}, "nn.RNN (tanh)"),
    "orthrnn": ("orthrnn", {}, "nn.RNN (tanh)"),
    "lstm, step loop": ("lstm", {"native": False}, "nn.LSTM"),
    "bn-lstm": ("bn-lstm", {}, "nn.LSTM"),
    "gru, step loop": ("gru", {"native": False}, "nn.GRU"),
}
#: the cells that train as a linear scan, on each backend: name -> (cell, its options); compared with nn.GRU
SCANS = {
    "lru": ("lru", {"scan_backend": "loop"}),
    "lru, doubling": ("lru", {"scan_backend": "doubling"}),
    "mingru": ("mingru", {"scan_backend": "loop"}),
    "mingru, doubling": ("mingru", {"scan_backend": "doubling"}),
    "minlstm": ("minlstm", {"scan_backend": "loop"}),
    "minlstm, doubling": ("minlstm", {"scan_backend": "doubling"}),
}
SMOOTHING = 0.1  #: diffusion sigma of "srn, smoothed" and "srn, propagated" (moment propagation)


def loop_cell(name: str, hidden: int, **compiled) -> torch.nn.Module:
    """The cell of step-loop variant ``name``; ``compiled``: ``make_cell``'s compile options."""
    cell, options, _ = LOOPS[name]
    module = make_cell(cell, 1, hidden, **options, **compiled)
    if name in ("srn, smoothed", "srn, propagated"):
        module.set_smoothing(SMOOTHING, propagate=name == "srn, propagated")
    return module


def variants(hidden: int, compile_block: int | None = None) -> dict[str, tuple[torch.nn.Module, str]]:
    """name -> (module, the native reference it is compared with); with ``compile_block``, every
    step loop also compiled in blocks of that many steps (``<name>, compiled``)."""
    modules = {
        "nn.RNN (tanh)": (torch.nn.RNN(1, hidden), "nn.RNN (tanh)"),
        "srn": (make_cell("srn", 1, hidden), "nn.RNN (tanh)"),
        "nn.LSTM": (torch.nn.LSTM(1, hidden), "nn.LSTM"),
        "lstm": (make_cell("lstm", 1, hidden), "nn.LSTM"),
        "nn.LSTMCell loop": (LSTMCellLoop(hidden), "nn.LSTM"),
        "nn.GRU": (torch.nn.GRU(1, hidden), "nn.GRU"),
        "gru": (make_cell("gru", 1, hidden), "nn.GRU"),
    }
    for name, (cell, options) in SCANS.items():
        modules[name] = (make_cell(cell, 1, hidden, **options), "nn.GRU")
    for name, (_, _, reference) in LOOPS.items():
        modules[name] = (loop_cell(name, hidden), reference)
        if compile_block:
            modules[f"{name}, compiled"] = (loop_cell(name, hidden, compile=True, compile_block=compile_block),
                                            reference)
    return modules


class LSTMCellLoop(torch.nn.Module):
    """The naive per-step loop: ``nn.LSTMCell`` called once per step (input matmul inside)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.cell = torch.nn.LSTMCell(1, hidden)

    def forward(self, x: torch.Tensor):
        state, outputs = None, []
        for x_t in x.unbind(0):
            state = self.cell(x_t, state)
            outputs.append(state[0])
        return torch.stack(outputs), state


def train_step(module: torch.nn.Module, x: torch.Tensor) -> None:
    out, _ = module(x)
    out[-1].square().sum().backward()


def measure(lengths: list[int], batch: int, hidden: int, repeats: int, only: list[str] | None = None,
            compile_block: int | None = None, device: torch.device = torch.device("cpu")) -> list[dict]:
    """A row per length and variant: the median milliseconds of a step on ``device`` (input
    ``(T, batch, 1)``), its ratio to the native reference's, the step's page faults and, for a
    compiled variant, the seconds spent compiling."""
    rows = []
    for steps in lengths:
        torch.manual_seed(0)
        x = torch.randn(steps, batch, 1).to(device)
        mods = variants(hidden, compile_block)
        if only:
            keep = set(only) | {mods[name][1] for name in only}
            mods = {name: entry for name, entry in mods.items() if name in keep}
        mods = {name: (module.to(device), reference) for name, (module, reference) in mods.items()}
        times: dict[str, list[float]] = {name: [] for name in mods}
        faults: dict[str, list[int]] = {name: [] for name in mods}
        for name, (module, _) in mods.items():  # warm-up (and compiling)
            train_step(module, x)
        for _ in range(repeats):
            for name, (module, _) in mods.items():
                module.zero_grad(set_to_none=True)
                mapped = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                times[name].append(timed(lambda: train_step(module, x), device))
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - mapped)
        medians = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        for name, (module, reference) in mods.items():
            rows.append({"T": steps, "variant": name, "ms": round(medians[name], 2), "reference": reference,
                         "ratio": round(medians[name] / medians[reference], 3),
                         "page_faults": int(statistics.median(faults[name])),
                         "compile_s": module.statistics().get("compile_seconds") if isinstance(module, RecurrentCell)
                         else None})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=torch.device, default="cpu", help="where to run (default: %(default)s)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 784, 1000])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--compile", type=int, nargs="?", const=CellConfig.compile_block, metavar="BLOCK",
                        help="also time every step loop compiled, in blocks of BLOCK steps (default: %(const)s)")
    parser.add_argument("--variants", nargs="+", choices=list(variants(1, compile_block=1)), metavar="NAME",
                        help="time only these (and their native references); default: all")
    parser.add_argument("--out", default="longdeps-results/benchmarks/throughput.json")
    parser.add_argument("--system-allocator", action="store_true",
                        help="keep malloc's defaults (freed large tensors go back to the system)")
    args = parser.parse_args()
    kept = not args.system_allocator and keep_freed_memory()
    rows = measure(args.lengths, args.batch, args.hidden, args.repeats, args.variants, args.compile, args.device)
    print(f"torch {torch.__version__} on {device_label(args.device)}, {torch.get_num_threads()} threads, "
          f"batch {args.batch}, hidden {args.hidden}, median of {args.repeats}, "
          f"freed memory {'kept' if kept else 'returned to the system'}")
    print(f"{'T':>5}  {'variant':28s} {'ms':>9} {'page faults':>12}  {'ratio to native':22s} compiling (s)")
    for r in rows:
        compiling = "" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
        print(f"{r['T']:>5}  {r['variant']:28s} {r['ms']:9.2f} {r['page_faults']:12d}  "
              f"{r['ratio']:.2f}x {r['reference']:16s} {compiling}")
    store_figures(args.out, device=str(args.device), gpu=gpu_name(args.device), batch=args.batch, hidden=args.hidden,
                  freed_memory_kept=kept, repeats=args.repeats, compile_block=args.compile, rows=rows)


if __name__ == "__main__":
    main()
