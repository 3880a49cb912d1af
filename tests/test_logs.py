"""train.log: the evaluation records copied to CSV or TensorBoard."""

import csv
import json
import sys
import types

import pytest

from longdeps.cli import main
from longdeps.config import RunConfig
from longdeps.experiment import run_experiment
from longdeps.logs import flatten

SMALL = ["task.seq_len=6", "task.val_size=50", "task.test_size=50", "cell.hidden_size=4", "train.steps=30",
         "train.eval_every=10", "train.batch_size=8", "train.profile_examples=5"]


def small_config(*overrides):
    return RunConfig().with_overrides(SMALL + list(overrides))


def jsonl_records(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_csv_holds_the_records_of_metrics_jsonl(tmp_path):
    result = run_experiment(small_config("train.log=csv"), tmp_path, progress=False)
    with open(result.run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    records = [flatten(r) for r in jsonl_records(result.run_dir)]
    assert len(rows) == len(records) == 3 and list(rows[0]) == list(records[0])
    for row, record in zip(rows, records):
        assert float(row["val.loss"]) == record["val.loss"] and int(row["step"]) == record["step"]
        assert json.loads(row["grad_profile"]) == record["grad_profile"] and row["solved"] == str(record["solved"])


class FakeWriter:
    """Records what a ``SummaryWriter`` is asked to do."""

    made: list["FakeWriter"] = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        FakeWriter.made.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_gets_every_numeric_field_as_a_scalar(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=FakeWriter))
    FakeWriter.made.clear()
    result = run_experiment(small_config("train.log=tensorboard"), tmp_path, progress=False)
    (writer,) = FakeWriter.made
    assert writer.log_dir == str(result.run_dir / "tensorboard") and writer.purge_step == 10 and writer.closed
    expected = [(key, value, record["step"]) for record in jsonl_records(result.run_dir)
                for key, value in flatten(record).items() if isinstance(value, (int, float)) and key != "step"]
    assert writer.scalars == expected
    assert {tag for tag, _, _ in writer.scalars} >= {"train_loss", "val.loss", "val_metric", "grad_norm"}


@pytest.mark.parametrize("log, message", [
    ("tensorboard", "train.log=tensorboard needs the tensorboard package: pip install 'longdeps[tensorboard]'"),
    ("xml", "unknown train.log 'xml'; choose from none, csv, tensorboard"),
])
def test_a_log_that_cannot_be_written_is_one_line(log, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    assert main(["train", "--results", str(tmp_path), f"train.log={log}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"longdeps: error: {message}") and err.count("\n") == 1
