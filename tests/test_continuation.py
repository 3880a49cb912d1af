"""The sigma schedule, weight-noise injection, and continuation in training runs (resume included)."""

import json
import math
from fractions import Fraction

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cells import SRN
from longdeps.config import RunConfig
from longdeps.continuation import SigmaSchedule, WeightNoise, make_continuation
from longdeps.experiment import Run, run_experiment
from longdeps.model import SequenceModel
from longdeps.store import ResultStore


def schedule(updates_per_epoch=None, **fields):
    return SigmaSchedule(**{"sigma0": 0.4, "stages": 3, "stage_length": 10, **fields}, updates_per_epoch=updates_per_epoch)


@pytest.mark.parametrize("shape, levels", [
    ("geometric", [0.4, 0.2, 0.1]),
    ("linear", [0.4, 0.4 * 2 / 3, 0.4 / 3]),
    ("cosine", [0.4, 0.4 * (1 + math.cos(math.pi / 3)) / 2, 0.4 * (1 + math.cos(2 * math.pi / 3)) / 2]),
])
def test_shapes_hold_each_level_for_one_stage_then_zero(shape, levels):
    s = schedule(shape=shape)
    expected = [level for level in levels for _ in range(10)] + [0.0] * 15
    assert [s(step) for step in range(45)] == pytest.approx(expected, abs=1e-15)
    assert s(10 ** 6) == 0.0 and s.end == 30


def test_geometric_ratio_and_stage_length_in_epochs():
    # 100 examples, batch 30: an epoch is 10/3 updates; update 3 starts at example 90 (epoch 0.9),
    # update 4 at example 120 (epoch 1.2), so stage 1 (two epochs per stage) starts at update 7 (epoch 2.1)
    # and stage 3, the final one, at update 20 (epoch 6 exactly)
    s = schedule(Fraction(100, 30), ratio=0.25, stage_length=2, unit="epochs")
    assert [s.stage(step) for step in range(8)] == [0, 0, 0, 0, 0, 0, 0, 1]
    assert s(6) == 0.4 and s(7) == 0.1 and s(13) == 0.1 and s(14) == 0.025 and s(19) == 0.025 and s(20) == 0.0
    assert s.end == 20


@pytest.mark.parametrize("fields, message", [
    ({"shape": "step"}, "unknown continuation.shape 'step'"),
    ({"unit": "seconds"}, "unknown continuation.unit 'seconds'"),
    ({"unit": "epochs"}, "continuation.unit=epochs needs a finite training set"),
])
def test_bad_schedules_are_one_line_errors(fields, message):
    with pytest.raises(LongdepsError, match=message):
        schedule(**fields)


def model(cell_name="srn"):
    torch.manual_seed(0)
    return SequenceModel(SRN(3, 6), 1, "last")


def test_weight_noise_perturbs_only_inside_the_update_and_restores_bit_for_bit():
    m = model()
    noise = make_continuation("weight-noise", model=m, seed=4, sigma0=0.5)
    before = {name: p.detach().clone() for name, p in m.named_parameters()}
    assert noise.before_step(0, m) == {"sigma": 0.5}
    with noise.perturbation(m):
        changes = {name: (p.detach() - before[name]) / 0.5 for name, p in m.named_parameters()}
    assert all(torch.equal(p, before[name]) for name, p in m.named_parameters())
    perturbed = ["cell.rnn.weight_ih_l0", "cell.rnn.weight_hh_l0", "cell.rnn.bias_ih_l0"]
    assert all(changes[name].abs().min() > 0 for name in perturbed)
    assert all(torch.equal(changes[name], torch.zeros_like(changes[name]))
               for name in ("cell.rnn.bias_hh_l0", "readout.weight", "readout.bias"))
    unit = torch.cat([changes[name].flatten() for name in perturbed])  # 18 + 36 + 6 draws of N(0, 1)
    assert abs(float(unit.mean())) < 4 / math.sqrt(unit.numel()) and 0.6 < float(unit.std()) < 1.4


def test_weight_noise_is_fresh_each_update_and_the_same_for_the_same_update():
    m = model()
    noise = WeightNoise(seed=0)

    def draw(step):
        noise.before_step(step, m)
        with noise.perturbation(m):
            return m.cell.rnn.weight_hh_l0.detach().clone()
    assert torch.equal(draw(3), draw(3)) and not torch.equal(draw(3), draw(4))
    noise.before_step(10 ** 6, m)  # past the last stage: sigma 0, nothing changes
    with noise.perturbation(m):
        assert torch.equal(m.cell.rnn.weight_hh_l0, draw(10 ** 6))


def test_diffusion_sets_the_cells_sigma_and_rejects_cells_without_a_diffused_form():
    m = model()
    diffusion = make_continuation("diffusion", model=m, sigma0=0.3, stages=1, stage_length=5)
    assert diffusion.before_step(4, m) == {"sigma": 0.3} and m.cell.smoothing == 0.3
    assert diffusion.before_step(5, m) == {"sigma": 0.0} and m.cell.smoothing == 0.0
    config = RunConfig().with_overrides(["cell.name=asrnn", "continuation.name=diffusion", "cell.hidden_size=4"])
    with pytest.raises(LongdepsError, match="^continuation 'diffusion' cannot be combined with cell 'asrnn': it needs a "
                                            "closed-form Gaussian-diffused version of every nonlinearity$"):
        Run(config, ResultStore("/nonexistent-unused"))


def test_unknown_continuation_is_named():
    with pytest.raises(LongdepsError, match="unknown continuation 'heat'"):
        make_continuation("heat", model=model())


SMALL = ["task.seq_len=10", "task.val_size=100", "task.test_size=100", "task.train_size=96", "cell.name=srn",
         "cell.hidden_size=8", "train.steps=40", "train.eval_every=5", "train.checkpoint_every=20",
         "train.batch_size=16", "train.stop_when_solved=false", "continuation.sigma0=0.2", "continuation.stages=2",
         "continuation.stage_length=2", "continuation.unit=epochs"]


def records(result):
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "wall_time"} for line in lines]


@pytest.mark.parametrize("name", ["diffusion", "diffusion propagate", "weight-noise"])
def test_runs_log_sigma_and_resume_mid_schedule_reproduces_the_uninterrupted_run(tmp_path, interrupt_and_resume, name):
    name, _, propagate = name.partition(" ")
    config = RunConfig().with_overrides(SMALL + [f"continuation.name={name}", f"continuation.propagate={bool(propagate)}"])
    whole = run_experiment(config, tmp_path / "a", progress=False)
    sigmas = [r["smoothing"]["sigma"] for r in records(whole)]
    # 6 updates per epoch, 2 epochs per stage: 0.2 up to update 12, 0.1 up to 24, then 0
    assert sigmas == [0.2, 0.2, 0.1, 0.1, 0.0, 0.0, 0.0, 0.0]
    resumed = interrupt_and_resume(config, tmp_path / "b", 23)  # in the middle of the second stage
    assert records(resumed) == records(whole)
    assert resumed.summary["test"] == whole.summary["test"]


def test_smoothing_changes_training_and_sigma_zero_changes_nothing(tmp_path):
    plain = run_experiment(RunConfig().with_overrides(SMALL), tmp_path, progress=False)
    zero = run_experiment(RunConfig().with_overrides(SMALL + ["continuation.name=diffusion", "continuation.sigma0=0"]),
                          tmp_path, progress=False)
    smoothed = run_experiment(RunConfig().with_overrides(SMALL + ["continuation.name=diffusion"]), tmp_path, progress=False)
    strip = [{k: v for k, v in r.items() if k != "smoothing"} for r in records(plain)]
    assert [{k: v for k, v in r.items() if k != "smoothing"} for r in records(zero)] == strip
    assert records(smoothed)[0]["train_loss"] != strip[0]["train_loss"]


def test_report_tables_time_to_target_and_plots_sigma(tmp_path, monkeypatch):
    from longdeps.report import group_runs, smoothing_keys, write_report
    from longdeps.tasks.synthetic import AddingTask

    monkeypatch.setattr(AddingTask, "solved", lambda self, summary: True)
    for name in ("none", "diffusion"):
        run_experiment(RunConfig().with_overrides(SMALL + [f"continuation.name={name}"]), tmp_path, progress=False)
    store = ResultStore(tmp_path)
    text = write_report(store, tmp_path / "report").read_text()
    settings = group_runs(store, store.runs())
    assert smoothing_keys(settings) == ["sigma", "width_max", "width_mean", "width_min"]
    assert (tmp_path / "report" / "learning_curves.png").exists()
    for setting in settings:
        (evals,) = setting.evals
        first = next(r for r in evals if r["solved"])
        epochs = first["step"] * 16 / 96
        ms = 1000 * evals[-1]["wall_time"] / 40
        assert (f"| {setting.label} | 1/1 | {first['step']} | {epochs:.1f} | {first['wall_time']:.1f} | {ms:.1f} |"
                in text), text


def test_evaluations_log_the_diffusion_width_actually_applied(tmp_path):
    """The width ``s = sigma * sqrt(||x||^2 + 1 + ||h||^2)`` of every step and probe example, recorded
    next to sigma: at least sigma itself, against a step-by-step recomputation, and absent at sigma 0."""
    config = RunConfig().with_overrides(SMALL + ["continuation.name=diffusion", "continuation.sigma0=0.4",
                                                 "continuation.stages=2", "continuation.stage_length=20",
                                                 "train.stop_when_solved=false"])
    result = run_experiment(config, tmp_path, progress=False)
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    smoothed = [r["smoothing"] for r in records if r["smoothing"]["sigma"] > 0]
    assert smoothed and all(0.4 * 0.5 <= s["width_min"] <= s["width_mean"] <= s["width_max"] for s in smoothed)
    assert all(set(r["smoothing"]) == {"sigma"} for r in records if r["smoothing"]["sigma"] == 0)

    torch.manual_seed(0)
    model = SequenceModel(SRN(2, 5), 1, "last")
    continuation = make_continuation("diffusion", model=model, sigma0=0.4)
    continuation.before_step(0, model)
    x = torch.randn(6, 3, 2)
    got = continuation.statistics(model, x)
    h, widths = torch.zeros(3, 5), []
    with torch.no_grad():
        for t in range(6):
            widths.append(0.4 * torch.sqrt(x[t].pow(2).sum(-1) + 1 + h.pow(2).sum(-1)))
            h = model.cell.step(x[t], h, t)
    want = torch.stack(widths)
    assert got == pytest.approx({"width_mean": float(want.mean()), "width_min": float(want.min()),
                                 "width_max": float(want.max())}, rel=1e-5)
