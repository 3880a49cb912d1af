"""Runs end to end: files and store rows, resume after a kill, and bad input."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cli import main
from longdeps.config import RunConfig
from longdeps.experiment import Run, run_experiment
from longdeps.signals import Interrupted
from longdeps.store import ResultStore
from longdeps.tasks import TASKS
from longdeps.tasks.synthetic import AddingTask

SMALL = ["task.seq_len=10", "task.val_size=200", "task.test_size=200", "cell.hidden_size=8", "train.steps=40",
         "train.eval_every=10", "train.checkpoint_every=20", "train.batch_size=16"]


def small_config(*overrides):
    return RunConfig().with_overrides(SMALL + list(overrides))


def test_run_writes_folder_store_rows_and_test_figures(tmp_path):
    umask = os.umask(0o027)
    try:
        result = run_experiment(small_config("cell.name=srn"), tmp_path, progress=False)
    finally:
        os.umask(umask)
    folder = tmp_path / "runs" / result.run_id
    assert {p.name for p in folder.iterdir()} >= {"config.json", "metrics.jsonl", "checkpoint.pt", "result.json"}
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == dict.fromkeys(os.listdir(folder), 0o640)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert all(len(r["grad_profile"]) == 10 and r["examples_seen"] == r["step"] * 16 for r in records)
    store = ResultStore(tmp_path)
    row = store.get_run(result.run_id)
    assert row["status"] == "finished" and row["steps_done"] == 40 and row["cell"] == "srn"
    assert row["test_metric"] == result.summary["test_metric"] and row["test_loss"] > 0
    assert [r["step"] for r in store.evals(result.run_id)] == [10, 20, 30, 40]
    best = max(records, key=lambda r: (r["val_metric"], -r["val"]["loss"]))
    assert row["best_val_step"] == best["step"]


def test_finished_run_is_not_overwritten_and_interrupted_run_needs_resume(tmp_path):
    config = small_config()
    first = run_experiment(config, tmp_path, progress=False)
    mtime = (first.run_dir / "checkpoint.pt").stat().st_mtime_ns
    again = run_experiment(config, tmp_path, progress=False)
    assert again.summary == first.summary
    assert (first.run_dir / "checkpoint.pt").stat().st_mtime_ns == mtime
    ResultStore(tmp_path).finish_run(first.run_id, "interrupted", {})
    with pytest.raises(LongdepsError, match="pass --resume to continue it or --force to start over"):
        run_experiment(config, tmp_path, progress=False)
    forced = run_experiment(config, tmp_path, force=True, progress=False)
    assert forced.summary["test_metric"] == first.summary["test_metric"]


def test_resume_refuses_a_checkpoint_written_by_another_cell(tmp_path, monkeypatch, interrupt):
    from longdeps.cells.asrnn import OrthogonalRNN

    config = small_config("cell.name=orthrnn", "train.steps=4", "train.checkpoint_every=2")
    interrupt(config, tmp_path, 3)
    defaults = list(OrthogonalRNN.__init__.__defaults__)  # as if a later version changed orthrnn's default
    defaults[defaults.index("BT")] = "B"
    monkeypatch.setattr(OrthogonalRNN.__init__, "__defaults__", tuple(defaults))
    with pytest.raises(LongdepsError, match=r"its checkpoint was written by cell \(.*orientation='BT'\), but this "
                                            r"version builds \(.*orientation='B'\) from the same config") as refusal:
        run_experiment(config, tmp_path, resume=True, progress=False)
    assert "\n" not in str(refusal.value)


def test_stop_when_solved(tmp_path, monkeypatch):
    monkeypatch.setattr(AddingTask, "solved", lambda self, summary: summary["success"] > 0.0)
    result = run_experiment(small_config("train.steps=400"), tmp_path, progress=False)
    assert result.summary["solved"] and result.summary["steps_done"] == result.summary["solved_step"] < 400


def cli(*args):
    return [sys.executable, "-m", "longdeps", *args]


def records(root):
    """The evaluation records (wall time left out) and test figures of the one run under ``root``."""
    (folder,) = (root / "runs").iterdir()
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    result = json.loads((folder / "result.json").read_text())
    return [{k: v for k, v in json.loads(line).items() if k != "wall_time"} for line in lines], result["test"]


def test_resume_after_kill_or_interrupt_reproduces_the_uninterrupted_run(tmp_path, capsys):
    args = ["train", "--task", "adding", "--seq-len", "50", "--cell", "lstm", "--hidden", "32", "--steps", "300",
            "--no-progress", "task.val_size=100", "task.test_size=100", "train.eval_every=10", "train.checkpoint_every=30"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cli(*args, "--results", str(tmp_path / "a")), env=env, check=True, capture_output=True)

    killed = subprocess.Popen(cli(*args, "--results", str(tmp_path / "b")), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / "b" / "runs"
    deadline = time.time() + 120
    while not list(runs.glob("*/checkpoint.pt")) and time.time() < deadline and killed.poll() is None:
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    _, err = killed.communicate()
    assert killed.returncode == -signal.SIGKILL, f"the run ended before it was killed ({killed.returncode}): {err}"
    (checkpoint,) = runs.glob("*/checkpoint.pt")
    stopped_at = torch.load(checkpoint, weights_only=False)["step"]
    assert stopped_at < 300, "the run finished before it could be killed"
    assert main(["runs", "--results", str(tmp_path / "b")]) == 0
    assert f"\n{checkpoint.parent.name}\tinterrupted\t" in capsys.readouterr().out  # its process is gone
    with pytest.raises(subprocess.CalledProcessError):  # a plain re-run refuses to overwrite it
        subprocess.run(cli(*args, "--results", str(tmp_path / "b")), env=env, check=True, capture_output=True)
    subprocess.run(cli(*args, "--results", str(tmp_path / "b"), "--resume"), env=env, check=True, capture_output=True)
    assert records(tmp_path / "a") == records(tmp_path / "b")
    assert len(records(tmp_path / "b")[0]) == 30

    # SIGINT, where no checkpoint is due before the end: the run saves one at the update it stops at
    args += ["train.checkpoint_every=1000"]
    interrupted = subprocess.Popen(cli(*args, "--results", str(tmp_path / "c")), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def evaluations():
        return sum(path.read_text().count("\n") for path in (tmp_path / "c" / "runs").glob("*/metrics.jsonl"))

    deadline = time.time() + 120
    while evaluations() < 2 and time.time() < deadline and interrupted.poll() is None:
        time.sleep(0.005)
    interrupted.send_signal(signal.SIGINT)
    err = interrupted.communicate()[1]
    (checkpoint,) = (tmp_path / "c" / "runs").glob("*/checkpoint.pt")
    stopped_at = torch.load(checkpoint, weights_only=False)["step"]
    assert 20 <= stopped_at < 300, "the run finished before it could be interrupted"
    assert interrupted.returncode == 130 and err.count("\n") == 1
    assert err.startswith(f"longdeps: SIGINT received: run {checkpoint.parent.name} stopped and saved at update {stopped_at} in")
    shown = [a for a in args if a != "--no-progress"]  # the same run, with a line per evaluation
    resumed = subprocess.run(cli(*shown, "--results", str(tmp_path / "c"), "--resume"), env=env, check=True,
                             capture_output=True, text=True)
    assert f"resumes from update {stopped_at} of 300" in resumed.stdout.splitlines()[0]
    assert records(tmp_path / "a") == records(tmp_path / "c")


def test_every_copy_of_the_records_is_the_checkpoints_after_a_resume(tmp_path, interrupt_and_resume):
    # stopped at update 35: metrics.jsonl and the store hold the evaluation at 30, the checkpoint (at 20) does not
    result = interrupt_and_resume(small_config(), tmp_path, 35)
    history = torch.load(result.run_dir / "checkpoint.pt", weights_only=False)["history"]
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [10, 20, 30, 40]
    assert ResultStore(tmp_path).evals(result.run_id) == lines == history


def test_a_run_moves_between_devices_under_its_id(tmp_path, interrupt, device):
    """Stopped on the test device at update 25 and resumed on the CPU, a run keeps its id, its
    checkpoint loads whichever device wrote it, and it ends where the whole run on the CPU ends:
    exactly when the test device is the CPU, to float32 rounding otherwise."""
    there, here = small_config(f"train.device={device}"), small_config("train.device=cpu")
    assert there.run_id() == here.run_id()
    whole = run_experiment(here, tmp_path / "whole", progress=False)
    interrupt(there, tmp_path / "moved", 25)
    moved = run_experiment(here, tmp_path / "moved", resume=True, progress=False)
    assert moved.run_id == whole.run_id
    assert json.loads((moved.run_dir / "config.json").read_text())["train"]["device"] == "cpu"
    (got, got_test), (want, want_test) = records(tmp_path / "moved"), records(tmp_path / "whole")
    if device.type == "cpu":
        assert (got, got_test) == (want, want_test)
    else:
        assert [r["step"] for r in got] == [r["step"] for r in want]
        assert [r["val"]["loss"] for r in got] == pytest.approx([r["val"]["loss"] for r in want], rel=1e-3)
        assert got_test["loss"] == pytest.approx(want_test["loss"], rel=1e-3)


def test_a_damaged_checkpoint_is_passed_over_for_the_previous_one(tmp_path, interrupt, capsys):
    config = small_config("train.checkpoint_every=10")
    whole = run_experiment(config, tmp_path / "whole", progress=False)
    interrupt(config, tmp_path / "cut", 25)
    folder = ResultStore(tmp_path / "cut").run_dir(whole.run_id)
    last, previous = folder / "checkpoint.pt", folder / "checkpoint.prev.pt"
    assert [torch.load(p, weights_only=False)["step"] for p in (last, previous)] == [20, 10]
    damaged = last.read_bytes()[:3000]  # truncated
    last.write_bytes(damaged)
    capsys.readouterr()
    resumed = run_experiment(config, tmp_path / "cut", resume=True, progress=False)
    err = capsys.readouterr().err
    assert err == (f"{whole.run_id} lstm adding: checkpoint {last} cannot be read, it is truncated or damaged "
                   f"({err.split('damaged (', 1)[1].split(') (moved', 1)[0]}) (moved to checkpoint.damaged.pt): "
                   f"continuing from the previous checkpoint {previous} (update 10)\n")
    assert (folder / "checkpoint.damaged.pt").read_bytes() == damaged
    assert resumed.run_id == whole.run_id and records(tmp_path / "cut") == records(tmp_path / "whole")


@pytest.mark.parametrize("stop", [15, 25])  # one checkpoint (at 10); two (at 10 and 20), both damaged
def test_a_damaged_checkpoint_without_a_good_previous_one_is_one_line(stop, tmp_path, interrupt, capsys):
    config = small_config("train.checkpoint_every=10")
    interrupt(config, tmp_path, stop)
    folder = ResultStore(tmp_path).run_dir(config.run_id())
    for checkpoint in folder.glob("checkpoint*.pt"):
        checkpoint.write_bytes(checkpoint.read_bytes()[:3000])
    kept = {p.name: p.read_bytes() for p in folder.iterdir()}
    capsys.readouterr()
    assert main(["train", *SMALL, "train.checkpoint_every=10", "--resume", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"longdeps: error: run {config.run_id()}: checkpoint {folder / 'checkpoint.pt'} cannot be "
                          "read, it is truncated or damaged (") and err.count("\n") == 1
    assert err.endswith(f"; start over with --force, or put a good copy of the checkpoint at {folder / 'checkpoint.pt'} "
                        "and --resume\n")
    assert (f"checkpoint {folder / 'checkpoint.prev.pt'} " + ("is missing" if stop == 15 else "cannot be read")) in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == kept


def test_an_interruption_crosses_process_boundaries_whole():
    again = pickle.loads(pickle.dumps(Interrupted("SIGTERM received: run x stopped", signal.SIGTERM)))
    assert isinstance(again, KeyboardInterrupt) and str(again) == "SIGTERM received: run x stopped"
    assert again.signum == signal.SIGTERM


def test_divergence_stops_with_one_line_and_keeps_the_last_checkpoint(tmp_path):
    proc = subprocess.run(cli("train", "--task", "adding", "--seq-len", "10", "--cell", "srn", "--hidden", "8",
                              "--results", str(tmp_path), "--no-progress", "optimizer.name=sgd", "optimizer.lr=30",
                              "train.eval_every=5", "train.checkpoint_every=5"), capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "loss became inf at step" in proc.stderr and "diverged" in proc.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    step = torch.load(folder / "checkpoint.pt", weights_only=False)["step"]
    assert step > 0 and f"at step {step}" not in proc.stderr and f"its last checkpoint (update {step}) is kept" in proc.stderr
    assert ResultStore(tmp_path).get_run(folder.name)["status"] == "failed"


class NaNInputTask(AddingTask):
    """Adding, with one non-finite input in every batch."""

    name = "test-nan-input"

    def sample(self, batch_size, generator):
        batch = super().sample(batch_size, generator)
        batch.x[3, 0, 0] = float("nan")
        return batch


def test_nan_in_a_training_batch_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setitem(TASKS, NaNInputTask.name, NaNInputTask)
    with pytest.raises(LongdepsError, match="training batch at step 0 contains non-finite inputs.*no checkpoint was written"):
        run_experiment(small_config(f"task.name={NaNInputTask.name}"), tmp_path, progress=False)


@pytest.mark.parametrize("override, message", [
    ("task.name=addding", "unknown task 'addding'"),
    ("cell.name=gruu", "unknown cell 'gruu'"),
    ("task.variant=xyz", "unknown variant 'xyz' for task 'adding'"),
    ("train.steps=0", "train.steps must be > 0, got 0"),
    ("optimizer.name=lbfgs", "unknown optimizer 'lbfgs'"),
    ("gradient.name=tbptt", "tbptt needs gradient.truncation"),
])
def test_bad_settings_fail_before_training(tmp_path, override, message):
    with pytest.raises(LongdepsError, match=message):
        Run(small_config(override), ResultStore(tmp_path))
