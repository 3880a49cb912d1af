"""The cost-quality frontier of settings that differ in their gradient estimator.

Each setting (runs that differ only in the seed) is one point: its final
quality (the test metric at the best validation point) against the time of
one update, each the mean over seeds with a 95% bootstrap interval over seeds
(``reporting.bootstrap_interval``). A setting is on the Pareto front when no
other setting is at least as good on both axes and better on one
(``pareto_front``): the settings worth choosing at some cost.

The time of an update is, by default, each run's own training wall time over
its updates (``reporting.ms_per_update``). Cost files written by
``benchmarks/gradient_cost.py`` give it instead as the estimator measured
alone (``read_costs``, ``measured_ms``): a setting then takes the time of the
row with its task, cell, length, hidden size, batch and estimator options
(the amortised time where a feedback refresh is timed), and a setting that no
row names has no point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from longdeps.errors import LongdepsError  # noqa: E402
from longdeps.reporting import Setting, bootstrap_interval, ms_per_update  # noqa: E402

#: bootstrap resamplings of the seeds for each interval
RESAMPLES = 10_000
#: what every row of a cost file names: the setting it measured and its time (ms)
COST_FIELDS = {"task", "cell", "T", "hidden", "batch", "gradient", "ms"}


def pareto_front(costs: Sequence[float], qualities: Sequence[float], higher_is_better: bool) -> list[bool]:
    """Whether each point (``costs[i]``, ``qualities[i]``) is on the Pareto front.

    A lower cost is better; a higher quality is better when ``higher_is_better``, a lower one
    otherwise. A point is on the front unless another is at least as good on both axes and
    strictly better on one; two equal points are therefore both on it.
    """
    if len(costs) != len(qualities):
        raise ValueError(f"{len(costs)} costs for {len(qualities)} qualities")
    sign = 1.0 if higher_is_better else -1.0
    points = [(cost, sign * quality) for cost, quality in zip(costs, qualities)]

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    return [not any(dominates(other, point) for other in points) for point in points]


def read_costs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """The rows of the JSON files that ``benchmarks/gradient_cost.py`` wrote, each with its file's
    ``source`` (path, device, threads, note); refused in one line where a file is missing or is not one."""
    rows = []
    for path in paths:
        try:
            record = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise LongdepsError(f"cannot read cost file {str(path)!r}: {err}") from None
        found = record.get("rows") if isinstance(record, dict) else None
        if not isinstance(found, list) or not all(isinstance(r, dict) and COST_FIELDS <= set(r) for r in found):
            raise LongdepsError(f"{str(path)!r} is not a cost file of benchmarks/gradient_cost.py with rows that name "
                                "their estimator (write it again with this version)")
        source = {"path": str(path), "device": record.get("device"), "threads": record.get("threads"), "note": record.get("note")}
        rows += [{**row, "source": source} for row in found]
    return rows


def measured_ms(rows: list[dict[str, Any]], setting: Setting, estimator: dict[str, Any]) -> dict[str, Any] | None:
    """The row of ``rows`` (``read_costs``) that measured ``setting`` (its task, length as its runs
    resolved it, cell, hidden size and batch) with the ``estimator`` options (``gradient.*`` fields it
    reads and sets, ``name`` included); None where none did."""
    config = setting.config
    wanted = (config["task.name"], config["cell.name"], setting.runs[0]["seq_len"], config["cell.hidden_size"],
              config["train.batch_size"], estimator)
    return next((r for r in rows if (r["task"], r["cell"], r["T"], r["hidden"], r["batch"], r["gradient"]) == wanted), None)


@dataclass
class Point:
    """One setting on the frontier: its time per update (ms) and quality, each {mean, low, high}."""

    label: str
    ms: dict[str, float] | None  #: None: the cost files do not name it
    quality: dict[str, float]
    runs: int


def points(settings: list[Setting], estimators: list[dict[str, Any]], costs: list[dict[str, Any]] | None) -> list[Point]:
    """A point per setting, from its finished runs (``costs``: rows of ``read_costs``, else the runs' own times)."""
    rng = np.random.default_rng(0)
    found = []
    for setting, estimator in zip(settings, estimators):
        quality = bootstrap_interval(np.array([r["test_metric"] for r in setting.runs], dtype=float), RESAMPLES, rng)
        if costs is None:
            ms = bootstrap_interval(np.array([ms_per_update(r) for r in setting.runs], dtype=float), RESAMPLES, rng)
        else:
            row = measured_ms(costs, setting, estimator)
            ms = None if row is None else dict.fromkeys(("mean", "low", "high"), row.get("amortised_ms", row["ms"]))
        found.append(Point(setting.label, ms, quality, len(setting.runs)))
    return found


def _shown(figure: dict[str, float] | None, fmt: str, interval: bool) -> str:
    if figure is None:
        return "not in the cost files"
    text = fmt.format(figure["mean"])
    return f"{text} [{fmt.format(figure['low'])}, {fmt.format(figure['high'])}]" if interval else text


def frontier_section(settings: list[Setting], estimators: list[dict[str, Any]], metric: str, higher_is_better: bool,
                     heading: str, out: Path, slug: str, costs: list[dict[str, Any]] | None = None) -> list[str]:
    """Markdown lines of the frontier section, and its plot ``frontier{slug}.png`` written to ``out``.

    ``estimators``: each setting's estimator options (``measured_ms``); ``costs``: rows of
    ``read_costs``, else each update's time is the runs' own.
    """
    found = points(settings, estimators, costs)
    timed = [p for p in found if p.ms is not None]
    front = dict(zip((p.label for p in timed), pareto_front([p.ms["mean"] for p in timed],
                                                           [p.quality["mean"] for p in timed], higher_is_better)))
    better = "higher" if higher_is_better else "lower"
    image = f"frontier{slug}.png"
    if costs is None:
        source = "training wall time over updates of each run, mean over seeds [95% bootstrap interval over seeds]"
    else:
        files = sorted({f"{r['source']['path']} ({r['source']['device']}, {r['source']['threads']} threads"
                        + (f"; {r['source']['note']}" if r['source']['note'] else "") + ")" for r in costs})
        source = f"one step of the estimator alone (amortised refresh included), median of repeats in {'; '.join(files)}"
    lines = [f"{heading} Cost-quality frontier", "",
             f"Test {metric} ({better} is better) against the time of one update: {source}. Test {metric}: mean "
             "over seeds [95% bootstrap interval over seeds]. On the front: no other setting is at least as good on "
             "both and better on one.", "",
             f"| setting | runs | ms per update | test {metric} | on the front |", "|---|---|---|---|---|"]
    for p in sorted(found, key=lambda p: (p.ms is None, p.ms["mean"] if p.ms else 0.0)):
        on = "–" if p.ms is None else ("yes" if front[p.label] else "no")
        lines.append(f"| {p.label} | {p.runs} | {_shown(p.ms, '{:.1f}', costs is None)} "
                     f"| {_shown(p.quality, '{:.4g}', True)} | {on} |")
    if timed:
        plot_frontier(timed, [front[p.label] for p in timed], metric, higher_is_better,
                      "time per update (ms; " + ("runs' wall time / updates" if costs is None else "estimator alone") + ")",
                      out / image)
        lines += ["", f"![cost-quality frontier]({image})"]
    return lines + [""]


def plot_frontier(found: list[Point], on_front: list[bool], metric: str, higher_is_better: bool, xlabel: str,
                  path: Path) -> None:
    """Quality against time per update, each point with its intervals, the front drawn as a staircase."""
    fig, ax = plt.subplots(figsize=(11, 5))
    colors = plt.get_cmap("tab20" if len(found) > 10 else "tab10").colors
    for p, front, color in zip(found, on_front, colors * (1 + len(found) // len(colors))):
        ax.errorbar(p.ms["mean"], p.quality["mean"],
                    xerr=[[p.ms["mean"] - p.ms["low"]], [p.ms["high"] - p.ms["mean"]]],
                    yerr=[[p.quality["mean"] - p.quality["low"]], [p.quality["high"] - p.quality["mean"]]],
                    fmt="o", color=color, markersize=9 if front else 6, markeredgecolor="black" if front else color,
                    capsize=3, label=f"{p.label} (n={p.runs})" + (" *" if front else ""))
    best = sorted((p.ms["mean"], p.quality["mean"]) for p, front in zip(found, on_front) if front)
    ax.plot([c for c, _ in best], [q for _, q in best], color="black", linewidth=1, drawstyle="steps-post",
            label="Pareto front (* on it)")
    if max(p.ms["mean"] for p in found) > 10 * min(p.ms["mean"] for p in found):
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=f"test {metric} ({'higher' if higher_is_better else 'lower'} is better)",
           title=f"Test {metric} against time per update (mean, 95% bootstrap interval over seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
