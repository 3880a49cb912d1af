"""Sampling-based gradient regularisation: the ratio rho_i against per-example float64
autograd, the band, re-entry after a refresh, the fill rule, and resume."""

import json

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cells import CELLS, make_cell
from longdeps.config import RunConfig
from longdeps.experiment import Run
from longdeps.functional.batchnorm import recompute_population_statistics
from longdeps.cells import detach_state
from longdeps.gradients import hidden_gradient_norms, long_term_ratio
from longdeps.gradients.per_example import long_short_gradients
from longdeps.model import SequenceModel
from longdeps.sampling import make_sampler
from longdeps.store import ResultStore
from longdeps.tasks import make_task


def reference_ratio(model, x, task, early_step):
    """rho of one example ``x`` ``(T, 1, I)``: its outputs summed, autograd on each hidden state."""
    hs, _ = model.cell.unroll(x)
    total = model.read(torch.stack(hs)).sum()
    early, last = torch.autograd.grad(total, [hs[early_step], hs[-1]])
    return early.norm() / last.norm()


@pytest.mark.parametrize("cell", [name for name, cls in CELLS.items() if cls.carries_hidden])  # sgr's needs
@pytest.mark.parametrize("task_name", ["adding", "copy"])
@pytest.mark.parametrize("early_step", [0, 4])
def test_batched_ratio_equals_per_example_float64_autograd(cell, task_name, early_step):
    torch.manual_seed(0)
    task = make_task(task_name, 12)
    model = SequenceModel(make_cell(cell, task.input_size, 7), task.output_size, task.readout).double()
    batch = task.sample(6, torch.Generator().manual_seed(0))
    batch.x = batch.x.double()
    recompute_population_statistics(model, [batch.x])  # batch norm: examples independent in eval mode
    model.eval()
    got = long_term_ratio(hidden_gradient_norms(model, batch, task, unit_output=True), early_step)
    want = torch.stack([reference_ratio(model, batch.x[:, [i]], task, early_step) for i in range(batch.size)])
    assert torch.allclose(got, want, rtol=1e-10, atol=0)
    assert got.std() > 0  # the examples differ, so a mix-up between them would show
    assert all(p.grad is None for p in model.parameters())


def reference_stacked_ratio(model, x, early_step):
    """rho of one example ``x`` ``(T, 1, I)`` through a stack: the unit output deltas' derivative with
    respect to the whole stacked hidden state (every layer's ``h``), at ``early_step`` and the last."""
    states = []
    hs, _ = model.cell.unroll(x, states=states)
    total = model.read(torch.stack(hs)).sum()
    early, last = (model.cell.hiddens(states[t]) for t in (early_step, -1))
    grads = torch.autograd.grad(total, early + last)
    return torch.cat(grads[:len(early)], -1).norm() / torch.cat(grads[len(early):], -1).norm()


@pytest.mark.parametrize("cell", ["srn", "lstm", "gru", "bn-lstm"])
@pytest.mark.parametrize("early_step", [0, 4])
def test_batched_ratio_through_a_stack_equals_per_example_float64_autograd(cell, early_step):
    torch.manual_seed(0)
    task = make_task("copy", 6)
    model = SequenceModel(make_cell(cell, task.input_size, 5, num_layers=3), task.output_size, task.readout).double()
    batch = task.sample(6, torch.Generator().manual_seed(0))
    batch.x = batch.x.double()
    recompute_population_statistics(model, [batch.x])
    model.eval()
    got = long_term_ratio(hidden_gradient_norms(model, batch, task, unit_output=True), early_step)
    want = torch.stack([reference_stacked_ratio(model, batch.x[:, [i]], early_step) for i in range(batch.size)])
    assert torch.allclose(got, want, rtol=1e-10, atol=0) and got.std() > 0
    top_only = torch.stack([reference_ratio(model, batch.x[:, [i]], task, early_step) for i in range(batch.size)])
    assert not torch.allclose(got, top_only)  # the lower layers' states count


def sgr_setup(size=30, **options):
    torch.manual_seed(0)
    task = make_task("adding", seq_len=10, variant="cn2016", train_size=size)
    model = SequenceModel(make_cell("srn", task.input_size, 8), task.output_size, task.readout)
    return task, model, {"pool_size": None, "min_eligible": 5, **options}


def log_rho_all(task, model):
    sampler = make_sampler("sgr", task=task, model=model, pool_size=None)
    return sampler.estimate(torch.arange(task.train_size))


def test_only_examples_in_the_band_are_drawn_and_all_of_them_are():
    task, model, config = sgr_setup()
    log_rho = log_rho_all(task, model)
    low, high = log_rho.quantile(0.2).item(), log_rho.quantile(0.8).item()
    in_band = {i for i in range(task.train_size) if low <= log_rho[i] <= high}
    assert 5 <= len(in_band) < task.train_size
    sampler = make_sampler("sgr", task=task, model=model,
                           **dict(config, log10_rho_min=low, log10_rho_max=high, refresh_every=1000))
    gen = torch.Generator().manual_seed(0)
    drawn = torch.cat([sampler.choose(5, gen) for _ in range(20)]).tolist()
    assert set(drawn) == in_band
    stats = sampler.statistics()["sampler_refreshes"]
    assert len(stats) == 1 and stats[0]["in_band"] == len(in_band) and stats[0]["filled"] == 0
    assert stats[0]["eligible_fraction"] == len(in_band) / task.train_size
    assert sampler.statistics() == {"sampler_refreshes": []}  # reported once


def test_excluded_examples_re_enter_after_a_refresh_when_their_ratio_moves_into_the_band():
    task, model, config = sgr_setup()
    before = log_rho_all(task, model)
    high = before.median().item()
    sampler = make_sampler("sgr", task=task, model=model,
                           **dict(config, log10_rho_min=-30.0, log10_rho_max=high, refresh_every=4))
    gen = torch.Generator().manual_seed(0)
    first = set(torch.cat([sampler.choose(5, gen) for _ in range(4)]).tolist())
    excluded = {i for i in range(task.train_size) if before[i] > high}
    assert excluded and not first & excluded
    with torch.no_grad():
        model.cell.rnn.weight_hh_l0.mul_(0.3)  # less signal reaches the first step: every rho falls
    after = log_rho_all(task, model)
    re_entering = {i for i in excluded if after[i] <= high}
    assert re_entering
    second = set(torch.cat([sampler.choose(5, gen) for _ in range(4)]).tolist())
    assert set(sampler.eligible.tolist()) == {i for i in range(task.train_size) if after[i] <= high}
    assert second & re_entering


def test_fill_rule_takes_the_examples_closest_to_the_band_and_is_recorded():
    task, model, config = sgr_setup()
    log_rho = log_rho_all(task, model)
    ranked = log_rho.argsort(descending=True)
    # a band above every estimate that holds just the two largest ratios
    low = log_rho[ranked[1]].item()
    sampler = make_sampler("sgr", task=task, model=model,
                           **dict(config, log10_rho_min=low, log10_rho_max=low + 50, min_eligible=6))
    drawn = sampler.choose(5, torch.Generator().manual_seed(0))
    assert set(sampler.eligible.tolist()) == set(ranked[:6].tolist())
    assert set(drawn.tolist()) <= set(ranked[:6].tolist())
    stats = sampler.statistics()["sampler_refreshes"][0]
    assert (stats["in_band"], stats["filled"], stats["band"]) == (2, 4, [low, low + 50])


def test_bad_settings_get_one_line_errors():
    task, model, config = sgr_setup()
    with pytest.raises(LongdepsError, match="unknown sampler.rule 'pairs'; choose from example, batch"):
        make_sampler("sgr", task=task, model=model, **dict(config, rule="pairs"))
    with pytest.raises(LongdepsError, match="^sampler 'sgr' cannot be combined with task 'adding': it needs a fixed, "
                                            r"unordered training set \(task.train_size\)$"):
        make_sampler("sgr", task=make_task("adding", seq_len=10), model=model, **config)
    with pytest.raises(LongdepsError, match="^sampler.batch_tries=7 applies to sampler.rule=batch only, not example$"):
        make_sampler("sgr", task=task, model=model, **dict(config, batch_tries=7))
    with pytest.raises(LongdepsError, match="^sampler.pool_size=10 applies to sgr only, not sampler 'uniform'$"):
        make_sampler("uniform", task=task, model=model, pool_size=10)
    with pytest.raises(LongdepsError, match=r"sampler.early_step must be in \[0, 9\] for sequences of 10 steps, got 10"):
        make_sampler("sgr", task=task, model=model, **dict(config, early_step=10)).choose(5, torch.Generator())


@pytest.mark.parametrize("rule", ["example", "batch"])
def test_resume_reproduces_the_uninterrupted_run_and_records_refreshes(tmp_path, rule):
    config = RunConfig().with_overrides([
        "task.variant=cn2016", "task.seq_len=10", "task.train_size=200", "task.val_size=50", "task.test_size=50",
        "cell.name=srn", "cell.hidden_size=8", "sampler.name=sgr", "sampler.pool_size=60", "sampler.refresh_every=7",
        "sampler.log10_rho_min=-1.5", "sampler.log10_rho_max=0", "optimizer.name=sgd", "optimizer.lr=0.05",
        "optimizer.momentum=0.9", "train.steps=40", "train.eval_every=10", "train.checkpoint_every=20",
        "train.batch_size=8", "train.profile_examples=8", "train.stop_when_solved=false", f"sampler.rule={rule}",
        "sampler.early_step=4", "sampler.batch_tries=20" if rule == "batch" else "sampler.min_eligible=8"])
    whole = Run(config, ResultStore(tmp_path / "a")).execute(progress=False)

    broken = Run(config, ResultStore(tmp_path / "b"))
    train_step = broken.train_step

    def interrupted():
        if broken.step == 25:  # five updates past the checkpoint at 20, mid-way between refreshes
            raise KeyboardInterrupt
        return train_step()
    broken.train_step = interrupted
    with pytest.raises(KeyboardInterrupt):
        broken.execute(progress=False)
    resumed = Run(config, ResultStore(tmp_path / "b")).execute(resume=True, progress=False)

    def records(result):
        lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "wall_time"} for line in lines]
    assert records(resumed) == records(whole)
    assert resumed.summary["test_metric"] == whole.summary["test_metric"]
    refreshes = [r for record in records(whole) for r in record["sampler_refreshes"]]
    assert [r["update"] for r in refreshes] == [0, 7, 14, 21, 28, 35]
    if rule == "example":
        assert all(r["pool"] == 60 and "candidate_batches" not in r and r["in_band"] + r["filled"] >= 8 for r in refreshes)
    else:  # the pool, and the candidate batches drawn at each refresh; batches filled from outside the band are counted
        assert all(r["pool"] == 60 and r["candidate_batches"] == 20 and r["rule"] == "batch"
                   and 0 <= r["in_band"] <= 20 and r["eligible_fraction"] == r["in_band"] / 20 for r in refreshes)
        assert all(isinstance(record["sampler_filled_batches"], int) for record in records(whole))


def batch_rule_setup(cell="srn", size=40):
    torch.manual_seed(0)
    task = make_task("adding", seq_len=10, variant="cn2016", train_size=size)
    model = SequenceModel(make_cell(cell, task.input_size, 6), task.output_size, task.readout)
    return task, model


def batch_gradients(model, batch, task, cut=None):
    """The cell's gradient of the batch's mean loss by ordinary autograd, with the state optionally
    held fixed after step ``cut``: flattened ``(n,)``."""
    model.zero_grad(set_to_none=True)
    if cut is None:
        hidden, _ = model.cell.unroll(batch.x)
    else:
        head, state = model.cell.unroll(batch.x[:cut + 1])
        tail, _ = model.cell.unroll(batch.x[cut + 1:], detach_state(state), t0=cut + 1)
        hidden = head + tail
    task.per_example_loss(model.read(torch.stack(hidden)), batch.y).mean().backward()
    return torch.cat([p.grad.flatten() for p in model.cell.parameters()])


@pytest.mark.parametrize("cell,layers", [("srn", 1), ("lstm", 1), ("gru", 2)])
@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_batch_bound_is_never_below_the_batch_long_term_gradient_norm(cell, layers, task_name):
    """Per-example parts from ``long_short_gradients`` against the batch's own gradients by autograd:
    they add up to them exactly, so the bound (mean of per-example long-term norms) is never
    below the batch's actual long-term norm, and the Gram matrix gives its short-term norm."""
    torch.manual_seed(1)
    task = make_task(task_name, 10)
    model = SequenceModel(make_cell(cell, task.input_size, 6, num_layers=layers), task.output_size,
                          task.readout).double()
    pool = task.sample(30, torch.Generator().manual_seed(2))
    pool.x = pool.x.double()
    if pool.y.is_floating_point():
        pool.y = pool.y.double()
    long, short = long_short_gradients(model, pool, task, boundary=3, chunk=7)
    gram = short @ short.T
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        index = torch.randint(30, (5,), generator=gen)
        batch = pool.select(index)
        full, cut = batch_gradients(model, batch, task), batch_gradients(model, batch, task, cut=3)
        assert torch.allclose(long[index].mean(0), full - cut, rtol=1e-9, atol=1e-12)
        assert long[index].norm(dim=1).mean() >= (full - cut).norm() * (1 - 1e-12)
        assert torch.allclose(gram[index][:, index].sum().sqrt() / 5, cut.norm(), rtol=1e-9)


def test_batch_rule_draws_only_batches_in_the_band_or_counts_them_as_filled():
    task, model = batch_rule_setup()
    config = {"rule": "batch", "pool_size": None, "early_step": 4, "batch_tries": 50, "refresh_every": 1000}
    probe = make_sampler("sgr", task=task, model=model, **config)
    probe.refresh_batches(5, torch.Generator().manual_seed(0))
    _, log_ratio = probe.candidates(5, torch.Generator().manual_seed(1))
    low, high = log_ratio.quantile(0.3).item(), log_ratio.quantile(0.7).item()
    sampler = make_sampler("sgr", task=task, model=model, **dict(config, log10_rho_min=low, log10_rho_max=high))
    gen = torch.Generator().manual_seed(4)
    long, short = long_short_gradients(model, task.train_examples(torch.arange(40)), task, boundary=4)
    for _ in range(15):
        index = sampler.choose(5, gen)
        ratio = long[index].norm(dim=1).mean() / short[index].mean(0).norm()
        assert low - 1e-4 <= ratio.log10() <= high + 1e-4  # float32, summed in another order
    assert sampler.statistics()["sampler_filled_batches"] == 0
    nowhere = make_sampler("sgr", task=task, model=model, **dict(config, log10_rho_min=50.0, log10_rho_max=60.0))
    for _ in range(3):
        nowhere.choose(5, gen)
    stats = nowhere.statistics()
    assert stats["sampler_filled_batches"] == 3 and stats["sampler_refreshes"][0]["in_band"] == 0


def test_report_tables_and_plots_the_refreshes(tmp_path):
    from longdeps.experiment import run_experiment
    from longdeps.report import write_report

    config = RunConfig().with_overrides([
        "task.variant=cn2016", "task.seq_len=10", "task.train_size=100", "task.val_size=50", "task.test_size=50",
        "cell.name=srn", "cell.hidden_size=8", "train.steps=20", "train.eval_every=10", "train.batch_size=8",
        "train.profile_examples=8"])
    run_experiment(config.with_overrides(["sampler.name=sgr", "sampler.pool_size=50", "sampler.refresh_every=5",
                                          "sampler.log10_rho_min=-1", "sampler.min_eligible=8"]),
                   tmp_path, progress=False, suite="tiny")
    run_experiment(config, tmp_path, progress=False, suite="tiny")
    text = write_report(ResultStore(tmp_path), tmp_path / "report", suite="tiny").read_text()
    table = text.split("## Sampler refreshes")[1].split("![")[0]
    rows = [line for line in table.splitlines() if line.startswith("| sampler=")]
    assert len(rows) == 1 and rows[0].startswith("| sampler=sgr | [-1.0, 0.5] | 4 |")
    assert (tmp_path / "report" / "sampler_refreshes.png").stat().st_size > 0
