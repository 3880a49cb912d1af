"""Stationary state feedbacks: the scan, the step Jacobians, the feedbacks, and the estimator
against independent references (autograd BPTT and a step-by-step rewrite, in float64)."""

import json

import pytest
import torch
from torch import nn

from longdeps.cells import CELLS, RecurrentCell, StackedCell, StepWeights, detach_state, make_cell
from longdeps.config import RunConfig
from longdeps.errors import LongdepsError
from longdeps.experiment import run_experiment
from longdeps.functional.scan import linear_scan
from longdeps.gradients import alignment, make_estimator
from longdeps.gradients.jacobian import flatten_state, state_parts, step_jacobians, unflatten_state
from longdeps.model import SequenceModel
from longdeps.store import ResultStore
from longdeps.tasks import make_task

FEEDBACK_CHOICES = [{"feedback": "stationary"}, {"feedback": "stationary-diagonal"}, {"feedback": "uniform"},
                    {"feedback": "constant", "feedback_low": 0.5, "feedback_high": 0.5}]


# -- the scan -------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["loop", "doubling", "auto"])
@pytest.mark.parametrize("steps", [1, 2, 3, 1000, 4097])
def test_scan_equals_sequential_recurrence(backend, steps, device):
    gen = torch.Generator().manual_seed(steps)
    a = torch.rand(6, generator=gen, dtype=torch.float64)
    e = torch.randn(steps, 3, 6, generator=gen, dtype=torch.float64)
    want = e.clone()  # on the CPU
    for t in range(steps - 2, -1, -1):
        want[t] = e[t] + a * want[t + 1]
    a, e = a.to(device), e.to(device)
    got = linear_scan(a, e, backend)
    assert got.device == e.device and torch.allclose(got.cpu(), want, rtol=1e-12, atol=1e-12)
    got32 = linear_scan(a.float(), e.float(), backend)
    assert torch.allclose(got32.double().cpu(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["loop", "doubling"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("reverse", [True, False])
def test_scan_with_a_coefficient_per_step_either_way_in_time(backend, dtype, reverse, device):
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(37, 3, 5, generator=gen, dtype=dtype) * 0.9
    e = torch.randn(37, 3, 5, generator=gen, dtype=dtype)
    want = e.clone()  # on the CPU
    order = range(35, -1, -1) if reverse else range(1, 37)
    for t in order:
        want[t] = e[t] + a[t] * want[t + 1 if reverse else t - 1]
    got = linear_scan(a.to(device), e.to(device), backend, reverse=reverse)
    assert torch.allclose(got.cpu(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["loop", "doubling"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("reverse", [True, False])
@pytest.mark.parametrize("per_step", [True, False])
def test_scan_from_an_initial_value_and_its_gradients_match_a_loop(backend, dtype, reverse, per_step):
    """Values against a loop from the initial value; gradients of a, e and the initial value (the
    adjoint scan) by finite differences (gradcheck)."""
    gen = torch.Generator().manual_seed(2)
    a = (torch.rand(*((6,) if per_step else ()), 2, 3, generator=gen, dtype=dtype) * 0.9).requires_grad_()
    e = torch.randn(6, 2, 3, generator=gen, dtype=dtype, requires_grad=True)
    initial = torch.randn(2, 3, generator=gen, dtype=dtype, requires_grad=True)
    want, carried = [None] * 6, initial
    for t in (range(5, -1, -1) if reverse else range(6)):
        carried = want[t] = e[t] + (a[t] if per_step else a) * carried
    got = linear_scan(a, e, backend, reverse, initial)
    torch.testing.assert_close(got, torch.stack(want), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a, e, initial: linear_scan(a, e, backend, reverse, initial), (a, e, initial))


def test_scan_rejects_unknown_backend_and_wrong_step_count():
    with pytest.raises(LongdepsError, match="unknown scan backend 'fft'"):
        linear_scan(torch.ones(1), torch.ones(2, 1), "fft")
    with pytest.raises(LongdepsError, match="per-step scan coefficients need 4 steps, got 3"):
        linear_scan(torch.ones(3, 2), torch.ones(4, 2))


# -- the step Jacobians -----------------------------------------------------------
def states_of(cell, x):
    """Every state 0..T of a step-by-step run, parts stacked ``(T + 1, B, .)``."""
    state, states = cell.initial_state(x.shape[1]), []
    with torch.no_grad():
        states.append(state)
        for t in range(x.shape[0]):
            state = cell.step(x[t], state, t)
            states.append(state)
    parts = [torch.stack([state_parts(s)[i] for s in states]) for i in range(len(state_parts(state)))]
    return tuple(parts) if isinstance(state, tuple) else parts[0]


@pytest.mark.parametrize("cell_name", list(CELLS))
def test_batched_step_jacobians_equal_per_example_autograd(cell_name, device):
    """``J[k, n]`` against ``torch.autograd.functional.jacobian`` of one step, taken for one example
    with the others held fixed (for bn-lstm in training mode, through the batch statistics)."""
    torch.manual_seed(0)
    cell = make_cell(cell_name, 3, 5).double().to(device)
    x = torch.randn(10, 6, 3, dtype=torch.float64).to(device)
    states = states_of(cell, x)
    steps, examples = [0, 4, 9], torch.tensor([1, 3, 4])
    got = step_jacobians(cell, x, states, steps, examples)
    like = map(lambda s: s[0, :1], state_parts(states))
    like = tuple(like) if isinstance(states, tuple) else next(like)
    for k, t in enumerate(steps):
        previous = flatten_state(tuple(s[t, examples] for s in state_parts(states)))
        for n in range(len(examples)):
            def one_step(flat, t=t, n=n, previous=previous):
                rows = torch.cat([previous[:n], flat[None], previous[n + 1:]])
                return flatten_state(cell.step(x[t, examples], unflatten_state(rows, like), t))[n]
            want = torch.autograd.functional.jacobian(one_step, previous[n])
            assert torch.allclose(got[k, n], want, rtol=1e-10, atol=1e-12), (t, n)


def test_step_jacobians_leave_batch_norm_statistics_alone():
    torch.manual_seed(0)
    cell = make_cell("bn-lstm", 3, 5).double()
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    states = states_of(cell, x)
    before = {k: v.clone() for k, v in cell.state_dict().items()}
    step_jacobians(cell, x, states, [1, 2], torch.arange(4))
    assert all(torch.equal(before[k], v) for k, v in cell.state_dict().items())


# -- the estimator against references ----------------------------------------------
class LinearCell(RecurrentCell):
    """``h_t = W h_{t-1} + U x_t + b`` with a fixed ``W``: its step Jacobian is ``W`` at every step."""

    def __init__(self, input_size, hidden_size, recurrent):
        super().__init__(input_size, hidden_size, native=False)
        self.input = nn.Linear(input_size, hidden_size)
        self.register_buffer("recurrent", recurrent)

    def initial_state(self, batch_size):
        return self.zeros(batch_size)

    def hidden(self, state):
        return state

    def project_input(self, x):
        return self.input(x)

    def step_weights(self):
        return StepWeights(self.recurrent)

    def update(self, u, gh, state, t, weights):
        return u + gh


def grads(model, estimator, batch, task):
    model.zero_grad(set_to_none=True)
    losses, _ = estimator.backward(model, batch, task)
    return losses, [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


def float64_batch(task, size, seed=0, device="cpu"):
    batch = task.sample(size, torch.Generator().manual_seed(seed))
    batch.x = batch.x.double()
    if batch.y.is_floating_point():
        batch.y = batch.y.double()
    return batch.to(device)


def assert_same(got, want, rtol=1e-10, atol=1e-12):
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=rtol, atol=atol), (a - b).abs().max()


@pytest.mark.parametrize("task_name", ["adding", "copy"])
@pytest.mark.parametrize("shape", ["dense", "diagonal"])
def test_stationary_dsf_is_exact_bptt_for_a_linear_cell(task_name, shape, device):
    """The mean step Jacobian of a linear cell is ``W``: the eigenbasis scan (a dense, non-normal
    ``W``) or the diagonal (a diagonal ``W``) then carries every error exactly as BPTT does."""
    torch.manual_seed(0)
    task = make_task(task_name, 15)
    if shape == "dense":
        recurrent = torch.randn(6, 6, dtype=torch.float64)
        recurrent *= 0.9 / torch.linalg.eigvals(recurrent).abs().max()
    else:
        recurrent = torch.diag(torch.rand(6, dtype=torch.float64) * 1.8 - 0.9)
    model = SequenceModel(LinearCell(task.input_size, 6, recurrent), task.output_size, task.readout).double().to(device)
    batch = float64_batch(task, 4, device=device)
    loss_b, want = grads(model, make_estimator("bptt"), batch, task)
    kinds = ["stationary"] + (["stationary-diagonal"] if shape == "diagonal" else [])
    for kind in kinds:
        dsf = make_estimator("dsf", feedback=kind)
        loss_d, got = grads(model, dsf, batch, task)
        assert torch.allclose(loss_d, loss_b, rtol=1e-12)
        assert_same(got, want, rtol=1e-8, atol=1e-10)
        assert dsf.info["basis"] == ("eigen" if kind == "stationary" else "diagonal") and dsf.info["scaled"] == 0
    if shape == "diagonal":
        assert torch.allclose(dsf.feedback["diagonal"].cpu(), recurrent.diagonal(), atol=1e-12)


@pytest.mark.parametrize("task_name", ["adding", "copy"])
@pytest.mark.parametrize("residual", [False, True])
def test_stationary_dsf_is_exact_bptt_for_a_stack_of_linear_cells(task_name, residual, device):
    """Each layer's stationary Jacobian is its own ``W``; a lower layer's errors are the upper
    layer's input derivative applied to its ``g``: the whole stack gets exact BPTT's gradient."""
    torch.manual_seed(1)
    task = make_task(task_name, 15)
    layers = []
    for index in range(3):
        recurrent = torch.randn(6, 6, dtype=torch.float64)
        recurrent *= 0.8 / torch.linalg.eigvals(recurrent).abs().max()
        layers.append(LinearCell(task.input_size if index == 0 else 6, 6, recurrent))
    cell = StackedCell(layers, residual=residual)
    model = SequenceModel(cell, task.output_size, task.readout).double().to(device)
    batch = float64_batch(task, 4, device=device)
    loss_b, want = grads(model, make_estimator("bptt"), batch, task)
    dsf = make_estimator("dsf", feedback="stationary")
    loss_d, got = grads(model, dsf, batch, task)
    assert torch.allclose(loss_d, loss_b, rtol=1e-12)
    assert_same(got, want, rtol=1e-8, atol=1e-10)
    assert len(dsf.infos) == 3 and all(info["basis"] == "eigen" for info in dsf.infos)
    assert [len(layer["layers"]) for layer in [dsf.statistics()["feedback"]]] == [3]


def test_eigenbasis_scan_equals_the_dense_recurrence(device):
    """``g_t = e_t + A^T g_{t+1}`` step by step in float64, against the scan in ``A``'s eigenbasis
    (complex eigenvalues) and against the dense fallback."""
    torch.manual_seed(1)
    matrix = torch.randn(7, 7, dtype=torch.float64)
    matrix *= 0.95 / torch.linalg.eigvals(matrix).abs().max()
    assert torch.linalg.eigvals(matrix).imag.abs().max() > 0.1
    e = torch.randn(40, 3, 7, dtype=torch.float64)
    want = e.clone()
    for t in range(38, -1, -1):
        want[t] = e[t] + want[t + 1] @ matrix
    eigenvalues, basis = torch.linalg.eig(matrix)
    feedback = {"eigenvalues": eigenvalues, "basis": basis, "inverse": torch.linalg.inv(basis), "matrix": matrix}
    for backend, tolerance in (("doubling", 1e-9), ("loop", 1e-12)):  # eigenbasis (GPU), A itself (CPU)
        dsf = make_estimator("dsf")
        dsf.scan_backend, dsf.feedback = backend, feedback
        assert torch.allclose(dsf.scan(e.to(device)).cpu(), want, rtol=tolerance, atol=tolerance)
    column = torch.einsum("ij,bi->bj", matrix, want[1])  # A^T g as columns is g A as rows
    assert torch.allclose(want[0], e[0] + column)


def test_unstable_feedback_is_scaled_and_ill_conditioned_eigenvectors_use_the_dense_scan():
    torch.manual_seed(0)
    task = make_task("adding", 12)
    recurrent = torch.tensor([[1.5, 0.0], [0.0, 0.5]], dtype=torch.float64)
    model = SequenceModel(LinearCell(task.input_size, 2, recurrent), task.output_size, task.readout).double()
    dsf = make_estimator("dsf")
    grads(model, dsf, float64_batch(task, 4), task)
    assert dsf.info["scaled"] == 1 and dsf.info["basis"] == "eigen"
    assert torch.allclose(dsf.feedback["eigenvalues"].abs().max(), torch.tensor(0.999, dtype=torch.float64))
    assert torch.allclose(dsf.feedback["matrix"], torch.diag(torch.tensor([0.999, 0.5], dtype=torch.float64)))
    defective = torch.tensor([[0.5, 1.0], [0.0, 0.5]], dtype=torch.float64)  # one eigenvector: cond(P) = inf
    model.cell.recurrent = defective
    dsf = make_estimator("dsf")
    _, got = grads(model, dsf, float64_batch(task, 4), task)
    _, want = grads(model, make_estimator("bptt"), float64_batch(task, 4), task)
    assert dsf.info["basis"] == "dense"
    assert_same(got, want, rtol=1e-8, atol=1e-10)


def build(cell_name, task_name, seed=0, device="cpu", **options):
    torch.manual_seed(seed)
    task = make_task(task_name, 12)
    model = SequenceModel(make_cell(cell_name, task.input_size, 7, **options), task.output_size, task.readout).double()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.uniform_(-0.3, 0.3)
    return task, model.to(device), float64_batch(task, 5, seed, device)


LOOP_CELLS = [(name, {}) for name in CELLS] + [("bn-lstm", {"batch_norm": False})]


@pytest.mark.parametrize("cell,options", LOOP_CELLS)
@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_dsf_with_zero_feedback_is_fully_truncated_bptt(cell, options, task_name, device):
    task, model, batch = build(cell, task_name, device=device, **options)
    _, got = grads(model, make_estimator("dsf", feedback="constant", feedback_low=0.0, feedback_high=0.0), batch, task)
    _, want = grads(model, make_estimator("tbptt", truncation=1), batch, task)
    assert_same(got, want)


@pytest.mark.parametrize("cell,options", LOOP_CELLS)
@pytest.mark.parametrize("task_name", ["adding", "copy"])
def test_an_exact_window_of_all_steps_is_bptt(cell, options, task_name, device):
    task, model, batch = build(cell, task_name, device=device, **options)
    _, want = grads(model, make_estimator("bptt"), batch, task)
    _, got = grads(model, make_estimator("dsf", exact_window=40), batch, task)  # copy: 12 + 20 steps
    assert_same(got, want)


@pytest.mark.parametrize("cell", ["srn", "lstm"])
def test_an_exact_window_beyond_the_sequence_is_cut_to_t_minus_1_steps(cell, monkeypatch):
    """A window of 100,000 steps on 12 steps is BPTT, in the 11 vector-Jacobian products (of all steps
    at once) that BPTT's 11 steps back take, and the record says the window used."""
    from longdeps.gradients.dsf import DSF

    task, model, batch = build(cell, "adding")
    products, step_back = [], DSF.step_back
    monkeypatch.setattr(DSF, "step_back", lambda self, *args: products.append(1) or step_back(self, *args))
    dsf = make_estimator("dsf", exact_window=100_000)
    _, got = grads(model, dsf, batch, task)
    _, want = grads(model, make_estimator("bptt"), batch, task)
    assert_same(got, want)
    assert len(products) == batch.x.shape[0] - 1 == 11
    assert dsf.statistics()["exact_window_used"] == 11 and dsf.describe()["exact_window"] == 100_000
    assert "exact_window_used" not in make_estimator("dsf").statistics()


@pytest.mark.parametrize("cell", ["srn", "lstm", "gru"])
@pytest.mark.parametrize("window", [1, 3, 7])
def test_an_exact_window_without_feedback_is_truncated_bptt_for_one_output(cell, window, device):
    """With the loss on the last step only, k exact steps back and no feedback is truncated BPTT
    through the last k + 1 steps."""
    task, model, batch = build(cell, "adding", device=device)
    dsf = make_estimator("dsf", feedback="constant", feedback_low=0.0, feedback_high=0.0, exact_window=window)
    _, got = grads(model, dsf, batch, task)
    _, want = grads(model, make_estimator("tbptt", truncation=window + 1), batch, task)
    assert_same(got, want)


def per_layer_truncated_grads(model, batch, task):
    """Every layer's state cut from its own previous step, the input path between layers kept:
    a stack without residual or dropout written step by step, by autograd."""
    model.zero_grad(set_to_none=True)
    cell = model.cell
    states, outputs = [layer.initial_state(batch.size) for layer in cell.layers], []
    for t in range(batch.x.shape[0]):
        inputs = batch.x[t]
        for index, layer in enumerate(cell.layers):
            states[index] = layer.step(inputs, states[index] if t == 0 else detach_state(states[index]), t)
            inputs = layer.hidden(states[index])
        outputs.append(inputs)
    task.per_example_loss(model.read(torch.stack(outputs)), batch.y).mean().backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("cell,options", LOOP_CELLS)
def test_dsf_with_zero_feedback_on_a_stack_is_truncated_in_each_layer(cell, options, device):
    task, model, batch = build(cell, "copy", device=device, num_layers=2, **options)
    _, got = grads(model, make_estimator("dsf", feedback="constant", feedback_low=0.0, feedback_high=0.0), batch, task)
    want = per_layer_truncated_grads(model, batch, task)
    assert_same(got, want)
    _, exact = grads(model, make_estimator("bptt"), batch, task)
    assert any(not torch.allclose(a, b) for a, b in zip(got, exact)), "truncation should differ from exact BPTT here"


@pytest.mark.parametrize("cell", ["srn", "lstm", "gru"])
def test_an_exact_window_of_all_steps_is_bptt_through_a_stack_with_dropout_and_residual(cell, device):
    """Every layer's exact window, the dropout masks of the update and the residual paths: BPTT."""
    task, model, batch = build(cell, "adding", device=device, num_layers=3, dropout=0.3, residual=True)
    torch.manual_seed(5)
    _, want = grads(model, make_estimator("bptt"), batch, task)
    torch.manual_seed(5)
    _, got = grads(model, make_estimator("dsf", exact_window=12), batch, task)
    assert_same(got, want)


def reference_dsf_grads(model, batch, task, feedback):
    """DSF with a diagonal feedback written step by step: e_t by autograd through the readout,
    the feedback on the whole state by a float64 loop, and one local backward call per step with
    the previous state detached (but for the initial state, which may be trainable)."""
    model.zero_grad(set_to_none=True)
    cell, steps = model.cell, batch.x.shape[0]
    state, states = cell.initial_state(batch.size), []
    with torch.no_grad():
        for t in range(steps):
            state = cell.step(batch.x[t], state, t)
            states.append(state)
    hs = [cell.hidden(s).clone().requires_grad_() for s in states]
    task.per_example_loss(model.read(torch.stack(hs)), batch.y).mean().backward()
    g, carried = [None] * steps, None
    for t in range(steps - 1, -1, -1):
        error = flatten_state(tuple(hs[t].grad if p is cell.hidden(states[t]) else torch.zeros_like(p)
                                    for p in state_parts(states[t])))
        carried = error if carried is None else error + feedback * carried
        g[t] = carried
    previous = [cell.initial_state(batch.size)] + states[:-1]
    for t in range(steps):
        local = cell.step(batch.x[t], previous[t] if t == 0 else detach_state(previous[t]), t)
        torch.autograd.backward(state_parts(local), state_parts(unflatten_state(g[t], local)))
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("cell,options", LOOP_CELLS)
@pytest.mark.parametrize("task_name", ["adding", "copy"])
@pytest.mark.parametrize("kind", ["uniform", "stationary-diagonal"])
def test_all_steps_at_once_equals_per_step_local_backward(cell, options, task_name, kind, device):
    task, model, batch = build(cell, task_name, seed=3, device=device, **options)
    dsf = make_estimator("dsf", feedback=kind, seed=3)
    _, got = grads(model, dsf, batch, task)
    want = reference_dsf_grads(model, batch, task, dsf.feedback["diagonal"])
    assert_same(got, want)
    _, exact = grads(model, make_estimator("bptt"), batch, task)
    assert any(not torch.allclose(a, b) for a, b in zip(got, exact)), "dsf should differ from exact BPTT here"


def trainable_initial_state(cell: str) -> bool:
    return any(name in ("h0", "c0") for name, _ in make_cell(cell, 1, 2).named_parameters())


@pytest.mark.parametrize("cell,options", [(c, {}) for c in CELLS if trainable_initial_state(c)]
                         + [("bn-lstm", {"batch_norm": False})])
@pytest.mark.parametrize("estimator,settings", [("bptt", {}), ("tbptt", {"truncation": 1})]
                         + [("dsf", f) for f in FEEDBACK_CHOICES] + [("dsf", {"exact_window": 2})])
def test_every_trainable_initial_state_gets_its_gradient(cell, options, estimator, settings, device):
    """On a task with a loss at every step, so that even fully truncated BPTT reaches step 0."""
    task, model, batch = build(cell, "copy", device=device, **options)
    initial = [name for name, _ in model.cell.named_parameters() if name in ("h0", "c0")]
    _, got = grads(model, make_estimator(estimator, **settings), batch, task)
    for name, grad in zip((n for n, _ in model.named_parameters()), got):
        if name.removeprefix("cell.") in initial:
            assert grad.abs().max() > 0, f"{cell}: {name} got no gradient under {estimator} {settings}"


def test_uniform_feedback_is_fixed_by_the_seed_and_range_and_constant_takes_one_value():
    task, model, batch = build("lstm", "adding")
    draws = []
    for seed in (1, 1, 2):
        dsf = make_estimator("dsf", feedback="uniform", seed=seed)
        grads(model, dsf, batch, task)
        draws.append(dsf.feedback["diagonal"])
    assert draws[0].shape == (14,)  # one coefficient per unit of the whole state (h, c)
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert 0 <= draws[0].min() and draws[0].max() <= 1
    dsf = make_estimator("dsf", feedback="constant", feedback_low=0.5, feedback_high=0.5)
    grads(model, dsf, batch, task)
    assert torch.all(dsf.feedback["diagonal"] == 0.5)
    with pytest.raises(LongdepsError, match=r"low <= high, got \[0.9, 0.1\]"):
        make_estimator("dsf", feedback="uniform", feedback_low=0.9, feedback_high=0.1)
    with pytest.raises(LongdepsError, match="constant takes one value"):
        make_estimator("dsf", feedback="constant", feedback_low=0.1, feedback_high=0.2)
    with pytest.raises(LongdepsError, match="unknown gradient.feedback 'random'"):
        make_estimator("dsf", feedback="random")
    with pytest.raises(LongdepsError, match="gradient.refresh_every must be an integer >= 1, got 0"):
        make_estimator("dsf", refresh_every=0)


def test_stationary_feedback_is_refreshed_every_n_updates_from_the_batch():
    task, model, batch = build("gru", "adding")
    dsf = make_estimator("dsf", refresh_every=3)
    refreshed = []
    for _ in range(7):
        grads(model, dsf, batch, task)
        refreshed.append(dsf.info["refreshed_at"])
    assert refreshed == [0, 0, 3, 3, 3, 6, 6]


# -- alignment --------------------------------------------------------------------
@pytest.mark.parametrize("cell", list(CELLS))
def test_alignment_of_exact_estimators_is_one_and_nothing_is_changed(cell):
    task, model, batch = build(cell, "copy")
    model.zero_grad()
    marker = [torch.full_like(p, 7.0) for p in model.parameters()]
    for p, m in zip(model.parameters(), marker):
        p.grad = m
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    for name, settings in (("bptt", {}), ("tbptt", {"truncation": 32}), ("tbptt", {"truncation": 50}),
                           ("dsf", {"exact_window": 40})):
        figures = alignment(model, batch, task, make_estimator(name, **settings))
        assert figures["cosine"] == pytest.approx(1, abs=1e-12), (name, settings)
        assert figures["cosine_recurrent"] == pytest.approx(1, abs=1e-12)
        assert figures["norm_ratio"] == pytest.approx(1, abs=1e-12)
    truncated = alignment(model, batch, task, make_estimator("tbptt", truncation=1))
    assert truncated["cosine"] < 0.999
    assert all(p.grad is m for p, m in zip(model.parameters(), marker))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_alignment_restores_the_estimators_refresh_clock():
    task, model, batch = build("gru", "adding")
    dsf = make_estimator("dsf", refresh_every=2)
    grads(model, dsf, batch, task)
    state = (dsf.updates, dsf.info)
    alignment(model, batch, task, dsf)
    assert (dsf.updates, dsf.info) == state


# -- in a run -----------------------------------------------------------------------
DSF_RUN = ["task.seq_len=12", "task.val_size=64", "task.test_size=64", "cell.name=gru", "cell.hidden_size=8",
           "train.batch_size=16", "train.steps=30", "train.eval_every=5", "train.checkpoint_every=10",
           "train.alignment_every=5", "gradient.name=dsf", "gradient.refresh_every=7", "train.stop_when_solved=false"]


def test_run_records_alignment_and_feedback_and_resumes_mid_refresh_exactly(tmp_path, interrupt_and_resume, device):
    config = RunConfig().with_overrides(DSF_RUN + [f"train.device={device}"])
    whole = run_experiment(config, tmp_path / "a", progress=False)

    def records(root, run_id):
        lines = (root / "runs" / run_id / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "wall_time"} for line in lines]

    first = records(tmp_path / "a", whole.run_id)
    assert [r["step"] for r in first if "alignment" in r] == [5, 10, 15, 20, 25, 30]
    assert all(-1 <= r["alignment"]["cosine"] <= 1 and r["alignment"]["norm_ratio"] > 0 for r in first)
    assert [r["feedback"]["refreshed_at"] for r in first] == [0, 7, 14, 14, 21, 28]
    assert first[0]["feedback"]["basis"] in ("eigen", "dense")

    resumed = interrupt_and_resume(config, tmp_path / "b", 23)  # two updates after the refresh at 21
    assert records(tmp_path / "b", resumed.run_id) == first
    assert resumed.summary["test"] == whole.summary["test"]
    assert ResultStore(tmp_path / "b").evals(resumed.run_id)[-1]["alignment"] == first[-1]["alignment"]
