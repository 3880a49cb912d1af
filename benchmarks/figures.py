"""Where every benchmark script puts its figures: a JSON file that names the software and machine."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch


def store_figures(path: str | Path, **figures) -> None:
    """Write ``figures`` (settings and measured rows) to ``path`` as JSON, after the torch
    version, its thread count, the machine's architecture and its load average (runnable
    processes over the last 1, 5 and 15 minutes: above the core count, other work shared the
    cores); makes the folder and says where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
              "load_average": [round(load, 2) for load in os.getloadavg()], **figures}
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"stored in {out}")
