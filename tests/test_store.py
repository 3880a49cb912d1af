"""The results store: an index of an older schema, and runs whose process is gone."""

import os
import socket
import sqlite3
import subprocess

from longdeps.store import SCHEMA, ResultStore


def test_an_older_index_gets_the_new_columns_and_a_run_whose_process_is_gone_is_interrupted(tmp_path):
    old = SCHEMA.replace(",\n    pid INTEGER, host TEXT           -- the process of a running run", "")
    assert "pid INTEGER" not in old
    with sqlite3.connect(tmp_path / "results.sqlite") as db:
        db.executescript(old)
        db.execute("INSERT INTO runs (run_id, status, config) VALUES ('old', 'running', '{}')")
    store = ResultStore(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    with store.connect() as db:
        db.execute("INSERT INTO runs (run_id, status, config, pid, host) VALUES ('gone', 'running', '{}', ?, ?)",
                   (gone.pid, socket.gethostname()))
        db.execute("INSERT INTO runs (run_id, status, config, pid, host) VALUES ('here', 'running', '{}', ?, ?)",
                   (os.getpid(), socket.gethostname()))
        db.execute("INSERT INTO runs (run_id, status, config, pid, host) VALUES ('there', 'running', '{}', ?, ?)",
                   (gone.pid, "another-host"))
    status = {row["run_id"]: (row["status"], row["error"]) for row in store.runs()}
    assert status == {"old": ("running", None), "here": ("running", None), "there": ("running", None),
                      "gone": ("interrupted", f"its process {gone.pid} on {socket.gethostname()} is gone")}


def test_a_damaged_index_is_refused_in_one_line_and_reindex_rebuilds_it_from_the_run_folders(tmp_path, capsys):
    from longdeps.cli import main
    from longdeps.sweep import Sequential, load_suite, run_suite

    suite = tmp_path / "tiny.yaml"
    suite.write_text("name: tiny\nbase:\n  task: {name: adding, seq_len: 6, val_size: 20, test_size: 20}\n"
                     "  cell: {hidden_size: 4}\n  train: {steps: 2, eval_every: 1, batch_size: 4}\n"
                     "grid:\n  cell.name: [srn, lstm]\n")
    results = tmp_path / "results"
    run_suite(load_suite(str(suite)), results, Sequential(), progress=False)
    assert main(["runs", "--results", str(results)]) == 0
    listed = capsys.readouterr().out
    (unfinished,) = [p for p in (results / "runs").iterdir() if '"name": "srn"' in (p / "config.json").read_text()]
    (unfinished / "result.json").unlink()  # as a run stopped before its end leaves its folder
    index = results / "results.sqlite"
    for damage in (b"not a database\n", index.read_bytes()[:5000]):  # overwritten; truncated
        index.write_bytes(damage)
        before = sorted(p.name for p in results.iterdir())
        for args in (["runs"], ["train", "--task", "adding", "--steps", "1"]):
            assert main([*args, "--results", str(results)]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"longdeps: error: {index} is not a readable SQLite database (") and err.count("\n") == 1
            assert f"longdeps runs --reindex --results {results}" in err
            assert index.read_bytes() == damage and sorted(p.name for p in results.iterdir()) == before
    assert main(["runs", "--reindex", "--results", str(results), "--suite", "tiny"]) == 0
    out, err = capsys.readouterr()
    (backup,) = results.glob("results.sqlite.before-reindex-*")
    assert backup.read_bytes() == damage
    assert err == (f"rebuilt {index} from 2 run folders (1 finished, 1 unfinished, 0 left out; suites: tiny); "
                   f"the old index is kept as {backup}\n")
    rows = [dict(zip(out.splitlines()[0].split("\t"), line.split("\t"))) for line in out.splitlines()[1:]]
    assert {(r["cell"], r["status"], r["steps_done"]) for r in rows} == {("lstm", "finished", "2"), ("srn", "interrupted", "2")}
    header = listed.splitlines()[0].split("\t")
    before = {line.split("\t")[0]: dict(zip(header, line.split("\t"))) for line in listed.splitlines()[1:]}
    (finished,) = [r for r in rows if r["status"] == "finished"]
    for column in ("steps_done", "solved_step", "best_val_metric", "test_metric"):
        assert before[finished["run_id"]][column] == finished[column]
    assert len(ResultStore(results).evals(finished["run_id"])) == 2
