"""Bootstrap intervals over seeds for a suite's settings: success rate, updates to the target,
test metric, and (where measured) gradient alignment with BPTT.

Runs are grouped into settings as the report groups them (every field but the seed). For
each setting it resamples the seeds with replacement (``--resamples`` times, a fixed seed)
and reports the mean and a 95% percentile interval of: the fraction of runs that reached the
target, the updates to reach it counting a run that never did at the budget (``train.steps``:
a lower bound on its true figure, so the interval is one for a censored quantity), the test
metric, and the mean cosine with the BPTT gradient over each run's evaluations. Prints a
markdown table and stores JSON.

    python benchmarks/bootstrap.py dsf-adding --results RESULTS [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from longdeps.report import group_runs
from longdeps.reporting import bootstrap_interval
from longdeps.store import ResultStore

from figures import store_figures


def shown(figure: dict[str, float], fmt: str) -> str:
    return f"{fmt.format(figure['mean'])} [{fmt.format(figure['low'])}, {fmt.format(figure['high'])}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--results", default="longdeps-results")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--out", help="JSON file (default: RESULTS/reports/SUITE/bootstrap.json)")
    args = parser.parse_args()

    store = ResultStore(args.results)
    runs = [r for r in store.runs(suite=args.suite) if r["status"] == "finished"]
    rng = np.random.default_rng(0)
    rows = []
    print("| setting | runs | reached the target | updates to the target (unsolved at the budget) | test metric "
          "| cosine with BPTT |")
    print("|---|---|---|---|---|---|")
    for setting in group_runs(store, runs):
        budget = setting.config["train.steps"]
        solved = np.array([float(bool(r["solved"])) for r in setting.runs])
        updates = np.array([r["solved_step"] if r["solved"] else budget for r in setting.runs], dtype=float)
        test = np.array([r["test_metric"] for r in setting.runs], dtype=float)
        cosines = [statistics.fmean(e["alignment"]["cosine"] for e in evals if "alignment" in e)
                   for evals in setting.evals if any("alignment" in e for e in evals)]
        row = {"setting": setting.label, "runs": len(setting.runs), "budget": budget,
               "solved": bootstrap_interval(solved, args.resamples, rng),
               "updates": bootstrap_interval(updates, args.resamples, rng),
               "test_metric": bootstrap_interval(test, args.resamples, rng)}
        if cosines:
            row["cosine"] = bootstrap_interval(np.array(cosines), args.resamples, rng)
        rows.append(row)
        print(f"| {setting.label} | {len(setting.runs)} | {shown(row['solved'], '{:.2f}')} "
              f"| {shown(row['updates'], '{:.0f}')} | {shown(row['test_metric'], '{:.3f}')} "
              f"| {shown(row['cosine'], '{:.2f}') if cosines else '–'} |")
    print("\nMean over seeds [95% bootstrap interval over seeds].")
    store_figures(args.out or Path(args.results) / "reports" / args.suite / "bootstrap.json", suite=args.suite,
                  resamples=args.resamples, rows=rows)


if __name__ == "__main__":
    main()
