"""Paired comparisons of a suite's settings with a baseline, seed by seed, with bootstrap intervals.

``--field`` is a dotted config field (``sampler.name``) or a whole section (``sampler``,
``continuation``): runs whose configs agree on everything but it and the seed form a group,
and in each group every other value is compared with the ``--baseline`` value (a section is
matched by its ``name``) on the seeds both have finished. For each pair it reports, with 95%
percentile intervals from resampling the seeds jointly (a paired bootstrap, ``--resamples``
times, fixed seed):

- the fraction of runs that reached the target, for both, and the difference (other - baseline);
- updates to the target (in epochs too, for a fixed training set), as median and interquartile
  range, counting a run that never reached it at the budget (``train.steps``): censored, so a
  median at the budget means "not reached by half the runs";
- the ratio of the medians (other / baseline): below 1 means faster;
- the difference of the mean test metrics.

Prints a markdown table and stores the per-seed values and the figures as JSON.

    python benchmarks/paired_difference.py sgr --field sampler --baseline uniform
    python benchmarks/paired_difference.py diffusion --field continuation --baseline none
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from longdeps.report import epochs
from longdeps.store import ResultStore

from figures import store_figures


def describe(value: object, keys: list[str]) -> str:
    """A field's value as a label; a section as its name and its ``keys``, e.g. ``sgr rule=batch``."""
    if not isinstance(value, dict):
        return str(value)
    return " ".join([str(value.get("name", ""))] + [f"{k}={value[k]}" for k in keys if k != "name"])


def baseline_of(value: object) -> str:
    """What ``--baseline`` is matched against: a section's name, else the value itself."""
    return str(value["name"]) if isinstance(value, dict) else str(value)


def percentiles(statistic: np.ndarray) -> list[float]:
    return [float(v) for v in np.percentile(statistic, [2.5, 97.5])]


def compare(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray], resamples: int,
            rng: np.random.Generator) -> dict[str, object]:
    """Figures and paired-bootstrap intervals for two aligned per-seed arrays of each figure."""
    n = len(ours["solved"])
    draws = rng.integers(n, size=(resamples, n))
    medians = {side: np.median(values["updates"][draws], axis=1) for side, values in (("ours", ours), ("theirs", theirs))}
    return {
        "solved": float(ours["solved"].mean()), "solved_baseline": float(theirs["solved"].mean()),
        "solved_difference": float(ours["solved"].mean() - theirs["solved"].mean()),
        "solved_difference_interval": percentiles(ours["solved"][draws].mean(1) - theirs["solved"][draws].mean(1)),
        "updates_quartiles": [float(q) for q in np.percentile(ours["updates"], [25, 50, 75])],
        "updates_quartiles_baseline": [float(q) for q in np.percentile(theirs["updates"], [25, 50, 75])],
        "median_ratio": float(np.median(ours["updates"]) / np.median(theirs["updates"])),
        "median_ratio_interval": percentiles(medians["ours"] / medians["theirs"]),
        "test_difference": float(ours["test_metric"].mean() - theirs["test_metric"].mean()),
        "test_difference_interval": percentiles(ours["test_metric"][draws].mean(1) - theirs["test_metric"][draws].mean(1)),
    }


def per_seed(runs: list[dict]) -> dict[str, np.ndarray]:
    """The figures of runs (one per seed, in seed order) as arrays; unsolved runs at the budget."""
    configs = [json.loads(r["config"]) for r in runs]
    return {
        "solved": np.array([float(bool(r["solved"])) for r in runs]),
        "updates": np.array([r["solved_step"] if r["solved"] else c["train"]["steps"] for r, c in zip(runs, configs)], float),
        "test_metric": np.array([r["test_metric"] for r in runs], float),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--field", required=True, help="dotted config field (sampler.name) or a section (sampler)")
    parser.add_argument("--baseline", required=True, help="the value (a section: its name) the others are compared with")
    parser.add_argument("--results", default="longdeps-results")
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--out", help="JSON file (default: RESULTS/reports/SUITE/paired_difference.json)")
    args = parser.parse_args()
    section, _, name = args.field.partition(".")

    runs = [r for r in ResultStore(args.results).runs(suite=args.suite) if r["status"] == "finished"]
    values = []
    for run in runs:
        config = json.loads(run["config"])
        run["value"] = config.pop(section) if not name else config[section].pop(name)
        run["rest"], run["seed"] = config, config["train"].pop("seed")
        values.append(run["value"])
    # a section's value is labelled by the fields that vary over the suite
    keys = sorted({k for v in values if isinstance(v, dict) for k in v if len({json.dumps(w.get(k)) for w in values}) > 1})
    groups: dict[str, dict[str, dict[int, dict]]] = {}
    for run in runs:
        groups.setdefault(json.dumps(run["rest"], sort_keys=True), {}).setdefault(
            describe(run["value"], keys), {})[run["seed"]] = run
    varying = sorted({f"{s}.{k}" for key in groups for s, values in json.loads(key).items() for k, v in values.items()
                      if len({json.dumps(json.loads(other)[s][k]) for other in groups}) > 1})

    rng = np.random.default_rng(0)
    rows = []
    print(f"| group | {args.field} vs {args.baseline} | seeds | reached the target | difference | "
          "updates to the target, median [IQR] (censored at the budget) | ratio of medians | Δ test metric |")
    print("|---|---|---|---|---|---|---|---|")
    for key, by_value in groups.items():
        config = json.loads(key)
        label = ", ".join(f"{f}={config[f.split('.')[0]][f.split('.', 1)[1]]}" for f in varying) or "all"
        base = next((runs for runs in by_value.values() if baseline_of(next(iter(runs.values()))["value"]) == args.baseline), {})
        for value, runs in sorted(by_value.items()):
            if runs is base:
                continue
            seeds = sorted(set(runs) & set(base))
            if not seeds:
                continue
            ours, theirs = per_seed([runs[s] for s in seeds]), per_seed([base[s] for s in seeds])
            figures = compare(ours, theirs, args.resamples, rng)
            rows.append({"group": label, "value": value, "seeds": seeds, **figures,
                         "per_seed": {"value": {k: v.tolist() for k, v in ours.items()},
                                      "baseline": {k: v.tolist() for k, v in theirs.items()}}})
            q, qb = figures["updates_quartiles"], figures["updates_quartiles_baseline"]
            in_epochs = ""
            if epochs(config, 1):
                e, eb = figures["epochs_quartiles"], figures["epochs_quartiles_baseline"] = (
                    [epochs(config, u) for u in q], [epochs(config, u) for u in qb])
                in_epochs = f" ({e[1]:.0f} [{e[0]:.0f}, {e[2]:.0f}] vs {eb[1]:.0f} [{eb[0]:.0f}, {eb[2]:.0f}] epochs)"
            low, high = figures["solved_difference_interval"]
            rlow, rhigh = figures["median_ratio_interval"]
            tlow, thigh = figures["test_difference_interval"]
            print(f"| {label} | {value} | {len(seeds)} | {figures['solved']:.0%} vs {figures['solved_baseline']:.0%} "
                  f"| {figures['solved_difference']:+.0%} [{low:+.0%}, {high:+.0%}] "
                  f"| {q[1]:.0f} [{q[0]:.0f}, {q[2]:.0f}] vs {qb[1]:.0f} [{qb[0]:.0f}, {qb[2]:.0f}]{in_epochs} "
                  f"| {figures['median_ratio']:.2f} [{rlow:.2f}, {rhigh:.2f}] "
                  f"| {figures['test_difference']:+.4f} [{tlow:+.4f}, {thigh:+.4f}] |")
    print("\n95% intervals from a paired bootstrap over seeds.")
    store_figures(args.out or Path(args.results) / "reports" / args.suite / "paired_difference.json", suite=args.suite,
                  field=args.field, baseline=args.baseline, resamples=args.resamples, rows=rows)


if __name__ == "__main__":
    main()
