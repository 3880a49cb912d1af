"""Tables and plots from the store.

Runs are grouped into *settings*: runs whose configs differ only in the seed.
``write_report`` writes ``report.md`` (one table row per setting, mean and
standard deviation over seeds; the published figures a suite declares,
beside ours; the failed runs and their errors) and, next to it, the PNG
plots it cites:

- ``learning_curves.png``: validation metric and loss against updates, the
  mean over seeds with a min-max band (a run stopped early when solved keeps
  its last value), with the memoryless baseline and the task's target where
  they bound that metric or the loss; the metric against training wall time,
  and, where the runs log one, each smoothing level of their continuation
  (e.g. diffusion's sigma) against updates;
- ``gradient_profile.png``: ``||dL/dh_t||`` against the time step ``t`` at
  the first and the last evaluation, the mean over seeds, on a log scale
  (values below ``PROFILE_FLOOR`` drawn at it, and the plot says so): how
  much error signal from the loss reaches each step;
- ``alignment.png`` (runs that measure it, ``train.alignment_every``): the
  cosine between the estimator's gradient and exact BPTT's, for all cell
  parameters and for the recurrent weights, and their norm ratio, against
  updates (mean over seeds, min-max band);
- ``frontier.png`` (settings that differ in their gradient estimator): the
  cost-quality frontier, test metric against time per update with the Pareto
  front (``longdeps.frontier``; the time from the runs, or from cost files
  of ``benchmarks/gradient_cost.py``);
- the sections that the runs' estimators, samplers and continuations add,
  with their plots (``longdeps.reporting``; e.g. sgr's refreshes,
  ``sampler_refreshes.png``).
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from longdeps.config import EXECUTION_FIELDS  # noqa: E402
from longdeps.errors import LongdepsError  # noqa: E402
from longdeps.frontier import frontier_section, read_costs  # noqa: E402
from longdeps.registry import REGISTRIES, options_of, registry_of  # noqa: E402
from longdeps.reporting import Setting, mean_std, ms_per_update  # noqa: E402
from longdeps.store import ResultStore, atomic_write_text  # noqa: E402

#: what a suite's ``paper`` entries may compare -> (column label, our value for one finished run, or None)
PAPER_METRICS: dict[str, tuple[str, Callable[[dict[str, Any]], float | None]]] = {
    "test_metric": ("test {metric}", lambda r: r["test_metric"]),
    "best_val_metric": ("best validation {metric}", lambda r: r["best_val_metric"]),
    "test_loss": ("test loss", lambda r: r["test_loss"]),
    "solved": ("fraction of runs solved", lambda r: float(bool(r["solved"]))),
    "solved_step": ("updates to solve (solved runs)", lambda r: r["solved_step"] if r["solved"] else None),
    "examples_to_solve": ("training examples to solve (solved runs)",
                          lambda r: r["solved_step"] * json.loads(r["config"])["train"]["batch_size"] if r["solved"] else None),
    "epochs_to_solve": ("epochs to solve (solved runs)", lambda r: _epochs(r, r["solved_step"]) if r["solved"] else None),
}


#: fields that define a run, named under the table when they are the same for every setting
DEFINING = ("cell.name", "cell.hidden_size", "gradient.name", "gradient.truncation", "gradient.clip_norm",
            "sampler.name", "continuation.name", "optimizer.name", "optimizer.lr", "train.steps", "train.batch_size")

#: the smallest ``||dL/dh_t||`` a gradient profile draws (a log scale has no 0)
PROFILE_FLOOR = 1e-30


def epochs(config: dict[str, Any], updates: float) -> float | None:
    """Passes over the finite training set in ``updates`` updates of a run with ``config`` (its
    ``to_dict()``); None for generated tasks."""
    size = config["task"]["train_size"]
    return updates * config["train"]["batch_size"] / size if size else None


def _epochs(run: dict[str, Any], step: int) -> float | None:
    """``epochs`` of a store row ``run``."""
    return epochs(json.loads(run["config"]), step)


def _without_seed(config: dict[str, Any]) -> dict[str, Any]:
    """A recorded ``config`` less the seed and the ``EXECUTION_FIELDS`` (how a run computed, which
    records of earlier versions may hold at their defaults): what a setting shares."""
    left_out = {("train", "seed"), *((section, name) for section, names in EXECUTION_FIELDS.items() for name in names)}
    return {section: {k: v for k, v in values.items() if (section, k) not in left_out}
            for section, values in config.items()}


def _short(field: str) -> str:
    """``cell.name`` -> ``cell``, ``cell.hidden_size`` -> ``hidden_size``, others as they are."""
    section, key = field.split(".", 1)
    if key == "name":
        return section
    return key if section in ("cell", "task") else field


def differing_fields(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted fields whose values are not the same in every one of ``configs`` (flat dicts; a field
    that some of them lack, such as a component's option its section does not declare, as None)."""
    fields = dict.fromkeys(f for c in configs for f in c)
    return [f for f in fields if len({json.dumps(c.get(f)) for c in configs}) > 1]


def group_runs(store: ResultStore, runs: list[dict[str, Any]]) -> list[Setting]:
    """Group ``runs`` by config minus seed.

    A label names the fewest differing fields (``*.name`` fields first, then those whose values are
    words, such as ``sampler.rule``, then the rest) that tell the groups apart, e.g. ``cell=asrnn``
    when each cell comes with its own hidden size and learning rate; ``Setting.config`` keeps every field.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        key = json.dumps(_without_seed(json.loads(run["config"])), sort_keys=True)
        groups.setdefault(key, []).append(run)
    flat = {key: {f"{s}.{k}": v for s, values in json.loads(key).items() for k, v in values.items()} for key in groups}
    read = {key: {f: v for f, v in config.items() if _read(config, f)} for key, config in flat.items()}
    varying = differing_fields(list(read.values()))

    def words(f: str) -> bool:
        return all(isinstance(c.get(f), (str, type(None))) for c in read.values())

    fields: list[str] = []
    for f in sorted(varying, key=lambda f: (not f.endswith(".name"), not words(f))):
        distinct = len({json.dumps([c.get(g) for g in fields]) for c in read.values()})
        if len({json.dumps([c.get(g) for g in fields + [f]]) for c in read.values()}) > distinct:
            fields.append(f)
    return [Setting(", ".join(f"{_short(f)}={read[key][f]}" for f in fields or ["cell.name"] if f in read[key]),
                    flat[key], members, [store.evals(r["run_id"]) for r in members])
            for key, members in groups.items()]


def _component(config: dict[str, Any], section: str) -> type | None:
    """The component class that section ``section`` of the flat ``config`` names; None where that
    name is no longer registered."""
    return registry_of(section).get(config.get(f"{section}.name"))


def _read(config: dict[str, Any], field: str) -> bool:
    """Whether the run with the flat ``config`` reads ``field``: not where it is an option of a
    component other than the one its section names (``sampler.rule`` of a uniform sampler)."""
    section, key = field.split(".", 1)
    if section not in REGISTRIES or key == "name":
        return True
    chosen = _component(config, section)
    return chosen is None or key in options_of(chosen) or key in registry_of(section).shared


def setting_details(settings: list[Setting]) -> list[str]:
    """Markdown bullets with the differing fields that the labels leave out, unset ones (None) and
    those the setting does not read omitted; none when the labels say it all."""
    varying = differing_fields([s.config for s in settings])
    lines = []
    for s in settings:
        rest = [f"{_short(f)}={s.config[f]}" for f in varying
                if s.config.get(f) is not None and _read(s.config, f)
                and f"{_short(f)}={s.config[f]}" not in s.label.split(", ")]
        if rest:
            lines.append(f"- {s.label}: {', '.join(rest)}")
    return ["Settings in full (the fields that differ):", "", *lines, ""] if lines else []


def shared_fields(settings: list[Setting]) -> list[str]:
    """A markdown line with the defining fields (``DEFINING``) that every setting shares, unset ones omitted."""
    shared = [f"{_short(f)}={settings[0].config[f]}" for f in DEFINING
              if f in settings[0].config and settings[0].config[f] is not None
              and len({json.dumps(s.config.get(f)) for s in settings}) == 1]
    return [f"Every setting: {', '.join(shared)}.", ""] if shared else []


def _curve(settings_evals: list[list[dict[str, Any]]], key) -> tuple[np.ndarray, np.ndarray]:
    """Steps and a (runs, steps) array of ``key(record)``, carrying each run's last value forward."""
    steps = sorted({r["step"] for evals in settings_evals for r in evals})
    rows = []
    for evals in settings_evals:
        by_step = {r["step"]: key(r) for r in evals}
        last, row = np.nan, []
        for s in steps:
            last = by_step.get(s, last)
            row.append(last)
        rows.append(row)
    return np.array(steps), np.array(rows, dtype=float)


def smoothing_keys(settings: list[Setting]) -> list[str]:
    """The smoothing values the runs' evaluations log (``record["smoothing"]``)."""
    return sorted({k for s in settings for evals in s.evals for r in evals for k in r.get("smoothing", {})})


def reference_lines(ax, baseline: float | None, target: float | None) -> None:
    """The memoryless baseline (dashed) and the target (dotted) as horizontal lines, where known."""
    for value, style, label in ((baseline, "--", "memoryless baseline"), (target, ":", "target (solved)")):
        if value is not None:
            ax.axhline(value, linestyle=style, color="0.4", linewidth=1, label=label)


def plot_learning_curves(settings: list[Setting], metric: str, path: Path, baseline: dict[str, float],
                         target: dict[str, float]) -> None:
    """Validation metric and loss against updates (with the task's ``baseline`` and ``target``
    metrics, ``Task.describe``), the metric against training wall time, and the logged smoothing
    values against updates. A run with one evaluation is drawn as points."""
    keys = smoothing_keys(settings)
    fig, axes = plt.subplots(1, 4 if keys else 3, figsize=(21 if keys else 16, 4))
    ax_metric, ax_loss, ax_time = axes[:3]
    for setting in settings:
        steps, values = _curve(setting.evals, lambda r: r["val_metric"])
        if not len(steps):
            continue
        label = f"{setting.label} (n={len(setting.runs)})"
        marker = "o" if len(steps) == 1 else None
        line, = ax_metric.plot(steps, np.nanmean(values, axis=0), marker=marker, label=label)
        ax_metric.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=line.get_color(), alpha=0.2)
        _, losses = _curve(setting.evals, lambda r: r["val"]["loss"])
        ax_loss.plot(steps, np.nanmean(losses, axis=0), marker=marker, color=line.get_color())
        ax_loss.fill_between(steps, np.nanmin(losses, axis=0), np.nanmax(losses, axis=0), color=line.get_color(), alpha=0.2)
        _, seconds = _curve(setting.evals, lambda r: r["wall_time"])
        ax_time.plot(np.nanmean(seconds, axis=0), np.nanmean(values, axis=0), marker=marker, color=line.get_color())
        for key, style in zip(keys, ("-", "--", ":", "-.")):
            _, level = _curve(setting.evals, lambda r: r.get("smoothing", {}).get(key, np.nan))
            logged = ~np.isnan(level).all(axis=0)  # widths are logged only while sigma > 0
            if not logged.any():
                continue
            axes[3].step(steps[logged], np.nanmean(level[:, logged], axis=0), style, where="post",
                         color=line.get_color(), label=key)
    reference_lines(ax_metric, baseline.get(metric), target.get(metric))
    # a target on the MSE bounds the loss of a task whose loss is the MSE
    mse_is_loss = "mse" in baseline and baseline.get("mse") == baseline.get("loss")
    reference_lines(ax_loss, baseline.get("loss"), target.get("loss", target.get("mse") if mse_is_loss else None))
    ax_metric.set(xlabel="updates", ylabel=f"validation {metric}", title=f"validation {metric} (mean, min-max band)")
    ax_loss.set(xlabel="updates", ylabel="validation loss", yscale="log", title="validation loss")
    if ax_loss.get_legend_handles_labels()[0]:
        ax_loss.legend(fontsize=8)
    ax_time.set(xlabel="training wall time (s, mean over seeds)", ylabel=f"validation {metric}",
                title=f"validation {metric} against wall time")
    ax_metric.legend(fontsize=8)
    if keys:
        axes[3].set(xlabel="updates", ylabel=", ".join(keys), title="smoothing level at each evaluation (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gradient_profiles(settings: list[Setting], path: Path) -> bool:
    """``||dL/dh_t||`` against ``t`` at the first and last evaluation; returns whether a value
    below ``PROFILE_FLOOR`` was drawn at it."""
    fig, ax = plt.subplots(figsize=(12, 5))
    clamped = False
    colors = plt.get_cmap("tab20" if len(settings) > 10 else "tab10").colors
    for setting, color in zip(settings, colors * (1 + len(settings) // len(colors))):
        for which, style in ((0, "--"), (-1, "-")):
            profiles = [evals[which]["grad_profile"] for evals in setting.evals if evals]
            if not profiles:
                continue
            length = min(len(p) for p in profiles)
            mean = np.mean([p[-length:] for p in profiles], axis=0)
            steps = sorted({evals[which]["step"] for evals in setting.evals if evals})
            when = f"update {steps[0]}" if len(steps) == 1 else f"updates {steps[0]}-{steps[-1]}"
            clamped = clamped or bool((mean < PROFILE_FLOOR).any())
            ax.plot(np.arange(1, length + 1), np.maximum(mean, PROFILE_FLOOR), style, color=color,
                    label=f"{setting.label} @ {'first' if which == 0 else 'last'} eval ({when})")
    ax.set(xlabel="time step t", ylabel="||dL/dh_t|| (mean over probe examples)", yscale="log",
           title="Error signal reaching each time step" + (f" (values below {PROFILE_FLOOR:g} drawn at {PROFILE_FLOOR:g})"
                                                           if clamped else ""))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return clamped


def _alignments(setting: Setting, key: str) -> list[list[float]]:
    """Per run of ``setting``, its ``alignment[key]`` figures in order (runs without any left out)."""
    runs = [[r["alignment"][key] for r in evals if "alignment" in r] for evals in setting.evals]
    return [values for values in runs if values]


def alignment_table(settings: list[Setting], heading: str, image: str) -> list[str]:
    """Markdown lines: how well each setting's gradient points along the exact one, and the plot
    ``image``; none when no run measured it."""
    lines = [f"{heading} Gradient alignment with exact BPTT", "",
             "| setting | cosine, first | cosine, last | cosine, mean over training | recurrent weights, mean "
             "| norm / exact norm, mean |", "|---|---|---|---|---|---|"]
    for s in settings:
        cosines = _alignments(s, "cosine")
        if not cosines:
            continue
        mean_of = lambda key: mean_std([statistics.fmean(v) for v in _alignments(s, key)], "{:.2f}")  # noqa: E731
        lines.append(f"| {s.label} | {mean_std([v[0] for v in cosines], '{:.2f}')} | {mean_std([v[-1] for v in cosines], '{:.2f}')} "
                     f"| {mean_of('cosine')} | {mean_of('cosine_recurrent')} | {mean_of('norm_ratio')} |")
    note = ("Cosine between the estimator's gradient of the cell parameters and the exact (BPTT) gradient on one "
            "fixed training batch, at the evaluations; mean ± standard deviation over seeds.")
    return lines + ["", note, "", f"![gradient alignment]({image})", ""] if len(lines) > 4 else []


def plot_alignment(settings: list[Setting], path: Path) -> None:
    """Cosine with the exact gradient (all cell parameters, recurrent weights) and the norm ratio
    against updates, mean over seeds with a min-max band."""
    panels = (("cosine", "cosine, all cell parameters"), ("cosine_recurrent", "cosine, recurrent weights"),
              ("norm_ratio", "||estimate|| / ||exact||"))
    fig, axes = plt.subplots(1, 3, figsize=(18, 4))
    for setting in settings:
        color = None
        for ax, (key, _) in zip(axes, panels):
            steps, values = _curve(setting.evals, lambda r: r["alignment"][key] if "alignment" in r else np.nan)
            if not len(steps) or np.isnan(values).all():
                break
            keep = ~np.isnan(values).all(axis=0)
            line, = ax.plot(steps[keep], np.nanmean(values[:, keep], axis=0), color=color,
                            label=f"{setting.label} (n={len(setting.runs)})")
            color = line.get_color()
            ax.fill_between(steps[keep], np.nanmin(values[:, keep], axis=0), np.nanmax(values[:, keep], axis=0),
                            color=color, alpha=0.2)
    for ax, (key, title) in zip(axes, panels):
        ax.set(xlabel="updates", ylabel=title, title=title + " (against exact BPTT)")
        if key == "norm_ratio":
            ax.set_yscale("log")
        else:
            ax.axhline(0, color="grey", linewidth=0.5)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def component_sections(settings: list[Setting], heading: str, out: Path, slug: str) -> list[str]:
    """The sections that the settings' estimators, samplers and continuations add
    (``ReportSection.report_section``, plots written to ``out``): each component's once, with
    the settings that use it; a name no longer registered adds none."""
    lines = []
    for section in ("gradient", "sampler", "continuation"):
        users: dict[type, list[Setting]] = {}
        for setting in settings:
            component = _component(setting.config, section)
            if component is not None:
                users.setdefault(component, []).append(setting)
        for component, chosen in users.items():
            lines += component.report_section(chosen, heading, out, slug)
    return lines


def time_to_target(settings: list[Setting], heading: str = "##") -> list[str]:
    """Markdown lines: per setting, the updates, epochs and training wall time to the first
    evaluation that met the task's target (solved runs), and the cost of an update."""
    lines = [f"{heading} Time to target", "",
             "| setting | solved | updates | epochs | wall time to target (s) | ms per update |", "|---|---|---|---|---|---|"]
    for s in settings:
        firsts = [(run, next((r for r in evals if r["solved"]), None)) for run, evals in zip(s.runs, s.evals)]
        solved = [(run, first) for run, first in firsts if first is not None]
        per_update = [ms_per_update(run) for run in s.runs]
        lines.append(f"| {s.label} | {len(solved)}/{len(s.runs)} | {mean_std([f['step'] for _, f in solved], '{:.0f}')} "
                     f"| {mean_std([_epochs(run, f['step']) for run, f in solved], '{:.1f}')} "
                     f"| {mean_std([f['wall_time'] for _, f in solved], '{:.1f}')} | {mean_std(per_update, '{:.1f}')} |")
    return lines + ["", "Mean ± standard deviation over the solved runs (cost per update: over all runs).", ""]


def estimator_options(setting: Setting) -> dict[str, Any]:
    """The ``gradient.*`` fields that the setting's estimator reads and that are set, ``name`` included
    (``{"name": "tbptt", "truncation": 4}``): what tells its estimator apart from another."""
    return {f.split(".", 1)[1]: v for f, v in setting.config.items()
            if f.startswith("gradient.") and v is not None and _read(setting.config, f)}


def varies_estimator(settings: list[Setting]) -> bool:
    """Whether the settings differ in their gradient estimator (its name or an option it reads)."""
    return len({json.dumps(estimator_options(s), sort_keys=True) for s in settings}) > 1


def paper_table(settings: list[Setting], paper: list[dict[str, Any]], metric: str, heading: str = "##") -> list[str]:
    """Markdown lines: each published figure beside ours, for every setting its ``setting`` fields match."""
    lines = [f"{heading} Published figures beside ours", "",
             "| setting | figure | paper | ours (mean ± std, n) | source |", "|---|---|---|---|---|"]
    for entry in paper:
        label, value = PAPER_METRICS[entry["metric"]]
        matching = [s for s in settings if all(s.config.get(k) == v for k, v in entry["setting"].items())]
        for setting in matching or [None]:
            if setting is None:
                where, ours = ", ".join(f"{k}={v}" for k, v in entry["setting"].items()), "no finished runs"
            else:
                values = [v for v in map(value, setting.runs) if v is not None]
                where, ours = setting.label, f"{mean_std(values)} (n={len(values)})"
            lines.append(f"| {where} | {label.format(metric=metric)} | {entry['value']} | {ours} | {entry['source']} |")
    return lines + [""]


def write_report(store: ResultStore, out: str | Path, suite: str | None = None, title: str | None = None,
                 description: str = "", paper: list[dict[str, Any]] | None = None,
                 costs: list[str | Path] | None = None) -> Path:
    """Write ``report.md`` and its plots under ``out``; returns the markdown path.

    Runs on different tasks (name, variant or length) get a section each.
    ``paper``: a suite's published figures (``Suite.paper`` entries), tabled beside ours.
    ``costs``: cost files of ``benchmarks/gradient_cost.py``, from which the cost-quality
    frontier takes the time of an update (``longdeps.frontier``; default: the runs' own).
    """
    cost_rows = read_costs(costs) if costs else None
    every = store.runs(suite=suite)
    runs = [r for r in every if r["status"] == "finished"]
    failed = [r for r in every if r["status"] == "failed"]
    if not runs:
        where = f"of suite {suite!r} " if suite else ""
        raise LongdepsError(f"no finished runs {where}in {str(store.root)!r} ({len(every)} runs {where}there, "
                            f"{len(failed)} failed); suites there: {', '.join(store.suites()) or 'none'}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    title = title or (f"Suite `{suite}`" if suite else "All runs")
    lines = [f"# {title}", ""]
    if description:
        lines += [description.strip(), ""]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_task.setdefault(f"{r['task']}/{r['variant']} T={r['seq_len']}", []).append(r)
    for task, task_runs in by_task.items():
        if len(by_task) > 1:
            lines += [f"## {task}", ""]
        slug = "" if len(by_task) == 1 else "-" + re.sub(r"[^A-Za-z0-9]+", "-", task).strip("-").lower()
        config = json.loads(task_runs[0]["config"])["task"]
        relevant = [e for e in paper or [] if all(config.get(k.split(".", 1)[1]) == v
                                                   for k, v in e["setting"].items() if k.startswith("task."))]
        lines += finished_section(store, task_runs, relevant, out, slug, cost_rows)
    if failed:
        lines += ["## Failed runs", ""] + [f"- `{r['run_id']}` ({r['cell']}, seed {r['seed']}): {r['error']}" for r in failed]
    atomic_write_text(out / "report.md", "\n".join(lines).rstrip() + "\n")
    return out / "report.md"


def finished_section(store: ResultStore, runs: list[dict[str, Any]], paper: list[dict[str, Any]], out: Path,
                     slug: str = "", costs: list[dict[str, Any]] | None = None) -> list[str]:
    """The comparison table, published figures and plots (written to ``out``, file names ending in
    ``slug``) of the finished ``runs`` of one task; where the settings differ in their estimator,
    the cost-quality frontier (``costs``: rows of ``frontier.read_costs``, else the runs' times)."""
    settings = group_runs(store, runs)
    metrics = sorted({r["metric"] for r in runs})
    metric = metrics[0] if len(metrics) == 1 else "metric"
    tasks = sorted({f"{r['task']}/{r['variant']} T={r['seq_len']}" for r in runs})
    results = [json.loads(path.read_text()) for r in runs if (path := store.run_dir(r["run_id"]) / "result.json").exists()]
    rules = sorted({result.get("solved_rule", "") for result in results})
    baseline, target = (results[0].get("baseline", {}), results[0].get("target", {})) if results else ({}, {})
    memoryless = baseline.get("loss")
    aligned = any(_alignments(s, "cosine") for s in settings)

    lines = [f"Task: {', '.join(tasks)}. Solved when: {'; '.join(r for r in rules if r) or 'n/a'}."
             + (f" Memoryless baseline loss: {memoryless:.4g} (the best a model that ignores its inputs can do)."
                if memoryless else ""), "",
             f"| setting | runs | solved | updates to solve | best val {metric} | test {metric} | test loss "
             + ("| test loss / memoryless " if memoryless else "") + ("| gradient cosine with BPTT " if aligned else "")
             + "| wall time per run (s) |",
             "|---|---|---|---|---|---|---|---|" + ("---|" if memoryless else "") + ("---|" if aligned else "")]
    for s in settings:
        solved = [r for r in s.runs if r["solved"]]
        ratio = f"| {mean_std([r['test_loss'] / memoryless for r in s.runs])} " if memoryless else ""
        cosine = f"| {mean_std([statistics.fmean(v) for v in _alignments(s, 'cosine')], '{:.2f}')} " if aligned else ""
        lines.append(
            f"| {s.label} | {len(s.runs)} | {len(solved)}/{len(s.runs)} | {mean_std([r['solved_step'] for r in solved], '{:.0f}')} "
            f"| {mean_std([r['best_val_metric'] for r in s.runs])} | {mean_std([r['test_metric'] for r in s.runs])} "
            f"| {mean_std([r['test_loss'] for r in s.runs])} {ratio}{cosine}| {mean_std([r['wall_time'] for r in s.runs], '{:.1f}')} |")
    lines += ["", "Mean ± standard deviation over seeds; test figures use each run's best-validation weights"
              + ("; gradient cosine: the mean over each run's evaluations (see below)." if aligned else "."), ""]
    heading = "###" if slug else "##"  # under the task's own heading when there are several
    lines += shared_fields(settings)
    lines += setting_details(settings)
    lines += time_to_target(settings, heading)
    task = _component(settings[0].config, "task")
    if varies_estimator(settings) and task is not None:
        lines += frontier_section(settings, [estimator_options(s) for s in settings], metric, task.higher_is_better,
                                  heading, out, slug, costs)
    if paper:
        lines += paper_table(settings, paper, metric, heading)
    curves, profile, alignment_plot = f"learning_curves{slug}.png", f"gradient_profile{slug}.png", f"alignment{slug}.png"
    alignment_lines = alignment_table(settings, heading, alignment_plot)
    lines += alignment_lines + component_sections(settings, heading, out, slug)
    plot_learning_curves(settings, metric, out / curves, baseline, target)
    clamped = plot_gradient_profiles(settings, out / profile)
    lines += [f"![learning curves]({curves})", "", f"![gradient profile]({profile})", ""]
    if clamped:
        lines += [f"Gradient norms below {PROFILE_FLOOR:g} are drawn at {PROFILE_FLOOR:g}.", ""]
    lines += ["Runs: " + ", ".join(f"`{r['run_id']}`" for r in runs), ""]
    if alignment_lines:
        plot_alignment(settings, out / alignment_plot)
    return lines
