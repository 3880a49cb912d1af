"""Gradient estimators and the gradient profile against float64 references."""

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cells import CELLS, detach_state, make_cell
from longdeps.functional.batchnorm import recompute_population_statistics
from longdeps.gradients import hidden_gradient_norms, make_estimator
from longdeps.model import SequenceModel
from longdeps.tasks import make_task


def setup(cell_name, task_name, device, seq_len=12, batch=5, seed=0):
    torch.manual_seed(seed)
    task = make_task(task_name, seq_len)
    model = SequenceModel(make_cell(cell_name, task.input_size, 7), task.output_size, task.readout).double().to(device)
    batch = task.sample(batch, torch.Generator().manual_seed(seed))
    batch.x = batch.x.double()
    if batch.y.is_floating_point():
        batch.y = batch.y.double()
    return task, model, batch.to(device)


def grads_of(model, estimator, batch, task):
    model.zero_grad(set_to_none=True)
    losses, _ = estimator.backward(model, batch, task)
    return losses, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


def reference_truncated_grads(model, batch, task, k):
    """Loop step by step, detaching the state wherever (T - t) is a multiple of k."""
    model.zero_grad(set_to_none=True)
    steps = batch.x.shape[0]
    state, hs = model.cell.initial_state(batch.size), []
    for t in range(steps):
        if t > 0 and (steps - t) % k == 0:  # between segments; a trainable initial state stays attached
            state = detach_state(state)
        state = model.cell.step(batch.x[t], state, t)
        hs.append(model.cell.hidden(state))
    task.per_example_loss(model.read(torch.stack(hs)), batch.y).mean().backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_tbptt_with_k_at_least_T_equals_bptt(cell, task_name, device):
    task, model, batch = setup(cell, task_name, device)
    steps = batch.x.shape[0]
    loss_b, bptt = grads_of(model, make_estimator("bptt"), batch, task)
    for k in (steps, steps + 5):
        loss_t, tbptt = grads_of(model, make_estimator("tbptt", truncation=k), batch, task)
        assert torch.allclose(loss_b, loss_t)
        for a, b in zip(bptt, tbptt):
            assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("task_name", ["adding", "copy"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_tbptt_matches_stepwise_truncation_reference(cell, task_name, k, device):
    task, model, batch = setup(cell, task_name, device)
    _, got = grads_of(model, make_estimator("tbptt", truncation=k), batch, task)
    want = reference_truncated_grads(model, batch, task, k)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-12)
    _, full = grads_of(model, make_estimator("bptt"), batch, task)
    assert any(not torch.allclose(a, b) for a, b in zip(got, full)), "truncation changed nothing"


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_gradient_profile_equals_per_example_autograd(cell, task_name, device):
    task, model, batch = setup(cell, task_name, device)
    # batch norm couples the examples of a batch in training; evaluation uses population statistics
    recompute_population_statistics(model, [batch.x])
    model.eval()
    got = hidden_gradient_norms(model, batch, task)
    assert got.shape == (batch.x.shape[0], batch.size)
    for i in range(batch.size):
        one = batch.select(torch.tensor([i]))
        hs, _ = model.cell.unroll(one.x)
        loss = task.per_example_loss(model.read(torch.stack(hs)), one.y).sum()
        want = torch.stack([g.norm() for g in torch.autograd.grad(loss, hs)])
        assert torch.allclose(got[:, i], want, rtol=1e-10, atol=1e-14)
    assert all(p.grad is None for p in model.parameters())


def test_estimator_errors():
    with pytest.raises(LongdepsError, match="tbptt needs gradient.truncation >= 1 steps, got None"):
        make_estimator("tbptt")
    with pytest.raises(LongdepsError, match="unknown gradient estimator 'rtrl'"):
        make_estimator("rtrl")
    with pytest.raises(LongdepsError, match="^gradient.truncation=5 applies to tbptt only, not gradient estimator 'bptt'$"):
        make_estimator("bptt", truncation=5)
    with pytest.raises(LongdepsError, match="^gradient.exact_window=3 applies to dsf only, not gradient estimator 'tbptt'$"):
        make_estimator("tbptt", truncation=2, exact_window=3)
    with pytest.raises(LongdepsError, match="^gradient.feedback_low=0.5 applies to gradient.feedback=uniform, constant only, "
                                            "not stationary$"):
        make_estimator("dsf", feedback_low=0.5)
    with pytest.raises(TypeError):
        make_estimator("tbptt", 5)  # options are keywords: a positional 5 is not a truncation
