"""Character-level language modelling: vocabulary, both protocols, whole-stream evaluation."""

import math
from fractions import Fraction

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cells import make_cell
from longdeps.config import RunConfig
from longdeps.data import data_root
from longdeps.evaluation import evaluate
from longdeps.experiment import Run
from longdeps.model import SequenceModel
from longdeps.store import ResultStore
from longdeps.tasks import make_task
from longdeps.tasks.text import streams

pytestmark = pytest.mark.skipif(not (data_root() / "ptb" / "ptb.char.train.txt").is_file(),
                                reason="PTB characters not in the data root (set LONGDEPS_DATA)")


def file_tokens(name):
    tokens = (data_root() / "ptb" / name).read_text().split(" ")
    assert tokens[-1] == ""
    return tokens[:-1]


def test_ptb_vocabulary_is_50_and_round_trips():
    task = make_task("ptb-char")
    assert len(task.vocabulary) == 50 and task.input_size == task.output_size == 50
    assert "_" in task.vocabulary and "\n" in task.vocabulary
    for split, name in (("train", "ptb.char.train.txt"), ("val", "ptb.char.valid.txt"), ("test", "ptb.char.test.txt")):
        ids = task.ids()[split]
        assert [task.vocabulary[i] for i in ids.tolist()] == file_tokens(name)
    assert len(task.ids()["train"]) == 5017482


def test_shakespeare_split_and_vocabulary():
    task = make_task("shakespeare-char")
    text = (data_root() / "tinyshakespeare" / "input.txt").read_text()
    ids = task.ids()
    assert len(task.vocabulary) == 65
    assert sum(len(ids[s]) for s in ("train", "val", "test")) == len(text) == 1115394
    assert len(ids["train"]) == int(0.9 * len(text))
    decoded = "".join(task.vocabulary[i] for i in torch.cat([ids["train"], ids["val"], ids["test"]]).tolist())
    assert decoded == text


@pytest.mark.parametrize("batch_size, seq_len", [(7, 50), (32, 100)])
def test_stream_protocol_sees_every_target_once_per_epoch(batch_size, seq_len):
    task = make_task("shakespeare-char", seq_len=seq_len, variant="stream")
    assert task.ordered
    lanes = streams(task.ids()["train"], batch_size)
    segments = [task.train_segment(k, batch_size) for k in range(task.segments(batch_size))]
    assert [s.continues for s in segments] == [False] + [True] * (len(segments) - 1)
    targets = torch.cat([s.y for s in segments])  # (steps, B)
    inputs = torch.cat([s.x.argmax(-1) for s in segments])
    assert torch.equal(targets.T, lanes[:, 1:].long()) and torch.equal(inputs.T, lanes[:, :-1].long())
    assert all(s.x.shape[0] == seq_len for s in segments[:-1]) and segments[-1].x.shape[0] <= seq_len
    assert task.updates_per_epoch(batch_size) == len(segments)  # an epoch of continuation.unit=epochs


def test_windows_protocol_sees_every_target_once_per_epoch():
    task = make_task("shakespeare-char", seq_len=20)
    assert not task.ordered
    assert task.updates_per_epoch(8) == Fraction(task.train_size, 8)
    batch = task.train_examples(torch.arange(task.train_size))
    ids = task.ids()["train"].long()
    starts = torch.arange(task.train_size) * 21
    positions = starts[None, :] + torch.arange(1, 21)[:, None]  # target positions, (20, N)
    assert torch.equal(batch.y, ids[positions])
    assert positions.flatten().unique().numel() == positions.numel() == task.train_size * 20
    assert torch.equal(batch.x.argmax(-1), ids[positions - 1])


def test_bpc_of_uniform_predictions_is_log2_vocabulary():
    task = make_task("ptb-char")
    batch = task.split("val")[0]
    metrics = task.per_example_metrics(torch.zeros(*batch.y.shape, 50), batch.y)
    assert torch.allclose(metrics["bpc"], torch.full((10,), math.log2(50)), atol=1e-5)
    assert not task.solved({"bpc": 1.51}) and task.solved({"bpc": 1.5})
    assert task.baseline()["bpc"] < math.log2(50)


def test_stream_evaluation_equals_one_unbroken_pass():
    torch.manual_seed(0)
    task = make_task("ptb-char", seq_len=30, variant="stream", val_size=2000)
    model = SequenceModel(make_cell("lstm", 50, 16), 50, "all")
    got = evaluate(model, task, task.split("val"))
    lanes = streams(task.ids()["val"][:2000], task.eval_streams)
    with torch.no_grad():
        outputs, _ = model(task.one_hot(lanes[:, :-1].T))
        want = task.per_example_metrics(outputs, lanes[:, 1:].T.long())
    assert got["bpc"] == pytest.approx(float(want["bpc"].mean()), rel=1e-5)


def test_windows_evaluation_predicts_every_character_once_from_reset_states():
    torch.manual_seed(0)
    task = make_task("ptb-char", seq_len=30, variant="windows", val_size=2000)
    model = SequenceModel(make_cell("lstm", 50, 16), 50, "all")
    batches = task.split("val")
    assert not any(b.continues for b in batches)
    lanes = streams(task.ids()["val"][:2000], task.eval_streams)
    assert torch.equal(torch.cat([b.y for b in batches]).T, lanes[:, 1:].long())
    got, losses, steps = evaluate(model, task, batches), 0.0, 0
    with torch.no_grad():
        for start in range(0, lanes.shape[1] - 1, 30):
            window = lanes[:, start:start + 31].T
            outputs, _ = model(task.one_hot(window[:-1]))
            losses += float(task.per_example_loss(outputs, window[1:].long()).sum()) * (window.shape[0] - 1)
            steps += (window.shape[0] - 1) * lanes.shape[0]
    assert got["loss"] == pytest.approx(losses / steps, rel=1e-5)


def test_training_carries_the_state_between_stream_segments(tmp_path, monkeypatch):
    config = RunConfig().with_overrides(["task.name=shakespeare-char", "task.variant=stream", "task.seq_len=20",
                                         "cell.hidden_size=8", "train.batch_size=4", "task.val_size=500",
                                         "task.test_size=500"])
    run = Run(config, ResultStore(tmp_path))
    seen = []
    backward = run.estimator.backward

    def spy(model, batch, task, state=None):
        seen.append(state)
        losses, final = backward(model, batch, task, state)
        seen.append(final)
        return losses, final

    monkeypatch.setattr(run.estimator, "backward", spy)
    for _ in range(3):
        run.train_step()
    assert seen[0] is None
    for previous_final, state in ((seen[1], seen[2]), (seen[3], seen[4])):
        assert all(torch.equal(a, b) for a, b in zip(previous_final, state))


def test_text_task_errors():
    with pytest.raises(LongdepsError, match="unknown variant 'tbptt' for task 'ptb-char'"):
        make_task("ptb-char", variant="tbptt")
    with pytest.raises(LongdepsError, match="task.train_size does not apply to 'ptb-char'"):
        make_task("ptb-char", train_size=100)


@pytest.mark.parametrize("gradient", ["bptt", "dsf"])
def test_a_stack_carries_every_layers_state_in_torchs_layout(tmp_path, gradient):
    config = RunConfig().with_overrides(["task.name=shakespeare-char", "task.variant=stream", "task.seq_len=10",
                                         "cell.name=lstm", "cell.hidden_size=8", "cell.num_layers=2",
                                         f"gradient.name={gradient}", "train.batch_size=4", "task.val_size=200",
                                         "task.test_size=200"])
    run = Run(config, ResultStore(tmp_path))
    for _ in range(2):
        run.train_step()
    assert [tuple(part.shape) for part in run.carry] == [(2, 4, 8), (2, 4, 8)]


def test_a_checkpoint_carrying_the_one_layer_state_of_earlier_versions_loads(tmp_path):
    """Before states took torch's layout at the cell's boundary, a checkpoint carried (B, H) parts."""
    config = RunConfig().with_overrides(["task.name=shakespeare-char", "task.variant=stream", "task.seq_len=10",
                                         "cell.name=lstm", "cell.hidden_size=8", "train.batch_size=4",
                                         "task.val_size=200", "task.test_size=200"])
    run = Run(config, ResultStore(tmp_path))
    run.train_step()
    saved = run.state_dict()
    carried = saved["carry"]
    saved["carry"] = tuple(part[0] for part in carried)
    resumed = Run(config, ResultStore(tmp_path / "again"))
    resumed.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(resumed.carry, carried))
    resumed.train_step()
