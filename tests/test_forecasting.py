"""Forecasting tasks: the ETT protocol's borders and window counts, training-split statistics,
the windows' contents, the baselines (memoryless and least-squares linear), and a series of your own."""

import numpy as np
import pandas as pd
import pytest
import torch

from longdeps.data.files import data_root
from longdeps.sweep import load_suite
from longdeps.tasks import make_task
from longdeps.tasks.forecasting import linear_forecast_baseline

ROOT = data_root()
needs_ett = pytest.mark.skipif(not (ROOT / "ett").is_dir(), reason=f"no ETT data in {ROOT}/ett (set LONGDEPS_DATA)")


@pytest.fixture(scope="module")
def etth1():
    return make_task("ett:ETTh1", seq_len=96, horizon=96)


@needs_ett
@pytest.mark.parametrize("horizon, counts", [(96, (8449, 2785, 2785)), (336, (8209, 2545, 2545))])
def test_ett_borders_and_window_counts(horizon, counts):
    """12/4/4 months of 30 x 24 rows; val and test windows start up to 96 rows before their border."""
    task = make_task("ett:ETTh1", seq_len=96, horizon=horizon)
    assert task.borders == {"train": (0, 8640), "val": (8640 - 96, 11520), "test": (11520 - 96, 14400)}
    assert tuple(len(task.starts[p]) for p in ("train", "val", "test")) == counts
    last = task.windows(task.starts["test"][-1:])
    assert int(task.starts["test"][-1]) + 96 + horizon == 14400  # the last test window ends at the border
    assert last.x.shape == (96, 1, 7) and last.y.shape == (1, horizon, 7)


@needs_ett
def test_ett_windows_are_the_rows_standardised_with_training_statistics(etth1):
    frame = pd.read_csv(ROOT / "ett" / "ETTh1.csv")
    values = frame.drop(columns="date").to_numpy()
    train = values[:8640]
    standard = (values - train.mean(0)) / train.std(0)
    batch = etth1.windows(etth1.starts["test"][:1])  # the first test window starts at row 11424
    np.testing.assert_allclose(batch.x[:, 0].numpy(), standard[11424:11520], atol=1e-5)
    np.testing.assert_allclose(batch.y[0].numpy(), standard[11520:11616], atol=1e-5)
    assert etth1.encoding.inputs == list(frame.columns[1:])


@needs_ett
def test_ett_baselines(etth1):
    """The linear least-squares map lands where DLinear does (0.386/0.400 published, ETTh1 96->96)."""
    linear = linear_forecast_baseline(etth1)
    assert 0.37 < linear["mse"] < 0.40 and 0.38 < linear["mae"] < 0.41
    baseline = etth1.baseline()
    assert baseline["mse"] > linear["mse"] and baseline["last_value_mse"] > linear["mse"]


def write_series(path, rows=200, columns=("a", "b")):
    """A noiseless series in shuffled row order: a_t = sin(t / 5), b_t = cos(t / 7) + t / 100."""
    t = np.arange(rows)
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=rows, freq="h").astype(str),
                          "a": np.sin(t / 5), "b": np.cos(t / 7) + t / 100})
    frame.sample(frac=1, random_state=0).to_csv(path, index=False)
    return frame


def test_a_series_of_your_own(tmp_path):
    frame = write_series(tmp_path / "s.csv")
    task = make_task("forecast", path=str(tmp_path / "s.csv"), seq_len=10, horizon=5)
    assert task.borders == {"train": (0, 140), "val": (130, 160), "test": (150, 200)}
    assert {p: len(s) for p, s in task.starts.items()} == {"train": 126, "val": 16, "test": 36}
    train = frame[["a", "b"]].to_numpy()[:140]
    np.testing.assert_allclose(task.encoding.mean, train.mean(0))
    batch = task.windows(task.starts["test"])
    last = batch.x[-1][:, None, :]
    expected = (last - batch.y).pow(2).mean()
    assert task.baseline()["last_value_mse"] == pytest.approx(float(expected))
    univariate = make_task("forecast", path=str(tmp_path / "s.csv"), seq_len=10, horizon=5, target="b")
    assert univariate.input_size == 1 and univariate.output_size == 5 and univariate.encoding.inputs == ["b"]


def test_the_linear_baseline_fits_a_series_a_linear_map_predicts(tmp_path):
    """a_t = sin(t / 5) obeys a_t = 2 cos(1/5) a_{t-1} - a_{t-2}: a linear map of the look-back is exact."""
    write_series(tmp_path / "s.csv")
    task = make_task("forecast", path=str(tmp_path / "s.csv"), seq_len=10, horizon=5, target="a")
    assert linear_forecast_baseline(task)["mse"] < 1e-8


def test_forecast_metrics_per_variable(tmp_path):
    write_series(tmp_path / "s.csv")
    task = make_task("forecast", path=str(tmp_path / "s.csv"), seq_len=10, horizon=5)
    batch = task.windows(task.starts["val"][:3])
    outputs = torch.zeros(3, task.output_size)
    metrics = task.per_example_metrics(outputs, batch.y)
    torch.testing.assert_close(metrics["mse"], (metrics["mse_a"] + metrics["mse_b"]) / 2)
    torch.testing.assert_close(metrics["mae_b"], batch.y[..., 1].abs().mean(1))


def test_the_ett_suite_loads_with_its_published_figures():
    suite = load_suite("ett")
    configs = list(suite.configs())
    assert len(configs) == 36  # 6 cells x 2 horizons x 3 seeds
    assert {c.cell.name for c in configs} == {"lstm", "gru", "asrnn", "bn-lstm", "lru", "mingru"}
    assert {entry["setting"]["task.horizon"] for entry in suite.paper} == {96}
