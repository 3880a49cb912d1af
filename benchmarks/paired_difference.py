"""Paired differences between the values of one config field, seed by seed, from a suite's runs.

Runs whose configs agree on everything but ``--field`` and the seed form a
group; in each group, every value of the field is compared with the
``--baseline`` value on the seeds both have finished. For each figure (test
metric, best validation metric, test loss) it prints the mean and standard
deviation over seeds of the difference (other - baseline) and of the
relative difference (other / baseline - 1) as a markdown table, and stores
the per-seed values as JSON.

    python benchmarks/paired_difference.py sgr --field sampler.name --baseline uniform
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from longdeps.store import ResultStore

FIGURES = ("test_metric", "best_val_metric", "test_loss")


def spread(values: list[float], fmt: str) -> str:
    if len(values) < 2:
        return fmt.format(values[0]) if values else "–"
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.replace('+', '').format(statistics.stdev(values))}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("--field", required=True, help="dotted config field, e.g. sampler.name")
    parser.add_argument("--baseline", required=True, help="the field's value the others are compared with")
    parser.add_argument("--results", default="longdeps-results")
    parser.add_argument("--out", help="JSON file (default: RESULTS/reports/SUITE/paired_difference.json)")
    args = parser.parse_args()
    section, name = args.field.split(".", 1)

    groups: dict[str, dict[str, dict[int, dict]]] = {}
    for run in ResultStore(args.results).runs(suite=args.suite):
        if run["status"] != "finished":
            continue
        config = json.loads(run["config"])
        value, seed = str(config[section].pop(name)), config["train"].pop("seed")
        groups.setdefault(json.dumps(config, sort_keys=True), {}).setdefault(value, {})[seed] = run
    varying = sorted({f"{s}.{k}" for key in groups for s, values in json.loads(key).items() for k, v in values.items()
                      if len({json.dumps(json.loads(other)[s][k]) for other in groups}) > 1})

    rows = []
    print(f"| group | {args.field} | seeds | " + " | ".join(f"Δ {f} | Δ {f} relative" for f in FIGURES) + " |")
    print("|---|---|---|" + "---|---|" * len(FIGURES))
    for key, by_value in groups.items():
        config = json.loads(key)
        label = ", ".join(f"{f}={config[f.split('.')[0]][f.split('.', 1)[1]]}" for f in varying) or "all"
        base = by_value.get(args.baseline, {})
        for value, runs in sorted(by_value.items()):
            if value == args.baseline:
                continue
            seeds = sorted(set(runs) & set(base))
            row = {"group": label, "value": value, "seeds": seeds}
            cells = []
            for figure in FIGURES:
                ours, theirs = [runs[s][figure] for s in seeds], [base[s][figure] for s in seeds]
                row[figure] = {"value": ours, "baseline": theirs}
                cells.append(spread([a - b for a, b in zip(ours, theirs)], "{:+.4f}"))
                cells.append(spread([a / b - 1 for a, b in zip(ours, theirs) if b], "{:+.1%}"))
            rows.append(row)
            print(f"| {label} | {value} vs {args.baseline} | {len(seeds)} | " + " | ".join(cells) + " |")
    out = Path(args.out or Path(args.results) / "reports" / args.suite / "paired_difference.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"suite": args.suite, "field": args.field, "baseline": args.baseline, "rows": rows}, indent=2) + "\n")
    print(f"\nstored in {out}")


if __name__ == "__main__":
    main()
