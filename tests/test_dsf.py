"""Stationary state feedbacks: the scan, and the estimator against independent references."""

import pytest
import torch
from torch import nn

from longdeps.cells import RecurrentCell, StepWeights, detach_state, make_cell
from longdeps.errors import LongdepsError
from longdeps.functional.scan import linear_scan
from longdeps.gradients import make_estimator
from longdeps.model import SequenceModel
from longdeps.tasks import make_task


@pytest.mark.parametrize("backend", ["loop", "doubling", "auto"])
@pytest.mark.parametrize("steps", [1, 2, 3, 1000, 4097])
def test_scan_equals_sequential_recurrence(backend, steps):
    gen = torch.Generator().manual_seed(steps)
    a = torch.rand(6, generator=gen, dtype=torch.float64)
    e = torch.randn(steps, 3, 6, generator=gen, dtype=torch.float64)
    want = e.clone()
    for t in range(steps - 2, -1, -1):
        want[t] = e[t] + a * want[t + 1]
    got = linear_scan(a, e, backend)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    got32 = linear_scan(a.float(), e.float(), backend)
    assert torch.allclose(got32.double(), want, rtol=1e-4, atol=1e-4)


def test_scan_rejects_unknown_backend():
    with pytest.raises(LongdepsError, match="unknown scan backend 'fft'"):
        linear_scan(torch.ones(1), torch.ones(2, 1), "fft")


class DiagonalLinearCell(RecurrentCell):
    """h_t = lam * h_{t-1} + W x_t + b, with lam fixed: DSF with feedback lam is exact BPTT."""

    def __init__(self, input_size, hidden_size, lam):
        super().__init__(input_size, hidden_size, native=False)
        self.input = nn.Linear(input_size, hidden_size)
        self.register_buffer("lam", lam)

    def initial_state(self, batch_size):
        return self.zeros(batch_size)

    def hidden(self, state):
        return state

    def project_input(self, x):
        return self.input(x)

    def step_weights(self):
        return StepWeights(torch.diag(self.lam))

    def update(self, u, gh, state, t, weights):
        return u + gh


def grads(model, estimator, batch, task):
    model.zero_grad(set_to_none=True)
    losses, _ = estimator.backward(model, batch, task)
    return losses, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


def float64_batch(task, size, seed=0):
    batch = task.sample(size, torch.Generator().manual_seed(seed))
    batch.x = batch.x.double()
    if batch.y.is_floating_point():
        batch.y = batch.y.double()
    return batch


@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_dsf_is_exact_bptt_for_a_diagonal_linear_cell(task_name):
    torch.manual_seed(0)
    task = make_task(task_name, 15)
    lam = torch.rand(6, dtype=torch.float64)
    model = SequenceModel(DiagonalLinearCell(task.input_size, 6, lam), task.output_size, task.readout).double()
    batch = float64_batch(task, 4)
    dsf = make_estimator("dsf", hidden_size=6)
    dsf.feedback = lam.clone()
    loss_d, got = grads(model, dsf, batch, task)
    loss_b, want = grads(model, make_estimator("bptt"), batch, task)
    assert torch.allclose(loss_d, loss_b, rtol=1e-12)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def build(cell_name, task_name, seed=0):
    torch.manual_seed(seed)
    task = make_task(task_name, 12)
    model = SequenceModel(make_cell(cell_name, task.input_size, 7), task.output_size, task.readout).double()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(-0.3, 0.3)
    return task, model, float64_batch(task, 5, seed)


@pytest.mark.parametrize("cell", ["srn", "lstm", "gru", "bn-lstm"])
@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_dsf_with_zero_feedback_is_fully_truncated_bptt(cell, task_name):
    task, model, batch = build(cell, task_name)
    _, got = grads(model, make_estimator("dsf", hidden_size=7, feedback=(0.0, 0.0)), batch, task)
    _, want = grads(model, make_estimator("tbptt", 1), batch, task)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def reference_dsf_grads(model, batch, task, lam):
    """DSF written step by step: e_t by autograd through the readout, the feedback by a
    float64 loop, and one local backward call per step with the previous state detached
    (but for the initial state, which may be trainable)."""
    model.zero_grad(set_to_none=True)
    cell, steps = model.cell, batch.x.shape[0]
    state, states = cell.initial_state(batch.size), []
    with torch.no_grad():
        for t in range(steps):
            state = cell.step(batch.x[t], state, t)
            states.append(state)
    hs = [cell.hidden(s).clone().requires_grad_() for s in states]
    task.per_example_loss(model.read(torch.stack(hs)), batch.y).mean().backward()
    g, feedback = [None] * steps, torch.zeros_like(hs[0])
    for t in range(steps - 1, -1, -1):
        feedback = hs[t].grad + lam * feedback
        g[t] = feedback
    previous = [cell.initial_state(batch.size)] + states[:-1]
    for t in range(steps):
        local = cell.step(batch.x[t], previous[t] if t == 0 else detach_state(previous[t]), t)
        cell.hidden(local).backward(g[t])
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("cell", ["srn", "lstm", "gru", "bn-lstm"])
@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_all_steps_at_once_equals_per_step_local_backward(cell, task_name):
    task, model, batch = build(cell, task_name, seed=3)
    dsf = make_estimator("dsf", hidden_size=7, seed=3)
    _, got = grads(model, dsf, batch, task)
    want = reference_dsf_grads(model, batch, task, dsf.feedback.double())
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    _, exact = grads(model, make_estimator("bptt"), batch, task)
    assert any(not torch.allclose(a, b) for a, b in zip(got, exact)), "dsf should differ from exact BPTT here"


def test_feedback_is_fixed_by_the_seed_and_range():
    a = make_estimator("dsf", hidden_size=100, seed=1)
    b = make_estimator("dsf", hidden_size=100, seed=1)
    assert torch.equal(a.feedback, b.feedback) and 0 <= a.feedback.min() and a.feedback.max() <= 1
    assert not torch.equal(a.feedback, make_estimator("dsf", hidden_size=100, seed=2).feedback)
    c = make_estimator("dsf", hidden_size=4, feedback=(0.5, 0.5))
    assert torch.equal(c.feedback, torch.full((4,), 0.5))
    with pytest.raises(LongdepsError, match="low <= high"):
        make_estimator("dsf", hidden_size=4, feedback=(0.9, 0.1))
