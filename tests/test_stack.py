"""Stacked layers (``cell.num_layers``): drop-in replacements for torch's multi-layer modules, the
layer-by-layer forward against the step-by-step unroll (dropout and residual included), one layer
being today's cell, the per-layer capabilities (diffusion, batch-norm statistics) and the sizes."""

import pytest
import torch
from torch import nn

from longdeps import LongdepsError
from longdeps.cells import CELLS, StackedCell, detach_state, make_cell
from longdeps.config import RunConfig
from longdeps.continuation import make_continuation
from longdeps.functional.batchnorm import TimeBatchNorm, recompute_population_statistics
from longdeps.gradients import make_estimator
from longdeps.model import SequenceModel
from longdeps.tasks import make_task

TORCH_MODULES = {"srn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
#: the attribute holding each cell's torch module
CORE = {"srn": "rnn", "gru": "gru", "lstm": "lstm"}


def copy_into(torch_module: nn.Module, cell, name: str) -> None:
    """Give ``torch_module`` (``num_layers`` layers) the weights of ``cell`` (one layer or a stack)."""
    weights = {}
    for index, layer in enumerate(cell.layers):
        for key, value in getattr(layer, CORE[name]).state_dict().items():
            weights[key.replace("_l0", f"_l{index}")] = value
    torch_module.load_state_dict(weights)


@pytest.mark.parametrize("native", [True, False], ids=["fused", "step-loop"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("name", list(TORCH_MODULES))
def test_cells_are_drop_in_replacements_for_torch_modules(name, layers, native):
    """The same outputs and state shapes as nn.RNN/GRU/LSTM with the same weights, in a loop written
    for torch's modules that feeds the returned state back in."""
    torch.manual_seed(0)
    cell = make_cell(name, 3, 5, num_layers=layers, native=native, batch_first=True).double()
    reference = TORCH_MODULES[name](3, 5, num_layers=layers, batch_first=True).double()
    copy_into(reference, cell, name)
    state = want_state = None
    for _ in range(3):  # segments of one stream, each from the last one's final state
        x = torch.randn(4, 6, 3, dtype=torch.float64)
        got, state = cell(x, state)
        want, want_state = reference(x, want_state)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-12)
        pairs = zip(state, want_state) if name == "lstm" else [(state, want_state)]
        for mine, theirs in pairs:
            assert mine.shape == theirs.shape == (layers, 4, 5) and torch.allclose(mine, theirs, atol=1e-12)
    # and the other way round: torch's state into ours
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    assert torch.allclose(cell(x, want_state)[0], reference(x, want_state)[0], atol=1e-12)


def test_a_state_of_the_wrong_layout_is_refused_in_one_line():
    cell = make_cell("lstm", 3, 5, num_layers=2)
    with pytest.raises(LongdepsError, match=r"expected a state of \(num_layers=2, batch, units\) tensors.*got \[\(4, 5\)"):
        cell(torch.randn(6, 4, 3), (torch.zeros(4, 5), torch.zeros(4, 5)))


@pytest.mark.parametrize("name", list(CELLS))
def test_one_layer_is_todays_cell(name):
    torch.manual_seed(3)
    plain = CELLS[name](3, 5)
    torch.manual_seed(3)
    made = make_cell(name, 3, 5, num_layers=1)
    assert not isinstance(made, StackedCell) and made.num_layers == 1 and made.layers == (made,)
    assert list(made.state_dict()) == list(plain.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(made.state_dict().values(), plain.state_dict().values()))


def reference_stack(cell: StackedCell, x: torch.Tensor, masks) -> torch.Tensor:
    """The stack by hand, one layer after the other through each layer's own forward."""
    inputs = x
    for index, layer in enumerate(cell.layers):
        hidden, _ = layer(inputs)
        out = hidden + inputs if cell.residual and inputs.shape[-1] == hidden.shape[-1] else hidden
        inputs = out if masks[index] is None else out * masks[index]
    return inputs


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("dropout,residual", [(0.0, False), (0.5, True)])
def test_layer_by_layer_forward_equals_the_step_by_step_unroll(name, dropout, residual):
    """``forward`` (each layer over the whole sequence, fused where it can) and ``unroll`` (every
    layer at each step) compute the same maths and draw the same dropout masks; both equal the
    stack written by hand. Gradients agree too."""
    torch.manual_seed(1)
    cell = make_cell(name, 5, 5, num_layers=3, dropout=dropout, residual=residual).double().train()
    x = torch.randn(7, 4, 5, dtype=torch.float64)
    torch.manual_seed(9)
    got, _ = cell(x)
    torch.manual_seed(9)
    hs, _ = cell.unroll(x)
    torch.manual_seed(9)
    masks = cell.dropout_masks(7, 4)
    want = reference_stack(cell, x, masks)
    assert (masks[0] is None) == (dropout == 0) and masks[-1] is None
    assert torch.allclose(got, torch.stack(hs), atol=1e-12) and torch.allclose(got, want, atol=1e-12)
    params = list(cell.parameters())
    weights = torch.randn_like(got)
    torch.manual_seed(9)
    first = torch.autograd.grad((cell(x)[0] * weights).sum(), params, allow_unused=True)
    torch.manual_seed(9)
    second = torch.autograd.grad((torch.stack(cell.unroll(x)[0]) * weights).sum(), params, allow_unused=True)
    for a, b in zip(first, second):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-10)


def test_dropout_acts_in_training_only_and_between_layers_only():
    torch.manual_seed(0)
    cell = make_cell("gru", 3, 5, num_layers=2, dropout=0.5)
    assert [m is None for m in cell.dropout_masks(4, 2)] == [False, True]
    cell.eval()
    assert cell.dropout_masks(4, 2) == [None, None]
    x = torch.randn(4, 2, 3)
    assert torch.equal(cell(x)[0], cell(x)[0])


def test_stacking_options_are_checked_and_reach_a_run_by_config():
    with pytest.raises(LongdepsError, match="cell.num_layers must be a positive integer, got 0"):
        make_cell("gru", 3, 5, num_layers=0)
    with pytest.raises(LongdepsError, match=r"cell.dropout=0.2 and cell.residual=False act between layers"):
        make_cell("gru", 3, 5, dropout=0.2)
    with pytest.raises(LongdepsError, match=r"cell.dropout must be in \[0, 1\), got 1.0"):
        make_cell("gru", 3, 5, num_layers=2, dropout=1.0)
    config = RunConfig().with_overrides(["cell.name=srn", "cell.num_layers=3", "cell.dropout=0.25"])
    assert config.options("cell")["num_layers"] == 3 and config.options("cell")["dropout"] == 0.25
    assert config.run_id() != RunConfig().with_overrides(["cell.name=srn"]).run_id()
    todays = RunConfig().with_overrides(["cell.name=srn", "cell.num_layers=1", "cell.dropout=0", "cell.residual=false"])
    assert todays.run_id() == RunConfig().with_overrides(["cell.name=srn"]).run_id()
    cell = make_cell("srn", 3, 5, **config.options("cell"))
    assert cell.num_layers == 3 and cell.dropout == 0.25


def test_each_layer_diffuses_its_own_nonlinearities_and_moment_propagation_is_refused():
    """A smoothed stack equals its smoothed layers run one after the other, each with the width
    of its own input; every layer's widths are recorded."""
    torch.manual_seed(2)
    task = make_task("adding", 6)
    model = SequenceModel(make_cell("srn", task.input_size, 4, num_layers=2), task.output_size, task.readout).double()
    make_continuation("diffusion", model=model, sigma0=0.5)
    assert all(layer.smoothing == 0.5 for layer in model.cell.layers)
    x = torch.randn(6, 3, task.input_size, dtype=torch.float64)
    with model.cell.recording_widths() as widths:
        got, _ = model.cell(x)
    assert len(widths) == 2 * 6 and torch.allclose(got, reference_stack(model.cell, x, [None, None]), atol=1e-12)
    with pytest.raises(LongdepsError, match="a stack of srn cells has no moment-propagated form"):
        model.cell.set_smoothing(0.5, propagate=True)


def test_batch_norm_statistics_and_the_population_pass_are_per_layer():
    """Each layer keeps its own statistics, and the population pass sets both layers' to what each
    would get alone over its own inputs."""
    torch.manual_seed(4)
    cell = make_cell("bn-lstm", 3, 5, num_layers=2).double()
    model = SequenceModel(cell, 1, "last").double()
    batches = [torch.randn(6, 8, 3, dtype=torch.float64) for _ in range(2)]
    assert cell.before_evaluation(model, batches) == 2
    bottom, top = cell.layers
    for layer in cell.layers:
        assert all(norm.running_mean.shape[0] == 6 for norm in layer.modules() if isinstance(norm, TimeBatchNorm))
    bottom_alone = make_cell("bn-lstm", 3, 5).double()
    bottom_alone.load_state_dict(bottom.state_dict())
    recompute_population_statistics(bottom_alone, batches)
    assert torch.allclose(bottom_alone.norm_x.running_mean, bottom.norm_x.running_mean, atol=1e-12)
    bottom.train()
    with torch.no_grad():
        top_inputs = [bottom(x)[0] for x in batches]
    top_alone = make_cell("bn-lstm", 5, 5).double()
    top_alone.load_state_dict(top.state_dict())
    recompute_population_statistics(top_alone, top_inputs)
    assert torch.allclose(top_alone.norm_h.running_var, top.norm_h.running_var, atol=1e-12)


def test_alignment_is_recorded_per_layer():
    torch.manual_seed(0)
    task = make_task("adding", 8)
    model = SequenceModel(make_cell("gru", task.input_size, 4, num_layers=2), task.output_size, task.readout).double()
    batch = task.sample(4, torch.Generator().manual_seed(0))
    batch.x, batch.y = batch.x.double(), batch.y.double()
    from longdeps.gradients import alignment
    exact = alignment(model, batch, task, make_estimator("bptt"))
    assert len(exact["layers"]) == 2 and all(abs(layer["cosine"] - 1) < 1e-9 for layer in exact["layers"])
    truncated = alignment(model, batch, task, make_estimator("dsf", feedback="constant", feedback_high=0.0))
    assert all(layer["cosine"] < 1 - 1e-6 for layer in truncated["layers"])


def parameter_count(layers: int, hidden: int) -> int:
    """Parameters of a GRU stack on ptb-char (50 symbols in, 50 out) with its readout."""
    model = SequenceModel(make_cell("gru", 50, hidden, num_layers=layers), 50, "all")
    return sum(p.numel() for p in model.parameters())


def test_gru_stack_sizes_that_keep_the_one_layer_parameter_count():
    """The depth suite's sizes: GRU stacks with as many parameters as one layer of 256 units."""
    budget = parameter_count(1, 256)
    assert budget == 3 * (256 * 50 + 256 * 256 + 2 * 256) + 256 * 50 + 50
    for layers, hidden in ((2, 155), (3, 122)):
        assert abs(parameter_count(layers, hidden) / budget - 1) < 0.02


def test_tbptt_cuts_every_layers_state_every_k_steps():
    """TBPTT on a stack (each layer's fused kernel over a segment) against the step-by-step unroll
    with the whole stacked state detached at the same bounds."""
    torch.manual_seed(0)
    task = make_task("copy", 5)
    model = SequenceModel(make_cell("gru", task.input_size, 4, num_layers=2), task.output_size, task.readout).double()
    batch = task.sample(3, torch.Generator().manual_seed(1))
    batch.x = batch.x.double()
    params = list(model.parameters())
    model.zero_grad()
    make_estimator("tbptt", truncation=4).backward(model, batch, task)
    got = [p.grad.clone() for p in params]
    steps, state, hidden = batch.x.shape[0], None, []
    bounds = [0, *range(steps % 4 or 4, steps + 1, 4)]
    for start, stop in zip(bounds, bounds[1:]):
        hs, state = model.cell.unroll(batch.x[start:stop], None if state is None else detach_state(state), t0=start)
        hidden += hs
    want = torch.autograd.grad(task.per_example_loss(model.read(torch.stack(hidden)), batch.y).mean(), params)
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(got, want))
    exact = torch.autograd.grad(task.per_example_loss(model(batch.x)[0], batch.y).mean(), params)
    assert not all(torch.allclose(a, b) for a, b in zip(got, exact))


def test_a_stack_runs_each_layers_fused_kernel(monkeypatch):
    cell = make_cell("lstm", 3, 5, num_layers=3)
    calls = []
    for layer in cell.layers:
        kernel = layer.native_forward
        monkeypatch.setattr(layer, "native_forward", lambda x, state, kernel=kernel: calls.append(len(x)) or kernel(x, state))
    cell(torch.randn(7, 2, 3))
    assert calls == [7, 7, 7]  # one call per layer, over the whole sequence


def test_a_stack_provides_what_every_layer_provides(monkeypatch):
    stack = make_cell("gru", 3, 5, num_layers=2)
    assert stack.provides == stack.layers[0].provides
    monkeypatch.setattr(stack.layers[1], "batch_statistics", True)  # one layer coupling the examples
    assert "independent examples" not in stack.provides
