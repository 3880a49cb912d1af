"""BN-LSTM and per-time-step batch norm against float64 references written from the equations."""

import pytest
import torch

from longdeps.cells import BNLSTM, make_cell
from longdeps.config import RunConfig
from longdeps.errors import LongdepsError
from longdeps.experiment import Run
from longdeps.functional.batchnorm import TimeBatchNorm, recompute_population_statistics
from longdeps.store import ResultStore


def bn(x, gamma, beta=None, eps=1e-5):
    """Batch norm over the batch (dim 0) with the biased variance."""
    out = gamma * (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps)
    return out if beta is None else out + beta


def reference_bn_lstm(x, cell):
    n = cell.hidden_size
    h, c = cell.h0.expand(x.shape[1], n), cell.c0.expand(x.shape[1], n)
    out = []
    for x_t in x:
        pre = bn(h @ cell.weight_hh.T, cell.norm_h.weight) + bn(x_t @ cell.weight_ih.T, cell.norm_x.weight) + cell.bias
        i, f, g, o = pre[:, :n], pre[:, n:2 * n], pre[:, 2 * n:3 * n], pre[:, 3 * n:]
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(bn(c, cell.norm_c.weight, cell.norm_c.bias))
        out.append(h)
    return torch.stack(out)


def randomised(cell):
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return cell


def test_forward_and_gradients_match_float64_reference(device):
    torch.manual_seed(0)
    cell = randomised(BNLSTM(3, 5)).double().to(device)
    x = (torch.randn(9, 6, 3, dtype=torch.float64) + torch.arange(9, dtype=torch.float64)[:, None, None]).to(device)
    out, _ = cell(x)
    ref = reference_bn_lstm(x, cell)
    assert torch.allclose(out, ref, atol=1e-10)
    w = torch.randn_like(ref)
    params = list(cell.parameters())
    for a, b in zip(torch.autograd.grad((out * w).sum(), params), torch.autograd.grad((ref * w).sum(), params)):
        assert torch.allclose(a, b, atol=1e-9)


def test_initialisation_follows_the_paper_and_code():
    cell = BNLSTM(2, 4, recurrent_init="identity")
    for norm in (cell.norm_h, cell.norm_x, cell.norm_c):
        assert torch.all(norm.weight == 0.1)
    assert cell.norm_h.bias is None and cell.norm_x.bias is None and torch.all(cell.norm_c.bias == 0)
    assert torch.equal(cell.bias[4:8], torch.ones(4)) and cell.bias[:4].abs().sum() == 0
    assert torch.equal(cell.weight_hh[8:12], torch.eye(4))
    assert cell.norm_c.eps == 1e-5


def test_unnormalised_control_is_the_same_lstm_without_bn():
    torch.manual_seed(1)
    cell = randomised(BNLSTM(3, 5, batch_norm=False)).double()
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    n, (h, c), out = 5, (cell.h0.expand(4, 5), cell.c0.expand(4, 5)), []
    for x_t in x:
        pre = h @ cell.weight_hh.T + x_t @ cell.weight_ih.T + cell.bias
        i, f, g, o = pre[:, :n], pre[:, n:2 * n], pre[:, 2 * n:3 * n], pre[:, 3 * n:]
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c + cell.beta_c)
        out.append(h)
    assert torch.allclose(cell(x)[0], torch.stack(out), atol=1e-12)


def test_statistics_are_kept_per_time_step_and_clamped_beyond():
    torch.manual_seed(2)
    norm = TimeBatchNorm(3, gamma=1.0, momentum=1.0)  # momentum 1: running stats = last batch's
    x = torch.randn(5, 400, 3) * torch.arange(1, 6)[:, None, None] + 10 * torch.arange(5)[:, None, None]
    norm(x, range(5))
    assert torch.allclose(norm.running_mean[:, 0], 10 * torch.arange(5).float(), atol=0.5)
    assert torch.allclose(norm.running_var[:, 0].sqrt(), torch.arange(1, 6).float(), rtol=0.15)
    norm.eval()
    probe = torch.randn(8, 7, 3)
    out = norm(probe, range(8))
    for t in range(8):  # step t uses row min(t, 4); one shared set of statistics would fail this
        row = min(t, 4)
        want = (probe[t] - norm.running_mean[row]) / torch.sqrt(norm.running_var[row] + 1e-5)
        assert torch.allclose(out[t], want, atol=1e-5)
        assert torch.allclose(norm(probe[t], t), want, atol=1e-5)


def test_statistics_grown_one_step_at_a_time_equal_those_of_all_steps_at_once():
    torch.manual_seed(5)
    x = torch.randn(11, 6, 3)
    stepwise, together = TimeBatchNorm(3, momentum=0.5), TimeBatchNorm(3, momentum=0.5)
    for _ in range(2):  # the second pass finds every row there
        for t in range(11):
            stepwise(x[t], t)
        together(x, range(11))
    for name in ("running_mean", "running_var"):
        assert stepwise.state_dict()[name].shape == (11, 3)
        assert torch.allclose(stepwise.state_dict()[name], together.state_dict()[name], atol=1e-6)
    longer = torch.randn(13, 6, 3)
    stepwise(longer, range(13))  # rows 11 and 12 start from mean 0, variance 1, as in a fresh norm
    fresh = TimeBatchNorm(3, momentum=0.5)
    fresh(longer[11:], range(11, 13))
    assert torch.allclose(stepwise.running_var[11:], fresh.running_var[11:], atol=1e-6)


def test_population_statistics_are_the_average_of_batch_statistics():
    torch.manual_seed(3)
    cell = BNLSTM(2, 4)
    batches = [torch.randn(6, 8, 2) * (k + 1) for k in range(3)]
    assert recompute_population_statistics(cell, batches) == 3
    # the same pass by hand: the batch statistics of the input term at each step
    for t in range(6):
        means = [(b[t] @ cell.weight_ih.T).mean(0) for b in batches]
        variances = [(b[t] @ cell.weight_ih.T).var(0, unbiased=False) for b in batches]
        assert torch.allclose(cell.norm_x.running_mean[t], torch.stack(means).mean(0), atol=1e-5)
        assert torch.allclose(cell.norm_x.running_var[t], torch.stack(variances).mean(0), atol=1e-5)


def test_evaluation_does_not_depend_on_batch_composition():
    torch.manual_seed(4)
    cell = BNLSTM(2, 4)
    recompute_population_statistics(cell, [torch.randn(5, 16, 2) for _ in range(2)])
    cell.eval()
    x = torch.randn(5, 6, 2)
    alone, _ = cell(x[:, :1])
    mixed, _ = cell(torch.cat([x[:, :1], 3 * torch.randn(5, 9, 2)], dim=1))
    assert torch.allclose(alone[:, 0], mixed[:, 0], atol=1e-6)
    cell.train()
    in_batch, _ = cell(x)
    assert not torch.allclose(in_batch[:, 0], alone[:, 0], atol=1e-3)


def test_batch_statistics_of_a_single_sequence_are_refused():
    cell = BNLSTM(2, 4)
    with pytest.raises(LongdepsError, match="at least 2 sequences a batch, got 1"):
        cell(torch.randn(3, 1, 2))


def test_population_statistics_survive_a_checkpoint():
    cell = BNLSTM(2, 4)
    recompute_population_statistics(cell, [torch.randn(7, 5, 2)])
    fresh = BNLSTM(2, 4)
    fresh.load_state_dict(cell.state_dict())
    assert torch.equal(fresh.norm_c.running_var, cell.norm_c.running_var)


def test_runs_recompute_population_statistics_before_evaluating(tmp_path):
    config = RunConfig().with_overrides(["cell.name=bn-lstm", "cell.hidden_size=6", "task.seq_len=10",
                                         "task.val_size=100", "task.test_size=100", "train.steps=10",
                                         "train.eval_every=10", "train.population_examples=64",
                                         "train.batch_size=16"])
    run = Run(config, ResultStore(tmp_path))
    run.execute(progress=False)
    expected = BNLSTM(2, 6)
    expected.load_state_dict(run.model.cell.state_dict())
    recompute_population_statistics(expected, run.evaluator.population_inputs(64, run.step))
    assert torch.allclose(run.model.cell.norm_h.running_mean, expected.norm_h.running_mean)
    assert run.evaluator.recompute_population(32, run.step) == 2


def test_cell_options():
    cell = make_cell("bn-lstm", 1, 3, gamma=0.5, initial_noise=0.1, batch_norm=True)
    assert torch.all(cell.norm_x.weight == 0.5)
    a, _ = cell.initial_state(4)
    assert a.std() > 0
    cell.eval()
    assert torch.all(cell.initial_state(4)[0] == 0)
    with pytest.raises(Exception, match="population statistics"):
        cell(torch.randn(3, 2, 1))


def test_population_command_recomputes_and_saves(tmp_path, capsys):
    from longdeps.cli import main
    from longdeps.experiment import run_experiment

    small = ["cell.hidden_size=6", "task.seq_len=10", "task.val_size=50", "task.test_size=50", "train.steps=10",
             "train.eval_every=10", "train.batch_size=16", "train.population_examples=16"]
    bn = run_experiment(RunConfig().with_overrides(small + ["cell.name=bn-lstm"]), tmp_path, progress=False)
    before = torch.load(bn.run_dir / "checkpoint.pt", weights_only=False)["model"]["cell.norm_x.running_mean"]
    assert main(["population", bn.run_id, "--results", str(tmp_path), "--examples", "64"]) == 0
    assert "population statistics from 4 training batches" in capsys.readouterr().out
    after = torch.load(bn.run_dir / "checkpoint.pt", weights_only=False)["model"]["cell.norm_x.running_mean"]
    assert not torch.equal(before, after)
    plain = run_experiment(RunConfig().with_overrides(small + ["cell.name=lstm"]), tmp_path, progress=False)
    assert main(["population", plain.run_id, "--results", str(tmp_path)]) == 2
    assert "no batch-normalised cell" in capsys.readouterr().err


def test_population_command_computes_a_run_from_another_device_where_told(tmp_path, capsys, monkeypatch):
    import json

    from longdeps.cli import main
    from longdeps.experiment import run_experiment

    small = ["cell.name=bn-lstm", "cell.hidden_size=6", "task.seq_len=10", "task.val_size=50", "task.test_size=50",
             "train.steps=10", "train.eval_every=10", "train.batch_size=16", "train.population_examples=16"]
    bn = run_experiment(RunConfig().with_overrides(small), tmp_path, progress=False)
    recorded = json.loads((bn.run_dir / "config.json").read_text())
    recorded["train"]["device"] = "cuda"  # as if it had trained on a GPU, and its folder were copied here
    (bn.run_dir / "config.json").write_text(json.dumps(recorded))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["population", bn.run_id, "--results", str(tmp_path), "--examples", "32"]) == 2
    assert "train.device='cuda' is not available on this machine" in capsys.readouterr().err
    assert main(["population", bn.run_id, "--results", str(tmp_path), "--examples", "32", "--device", "cpu"]) == 0
    assert f"run {bn.run_id}: population statistics from 2 training batches" in capsys.readouterr().out


def test_population_pass_over_a_stream_takes_the_requested_examples(tmp_path):
    config = RunConfig().with_overrides(["task.name=shakespeare-char", "task.variant=stream", "task.seq_len=20",
                                         "cell.name=bn-lstm", "cell.hidden_size=6", "train.batch_size=16"])
    run = Run(config, ResultStore(tmp_path))
    assert run.evaluator.recompute_population(64, run.step) == 4
    assert torch.equal(next(iter(run.evaluator.population_inputs(64, run.step))), run.task.train_segment(0, 16).x)
