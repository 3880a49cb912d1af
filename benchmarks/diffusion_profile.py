"""What diffusion does to the gradient through time, with and without moment propagation.

For the diffusion suites' SRN (tanh, 64 units, PyTorch's default initialisation, seed 0) on
one batch of 200 temporal-order sequences (cn2016, T = 50), this takes the gradient profile
``||dL_i/dh_t||`` (mean over the batch, exact BPTT through the smoothed cell) at each
``sigma`` with ``continuation.propagate`` off and on, and the diffusion widths along the
sequence, in float64. It prints, per setting, the width at the first and last step and
``log10(||dL/dh_{T-1-k}|| / ||dL/dh_{T-1}||)`` for lags ``k`` in ``LAGS``: how much weaker the
signal is that reaches ``k`` steps back than the signal at the last step (long paths against
the shortest), and writes the figures as JSON and a plot::

    python benchmarks/diffusion_profile.py [--out docs/results/diffusion/propagation]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from longdeps.cells import make_cell
from longdeps.gradients.profile import hidden_gradient_norms
from longdeps.model import SequenceModel
from longdeps.tasks import make_task

SIGMAS = (0.0, 0.1, 0.3, 1.0, 3.0)
LAGS = (1, 5, 10, 25, 49)


def profile(sigma: float, propagate: bool, seq_len: int) -> dict:
    """Mean gradient norm per step and mean width per step of the seed-0 SRN at ``sigma``."""
    task = make_task("temporal-order", seq_len, "cn2016", val_size=10, test_size=10)
    batch = task.sample(200, torch.Generator().manual_seed(0))
    batch = dataclasses.replace(batch, x=batch.x.double())
    torch.manual_seed(0)
    model = SequenceModel(make_cell("srn", task.input_size, 64), task.output_size, task.readout).double()
    model.train()
    model.cell.set_smoothing(sigma, propagate)
    norms = hidden_gradient_norms(model, batch, task).mean(1)
    with torch.no_grad(), model.cell.recording_widths() as widths:
        model.cell(batch.x)
    width = [float(w.mean()) for w in widths] or [0.0] * seq_len
    decay = {k: float((norms[-1 - k] / norms[-1]).log10()) for k in LAGS if k < seq_len}
    return {"sigma": sigma, "propagate": propagate, "gradient_norm": norms.tolist(), "width": width,
            "log10_lag_over_last": decay}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    colours = plt.cm.viridis([i / (len(SIGMAS) - 1) for i in range(len(SIGMAS))])
    for row in rows:
        colour = colours[SIGMAS.index(row["sigma"])]
        style = "-" if row["propagate"] else "--"
        label = f"sigma={row['sigma']:g}{', propagated' if row['propagate'] else ''}"
        norms = torch.tensor(row["gradient_norm"], dtype=torch.float64)
        left.plot(range(len(norms)), (norms / norms[-1]).log10(), style, color=colour, label=label)
        if row["sigma"] > 0:
            right.plot(range(len(row["width"])), row["width"], style, color=colour, label=label)
    left.set(xlabel="step t", ylabel="log10 ||dL/dh_t|| / ||dL/dh_T||", title="gradient profile (mean over 200 sequences)")
    right.set(xlabel="step t", ylabel="mean width s", yscale="log", title="diffusion width along the sequence")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("docs/results/diffusion/propagation"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [profile(sigma, propagate, args.seq_len) for sigma in SIGMAS for propagate in (False, True)
            if sigma > 0 or not propagate]
    print("sigma  propagate  width first  width last  log10 ||dL/dh_T-1-k|| / ||dL/dh_T-1|| at k = "
          + ", ".join(map(str, LAGS)))
    for row in rows:
        print(f"{row['sigma']:5g}  {str(row['propagate']):9}  {row['width'][0]:11.3f}  {row['width'][-1]:10.3f}  "
              + "  ".join(f"{v:7.2f}" for v in row["log10_lag_over_last"].values()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile.json").write_text(json.dumps({"seq_len": args.seq_len, "rows": rows}, indent=1))
    plot(rows, args.out / "profile.png")
    print(f"wrote {args.out / 'profile.json'} and {args.out / 'profile.png'}")


if __name__ == "__main__":
    main()
