"""Epochs and wall time to the task's target and to a looser one, per setting of a diffusion suite.

    python benchmarks/diffusion_findings.py [--results longdeps-results] [--suite diffusion]

Prints markdown tables for the suite's report. The looser targets are ours, for runs that
stop short of the strict one: validation accuracy >= 90% (temporal order) and validation
MSE <= half the memoryless baseline 1/6 (adding, cn2016). Runs stopped at the strict target
count as having met the looser one at or before it.
"""

from __future__ import annotations

import argparse
import json
import statistics

from longdeps.store import ResultStore

LOOSE = {"temporal-order": ("val accuracy >= 0.9", lambda r: r["val"]["accuracy"] >= 0.9),
         "adding": ("val MSE <= 1/12", lambda r: r["val"]["mse"] <= 1 / 12)}


def summary(values: list[float], fmt: str = "{:.1f}") -> str:
    """Mean ± standard deviation (and the range) of ``values``, or a dash."""
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    spread = f"{fmt.format(statistics.fmean(values))} ± {fmt.format(statistics.stdev(values))}"
    return f"{spread} [{fmt.format(min(values))}, {fmt.format(max(values))}]"


def first(evals: list[dict], met) -> dict | None:
    """The first evaluation record that ``met``, or None."""
    return next((r for r in evals if met(r)), None)


def setting(config: dict) -> tuple[str, int, str]:
    """(task, T, continuation with its sigma_0)."""
    c = config["continuation"]
    method = c["name"] if c["name"] == "none" else f"{c['name']} sigma0={c['sigma0']}"
    return config["task"]["name"], config["task"]["seq_len"], method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="longdeps-results")
    parser.add_argument("--suite", default="diffusion")
    args = parser.parse_args()
    store = ResultStore(args.results)
    groups: dict[tuple, list[tuple[dict, list[dict], dict]]] = {}
    for run in store.runs(suite=args.suite):
        if run["status"] == "finished":
            config = json.loads(run["config"])
            result = json.loads((store.run_dir(run["run_id"]) / "result.json").read_text())
            groups.setdefault(setting(config), []).append((config, store.evals(run["run_id"]), result))

    print("| task | T | continuation | target met | epochs to target | wall time to target (s) | looser target "
          "| met | epochs to it | wall time to it (s) | best val metric | test metric | ms per update |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (task, length, method), runs in sorted(groups.items()):
        rule, loose = LOOSE[task]
        row = [task, str(length), method]
        for met_rule in (lambda r: r["solved"], lambda r: r["solved"] or loose(r)):
            hits = [(c["train"]["batch_size"] / c["task"]["train_size"], first(evals, met_rule)) for c, evals, _ in runs]
            met = [(per_update, r) for per_update, r in hits if r is not None]
            if len(row) > 3:
                row.append(rule)
            row += [f"{len(met)}/{len(runs)}", summary([per_update * r["step"] for per_update, r in met]),
                    summary([r["wall_time"] for _, r in met])]
        if task == "adding":
            best = summary([min(r["val"]["mse"] for r in evals) for _, evals, _ in runs], "{:.3f}") + " (MSE)"
        else:
            best = summary([max(r["val_metric"] for r in evals) for _, evals, _ in runs], "{:.3f}")
        row += [best, summary([result["test_metric"] for _, _, result in runs], "{:.3f}"),
                summary([1000 * evals[-1]["wall_time"] / evals[-1]["step"] for _, evals, _ in runs])]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
