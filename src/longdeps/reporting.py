"""What a component adds to a report (``longdeps.report``).

A report groups its runs into settings (``Setting``: the runs whose configs
differ only in the seed). A gradient estimator, sampler or continuation adds
a section of its own, from what its ``statistics()`` put in the evaluation
records, through the hook ``ReportSection.report_section`` that each of them
inherits (by default it adds nothing): the report looks up, in the
registries, the component that each setting names, and calls the hook of
every component once, with the settings that use it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Setting:
    """Runs that share every setting but the seed."""

    label: str
    config: dict[str, Any]  #: dotted field name -> value, the seed left out
    runs: list[dict[str, Any]]  #: their rows in the store
    evals: list[list[dict[str, Any]]]  #: each run's evaluation records, in update order


def mean_std(values: list[float | None], fmt: str = "{:.3g}") -> str:
    """``mean ± standard deviation`` of the values that are not None (one value alone; "–" for none)."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(statistics.stdev(values))}"


def bootstrap_interval(values: np.ndarray, resamples: int, rng: np.random.Generator) -> dict[str, float]:
    """Mean of ``values`` (one per seed) and a 95% bootstrap interval over seeds: the 2.5% and 97.5%
    percentiles of the means of ``resamples`` resamplings with replacement, drawn with ``rng``."""
    means = values[rng.integers(len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high)}


def ms_per_update(run: dict[str, Any]) -> float | None:
    """Milliseconds of training wall time per update of a run (its row in the store); None before
    its first update."""
    return 1000 * run["wall_time"] / run["steps_done"] if run["steps_done"] else None


class ReportSection:
    """The report hook of a component (a base of every sampler, estimator and continuation)."""

    @classmethod
    def report_section(cls, settings: list[Setting], heading: str, out: Path, slug: str) -> list[str]:
        """Markdown lines of this component's section in a report of ``settings`` (those that use
        it), titled at the markdown level ``heading`` (``##``), with any plot the lines cite
        written to folder ``out`` under a file name ending in ``slug``; none by default."""
        return []
