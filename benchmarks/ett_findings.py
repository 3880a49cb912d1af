"""The ETT suite's table: test MSE and MAE of each cell at each horizon, with 95% bootstrap intervals
over seeds, beside the memoryless baselines, the least-squares linear map and the published figures.

Reads the finished runs of suite ``ett`` from a results root; a cell and horizon with no finished run
is left out (the table says how many runs each row has). Prints a markdown table and stores JSON.

    python benchmarks/ett_findings.py --results RESULTS [--data-dir DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np

from longdeps.reporting import bootstrap_interval
from longdeps.store import ResultStore
from longdeps.tasks import make_task
from longdeps.tasks.forecasting import linear_forecast_baseline

from figures import store_figures

#: multivariate test MSE / MAE at look-back 96 (iTransformer, ICLR 2024, Table 10)
PUBLISHED = {96: {"DLinear": (0.386, 0.400), "PatchTST": (0.414, 0.419), "iTransformer": (0.386, 0.405),
                  "TimesNet": (0.384, 0.402)}}


def interval(values: list[float], seed: int = 0) -> dict[str, float]:
    return bootstrap_interval(np.asarray(values), 10_000, np.random.default_rng(seed))


def shown(figure: dict[str, float]) -> str:
    return f"{figure['mean']:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="longdeps-results")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default="docs/results/ett/findings.json")
    args = parser.parse_args()

    store = ResultStore(args.results, create=False)
    by_setting: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in store.runs(suite="ett", status="finished"):
        folder = store.run_dir(row["run_id"])
        config = json.loads((folder / "config.json").read_text())
        result = json.loads((folder / "result.json").read_text())
        by_setting[config["cell"]["name"], result["horizon"]].append(result)

    rows = []
    print("| horizon | model | runs | test MSE [95% CI] | test MAE [95% CI] |")
    print("|---|---|---|---|---|")
    for horizon in sorted({h for _, h in by_setting}):
        task = make_task("ett:ETTh1", 96, horizon=horizon, data_dir=args.data_dir)
        linear = linear_forecast_baseline(task)
        results = [r for (_, h), rs in by_setting.items() if h == horizon for r in rs]
        baseline = results[0]["baseline"]
        for cell in sorted(c for c, h in by_setting if h == horizon):
            runs = by_setting[cell, horizon]
            mse, mae = interval([r["test"]["mse"] for r in runs]), interval([r["test"]["mae"] for r in runs])
            rows.append({"horizon": horizon, "model": cell, "runs": len(runs), "mse": mse, "mae": mae})
            print(f"| {horizon} | {cell} | {len(runs)} | {shown(mse)} | {shown(mae)} |")
        reference = {"linear map, least squares (longdeps)": (linear["mse"], linear["mae"]),
                     "training mean (memoryless)": (baseline["mse"], baseline["mae"]),
                     "last value repeated (memoryless)": (baseline["last_value_mse"], baseline["last_value_mae"]),
                     **{f"{name} (published)": figures for name, figures in PUBLISHED.get(horizon, {}).items()}}
        for name, (mse, mae) in reference.items():
            rows.append({"horizon": horizon, "model": name, "mse": mse, "mae": mae})
            print(f"| {horizon} | {name} | – | {mse:.3f} | {mae:.3f} |")
    store_figures(args.out, suite="ett", rows=rows)


if __name__ == "__main__":
    main()
