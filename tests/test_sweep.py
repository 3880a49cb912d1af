"""Sweeps: grid expansion, executors that agree, failures, a killed sweep restarted, concurrent writers."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from longdeps import LongdepsError
from longdeps.cli import main
from longdeps.config import RunConfig
from longdeps.report import write_report
from longdeps.store import ResultStore
from longdeps.sweep import (LocalPool, RayExecutor, Sequential, benchmark_suites, load_suite, run_suite, save_suite,
                            summary_table)

TINY = {"task": {"name": "adding", "seq_len": 8, "val_size": 64, "test_size": 64},
        "cell": {"hidden_size": 8}, "train": {"steps": 20, "eval_every": 10, "checkpoint_every": 10, "batch_size": 8}}
CELLS = {"cell.name": ["srn", "lstm"]}


def write_suite(folder: Path, name: str, grid=CELLS, seeds=(0, 1), base=TINY, **extra) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base, "grid": grid, "seeds": list(seeds), **extra},
                                  sort_keys=False))
    return path


def test_every_benchmark_suite_loads():
    """Each suite in benchmarks/ names only known sections, keys and values of the right type."""
    suites = benchmark_suites()
    assert "asrnn" in suites
    for name, path in suites.items():
        assert load_suite(str(path)).configs(), name


def store_contents(root: Path) -> dict:
    """run id -> (its row, its evaluation records), wall-clock fields left out."""
    store = ResultStore(root)
    volatile = {"created", "updated", "wall_time", "pid", "host"}
    return {row["run_id"]: ({k: v for k, v in row.items() if k not in volatile},
                            [{k: v for k, v in r.items() if k != "wall_time"} for r in store.evals(row["run_id"])])
            for row in store.runs()}


def cli(*args):
    return [sys.executable, "-m", "longdeps", *args]


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_grid_expansion_and_run_ids_are_deterministic(tmp_path):
    path = write_suite(tmp_path, "grid", grid={"cell.name": ["srn", "lstm"], "optimizer.lr": [0.01, "1e-3"]},
                       seeds=[3, 1, 2])
    suite = load_suite(str(path))
    configs = suite.configs()
    assert [(c.cell.name, c.optimizer.lr, c.train.seed) for c in configs[:4]] == [
        ("srn", 0.01, 3), ("srn", 0.01, 1), ("srn", 0.01, 2), ("srn", 0.001, 3)]
    assert len(configs) == 12 and len({c.run_id() for c in configs}) == 12
    assert [label for label, _ in suite.points()] == [
        "cell.name=srn, optimizer.lr=0.01", "cell.name=srn, optimizer.lr=1e-3",
        "cell.name=lstm, optimizer.lr=0.01", "cell.name=lstm, optimizer.lr=1e-3"]
    by_hand = RunConfig.from_dict(TINY).with_overrides(["cell.name=lstm", "optimizer.lr=0.001", "train.seed=2"])
    assert configs[-1] == by_hand and configs[-1].run_id() == by_hand.run_id()
    # the same ids in another process
    code = f"from longdeps.sweep import load_suite; print(*(c.run_id() for c in load_suite({str(path)!r}).configs()))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert other == [c.run_id() for c in configs]


def test_a_grid_entry_may_set_several_fields_of_a_section_together(tmp_path):
    grid = {"gradient": [{"name": "bptt"}, {"name": "tbptt", "truncation": 2}], "cell.name": ["srn"]}
    suite = load_suite(str(write_suite(tmp_path, "sections", grid=grid, seeds=[0])))
    assert [(c.gradient.name, c.gradient.truncation) for c in suite.configs()] == [("bptt", None), ("tbptt", 2)]
    assert [label for label, _ in suite.points()] == [
        "gradient.name=bptt, cell.name=srn", "gradient.name=tbptt, gradient.truncation=2, cell.name=srn"]


def test_a_labelled_grid_entry_sets_fields_of_several_sections_together(tmp_path):
    grid = {"model": [{"cell": {"name": "lstm", "hidden_size": 6}, "optimizer": {"lr": 0.005}},
                      {"cell": {"name": "srn"}, "gradient": {"clip_norm": 10}}],
            "task.seq_len": [5, 7]}
    suite = load_suite(str(write_suite(tmp_path, "models", grid=grid, seeds=[0])))
    configs = suite.configs()
    assert [(c.cell.name, c.cell.hidden_size, c.optimizer.lr, c.gradient.clip_norm, c.task.seq_len) for c in configs] == [
        ("lstm", 6, 0.005, None, 5), ("lstm", 6, 0.005, None, 7),
        ("srn", 8, 0.001, 10.0, 5), ("srn", 8, 0.001, 10.0, 7)]


def test_a_labelled_grid_entry_may_name_the_seeds_of_its_points(tmp_path):
    grid = {"setting": [{"task": {"seq_len": 5}, "seeds": [4, 5, 6]}, {"task": {"seq_len": 7}}],
            "cell.name": ["srn", "lstm"]}
    suite = load_suite(str(write_suite(tmp_path, "seeded", grid=grid, seeds=[0])))
    assert [(label, [c.train.seed for c in configs]) for label, configs in suite.points()] == [
        ("task.seq_len=5, cell.name=srn", [4, 5, 6]), ("task.seq_len=5, cell.name=lstm", [4, 5, 6]),
        ("task.seq_len=7, cell.name=srn", [0]), ("task.seq_len=7, cell.name=lstm", [0])]
    # a point's run ids are those of the same configs in a suite without entry seeds
    plain = load_suite(str(write_suite(tmp_path, "plain", grid={"task.seq_len": [5], "cell.name": ["srn"]}, seeds=[4, 5, 6])))
    assert [c.run_id() for c in plain.configs()] == [c.run_id() for c in suite.points()[0][1]]
    # and the definition kept under a results root reads back the same
    saved = load_suite(str(save_suite(tmp_path / "res", suite)))
    assert [c.run_id() for c in saved.configs()] == [c.run_id() for c in suite.configs()]


@pytest.mark.parametrize("grid, message", [
    ({"setting": [{"task": {"seq_len": 5}, "seeds": [1, 1]}]}, "grid entry 'setting': seeds must be a non-empty list of distinct"),
    ({"setting": [{"task": {"seq_len": 5}, "seeds": 3}]}, "grid entry 'setting': seeds must be a non-empty list"),
    ({"a": [{"task": {"seq_len": 5}, "seeds": [1]}], "b": [{"cell": {"name": "srn"}, "seeds": [2]}]},
     "grid entries of 'a' and 'b' both name seeds for one point"),
])
def test_bad_entry_seeds_are_refused_with_one_line(tmp_path, grid, message):
    with pytest.raises(LongdepsError, match=message):
        load_suite(str(write_suite(tmp_path, "bad", grid=grid)))


@pytest.mark.parametrize("extra, message", [
    ({"grids": {}}, "unknown suite key(s) grids"),
    ({"grid": {"cell.hidden_size": ["wide"]}}, "cell.hidden_size must be int, got 'wide'"),
    ({"seeds": [0, 0]}, "seeds must be distinct"),
    ({"grid": {"gradient.clip_norm": [1.0, -1.0]}}, "gradient.clip_norm must be > 0, got -1.0"),
    ({"grid": {"model": ["lstm"]}}, "grid key 'model' is not a config section"),
    ({"paper": [{"setting": {"cell.name": "lstm"}, "metric": "accuracy", "value": 1, "source": "x"}]},
     "paper metric 'accuracy' is not one of"),
    ({"paper": [{"setting": {"cell.name": "lstm"}, "value": 1}]}, "a paper entry needs exactly the keys"),
])
def test_bad_suites_are_refused_with_one_line(tmp_path, extra, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "base": TINY, "grid": CELLS, **extra}))
    with pytest.raises(LongdepsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_suite(str(path))


def test_process_pool_gives_the_same_store_as_sequential(tmp_path):
    suite = load_suite(str(write_suite(tmp_path, "pool")))
    assert [o.status for o in run_suite(suite, tmp_path / "seq", Sequential(threads=1), progress=False)] == ["finished"] * 4
    assert [o.status for o in run_suite(suite, tmp_path / "pool", LocalPool(2, threads=1), progress=False)] == ["finished"] * 4
    sequential = store_contents(tmp_path / "seq")
    assert sequential == store_contents(tmp_path / "pool") and len(sequential) == 4
    assert all(len(evals) == 2 for _, evals in sequential.values())


def test_failed_runs_are_recorded_and_the_others_finish(tmp_path):
    base = {**TINY, "cell": {"name": "srn", "hidden_size": 8}, "optimizer": {"name": "sgd"}}
    grid = {"task.variant": ["arjovsky2016", "nope"], "optimizer.lr": [0.01, 30.0]}
    suite = load_suite(str(write_suite(tmp_path, "failing", grid=grid, seeds=[0], base=base)))
    outcomes = run_suite(suite, tmp_path, LocalPool(2), progress=False)
    assert [o.status for o in outcomes] == ["finished", "failed", "failed", "failed"]
    assert "diverged" in outcomes[1].error and "unknown variant 'nope'" in outcomes[2].error
    rows = {r["run_id"]: r for r in ResultStore(tmp_path).runs(suite="failing")}
    assert [rows[o.run_id]["status"] for o in outcomes] == [o.status for o in outcomes]
    assert [rows[o.run_id]["error"] for o in outcomes] == [o.error for o in outcomes]
    table = summary_table(suite, tmp_path).splitlines()
    assert table[2].startswith("| task.variant=arjovsky2016, optimizer.lr=0.01 | 1 | 1 | 0 | ")
    assert table[3].startswith("| task.variant=arjovsky2016, optimizer.lr=30.0 | 1 | 0 | 1 | –")


def test_a_sweep_with_a_failed_run_exits_non_zero_and_names_it(tmp_path, capsys):
    grid = {"task.variant": ["arjovsky2016", "nope"]}
    path = write_suite(tmp_path, "failing", grid=grid, seeds=[0])
    assert main(["sweep", str(path), "--results", str(tmp_path), "--sequential", "--no-progress"]) == 2
    out, err = capsys.readouterr()
    (failed,) = [c.run_id() for c in load_suite(str(path)).configs() if c.task.variant == "nope"]
    assert f"failed: run {failed} (task.variant=nope, seed 0): unknown variant 'nope' for task 'adding'" in out
    assert err.startswith("longdeps: error: 1 of 2 runs of suite 'failing' failed") and err.count("\n") == 1
    assert main(["runs", "--results", str(tmp_path), "--status", "failed"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.endswith("\terror") and row.startswith(f"{failed}\tfailed\t") and "unknown variant 'nope'" in row


def processes_in_group(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of process group ``pgid``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:
            continue
        if int(group) == pgid and state != "Z":
            pids.append(int(stat.parent.name))
    return pids


def stopped_after_a_checkpoint(root: Path, status: str = "running") -> list[dict]:
    """The runs under `root` marked ``status`` that have written a checkpoint."""
    if not (root / "results.sqlite").exists():
        return []
    return [r for r in ResultStore(root).runs(status=status)
            if (root / "runs" / r["run_id"] / "checkpoint.pt").exists()]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process groups from /proc")
def test_killed_sweep_restarts_with_only_the_missing_runs(tmp_path):
    base = {**TINY, "train": {"steps": 400, "eval_every": 40, "checkpoint_every": 40, "batch_size": 8}}
    path = write_suite(tmp_path, "killed", base=base, seeds=[0, 1, 2, 3])
    suite = load_suite(str(path))
    run_suite(suite, tmp_path / "whole", LocalPool(2, threads=1), progress=False)

    root = tmp_path / "killed-root"
    sweep = subprocess.Popen(cli("sweep", str(path), "--results", str(root), "--workers", "2", "--threads", "1",
                                 "--no-progress"), env=ONE_THREAD, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        finished: list[dict] = []
        deadline = time.time() + 120
        # Kill once two runs have finished and a third has written a checkpoint: both kinds of run must be left
        # behind, whatever the timing of the two workers.
        while not (len(finished) >= 2 and stopped_after_a_checkpoint(root)) and time.time() < deadline \
                and sweep.poll() is None:
            time.sleep(0.01)
            if (root / "results.sqlite").exists():
                finished = ResultStore(root).runs(status="finished")
        sweep.send_signal(signal.SIGKILL)  # the sweep's own process; its workers notice and exit
        sweep.wait()
        deadline = time.time() + 20
        while processes_in_group(sweep.pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not processes_in_group(sweep.pid), "pool workers outlived the killed sweep"
    finally:
        if processes_in_group(sweep.pid):
            os.killpg(sweep.pid, signal.SIGKILL)
    assert 2 <= len(finished) < 8, "the sweep finished before it could be killed"
    stamps = {r["run_id"]: (root / "runs" / r["run_id"] / "result.json").stat().st_mtime_ns for r in finished}
    assert stopped_after_a_checkpoint(root, "interrupted"), "no run was stopped after a checkpoint"
    assert not ResultStore(root).runs(status="running"), "a run of a killed worker is still shown as running"

    outcomes = run_suite(suite, root, LocalPool(2, threads=1), progress=False)
    assert [o.status for o in outcomes] == ["finished"] * 8
    assert {i: (root / "runs" / i / "result.json").stat().st_mtime_ns for i in stamps} == stamps  # not run again
    assert store_contents(root) == store_contents(tmp_path / "whole")


def test_sigterm_stops_a_sweep_and_each_run_under_way_saves_where_it_is(tmp_path):
    base = {**TINY, "train": {"steps": 100000, "eval_every": 10, "checkpoint_every": 100000, "batch_size": 8}}
    path = write_suite(tmp_path, "stopped", base=base, seeds=[0])
    root = tmp_path / "root"
    sweep = subprocess.Popen(cli("sweep", str(path), "--results", str(root), "--workers", "2", "--threads", "1",
                                 "--no-progress"), env=ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)

    def evaluated():  # runs with an evaluation
        return sum(bool(p.read_text()) for p in root.glob("runs/*/metrics.jsonl"))

    deadline = time.time() + 120
    while evaluated() < 2 and time.time() < deadline and sweep.poll() is None:
        time.sleep(0.01)
    sweep.send_signal(signal.SIGTERM)  # the sweep's own process: it asks its workers to save
    err = sweep.communicate(timeout=120)[1]
    assert sweep.returncode == 128 + signal.SIGTERM and err.count("\n") == 1
    assert err.startswith("longdeps: SIGTERM received; sweep stopped stopped, each run under way saved at its current update")
    rows = ResultStore(root).runs()
    assert len(rows) == 2 and {r["status"] for r in rows} == {"interrupted"}
    for row in rows:
        step = torch.load(root / "runs" / row["run_id"] / "checkpoint.pt", weights_only=False)["step"]
        assert step == row["steps_done"] >= 10 and f"saved at update {step} in" in row["error"]


def test_two_processes_writing_one_store_lose_no_rows(tmp_path):
    base = {**TINY, "train": {"steps": 20, "eval_every": 1, "checkpoint_every": 5, "batch_size": 8}}
    suites = [write_suite(tmp_path, "left", base=base, seeds=range(4)),
              write_suite(tmp_path, "right", base=base, seeds=range(4, 8))]
    root = tmp_path / "shared"
    procs = [subprocess.Popen(cli("sweep", str(path), "--results", str(root), "--sequential", "--no-progress"),
                              env=ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for path in suites]
    assert all(p.wait() == 0 for p in procs), [p.stderr.read() for p in procs]
    store = ResultStore(root)
    for name in ("left", "right"):
        rows = store.runs(suite=name)
        assert len(rows) == 8 and all(r["status"] == "finished" for r in rows)
        assert all([e["step"] for e in store.evals(r["run_id"])] == list(range(1, 21)) for r in rows)
    assert len(store.runs()) == 16


def test_ray_gives_the_same_results_as_the_local_pool(tmp_path):
    pytest.importorskip("ray", reason="the Ray executor needs ray (pip install 'longdeps[ray]')")
    suite = load_suite(str(write_suite(tmp_path, "ray")))
    run_suite(suite, tmp_path / "pool", LocalPool(2, threads=1), progress=False)
    outcomes = run_suite(suite, tmp_path / "ray", RayExecutor("local", workers=2), progress=False)
    assert [o.status for o in outcomes] == ["finished"] * 4
    assert store_contents(tmp_path / "ray") == store_contents(tmp_path / "pool")


def test_reproduce_writes_the_report_with_paper_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    paper = [{"setting": {"cell.name": "lstm"}, "metric": "test_metric", "value": 0.9996, "source": "a paper, Table 7"},
             {"setting": {"cell.name": "srn", "task.seq_len": 8}, "metric": "solved", "value": 0, "source": "another"},
             {"setting": {"cell.hidden_size": 128}, "metric": "test_loss", "value": 0.5, "source": "a third"}]
    write_suite(tmp_path / "benchmarks", "tiny-repro", description="two cells", paper=paper)
    assert main(["reproduce", "tiny-repro", "--results", "res", "--sequential", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| cell.name=srn | 2 | 2 | 0 | " in out and "4 runs, 0 failed" in out
    report = tmp_path / "res" / "reports" / "tiny-repro" / "report.md"
    text = report.read_text()
    assert "two cells" in text and "| cell=lstm | 2 |" in text
    assert "| cell=lstm | test success | 0.9996 | " in text and "(n=2) | a paper, Table 7 |" in text
    assert "| cell=srn | fraction of runs solved | 0 | 0 ± 0 (n=2) | another |" in text
    assert "| cell.hidden_size=128 | test loss | 0.5 | no finished runs | a third |" in text
    assert (report.parent / "learning_curves.png").exists()
    # the report alone, from the suite recorded in the results root, under either flag
    monkeypatch.chdir(tmp_path / "res")
    for flag in ("--sweep", "--suite"):
        report.unlink()
        assert main(["report", "--results", ".", flag, "tiny-repro"]) == 0
        assert "| cell=lstm | test success | 0.9996 | " in report.read_text()
    assert main(["reproduce", "nowhere", "--results", "."]) == 2
    assert "unknown suite 'nowhere'; known suites: " in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["sweep", "nowhere.yaml"], "suite file 'nowhere.yaml' does not exist"),
    (["sweep", "SUITE", "--sequential", "--workers", "2"], "--workers does not apply with --sequential"),
    (["sweep", "SUITE", "--workers", "0"], "workers must be at least 1, got 0"),
    (["reproduce", "default"], "unknown suite 'default'"),
])
def test_bad_sweep_commands_are_one_line_and_non_zero(tmp_path, args, message, capsys):
    suite = str(write_suite(tmp_path, "cli"))
    assert main([suite if a == "SUITE" else a for a in args] + ["--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"longdeps: error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("command", ["sweep", "reproduce", "bench", "report"])
def test_help_names_the_executors_and_the_sweep_flag(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit.value.code == 0 and out.startswith(f"usage: longdeps {command}")
    assert ("--sweep NAME" in out) if command == "report" else ("--ray-address ADDRESS" in out and "--sequential" in out)


def test_report_has_a_section_per_task_and_labels_models_by_their_cell(tmp_path):
    grid = {"model": [{"cell": {"name": "srn", "hidden_size": 6}}, {"cell": {"name": "lstm", "hidden_size": 4}}],
            "task.seq_len": [5, 7]}
    paper = [{"setting": {"cell.name": "lstm", "task.seq_len": 7}, "metric": "test_loss", "value": 0.1, "source": "p"}]
    suite = load_suite(str(write_suite(tmp_path, "sections", grid=grid, seeds=[0], paper=paper)))
    run_suite(suite, tmp_path / "res", Sequential(threads=1), progress=False)
    text = write_report(ResultStore(tmp_path / "res"), tmp_path / "out", "sections", paper=suite.paper).read_text()
    sections = text.split("## adding/arjovsky2016 T=")[1:]
    assert [s[:1] for s in sections] == ["5", "7"]
    for section in sections:
        # one label field (the cell) tells the two models apart; the hidden size is listed below the table
        assert "| cell=srn | 1 |" in section and "| cell=lstm | 1 |" in section and "- cell=srn: hidden_size=6" in section
        assert "Memoryless baseline loss: 0.1667" in section and "| test loss / memoryless |" in section
    assert "Published figures" not in sections[0] and "| cell=lstm | test loss | 0.1 | " in sections[1]
    assert "Cost-quality frontier" not in text  # the settings share their estimator
    for slug in ("adding-arjovsky2016-t-5", "adding-arjovsky2016-t-7"):
        assert (tmp_path / "out" / f"learning_curves-{slug}.png").exists()
        assert f"(gradient_profile-{slug}.png)" in text


def test_report_tables_and_plots_gradient_alignment_where_runs_measure_it(tmp_path):
    base = {**TINY, "cell": {"name": "gru", "hidden_size": 4},
            "train": {**TINY.get("train", {}), "alignment_every": 1, "eval_every": 2, "steps": 4, "stop_when_solved": False}}
    grid = {"gradient": [{"name": "bptt"}, {"name": "tbptt", "truncation": 1}]}
    suite = load_suite(str(write_suite(tmp_path, "aligned", grid=grid, seeds=[0, 1], base=base)))
    run_suite(suite, tmp_path / "res", Sequential(threads=1), progress=False)
    text = write_report(ResultStore(tmp_path / "res"), tmp_path / "out", "aligned").read_text()
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| gradient=")}
    # exact BPTT is aligned with itself at every evaluation; fully truncated BPTT is not
    assert "| 1.00 ± 0.00 | 1.00 ± 0.00 | 1.00 ± 0.00 | 1.00 ± 0.00 | 1.00 ± 0.00 |" in rows["| gradient=bptt"]
    assert "| 1.00 ± 0.00 | 1.00 ± 0.00 | 1.00 ± 0.00 | 1.00 ± 0.00 | 1.00 ± 0.00 |" not in rows["| gradient=tbptt"]
    assert "| gradient cosine with BPTT |" in text and (tmp_path / "out" / "alignment.png").exists()
    # the settings differ in their estimator: each is a point of the cost-quality frontier
    frontier = text.split("## Cost-quality frontier")[1].split("\n## ")[0]
    assert "| gradient=bptt | 2 |" in frontier and "| gradient=tbptt | 2 |" in frontier
    assert "yes |" in frontier and (tmp_path / "out" / "frontier.png").exists()
