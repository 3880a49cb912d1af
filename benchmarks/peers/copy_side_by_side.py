"""Copy task side by side with the reference code: the matched-update table of issue 17.

Given checkouts of the two reference repositories (fetched by you, never
vendored here), trains for ``--updates`` updates at blank length ``--seq-len``
and batch 128, for every seed:

- the expRNN code's copy task (``1_copying.py``: orthogonal RNN, modReLU,
  ``--mode dtriv``) against ``longdeps`` ``orthrnn`` with matched settings;
- the asRNN code's copy task (``copytask.py``) against ``longdeps`` ``asrnn``;

and writes, as markdown, the training loss divided by the memoryless baseline
``10 ln 8 / (T + 20)``, averaged over each window of ``--window`` updates, one
column per code and seed.

The references run unedited, in a child process of this script, with these
patches made at run time: ``torch.device("cuda")`` gives the CPU (the expRNN
code asks for CUDA unconditionally), the scripts' fixed seed 5544 is replaced
by the seed asked for, their ``pip install`` calls are skipped, ``torch.solve``
(removed from torch, used by their ``expm32``) is given back as
``torch.linalg.solve``, an empty ``torchvision`` stands in where it is not
installed (the asRNN code imports it for MNIST only), and every training loss
is recorded from ``torch.nn.CrossEntropyLoss``. Their outputs
(the asRNN code writes a log and checkpoints) go to a temporary folder.
The asRNN code needs ``pandas`` and ``scipy``.

Matched settings, each as its reference code sets it: hidden 190, lr 2e-4
(orthogonal 2e-5), RMSprop alpha 0.99 (the code's RMSprop default), no
clipping, Henaff init, rebase every 100 updates, projection every 30th rebase,
``W_hh = B^T`` (``h @ B``) for expRNN (the asRNN authors' table gives alpha 0.9
for expRNN, and ``benchmarks/asrnn.yaml`` follows it); hidden 138, lr 2e-4 (2e-5), alpha 0.9,
clip 10, Henaff, ``a = b = 0``, ``eps = 1e-5``, rebase every 100, projection
every 100th rebase, ``W_hh = B`` for asRNN; both with a Kaiming-normal readout
and zero bias, and the copy layout ``exprnn``.

    python benchmarks/peers/copy_side_by_side.py --exprnn ../expRNN --asrnn ../asRNN \\
        --seq-len 200 --updates 600 --seeds 0 1 --out copy-side-by-side.md

A path that is not given or holds no such code skips its pair with one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import runpy
import subprocess
import sys
import tempfile
import types
from pathlib import Path

#: per reference: the script, its import folders (relative to the checkout), its arguments, our matched config
PEERS = {
    "expRNN": {
        "script": "1_copying.py",
        "imports": ["."],
        "args": lambda T, n: ["--L", str(T), "--T", str(n), "--mode", "dtriv", "--K", "100", "--init", "henaff"],
        "ours": ["cell.name=orthrnn", "cell.hidden_size=190", "cell.orientation=BT", "cell.project_every=30",
                 "optimizer.alpha=0.99"],
    },
    "asRNN": {
        "script": "copytask.py",
        "imports": ["sources", "sources/expRNN"],
        "args": lambda T, n: ["--delay_length", str(T), "--iterations", str(n), "--mode", "dtriv", "--K", "100",
                              "--init", "henaff"],
        "ours": ["cell.name=asrnn", "cell.hidden_size=138", "cell.orientation=B", "cell.project_every=100",
                 "cell.saturation_low=0", "cell.saturation_high=0", "cell.saturation_eps=1e-5", "gradient.clip_norm=10",
                 "optimizer.alpha=0.9"],
    },
}
COMMON = ["task.name=copy", "task.variant=exprnn", "task.val_size=128", "task.test_size=128",
          "cell.recurrent_init=henaff", "cell.rebase_every=100", "readout.init=kaiming", "optimizer.name=rmsprop", "optimizer.lr=2e-4",
          "optimizer.orthogonal_lr_scale=0.1", "train.batch_size=128"]


def run_reference_here(checkout: Path, peer: str, seq_len: int, updates: int, seed: int, out: Path) -> None:
    """In this process: run ``peer``'s copy script from ``checkout`` with the run-time patches;
    write its training losses, one per update, to ``out`` as JSON."""
    import numpy as np
    import torch

    spec = PEERS[peer]
    real_device, real_cross_entropy = torch.device, torch.nn.CrossEntropyLoss.forward
    losses: list[float] = []

    class CPUOnly(type):  # a stand-in type for torch.device: "cuda" gives the CPU, isinstance still works
        def __call__(cls, kind="cpu", *args):
            return real_device("cpu") if str(kind).startswith("cuda") else real_device(kind, *args)

        def __instancecheck__(cls, obj):
            return isinstance(obj, real_device)

    device = CPUOnly("device", (), {})

    def cross_entropy(self, logits, target):
        loss = real_cross_entropy(self, logits, target)
        if torch.is_grad_enabled():
            losses.append(float(loss.detach()))
        return loss

    def call(command, *args, **kwargs):
        if list(command[:2]) == ["pip", "install"]:
            return 0  # the asRNN code installs its own requirements; we check them before running
        return subprocess.call(command, *args, **kwargs)

    torch.device = device
    torch.solve = lambda b, a: (torch.linalg.solve(a, b),)  # removed in torch 1.9; their expm32 still calls it
    torch.nn.CrossEntropyLoss.forward = cross_entropy
    torch.manual_seed = (lambda manual_seed: lambda _: manual_seed(seed))(torch.manual_seed)
    np.random.seed = (lambda np_seed: lambda _: np_seed(seed))(np.random.seed)
    subprocess.call = call
    if importlib.util.find_spec("torchvision") is None:  # the asRNN data module imports it for MNIST only
        stand_ins = {name: types.ModuleType(name) for name in ("torchvision", "torchvision.transforms",
                                                                "torchvision.datasets")}
        stand_ins["torchvision"].transforms = stand_ins["torchvision.transforms"]
        stand_ins["torchvision"].datasets = stand_ins["torchvision.datasets"]
        stand_ins["torchvision.datasets"].MNIST = None
        sys.modules.update(stand_ins)
    sys.path[:0] = [str(checkout / folder) for folder in spec["imports"]]
    sys.argv = [spec["script"], *spec["args"](seq_len, updates)]
    runpy.run_path(str(checkout / spec["script"]), run_name="__main__")
    out.write_text(json.dumps(losses[:updates]))


def reference_losses(checkout: Path, peer: str, seq_len: int, updates: int, seed: int, threads: int) -> list[float]:
    """Training losses of ``peer``'s code, run in a child process in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "losses.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", peer, str(checkout.resolve()),
                   str(seq_len), str(updates), str(seed), str(out), "--threads", str(threads)]
        result = subprocess.run(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            last = result.stderr.strip().splitlines()[-1:] or ["no message"]
            raise SystemExit(f"{peer} code failed (exit {result.returncode}): {last[0]}")
        return json.loads(out.read_text())


def our_losses(peer: str, seq_len: int, updates: int, seed: int, extra: tuple[str, ...] = ()) -> list[float]:
    """Training losses of the matched longdeps model, with the overrides ``extra`` on top, one per update."""
    from longdeps.config import RunConfig
    from longdeps.experiment import Run
    from longdeps.store import ResultStore

    config = RunConfig().with_overrides(COMMON + PEERS[peer]["ours"] + list(extra) +
                                        [f"task.seq_len={seq_len}", f"train.seed={seed}"])
    with tempfile.TemporaryDirectory() as root:
        run = Run(config, ResultStore(root))
        return [run.train_step()[0] for _ in range(updates)]


def extra_columns(peer: str, also: list[str]) -> list[str]:
    """The ``--also`` overrides (``key=value``) that give ``peer``'s pair a column: those whose key its
    matched settings set to another value."""
    ours = PEERS[peer]["ours"]
    return [o for o in also if o not in ours and any(m.startswith(o.split("=")[0] + "=") for m in ours)]


def window_means(values: list[float], scale: float, window: int) -> list[float]:
    """Means of ``values / scale`` over consecutive windows of ``window`` (the last may be shorter)."""
    return [sum(values[i:i + window]) / len(values[i:i + window]) / scale for i in range(0, len(values), window)]


def table(series: dict[str, list[float]], scale: float, window: int) -> str:
    """Markdown: one row per window (labelled by its last update), one column per series."""
    means = {name: window_means(values, scale, window) for name, values in series.items()}
    updates = max(len(v) for v in series.values())
    lines = ["| updates | " + " | ".join(means) + " |", "|---|" + "---|" * len(means)]
    for k, end in enumerate(range(window, updates + window, window)):
        cells = [f"{m[k]:.3f}" if k < len(m) else "" for m in means.values()]
        first, last = end - window + 1, min(end, updates)
        lines.append(f"| {first}-{last} | " if last > first else f"| {last} | ")
        lines[-1] += " | ".join(cells) + " |"
    return "\n".join(lines)


def missing_requirements(peer: str) -> list[str]:
    needed = ["numpy"] + (["pandas", "scipy"] if peer == "asRNN" else [])
    return [name for name in needed if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exprnn", type=Path, help="checkout of the expRNN code (holds 1_copying.py)")
    parser.add_argument("--asrnn", type=Path, help="checkout of the asRNN code (holds copytask.py)")
    parser.add_argument("--seq-len", type=int, default=200, help="blank length T (default 200)")
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--window", type=int, default=50, help="updates per table row (default 50)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of every run (default 1)")
    parser.add_argument("--also", nargs="+", default=[], metavar="KEY=VALUE",
                        help="one more longdeps column per seed, the matched model with this override (e.g. "
                             "cell.orientation=B); for each pair that sets the key to another value")
    parser.add_argument("--out", type=Path, help="also write the table (and the raw losses, .json) here")
    parser.add_argument("--child", nargs=6, metavar=("PEER", "CHECKOUT", "T", "UPDATES", "SEED", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.child:
        peer, checkout, seq_len, updates, seed, out = args.child
        run_reference_here(Path(checkout), peer, int(seq_len), int(updates), int(seed), Path(out))
        return 0
    for name, value in (("--seq-len", args.seq_len), ("--updates", args.updates), ("--window", args.window)):
        if value < 1:
            parser.error(f"{name} must be a positive integer, got {value}")

    peers = []
    for peer, checkout in (("expRNN", args.exprnn), ("asRNN", args.asrnn)):
        script = PEERS[peer]["script"]
        if checkout is None or not (checkout / script).is_file():
            print(f"{peer}: no {script} under {checkout or '(no path given)'}; pair skipped")
        elif missing_requirements(peer):
            print(f"{peer}: its code needs {', '.join(missing_requirements(peer))} (pip install them); pair skipped")
        else:
            peers.append((peer, checkout))
    if not peers:
        print("no reference code to run; nothing written")
        return 0

    from longdeps.tasks import make_task

    baseline = make_task("copy", args.seq_len, "exprnn").baseline()["loss"]
    series: dict[str, list[float]] = {}
    for peer, checkout in peers:
        ours = PEERS[peer]["ours"][0].split("=")[1]
        for seed in args.seeds:
            series[f"{peer} code, seed {seed}"] = reference_losses(checkout, peer, args.seq_len, args.updates, seed,
                                                                   args.threads)
            series[f"longdeps {ours}, seed {seed}"] = our_losses(peer, args.seq_len, args.updates, seed)
            for override in extra_columns(peer, args.also):
                series[f"longdeps {ours} {override}, seed {seed}"] = our_losses(
                    peer, args.seq_len, args.updates, seed, (override,))
            print(f"{peer} seed {seed}: done", file=sys.stderr)
    text = (f"Copy task (exprnn layout), T = {args.seq_len}, batch 128: training loss / memoryless baseline "
            f"({baseline:.5f}), mean over each window of {args.window} updates.\n\n"
            f"{table(series, baseline, args.window)}\n")
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps({"seq_len": args.seq_len, "baseline": baseline,
                                                             "losses": series}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
