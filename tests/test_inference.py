"""Using a trained run: load_run's model reproduces the run's test metrics exactly, predict reads new
files and arrays with the run's preprocessing, and export gives the model's outputs or refuses."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from longdeps import load_run
from longdeps.cli import main
from longdeps.evaluation import evaluate
from longdeps.tasks import make_task


def table(n=24, seed=0):
    """Sequences of 3..6 steps whose class is the sign pattern of feature a; a split column."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = ("low", "high")[i % 2]
        for t in range(3 + i % 4):
            rows.append({"id": f"s{i:02d}", "time": t, "a": rng.normal() + (2.0 if label == "high" else -2.0),
                         "b": rng.normal(), "label": label, "value": float(i % 5),
                         "split": "train" if i < 14 else ("val" if i < 19 else "test")})
    return pd.DataFrame(rows)


def train(tmp_path, path, *overrides):
    results = tmp_path / "results"
    assert main(["train", "--task", f"file:{path}", "--steps", "12", "--hidden", "8", "--batch-size", "4",
                 "--results", str(results), "--no-progress", "train.eval_every=4", *overrides]) == 0
    (folder,) = (results / "runs").iterdir()
    return results, folder, json.loads((folder / "result.json").read_text())


@pytest.fixture
def classified(tmp_path):
    frame = table()
    frame.drop(columns="value").to_csv(tmp_path / "d.csv", index=False)
    return (frame, *train(tmp_path, tmp_path / "d.csv", "task.target_column=label"))


def test_load_run_and_predict_reproduce_the_test_accuracy(tmp_path, classified):
    frame, results, folder, result = classified
    trained = load_run(folder.name, results)
    assert not trained.model.training and trained.encoding.classes == ["high", "low"]
    test = frame[frame.split == "test"].drop(columns=["label", "split"])
    test.to_csv(tmp_path / "new.csv", index=False)
    predicted = trained.predict(tmp_path / "new.csv")
    truth = frame.groupby("id")["label"].first().loc[predicted["id"]].to_numpy()
    assert float((predicted["class"].to_numpy() == truth).mean()) == result["test"]["accuracy"]
    np.testing.assert_allclose(predicted[["p_high", "p_low"]].sum(axis=1), 1.0, rtol=1e-6)
    task = make_task("file", **{k: v for k, v in trained.config.options("task").items()})
    assert evaluate(trained.model, task, task.split("test")) == result["test"]


def test_a_sequence_alone_is_predicted_as_in_a_batch(tmp_path, classified):
    """Padding to the longest sequence of a batch changes no prediction."""
    frame, results, folder, _ = classified
    trained = load_run(folder, results)
    groups = [g[["a", "b"]].to_numpy() for _, g in frame.sort_values(["id", "time"]).groupby("id")]
    together = trained.predict(groups)
    for k in (0, 3, 5):
        alone = trained.predict([groups[k]])
        np.testing.assert_allclose(alone[["p_high", "p_low"]].to_numpy()[0],
                                   together[["p_high", "p_low"]].to_numpy()[k], rtol=1e-5, atol=1e-6)


def test_regression_predictions_are_in_the_file_units(tmp_path):
    frame = table()
    frame.drop(columns="label").to_csv(tmp_path / "d.csv", index=False)
    results, folder, result = train(tmp_path, tmp_path / "d.csv", "task.target_column=value")
    trained = load_run(folder.name, results)
    assert trained.encoding.kind == "regression"
    test = frame[frame.split == "test"]
    predicted = trained.predict([g[["a", "b"]].to_numpy() for _, g in test.sort_values(["id", "time"]).groupby("id")])
    truth = test.groupby("id")["value"].first().to_numpy()
    mean, std = trained.encoding.target_mean[0], trained.encoding.target_std[0]
    mse = float((((predicted["value"].to_numpy() - truth) / std) ** 2).mean())
    assert mse == pytest.approx(result["test"]["mse"], rel=1e-5)
    assert mean == pytest.approx(frame[frame.split == "train"].groupby("id")["value"].first().mean())


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_the_predict_command_writes_classes_and_probabilities(tmp_path, classified, capsys, suffix):
    frame, results, folder, _ = classified
    out = tmp_path / f"p{suffix}"
    assert main(["predict", folder.name, "--results", str(results), "--input", str(tmp_path / "d.csv"),
                 "--output", str(out)]) == 0
    written = pd.read_csv(out) if suffix == ".csv" else dict(np.load(out, allow_pickle=True))
    assert list(written["class"][:2]) == list(load_run(folder).predict(tmp_path / "d.csv")["class"][:2])
    assert len(written["id"]) == frame["id"].nunique()


def test_forecasting_runs_predict_the_horizon_after_the_series(tmp_path):
    t = np.arange(300)
    frame = pd.DataFrame({"date": t, "a": np.sin(t / 5), "b": np.cos(t / 9)})
    frame.to_csv(tmp_path / "s.csv", index=False)
    results = tmp_path / "results"
    assert main(["train", "--task", "forecast", "--steps", "8", "--hidden", "8", "--results", str(results),
                 "--no-progress", f"task.path={tmp_path / 's.csv'}", "task.horizon=4", "task.seq_len=12",
                 "train.eval_every=4"]) == 0
    (folder,) = (results / "runs").iterdir()
    result = json.loads((folder / "result.json").read_text())
    trained = load_run(folder)
    task = make_task("forecast", path=str(tmp_path / "s.csv"), horizon=4, seq_len=12)
    assert evaluate(trained.model, task, task.split("test")) == result["test"]
    forecast = trained.predict(tmp_path / "s.csv")
    assert list(forecast.columns) == ["step", "a", "b"] and len(forecast) == 4
    x = task.windows(torch.tensor([300 - 12 - 4]))  # the last window's look-back ends 4 rows before the end
    expected = trained.encoding.forecast(trained.outputs(x.x))[0]
    np.testing.assert_allclose(trained.predict(frame[["a", "b"]].to_numpy()[:-4]).to_numpy()[:, 1:], expected)


def test_export_gives_the_model_outputs_and_refuses_a_cell_it_cannot_trace(tmp_path, classified, capsys):
    frame, results, folder, _ = classified
    assert main(["export", folder.name, "--results", str(results), "--output", str(tmp_path / "m.pt")]) == 0
    exported = torch.jit.load(str(tmp_path / "m.pt"))
    trained = load_run(folder)
    x = torch.randn(trained.encoding.seq_len, 5, 2)
    torch.testing.assert_close(exported(x), trained.outputs(x), rtol=1e-5, atol=1e-6)
    for other in (results / "runs").iterdir():
        other.rename(tmp_path / other.name)
    train(tmp_path, tmp_path / "d.csv", "task.target_column=label", "cell.name=asrnn")
    capsys.readouterr()
    assert main(["export", next((results / "runs").iterdir()).name, "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cell 'asrnn' cannot be exported to TorchScript" in err


def test_a_run_without_preprocessing_loads_but_predicts_nothing(tmp_path):
    results = tmp_path / "results"
    assert main(["train", "--task", "adding", "--seq-len", "10", "--steps", "2", "--hidden", "4", "--results",
                 str(results), "--no-progress", "train.eval_every=2", "task.val_size=10", "task.test_size=10"]) == 0
    (folder,) = (results / "runs").iterdir()
    trained = load_run(folder)
    assert trained.outputs(torch.zeros(10, 3, 2)).shape == (3, 1)
    with pytest.raises(Exception, match="kept no preprocessing"):
        trained.predict([np.zeros((10, 2))])
