"""The report: what defines the runs, reference lines, single evaluations, clamped profiles, file modes,
the sections components add."""

import json
import os

import pytest

from longdeps import report
from longdeps.config import RunConfig
from longdeps.experiment import run_experiment
from longdeps.report import PROFILE_FLOOR, Setting, component_sections, plot_gradient_profiles, write_report
from longdeps.sampling import SAMPLERS, UniformSampler
from longdeps.store import ResultStore


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the report closes, kept to look at."""
    kept = []
    close = report.plt.close
    monkeypatch.setattr(report.plt, "close", lambda fig: (kept.append(fig), close(fig)))
    return kept


def test_a_one_evaluation_run_is_reported_in_full(tmp_path, figures):
    config = RunConfig().with_overrides(["task.seq_len=6", "task.val_size=50", "task.test_size=50", "cell.hidden_size=4",
                                         "gradient.name=tbptt", "gradient.truncation=2", "train.steps=10",
                                         "train.eval_every=10", "train.batch_size=8"])
    run_experiment(config, tmp_path, progress=False)
    umask = os.umask(0o022)
    try:
        path = write_report(ResultStore(tmp_path), tmp_path / "out")
    finally:
        os.umask(umask)
    text = path.read_text()
    assert path.stat().st_mode & 0o777 == 0o644
    # what defines the run is named although nothing varies
    assert ("Every setting: cell=lstm, hidden_size=4, gradient=tbptt, gradient.truncation=2, sampler=uniform, "
            "continuation=none, optimizer=adam, optimizer.lr=0.001, train.steps=10, train.batch_size=8.") in text
    ax_metric, ax_loss = figures[0].axes[:2]
    assert ax_metric.lines[0].get_marker() == "o" and ax_loss.lines[0].get_marker() == "o"  # one point, drawn
    references = {line.get_label(): line.get_ydata()[0] for line in ax_loss.lines[1:]}
    assert references == {"memoryless baseline": pytest.approx(1 / 6), "target (solved)": pytest.approx(0.01 / 6)}
    assert {line.get_label() for line in ax_metric.lines[1:]} == {"memoryless baseline"}  # no target on success


def test_a_clamped_gradient_profile_says_so(tmp_path, figures):
    def setting(profile):
        return Setting("cell=srn", {}, [{}], [[{"step": 10, "grad_profile": profile}]])

    assert not plot_gradient_profiles([setting([1e-3, 1.0])], tmp_path / "a.png")
    assert "drawn at" not in figures[-1].axes[0].get_title()
    assert plot_gradient_profiles([setting([1e-40, 1.0])], tmp_path / "b.png")
    assert f"(values below {PROFILE_FLOOR:g} drawn at {PROFILE_FLOOR:g})" in figures[-1].axes[0].get_title()


def test_a_component_adds_its_section_through_its_hook(tmp_path, monkeypatch):
    class Counting(UniformSampler):
        @classmethod
        def report_section(cls, settings, heading, out, slug):
            (out / f"counts{slug}.png").touch()
            return [f"{heading} Batches drawn", "", *(f"- {s.label}: {s.evals[0][-1]['drawn']}" for s in settings), ""]

    monkeypatch.setitem(SAMPLERS, "counting", Counting)  # registered in this test alone

    def setting(sampler, drawn):
        config = {"gradient.name": "bptt", "sampler.name": sampler, "continuation.name": "none"}
        return Setting(f"sampler={sampler}, seed {drawn}", config, [{}], [[{"drawn": drawn}]])

    settings = [setting("counting", 3), setting("uniform", 4), setting("counting", 5), setting("unregistered", 6)]
    assert component_sections(settings, "###", tmp_path, "-t") == [
        "### Batches drawn", "", "- sampler=counting, seed 3: 3", "- sampler=counting, seed 5: 5", ""]
    assert (tmp_path / "counts-t.png").exists()


def test_labels_name_the_variant_and_leave_out_options_the_component_does_not_read():
    class NoEvals:
        def evals(self, run_id):
            return []

    sgr = ["sampler.name=sgr", "task.train_size=100"]
    configs = [RunConfig().with_overrides(["task.train_size=100"]),  # uniform: sgr's rule and pool are not its options
               RunConfig().with_overrides(sgr + ["sampler.rule=example", "sampler.pool_size=100"]),
               RunConfig().with_overrides(sgr + ["sampler.rule=batch", "sampler.pool_size=50"])]
    runs = [{"run_id": c.run_id(), "config": json.dumps(c.to_dict())} for c in configs]
    settings = report.group_runs(NoEvals(), runs)
    assert [s.label for s in settings] == ["sampler=uniform", "sampler=sgr, sampler.rule=example",
                                           "sampler=sgr, sampler.rule=batch"]
    assert report.setting_details(settings)[2:4] == ["- sampler=sgr, sampler.rule=example: sampler.pool_size=100",
                                                     "- sampler=sgr, sampler.rule=batch: sampler.pool_size=50"]
