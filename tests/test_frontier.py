"""The cost-quality frontier: the Pareto points of a hand-made set, the section and table a report
gives settings that differ in their estimator, and the time of an update taken from cost files."""

import json

import pytest

from longdeps import LongdepsError
from longdeps.config import RunConfig
from longdeps.frontier import frontier_section, measured_ms, pareto_front, read_costs
from longdeps.report import estimator_options, varies_estimator
from longdeps.reporting import Setting

#: (ms per update, quality): a hand-made set
POINTS = {
    "cheap": (50.0, 1.96),
    "cheap, worse": (50.0, 2.00),     # as cheap as "cheap", worse when lower is better
    "mid": (100.0, 1.85),
    "mid, same": (100.0, 1.85),       # equal to "mid": neither beats the other
    "dearer, worse": (150.0, 1.90),   # beaten by "mid" on both axes
    "best": (200.0, 1.84),
    "best, dearer": (300.0, 1.84),    # as good as "best", dearer
}


def front_of(points, higher_is_better):
    on = pareto_front([c for c, _ in points.values()], [q for _, q in points.values()], higher_is_better)
    return {label for label, front in zip(points, on) if front}


def test_pareto_front_when_lower_is_better():
    assert front_of(POINTS, higher_is_better=False) == {"cheap", "mid", "mid, same", "best"}


def test_pareto_front_when_higher_is_better():
    # the same set with the metric's direction reversed: the cheapest of the best quality wins now
    assert front_of(POINTS, higher_is_better=True) == {"cheap, worse"}
    success = {"bptt": (40.0, 0.78), "tbptt": (25.0, 0.42), "dsf": (33.0, 0.75), "dsf slow": (60.0, 0.75),
               "tie a": (33.0, 0.75)}
    assert front_of(success, higher_is_better=True) == {"bptt", "tbptt", "dsf", "tie a"}


def test_pareto_front_of_one_point_and_of_none():
    assert pareto_front([3.0], [0.5], True) == [True]
    assert pareto_front([], [], False) == []
    with pytest.raises(ValueError):
        pareto_front([1.0, 2.0], [1.0], True)


def flat(*overrides):
    config = RunConfig().with_overrides(["task.name=adding", "cell.name=gru", "cell.hidden_size=8", "gradient.clip_norm=1.0",
                                        *overrides]).to_dict()
    return {f"{section}.{key}": value for section, values in config.items() for key, value in values.items()
            if not (section == "train" and key == "seed")}


def setting(label, overrides, runs):
    """A setting with finished runs of (test metric, training seconds, updates)."""
    rows = [{"test_metric": metric, "wall_time": seconds, "steps_done": steps, "seq_len": 100} for metric, seconds, steps in runs]
    return Setting(label, flat(*overrides), rows, [[] for _ in rows])


SETTINGS = [
    setting("bptt", ["gradient.name=bptt"], [(0.80, 8.0, 200), (0.76, 8.4, 200)]),      # 40, 42 ms
    setting("tbptt k=1", ["gradient.name=tbptt", "gradient.truncation=1"], [(0.40, 5.0, 200), (0.44, 5.0, 200)]),
    setting("tbptt k=4", ["gradient.name=tbptt", "gradient.truncation=4"], [(0.30, 9.0, 200), (0.34, 9.0, 200)]),
    setting("dsf", ["gradient.name=dsf", "gradient.feedback=stationary-diagonal"], [(0.75, 6.6, 200), (0.75, 6.6, 200)]),
]


def table(lines):
    return {line.split(" | ")[0][2:]: line.split(" | ") for line in lines if line.startswith("| ") and " | " in line
            and not line.startswith("| setting") and not line.startswith("|---")}


def test_estimator_options_name_what_the_estimator_reads():
    assert [estimator_options(s) for s in SETTINGS] == [
        {"name": "bptt"}, {"name": "tbptt", "truncation": 1}, {"name": "tbptt", "truncation": 4},
        {"name": "dsf", "feedback": "stationary-diagonal"}]
    assert varies_estimator(SETTINGS) and not varies_estimator(SETTINGS[:1])
    other_cell = setting("lstm", ["gradient.name=bptt", "cell.name=lstm"], [(0.5, 1.0, 10)])
    assert not varies_estimator([SETTINGS[0], other_cell])


def test_the_section_tables_each_setting_from_its_runs_and_marks_the_front(tmp_path):
    lines = frontier_section(SETTINGS, [estimator_options(s) for s in SETTINGS], "success", True, "##", tmp_path, "-x")
    rows = table(lines)
    # ms per update: 1000 * wall time / updates, mean over seeds [bootstrap interval over seeds]
    assert rows["bptt"][2] == "41.0 [40.0, 42.0]" and rows["bptt"][3].startswith("0.78 [0.76, 0.8]")
    assert {label: row[4] for label, row in rows.items()} == {"bptt": "yes |", "tbptt k=1": "yes |", "tbptt k=4": "no |",
                                                              "dsf": "yes |"}
    assert list(rows) == ["tbptt k=1", "dsf", "bptt", "tbptt k=4"]  # by cost: 25, 33, 41, 45 ms
    assert "(higher is better)" in lines[2] and "![cost-quality frontier](frontier-x.png)" in lines
    assert (tmp_path / "frontier-x.png").stat().st_size > 0


def cost_file(tmp_path, rows, **extra):
    path = tmp_path / "costs.json"
    path.write_text(json.dumps({"device": "cpu", "threads": 1, "note": "busy", "batch": 32, "rows": rows, **extra}))
    return path


def test_the_time_of_an_update_may_come_from_cost_files(tmp_path):
    size = {"task": "adding", "cell": "gru", "T": 100, "hidden": 8, "batch": 32}
    rows = read_costs([cost_file(tmp_path, [
        {**size, "method": "bptt", "gradient": {"name": "bptt"}, "ms": 30.0},
        {**size, "method": "tbptt", "gradient": {"name": "tbptt", "truncation": 1}, "ms": 20.0},
        {**size, "hidden": 16, "method": "tbptt-k4", "gradient": {"name": "tbptt", "truncation": 4}, "ms": 1.0},
        {**size, "method": "dsf-diagonal", "gradient": {"name": "dsf", "feedback": "stationary-diagonal"}, "ms": 24.0,
         "refresh_ms": 50.0, "amortised_ms": 25.0}])])
    estimators = [estimator_options(s) for s in SETTINGS]
    assert measured_ms(rows, SETTINGS[0], estimators[0])["ms"] == 30.0
    assert measured_ms(rows, SETTINGS[2], estimators[2]) is None  # measured at another hidden size
    rows_shown = table(frontier_section(SETTINGS, estimators, "success", True, "##", tmp_path, "", rows))
    assert {label: (row[2], row[4]) for label, row in rows_shown.items()} == {
        "tbptt k=1": ("20.0", "yes |"), "dsf": ("25.0", "yes |"), "bptt": ("30.0", "yes |"),
        "tbptt k=4": ("not in the cost files", "– |")}


def test_bad_cost_files_are_refused_with_one_line(tmp_path):
    with pytest.raises(LongdepsError, match="cannot read cost file .*missing.json"):
        read_costs([tmp_path / "missing.json"])
    old = cost_file(tmp_path, [{"cell": "gru", "T": 100, "hidden": 8, "method": "bptt", "ms": 3.0}])
    with pytest.raises(LongdepsError, match="is not a cost file of benchmarks/gradient_cost.py with rows that name"):
        read_costs([old])
