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
