"""Tasks on files of your own (``task.name=file``): each reader on small hand-made files, the
kinds, padding that changes nothing, training-split statistics, the file in the run id, and
every bad input refused in one line with no run folder."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from longdeps.cli import main
from longdeps.config import RunConfig
from longdeps.experiment import Run
from longdeps.store import ResultStore
from longdeps.tasks import make_task
from longdeps.tasks.sequences import read_sequences

TS = """@problemName toy
@univariate false
@dimensions 2
@equalLength false
@classLabel true a b
@data
1,2,3:4,5,6:a
7,8:9,10:b
"""


def long_table(n=12, classes=("cat", "dog", "eel"), seed=0):
    """A long-format table: sequence s{i} of 3 + i % 4 steps, features a, b, class classes[i % 3]."""
    rng = np.random.default_rng(seed)
    rows = [{"id": f"s{i:02d}", "time": t, "a": float(rng.normal()), "b": float(t), "target": classes[i % len(classes)]}
            for i in range(n) for t in range(3 + i % 4)]
    return pd.DataFrame(rows).sample(frac=1, random_state=1)  # rows in any order: sorted by id, then time


def test_npz_reader_reads_lengths_targets_and_split(tmp_path):
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    np.savez(tmp_path / "d.npz", x=x, lengths=np.array([3, 2]), y=np.array([1, 0]), split=np.array(["train", "test"]))
    data = read_sequences(tmp_path / "d.npz")
    np.testing.assert_array_equal(data.values[0], x[0])
    np.testing.assert_array_equal(data.values[1], x[1, :2])
    np.testing.assert_array_equal(data.targets, [1, 0])
    np.testing.assert_array_equal(data.split, [0, 2])
    assert data.per_step is False


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_long_table_reader_groups_by_id_and_sorts_by_time(tmp_path, suffix):
    frame = pd.DataFrame({"id": ["b", "a", "b", "a"], "time": [1, 1, 0, 0], "f": [4.0, 2.0, 3.0, 1.0],
                          "target": ["x", "y", "x", "y"]})
    path = tmp_path / f"d{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    data = read_sequences(path)
    assert data.ids == ["a", "b"] and data.features == ["f"] and data.per_step is False
    np.testing.assert_array_equal(data.values[0], [[1.0], [2.0]])
    np.testing.assert_array_equal(data.values[1], [[3.0], [4.0]])
    np.testing.assert_array_equal(data.targets, ["y", "x"])


def test_ts_reader_is_the_archive_parser(tmp_path):
    (tmp_path / "d.ts").write_text(TS)
    data = read_sequences(tmp_path / "d.ts")
    np.testing.assert_array_equal(data.values[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(data.values[1], [[7, 9], [8, 10]])
    np.testing.assert_array_equal(data.targets, ["a", "b"])


@pytest.mark.parametrize("y, kind", [
    (np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0]), "classification"),
    (np.linspace(0, 1, 10), "regression"),
    (np.linspace(0, 1, 20).reshape(10, 2), "regression"),
    (np.tile([0, 1, 1, 0], (10, 1)), "labelling"),
    (np.ones((10, 4, 2)), "labelling"),
])
def test_the_kind_follows_the_targets(tmp_path, y, kind):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(10, 4, 1)), y=y)
    task = make_task("file", path=str(tmp_path / "d.npz"))
    assert task.kind == kind
    batch = task.split("test")[0]
    outputs = torch.zeros(batch.x.shape[0], batch.size, task.output_size, requires_grad=True)
    task.per_example_loss(outputs, batch.y).mean().backward()
    assert torch.isfinite(outputs.grad).all()


def test_ambiguous_targets_need_task_kind(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 4, 1)), y=np.zeros((10, 4)))
    with pytest.raises(Exception, match="set task.kind=labelling or task.kind=regression"):
        make_task("file", path=str(tmp_path / "d.npz"))
    assert make_task("file", path=str(tmp_path / "d.npz"), kind="labelling").kind == "labelling"


@pytest.mark.parametrize("y", [np.arange(8) % 2, np.linspace(-1, 1, 8), (np.arange(8 * 6) % 3).reshape(8, 6)])
def test_padded_steps_change_no_output_and_no_metric(tmp_path, y):
    """Sequences of 2..6 steps: changing what lies past a sequence's length, in the file or in the
    padded batch the model reads, moves neither the inputs of true steps nor any metric."""
    rng = np.random.default_rng(0)
    lengths = np.array([6, 2, 3, 4, 5, 6, 2, 3])
    x = rng.normal(size=(8, 6, 2))
    np.savez(tmp_path / "a.npz", x=x, lengths=lengths, y=y)
    x_changed = x.copy()
    for i, n in enumerate(lengths):
        x_changed[i, n:] = 100.0
    np.savez(tmp_path / "b.npz", x=x_changed, lengths=lengths, y=y)
    a, b = (make_task("file", path=str(tmp_path / f"{n}.npz"), test_fraction=0.25, val_fraction=0.25) for n in "ab")
    for part in ("train", "val", "test"):
        torch.testing.assert_close(a.parts[part].x, b.parts[part].x, rtol=0, atol=0)
    torch.manual_seed(0)
    model = torch.nn.LSTM(2, 8)
    readout = torch.nn.Linear(8, a.output_size)
    batch = a.parts["train"]
    metrics = a.per_example_metrics(readout(model(batch.x)[0]), batch.y)
    padded = batch.x.clone()
    for i, end in enumerate(a.example_ends(batch).tolist()):
        padded[end + 1:, i] = torch.randn(padded.shape[0] - end - 1, 2) * 50
    moved = a.per_example_metrics(readout(model(padded)[0]), batch.y)
    for key in metrics:
        torch.testing.assert_close(metrics[key], moved[key], rtol=0, atol=0)


def test_statistics_come_from_the_training_split_only(tmp_path):
    frame = long_table()
    number = frame["id"].str[1:].astype(int)
    frame["split"] = np.where(number < 6, "train", np.where(number < 9, "val", "test"))
    frame.to_csv(tmp_path / "a.csv", index=False)
    task = make_task("file", path=str(tmp_path / "a.csv"))
    train = frame[frame.split == "train"]
    np.testing.assert_allclose(task.encoding.mean, train[["a", "b"]].mean().to_numpy())
    np.testing.assert_allclose(task.encoding.std, train[["a", "b"]].std(ddof=0).to_numpy())
    frame.loc[frame.split == "test", "a"] += 1000.0  # the test split moves: the statistics do not
    frame.to_csv(tmp_path / "b.csv", index=False)
    assert make_task("file", path=str(tmp_path / "b.csv")).encoding.mean == task.encoding.mean


def test_stratified_splits_keep_every_class_in_training(tmp_path):
    long_table(n=30).to_csv(tmp_path / "d.csv", index=False)
    task = make_task("file", path=str(tmp_path / "d.csv"))
    assert {part: len(rows) for part, rows in task.rows.items()} == {"train": 18, "val": 6, "test": 6}
    for part in ("train", "val", "test"):
        assert sorted(torch.unique(task.parts[part].y[:, 1]).tolist()) == [0, 1, 2]
    assert set(torch.cat(list(task.rows.values())).tolist()) == set(range(30))


def train_args(path, results, *more):
    return ["train", "--task", f"file:{path}", "--steps", "2", "--hidden", "4", "--results", str(results),
            "--batch-size", "4", "--no-progress", "train.eval_every=1", *more]


def test_the_file_is_part_of_the_run_id_and_resume_refuses_a_changed_file(tmp_path, capsys):
    path = tmp_path / "d.csv"
    long_table().to_csv(path, index=False)
    config = RunConfig().with_overrides(["task.name=file", f"task.path={path}"])
    same = Run(config, ResultStore(tmp_path / "r")).run_id
    assert Run(config, ResultStore(tmp_path / "r")).run_id == same
    assert main(train_args(path, tmp_path / "r")) == 0
    (first,) = [p.name for p in (tmp_path / "r" / "runs").iterdir()]
    long_table(seed=1).to_csv(path, index=False)  # the same shape, other values
    assert Run(config, ResultStore(tmp_path / "r")).run_id != same
    capsys.readouterr()
    assert main(train_args(path, tmp_path / "r", "--resume")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"task.path={path} changed since run {first}" in err
    assert main(train_args(path, tmp_path / "r")) == 0  # without --resume: a new run
    assert len(list((tmp_path / "r" / "runs").iterdir())) == 2


def write_bad(tmp_path, case):
    """A file with one defect, and the words its refusal must hold."""
    frame = long_table(n=12)
    if case == "nan":
        frame.loc[frame.index[5], "a"] = np.nan
        frame.to_csv(tmp_path / "d.csv", index=False)
        return tmp_path / "d.csv", ["column 'a'", "task.missing"], []
    if case == "inf":
        frame.loc[frame.index[0], "b"] = np.inf
        frame.to_csv(tmp_path / "d.csv", index=False)
        return tmp_path / "d.csv", ["column 'b'", "inf", "finite"], []
    if case == "ragged":
        np.savez(tmp_path / "d.npz", x=np.array([np.zeros(3), np.zeros(2)], dtype=object), y=np.array([0, 1]))
        return tmp_path / "d.npz", ["ragged", "lengths"], []
    if case == "missing column":
        frame.drop(columns="target").to_csv(tmp_path / "d.csv", index=False)
        return tmp_path / "d.csv", ["no target column 'target'", "task.target_column"], []
    if case == "class only in test":
        frame["split"] = np.where(frame["target"] == "eel", "test", np.where(frame["id"] < "s06", "train", "val"))
        frame.to_csv(tmp_path / "d.csv", index=False)
        return tmp_path / "d.csv", ["class 'eel' is in the test split only", "training split"], []
    if case == "too few":
        long_table(n=2, classes=("a",)).to_csv(tmp_path / "d.csv", index=False)
        return tmp_path / "d.csv", ["2 sequences are too few", "add sequences"], []
    if case == "extension":
        frame.to_csv(tmp_path / "d.txt", index=False)
        return tmp_path / "d.txt", ["unknown extension '.txt'", ".npz, .csv, .parquet, .ts"], []
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["nan", "inf", "ragged", "missing column", "class only in test", "too few", "extension"])
def test_bad_input_is_one_line_exit_2_and_no_run_folder(tmp_path, capsys, case):
    path, words, _ = write_bad(tmp_path, case)
    assert main(train_args(path, tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("longdeps: error: ") and str(path) in err
    for word in words:
        assert word in err
    assert not (tmp_path / "r" / "runs").exists() or not any((tmp_path / "r" / "runs").iterdir())


@pytest.mark.parametrize("rule, expected", [("zero", 0.0), ("mean", None), ("ffill", "previous")])
def test_missing_values_are_filled_by_the_rule(tmp_path, rule, expected):
    frame = long_table(n=12).sort_values(["id", "time"]).reset_index(drop=True)
    frame.loc[1, "a"] = np.nan  # sequence s00, step 1
    frame["split"] = "train"
    frame.loc[frame.id >= "s08", "split"] = "test"
    frame.loc[frame.id.isin(["s06", "s07"]), "split"] = "val"
    frame.to_csv(tmp_path / "d.csv", index=False)
    task = make_task("file", path=str(tmp_path / "d.csv"), missing=rule)
    mean, std = task.encoding.mean[0], task.encoding.std[0]
    filled = float(task.parts["train"].x[1, 0, 0]) * std + mean  # s00 is the first training sequence
    value = {0.0: 0.0, None: mean, "previous": frame.loc[0, "a"]}[expected]
    assert filled == pytest.approx(value, abs=1e-5)
    assert np.isfinite(mean)


def test_a_suite_names_a_file_task_by_the_id_its_run_gets(tmp_path):
    from longdeps.sweep import Suite, run_suite, Sequential

    long_table().to_csv(tmp_path / "d.csv", index=False)
    suite = Suite(name="mine", base={"task": {"name": "file", "path": str(tmp_path / "d.csv")},
                                     "cell": {"hidden_size": 4}, "train": {"steps": 2, "batch_size": 4, "eval_every": 2}})
    (config,) = suite.configs()
    (outcome,) = run_suite(suite, tmp_path / "r", Sequential(), progress=False)
    assert outcome.status == "finished" and outcome.run_id == config.run_id()
    assert (tmp_path / "r" / "runs" / config.run_id() / "result.json").is_file()


def test_labelling_metrics_average_over_true_steps_only(tmp_path):
    """A split's accuracy is the mean over every true step of every sequence, whatever their lengths."""
    from longdeps.cells import make_cell
    from longdeps.evaluation import evaluate
    from longdeps.model import SequenceModel

    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, size=30)
    x = rng.normal(size=(30, 8, 1))
    np.savez(tmp_path / "d.npz", x=x, lengths=lengths, y=(x[..., 0] > 0).astype(int))
    task = make_task("file", path=str(tmp_path / "d.npz"), eval_batch_size=4)
    torch.manual_seed(0)
    model = SequenceModel(make_cell("gru", 1, 6), task.output_size, "all").eval()
    correct = []
    for i in task.rows["test"].tolist():
        steps = torch.from_numpy((x[i, :lengths[i]] - task.encoding.mean) / task.encoding.std).float()[:, None]
        predicted = model(steps)[0].argmax(-1)[:, 0]
        correct += (predicted == torch.from_numpy((x[i, :lengths[i], 0] > 0).astype(int))).tolist()
    assert evaluate(model, task, task.split("test"))["accuracy"] == pytest.approx(np.mean(correct), abs=1e-6)
