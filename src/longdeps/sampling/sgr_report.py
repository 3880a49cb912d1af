"""sgr's section of a report (``SGRSampler.report_section``): what its refreshes found.

A table per setting (the band, refreshes per run, the fraction of the pool in
the band and the median log10 rho at the first and the last refresh, the
refreshes that had to fill from outside the band) and
``sampler_refreshes.png``: the fraction of each refresh pool inside the band
and the quantiles of log10 rho against updates, the mean over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from longdeps.reporting import Setting, mean_std


def refreshes_of(setting: Setting) -> list[list[dict[str, Any]]]:
    """For each run of ``setting`` that records sampler refreshes, its refresh records in order."""
    runs = [[r for record in evals for r in record.get("sampler_refreshes", [])] for evals in setting.evals]
    return [refreshes for refreshes in runs if refreshes]


def refresh_section(settings: list[Setting], heading: str, out: Path, slug: str) -> list[str]:
    """Markdown lines: what the refreshes found, per setting that records them, and their plot
    (written to ``out``); none when no setting records refreshes."""
    image = f"sampler_refreshes{slug}.png"
    lines = [f"{heading} Sampler refreshes", "",
             "| setting | band (log10 rho) | refreshes per run | pool in band, first refresh | pool in band, last refresh "
             "| refreshes that filled | median log10 rho, first refresh | median log10 rho, last refresh |",
             "|---|---|---|---|---|---|---|---|"]
    for s in settings:
        runs = refreshes_of(s)
        if not runs:
            continue
        filled = sum(r["filled"] > 0 for refreshes in runs for r in refreshes)
        lines.append(
            f"| {s.label} | [{runs[0][0]['band'][0]}, {runs[0][0]['band'][1]}] | {mean_std([len(r) for r in runs], '{:.0f}')} "
            f"| {mean_std([r[0]['eligible_fraction'] for r in runs], '{:.2f}')} "
            f"| {mean_std([r[-1]['eligible_fraction'] for r in runs], '{:.2f}')} "
            f"| {filled}/{sum(map(len, runs))} | {mean_std([r[0]['log10_rho_quantiles']['q50'] for r in runs], '{:.2f}')} "
            f"| {mean_std([r[-1]['log10_rho_quantiles']['q50'] for r in runs], '{:.2f}')} |")
    if len(lines) == 4:
        return []
    plot_refreshes(settings, out / image)
    return lines + ["", f"![sampler refreshes]({image})", ""]


def plot_refreshes(settings: list[Setting], path: Path) -> None:
    """Fraction of the pool in the band, and log10 rho quantiles, against updates (mean over seeds)."""
    fig, (ax_fraction, ax_rho) = plt.subplots(1, 2, figsize=(13, 4))
    for setting in settings:
        runs = refreshes_of(setting)
        if not runs:
            continue
        length = min(map(len, runs))
        updates = [r["update"] for r in runs[0][:length]]
        fraction = np.mean([[r["eligible_fraction"] for r in refreshes[:length]] for refreshes in runs], axis=0)
        line, = ax_fraction.plot(updates, fraction, label=f"{setting.label} (n={len(runs)})")
        for key, style in (("q05", ":"), ("q50", "-"), ("q95", ":")):
            ax_rho.plot(updates, np.mean([[r["log10_rho_quantiles"][key] for r in refreshes[:length]] for refreshes in runs],
                                         axis=0), style, color=line.get_color())
        for bound in runs[0][0]["band"]:
            ax_rho.axhline(bound, color=line.get_color(), linewidth=0.5, alpha=0.5)
    ax_fraction.set(xlabel="updates", ylabel="fraction of the pool in the band", ylim=(0, 1.02),
                    title="Examples eligible at each refresh")
    ax_rho.set(xlabel="updates", ylabel="log10 rho", title="log10 rho: median (solid), 5% and 95% (dotted); band (thin)")
    ax_fraction.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
