"""The compiled step loop (``cell.compile=true``): the same maths as the eager loop, outputs and every
gradient in float64, for every cell of the registry; BN-LSTM's per-step statistics and population
pass; a smoothed SRN; compiled once and reused; resume; the refusal where compilation fails.

Compiling on CPU takes seconds per graph (inductor's C++), so sequences are short (T = 8, two
blocks of 4) and cells small; the slowest tests are marked ``slow``."""

import json
import warnings

import pytest
import torch

from longdeps.cells import CELLS, RecurrentCell, compiled, make_cell
from longdeps.config import RunConfig
from longdeps.errors import LongdepsError
from longdeps.experiment import run_experiment
from longdeps.functional.batchnorm import recompute_population_statistics

STEPS, BATCH, BLOCK, INPUT, HIDDEN = 8, 5, 4, 3, 6


def pair(name, fallback=False, **options):
    """A cell in float64 with its step loop compiled, and an eager twin with the same weights."""
    torch.manual_seed(0)
    eager = make_cell(name, INPUT, HIDDEN, native=False, **options).double()
    with torch.no_grad():
        for p in eager.parameters():
            p.add_(0.3 * torch.randn_like(p))
    fast = make_cell(name, INPUT, HIDDEN, native=False, compile=True, compile_block=BLOCK,
                     compile_fallback=fallback, **options).double()
    fast.load_state_dict(eager.state_dict())
    return fast, eager


def outputs_and_gradients(cell, x):
    """Hidden outputs, final state and the gradients of every parameter of a loss on both."""
    cell.zero_grad(set_to_none=True)
    outputs, state = cell(x)
    state = state if isinstance(state, tuple) else (state,)
    (outputs.sin().sum() + sum(s.square().sum() for s in state)).backward()
    return [outputs, *state, *(p.grad for p in cell.parameters())]


def assert_agree(fast, eager, x):
    for got, expected in zip(outputs_and_gradients(fast, x), outputs_and_gradients(eager, x), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


#: cells with per-step statistics compile larger graphs (half a minute)
SLOW = {name for name, cls in CELLS.items() if cls.step_rows is not RecurrentCell.step_rows}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
                                  for name in CELLS])
def test_compiled_loop_gives_the_eager_outputs_and_gradients_and_compiles_once(name):
    fast, eager = pair(name)
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    assert_agree(fast, eager, x)
    before = compiled.graphs_compiled
    assert_agree(fast, eager, torch.randn_like(x))  # the same kind of input: nothing compiled again
    assert compiled.graphs_compiled == before
    for key, value in eager.state_dict().items():  # the same keys, and BN-LSTM's moving averages
        torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-9, atol=1e-12)
    assert list(fast.state_dict()) == list(eager.state_dict())


def test_a_compiled_stack_compiles_each_layers_loop():
    fast, eager = pair("srn", num_layers=2, residual=True)
    assert all(layer.compiled is not None for layer in fast.layers)
    assert_agree(fast, eager, torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64))
    assert fast.statistics()["compile_seconds"] >= 0


@pytest.mark.parametrize("propagate", [False, True])
def test_compiled_smoothed_srn_gives_the_eager_outputs_and_gradients(propagate):
    fast, eager = pair("srn")
    for cell in (fast, eager):
        cell.set_smoothing(0.3, propagate)
    assert_agree(fast, eager, torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64))


@pytest.mark.slow
def test_compiled_bn_lstm_population_pass_and_evaluation_match_eager():
    fast, eager = pair("bn-lstm")
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    assert_agree(fast, eager, x)
    graphs = compiled.graphs_compiled
    batches = [torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64) for _ in range(3)]
    assert recompute_population_statistics(fast, batches) == recompute_population_statistics(eager, batches) == 3
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[key], value, rtol=1e-9, atol=1e-12)
    fast.eval(), eager.eval()
    longer = torch.randn(STEPS + BLOCK, BATCH, INPUT, dtype=torch.float64)  # steps past the last seen in training
    with torch.no_grad():
        torch.testing.assert_close(fast(longer)[0], eager(longer)[0], rtol=1e-9, atol=1e-12)
    assert compiled.graphs_compiled == graphs  # without autograd the eager loop runs: no graph compiled
    torch.testing.assert_close(fast(longer)[0], eager(longer)[0], rtol=1e-9, atol=1e-12)  # evaluation under autograd
    assert compiled.graphs_compiled > graphs


def test_a_shorter_last_block_and_a_later_first_step_match_eager():
    fast, eager = pair("lstm")
    x = torch.randn(STEPS + 2, BATCH, INPUT, dtype=torch.float64)
    torch.testing.assert_close(fast(x, t0=3)[0], eager(x, t0=3)[0], rtol=1e-9, atol=1e-12)


def test_compile_is_not_part_of_the_run_id_and_is_recorded_only_when_set():
    plain = RunConfig()
    fast = plain.with_overrides(["cell.compile=true", "cell.compile_block=8"])
    assert fast.run_id() == plain.run_id()
    assert "compile" not in plain.to_dict()["cell"]
    assert fast.to_dict()["cell"]["compile"] is True and RunConfig.from_dict(fast.to_dict()) == fast


def test_compile_options_without_compile_are_refused():
    with pytest.raises(LongdepsError, match="apply with cell.compile=true only"):
        make_cell("srn", 1, 4, compile_block=8)


@pytest.mark.parametrize("fallback", [False, True])
def test_where_compilation_fails_it_is_refused_in_one_line_or_runs_eagerly_when_asked(monkeypatch, fallback):
    import torch._inductor.compile_fx

    def no_compiler(*args, **kwargs):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    monkeypatch.setattr(torch._inductor.compile_fx, "compile_fx", no_compiler)
    torch._dynamo.reset()  # no graph of an earlier test may serve this one
    fast, eager = pair("gru", fallback)
    x = torch.randn(STEPS, BATCH, INPUT, dtype=torch.float64)
    if not fallback:
        with pytest.raises(LongdepsError) as refusal:
            fast(x)
        assert "No working C++ compiler found" in str(refusal.value) and "\n" not in str(refusal.value)
        return
    with pytest.warns(UserWarning, match="No working C.. compiler found.*running it eagerly") as caught:
        outputs = fast(x)[0]
    assert caught[0].filename == __file__  # the warning points at the call in the user's code
    torch.testing.assert_close(outputs, eager(x)[0], rtol=0, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once
        fast(x)


def records(result):
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("wall_time", "compile_seconds")} for line in lines]


@pytest.mark.slow
def test_a_compiled_diffusion_run_records_compile_time_and_resumes_exactly(tmp_path, interrupt_and_resume):
    config = RunConfig().with_overrides([
        "task.seq_len=8", "task.val_size=20", "task.test_size=20", "task.train_size=32", "cell.name=srn",
        "cell.hidden_size=6", "train.steps=12", "train.eval_every=3", "train.checkpoint_every=6",
        "train.batch_size=8", "train.stop_when_solved=false", "continuation.name=diffusion", "continuation.sigma0=0.2",
        "continuation.stages=2", "continuation.stage_length=4", "cell.compile=true", "cell.compile_block=4"])
    whole = run_experiment(config, tmp_path / "a", progress=False)
    assert "compile_seconds" in whole.summary
    assert all("compile_seconds" in json.loads(line) for line in (whole.run_dir / "metrics.jsonl").open())
    resumed = interrupt_and_resume(config, tmp_path / "b", 5)  # mid-way through the first stage
    assert records(resumed) == records(whole)
    assert resumed.summary["test"] == whole.summary["test"]
    checkpoint = torch.load(resumed.run_dir / "checkpoint.pt", weights_only=False)
    assert not any("_orig_mod" in key for key in checkpoint["model"])
