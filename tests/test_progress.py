"""A run's progress: a bar on a terminal, a line per evaluation elsewhere, nothing when hidden."""

import sys

from longdeps.progress import Progress

RECORD = {"step": 30, "train_loss": 0.5, "val": {"loss": 0.25}, "val_metric": 0.75, "wall_time": 65.0}


def test_a_log_gets_one_line_per_evaluation(capsys):
    shown = Progress(True, "abc lstm adding", total=100, initial=10)
    shown.evaluated(RECORD, "accuracy")
    assert list(shown.batches([1, 2], "test")) == [1, 2]
    shown.close()
    update, test = capsys.readouterr().out.splitlines()
    assert update.startswith("abc lstm adding: update 30/100, train loss 0.5, val loss 0.25, val accuracy 0.75, "
                             "elapsed 01:05, ETA ")
    assert test == "abc lstm adding: scoring the best-validation weights on the test set (2 batches)"


def test_a_terminal_gets_a_bar_and_the_test_set_a_bar_of_its_own(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    shown = Progress(True, "run", total=100, initial=0)
    shown.update()
    shown.evaluated(RECORD, "accuracy")
    assert list(shown.batches([1, 2, 3], "test")) == [1, 2, 3]
    shown.close()
    out = capsys.readouterr().out
    assert "run:   1%" in out and "accuracy=0.75" in out and "run test:   0%" in out and "update 30/100" not in out


def test_hidden_progress_prints_nothing(capsys):
    shown = Progress(False, "run", total=100, initial=0)
    shown.update()
    shown.evaluated(RECORD, "accuracy")
    shown.note("resumes")
    assert list(shown.batches([1], "test")) == [1]
    shown.close()
    assert capsys.readouterr().out == ""
