"""UCR/UEA tasks: the parsed files against PROVENANCE.md and against lines read here independently.

Tests on the real files skip when the data root has no ``ucr_uea`` folder;
the parser tests run on small files written here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import longdeps.tasks.timeseries as ts
from longdeps.cells import make_cell
from longdeps.data.files import data_root
from longdeps.errors import LongdepsError
from longdeps.evaluation import evaluate
from longdeps.model import SequenceModel
from longdeps.tasks import TASKS, make_task

NAMES = ["PigCVP", "ACSF1", "PLAID", "OSULeaf", "ArrowHead", "GunPoint", "BasicMotions", "JapaneseVowels",
         "ItalyPowerDemand"]
ROOT = data_root()
needs_data = pytest.mark.skipif(not (ROOT / "ucr_uea").is_dir(),
                                reason=f"no UCR/UEA data in {ROOT}/ucr_uea (set LONGDEPS_DATA)")


@pytest.fixture(scope="module")
def provenance() -> dict[str, tuple[int, int, int, int, int, int]]:
    """name: (train, test, shortest, longest, channels, classes), read from the table in PROVENANCE.md."""
    path = ROOT / "PROVENANCE.md"
    if not path.is_file():
        pytest.skip(f"no {path}")
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| (\w+) \| (\d+)/(\d+) \| (\d+)(?:–(\d+))?[^|]* \| (\d+) \| (\d+) \|", line)
        if m and m[1] in NAMES:
            rows[m[1]] = (int(m[2]), int(m[3]), int(m[4]), int(m[5] or m[4]), int(m[6]), int(m[7]))
    assert sorted(rows) == sorted(NAMES)
    return rows


def data_lines(path: Path) -> list[str]:
    """The data lines of a .ts file, found here without the module's parser."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines[lines.index("@data") + 1:] if line]


def read_line(line: str) -> tuple[np.ndarray, str]:
    """One .ts data line -> values ``(L, C)`` and its label."""
    *dims, label = line.split(":")
    return np.array([[float(v) for v in dim.split(",")] for dim in dims]).T, label


# -- registration and class attributes (no data needed) ---------------------------

def test_every_set_is_registered_with_its_attributes():
    for name in NAMES:
        cls = TASKS[f"ucr:{name}"]
        assert cls.name == f"ucr:{name}" and cls.dataset == name
        assert cls.readout == "last" and cls.metric == "accuracy"
        assert cls.default_val_size is None and cls.default_test_size is None
        assert name in cls.description and ("long-range" in cls.description) == (name == "PigCVP")


def test_seq_len_other_than_the_sets_length_is_refused():
    with pytest.raises(LongdepsError, match=r"seq_len=100 .*150 steps"):
        make_task("ucr:GunPoint", seq_len=100)


def test_missing_data_set_fails_at_construction(tmp_path):
    with pytest.raises(LongdepsError, match=r"not found.*pip download --no-deps sktime==1.2.0") as err:
        make_task("ucr:GunPoint", data_dir=str(tmp_path))
    assert "\n" not in str(err.value)


@needs_data
def test_class_attributes_match_provenance(provenance):
    for name, (_, _, _, longest, channels, classes) in provenance.items():
        cls = TASKS[f"ucr:{name}"]
        assert (cls.default_seq_len, cls.n_channels, cls.n_classes) == (longest, channels, classes)


# -- the .ts and .txt parsers on hand-written files ------------------------------------

UNIVARIATE = """# a comment
@problemName Toy
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true a b
@data
1,2,3,4:b

0.5,0.5,0.5,0.5:a
"""

MULTIVARIATE = """@problemName Toy2
@univariate false
@dimensions 2
@equalLength false
@classLabel true 1 2 10
@data
1,2,3:4,5,7:10
7,8:9,10:2
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ts_parser_univariate(tmp_path):
    series = ts.read_ts(write(tmp_path, "u.ts", UNIVARIATE))
    assert series.labels == ["b", "a"]
    assert [v.shape for v in series.values] == [(4, 1), (4, 1)]
    np.testing.assert_array_equal(series.values[0][:, 0], [1, 2, 3, 4])


def test_ts_parser_multivariate_variable_length(tmp_path):
    series = ts.read_ts(write(tmp_path, "m.ts", MULTIVARIATE))
    assert series.labels == ["10", "2"]
    assert [v.shape for v in series.values] == [(3, 2), (2, 2)]
    np.testing.assert_array_equal(series.values[0], [[1, 4], [2, 5], [3, 7]])


@pytest.mark.parametrize("text, lineno, message", [
    (UNIVARIATE.replace("1,2,3,4:b", "1,2,?,4:b"), 10, "not a number"),
    (UNIVARIATE.replace("1,2,3,4:b", "1,2,nan,4:b"), 10, "non-finite"),
    (UNIVARIATE.replace("1,2,3,4:b", "1,2,3:b"), 10, "expected one length of 4"),
    (UNIVARIATE.replace("1,2,3,4:b", "1,2,3,4:c"), 10, "not among @classLabel"),
    (UNIVARIATE.replace("1,2,3,4:b", "1,2:3,4:b"), 10, "2 dimensions, expected 1"),
    (UNIVARIATE.replace("@timeStamps false", "@timeStamps true"), 3, "not supported"),
    (MULTIVARIATE.replace("7,8:9,10:2", "7,8:9:2"), 8, "expected one length"),
])
def test_ts_parser_refuses_a_malformed_line_naming_file_and_line(tmp_path, text, lineno, message):
    path = write(tmp_path, "bad.ts", text)
    with pytest.raises(LongdepsError, match=message) as err:
        ts.read_ts(path)
    assert str(err.value).startswith(f"{path}:{lineno}: ") and "\n" not in str(err.value)


def test_txt_parser(tmp_path):
    series = ts.read_ucr_txt(write(tmp_path, "p.txt", "  1.0e+00  0.1  0.2  0.3\r\n  2.0e+00  0.3  0.2  0.1\r\n"))
    assert series.labels == ["1.0e+00", "2.0e+00"]
    np.testing.assert_array_equal(series.values[1][:, 0], [0.3, 0.2, 0.1])
    path = write(tmp_path, "bad.txt", "1 0.1 0.2 0.3\n2 0.3 0.2\n")
    with pytest.raises(LongdepsError, match=rf"^{re.escape(str(path))}:2: 2 values, expected 3"):
        ts.read_ucr_txt(path)


def test_label_order_is_numeric_when_all_labels_are_numbers():
    assert ts.label_order(["10", "2", "1", "2"]) == ["1", "2", "10"]
    assert ts.label_order(["2.0000000e+00", "1.0000000e+00"]) == ["1.0000000e+00", "2.0000000e+00"]
    assert ts.label_order(["b", "10", "a"]) == ["10", "a", "b"]


def test_znormalise_per_channel_and_constant_channel():
    series = np.array([[1.0, 0.1], [2.0, 0.1], [6.0, 0.1]])
    out = ts.znormalise(series)
    np.testing.assert_allclose(out[:, 0], (series[:, 0] - 3.0) / np.sqrt(14 / 3))
    np.testing.assert_array_equal(out[:, 1], 0.0)


def test_archive_pads_at_the_start_and_maps_labels(tmp_path):
    archive = ts.load_archive(write(tmp_path, "T_TRAIN.ts", MULTIVARIATE),
                              write(tmp_path, "T_TEST.ts", MULTIVARIATE.replace("7,8:9,10:2", "7,8:9,10:1")))
    assert archive.labels == ("1", "2", "10")
    assert archive.train.x.shape == (3, 2, 2) and archive.train.x.dtype == torch.float32
    assert archive.train.y.tolist() == [2, 1] and archive.test.y.tolist() == [2, 0]
    np.testing.assert_array_equal(archive.train.x[0, 1], [0.0, 0.0])
    np.testing.assert_allclose(archive.train.x[1:, 1], [[-1, -1], [1, 1]])


# -- the real files ---------------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("name", NAMES)
def test_parsed_files_match_provenance(name, provenance):
    task = make_task(f"ucr:{name}")
    train, test = ts.read_series(task.train_path), ts.read_series(task.test_path)
    lengths = [len(v) for v in train.values + test.values]
    n_train, n_test, shortest, longest, channels, classes = provenance[name]
    assert (len(train.values), len(test.values)) == (n_train, n_test)
    assert (min(lengths), max(lengths)) == (shortest, longest)
    assert {v.shape[1] for v in train.values + test.values} == {channels}
    assert len(set(train.labels + test.labels)) == classes
    archive = task.archive
    assert archive.train.x.shape == (longest, n_train, channels) and archive.test.x.shape == (longest, n_test, channels)
    assert len(archive.labels) == classes


@needs_data
@pytest.mark.parametrize("name", NAMES)
def test_series_are_znormalised_per_channel(name):
    task = make_task(f"ucr:{name}")
    for path, part in ((task.train_path, task.archive.train), (task.test_path, task.archive.test)):
        for i, raw in enumerate(ts.read_series(path).values):
            x = part.x[-len(raw):, i].double().numpy()
            varying = raw.max(0) > raw.min(0)
            np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-5)
            np.testing.assert_allclose(x.std(0), np.where(varying, 1.0, 0.0), atol=1e-4)
            expected = (raw - raw.mean(0)) / np.where(varying, raw.std(0), 1.0)
            np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)


@needs_data
@pytest.mark.parametrize("name, row", [("PLAID", 0), ("JapaneseVowels", 3)])
def test_variable_length_series_are_padded_at_the_start(name, row):
    task = make_task(f"ucr:{name}")
    raw, label = read_line(data_lines(task.train_path)[row])
    L, T = len(raw), task.default_seq_len
    assert L < T
    x = task.archive.train.x[:, row].double().numpy()
    np.testing.assert_array_equal(x[:T - L], 0.0)
    np.testing.assert_allclose(x[T - L:], (raw - raw.mean(0)) / raw.std(0), rtol=1e-5, atol=1e-5)
    assert task.archive.labels[int(task.archive.train.y[row])] == label


@needs_data
def test_labels_are_mapped_in_sorted_order():
    pig = make_task("ucr:PigCVP").archive
    assert [float(label) for label in pig.labels] == list(range(1, 53))
    motions = make_task("ucr:BasicMotions")
    assert motions.archive.labels == ("Badminton", "Running", "Standing", "Walking")
    lines = data_lines(motions.train_path)
    assert [motions.archive.labels[k] for k in motions.archive.train.y] == [line.rsplit(":", 1)[1] for line in lines]


@needs_data
@pytest.mark.parametrize("name", NAMES)
def test_validation_is_a_stratified_part_of_the_archive_train_set(name):
    task = make_task(f"ucr:{name}")
    train, val = task.indices["train"].tolist(), task.indices["val"].tolist()
    assert not set(train) & set(val) and sorted(train + val) == list(range(task.archive.train.size))
    assert task.train_size == len(train)
    assert sorted(task.indices["test"].tolist()) == list(range(task.archive.test.size))
    y = task.archive.train.y
    for c, n in enumerate(torch.bincount(y).tolist()):
        n_val = int((y[val] == c).sum())
        assert n_val == (max(1, round(0.2 * n)) if n >= 2 else 0)
    assert torch.equal(task.part("val").x, task.archive.train.x[:, val])
    assert torch.equal(task.part("train").y, y[train])


@needs_data
def test_validation_split_is_deterministic_in_the_data_seed():
    first, again, other = (make_task("ucr:GunPoint", data_seed=seed) for seed in (0, 0, 1))
    assert torch.equal(first.indices["val"], again.indices["val"])
    assert set(first.indices["val"].tolist()) != set(other.indices["val"].tolist())
    assert torch.equal(first.indices["test"], other.indices["test"])


@needs_data
def test_sizes_take_the_first_examples_of_each_split():
    full = make_task("ucr:GunPoint")
    cut = make_task("ucr:GunPoint", seq_len=150, train_size=7, val_size=3, test_size=20, eval_batch_size=8)
    for part, n in (("train", 7), ("val", 3), ("test", 20)):
        assert torch.equal(cut.indices[part], full.indices[part][:n])
    assert cut.train_size == 7 and [b.size for b in cut.split("test")] == [8, 8, 4]
    with pytest.raises(LongdepsError, match=r"task.val_size=11 exceeds the 10 val examples"):
        make_task("ucr:GunPoint", val_size=11).split("val")


@needs_data
@pytest.mark.parametrize("name", ["GunPoint", "BasicMotions", "JapaneseVowels"])
def test_batches_evaluate_with_a_tiny_model(name):
    torch.manual_seed(0)
    task = make_task(f"ucr:{name}", eval_batch_size=64)
    model = SequenceModel(make_cell("lstm", task.input_size, 8), task.output_size, task.readout)
    train = [task.train_examples(torch.arange(task.train_size))]
    for batches in (train, task.split("val"), task.split("test")):
        assert all(b.x.shape[0] == task.default_seq_len and b.x.shape[2] == task.n_channels for b in batches)
        assert all(b.x.dtype == torch.float32 and b.y.dtype == torch.long for b in batches)
        scores = evaluate(model, task, batches)
        assert set(scores) == {"loss", "accuracy"}
        assert 0.0 <= scores["accuracy"] <= 1.0 and math.isfinite(scores["loss"])
    assert len(task.split("test")) == math.ceil(task.archive.test.size / 64)


@needs_data
def test_baseline_and_solved():
    task = make_task("ucr:GunPoint")
    counts = torch.bincount(task.part("train").y).double()
    test_y = task.part("test").y
    majority = int(counts.argmax())
    expected_loss = float(-(counts / counts.sum()).log()[test_y].mean())
    expected_accuracy = float((test_y == majority).double().mean())
    assert task.baseline() == pytest.approx({"loss": expected_loss, "accuracy": expected_accuracy})
    assert task.solved({"accuracy": 1.0, "loss": 0.1}) and not task.solved({"accuracy": 0.99, "loss": 0.1})
