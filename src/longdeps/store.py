"""Where results live: one SQLite index plus one folder per run.

Layout under the results root (default ``./longdeps-results``)::

    results.sqlite          runs, their evaluations, suite membership
    runs/<run_id>/          config.json, metrics.jsonl, checkpoint.pt, result.json
    suites/<name>.yaml      the definition of each suite swept here

The index can be rebuilt from the run folders and suite files (all but the
errors of failed runs): a damaged one is refused in one line, and
``longdeps runs --reindex`` rebuilds it (``longdeps.sweep.reindex``).

A running run's row holds its process id and host; a reader on the same host
marks it ``interrupted`` once that process is gone (e.g. after SIGKILL).

The index uses WAL mode and a busy timeout, so several processes may write
to one store. Files in a run folder are written atomically (write a temporary
file, then rename), so an interrupted write never leaves a half file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from longdeps.errors import LongdepsError

DEFAULT_ROOT = "longdeps-results"
INDEX = "results.sqlite"  #: the index's file name under the results root

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,            -- running | finished | failed | interrupted
    created REAL, updated REAL,
    task TEXT, variant TEXT, seq_len INTEGER,
    cell TEXT, hidden_size INTEGER, gradient TEXT, sampler TEXT, continuation TEXT,
    seed INTEGER,
    steps_done INTEGER DEFAULT 0, examples_seen INTEGER DEFAULT 0, wall_time REAL DEFAULT 0,
    metric TEXT, solved INTEGER, solved_step INTEGER,
    best_val_metric REAL, best_val_step INTEGER, test_metric REAL, test_loss REAL,
    config TEXT NOT NULL, error TEXT,
    pid INTEGER, host TEXT           -- the process of a running run
);
CREATE TABLE IF NOT EXISTS evals (
    run_id TEXT NOT NULL, step INTEGER NOT NULL,
    examples_seen INTEGER, wall_time REAL,
    train_loss REAL, val_loss REAL, val_metric REAL, grad_norm REAL,
    record TEXT NOT NULL,            -- the whole metrics.jsonl line
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS suite_runs (
    suite TEXT NOT NULL, run_id TEXT NOT NULL, PRIMARY KEY (suite, run_id)
);
"""

INSERT_EVAL = "INSERT OR REPLACE INTO evals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def eval_row(run_id: str, record: dict[str, Any]) -> tuple:
    """The ``evals`` row of one evaluation record."""
    return (run_id, record["step"], record["examples_seen"], record["wall_time"], record.get("train_loss"),
            record["val"]["loss"], record["val_metric"], record.get("grad_norm"), json.dumps(record))


#: columns of ``runs`` that ``ResultStore.runs`` filters on
RUN_FILTERS = ("status", "task", "variant", "seq_len", "cell", "hidden_size", "gradient", "sampler", "continuation", "seed")


@contextmanager
def atomic_file(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` to write; it replaces ``path`` when the block ends, so that
    readers see the old or the new file, never a part. Its mode is what ``open`` would give it
    (0666 less the umask), not ``mkstemp``'s 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``atomic_file``), synced to disk."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def atomic_link(source: Path, path: Path) -> None:
    """Make ``path`` name the file ``source`` names, atomically (``atomic_file``): a hard link, else a copy."""
    with atomic_file(path) as tmp:
        os.unlink(tmp)
        try:
            os.link(source, tmp)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(source, tmp)


def atomic_torch_save(obj: Any, path: Path, previous: Path | None = None) -> None:
    """``torch.save`` to ``path`` atomically (``atomic_file``); with ``previous``, the file ``path``
    held is kept there first, so that ``path`` always holds a whole file and one damaged file never
    leaves none."""
    import torch

    with atomic_file(path) as tmp:
        torch.save(obj, tmp)
        if previous is not None and path.exists():
            atomic_link(path, previous)


#: columns added to ``runs`` since the first schema: an older index gets them when it is opened
ADDED_COLUMNS = {"pid": "INTEGER", "host": "TEXT"}


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine exists and has not exited (a zombie, on Linux)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc
        return True


class ResultStore:
    """The results root: a SQLite index and the run folders.

    ``create=False`` opens an existing store only (a one-line error where there is none), for
    commands that read.
    """

    def __init__(self, root: str | Path = DEFAULT_ROOT, create: bool = True):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise LongdepsError(f"results root {str(self.root)!r} is a file, not a folder")
        if not create and not (self.root / INDEX).is_file():
            raise LongdepsError(f"no results in {str(self.root)!r} (no results.sqlite there); "
                                "pass the --results folder that your runs wrote to")
        self.root.mkdir(parents=True, exist_ok=True)
        # Switching a new index to WAL needs the database to itself, and SQLite answers "locked"
        # at once, without waiting, while another process opens it too: retry for as long as
        # ``connect`` would wait.
        deadline = time.monotonic() + 60
        while True:
            try:
                with self.connect() as db:
                    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                    db.executescript(SCHEMA)
                    columns = {row["name"] for row in db.execute("PRAGMA table_info(runs)")}
                    for column, kind in ADDED_COLUMNS.items():
                        if column not in columns:
                            db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
                return
            except sqlite3.OperationalError as err:  # "duplicate column": another process added it first
                if not ("locked" in str(err) or "duplicate column" in str(err)) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success; waits up to 60 s for other writers. An index that
        SQLite cannot read (overwritten, truncated) is refused in one line that says how to rebuild it,
        and left as it is."""
        db = sqlite3.connect(self.index_path, timeout=60)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        except sqlite3.DatabaseError as err:
            if type(err) is not sqlite3.DatabaseError:  # its subclasses: locked, constraints, ... (not damage)
                raise
            raise LongdepsError(f"{self.index_path} is not a readable SQLite database ({err}); it only indexes the "
                                f"run folders in {self.root / 'runs'}: rebuild it from them with `longdeps runs "
                                f"--reindex --results {self.root}` (which moves the damaged file aside first), "
                                "or move it aside yourself") from None
        finally:
            db.close()

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    @staticmethod
    def move_index_aside(root: str | Path) -> Path | None:
        """Rename the index under ``root`` (and its WAL files) to ``results.sqlite.before-reindex-TIME``,
        so that a new one can be built; returns the new name (None: there was no index)."""
        index = Path(root) / INDEX
        if not index.exists():
            return None
        backup = index.with_name(f"{INDEX}.before-reindex-{time.strftime('%Y%m%dT%H%M%S')}")
        while backup.exists():
            backup = backup.with_name(backup.name + "+")
        for suffix in ("", "-wal", "-shm"):  # a WAL left behind would be replayed into the new index
            if Path(f"{index}{suffix}").exists():
                os.replace(f"{index}{suffix}", f"{backup}{suffix}")
        return backup

    # -- writing ------------------------------------------------------------
    def start_run(self, run_id: str, config: dict[str, Any], metric: str, variant: str, suite: str | None = None,
                  seq_len: int | None = None) -> None:
        """Register a run as running in this process (a restarted run keeps its row and its evaluations).

        ``variant`` and ``seq_len`` are the task's actual ones (the config may leave them to the
        task's defaults; ``seq_len=None`` keeps the config's).
        """
        now = time.time()
        task, cell = config["task"], config["cell"]
        with self.connect() as db:
            db.execute(
                """INSERT INTO runs (run_id, status, created, updated, task, variant, seq_len, cell, hidden_size,
                       gradient, sampler, continuation, seed, metric, config, pid, host)
                   VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT(run_id) DO UPDATE SET status='running', updated=excluded.updated, error=NULL,
                       variant=excluded.variant, seq_len=excluded.seq_len, metric=COALESCE(excluded.metric, metric),
                       pid=excluded.pid, host=excluded.host""",
                (run_id, now, now, task["name"], variant, task["seq_len"] if seq_len is None else seq_len,
                 cell["name"], cell["hidden_size"],
                 config["gradient"]["name"], config["sampler"]["name"], config["continuation"]["name"],
                 config["train"]["seed"], metric, json.dumps(config, sort_keys=True), os.getpid(), socket.gethostname()),
            )
            if suite:
                db.execute("INSERT OR IGNORE INTO suite_runs VALUES (?, ?)", (suite, run_id))

    def add_to_suite(self, suite: str, run_ids: list[str]) -> None:
        """Make ``run_ids`` members of ``suite`` (runs may belong to several suites)."""
        with self.connect() as db:
            db.executemany("INSERT OR IGNORE INTO suite_runs VALUES (?, ?)", [(suite, r) for r in run_ids])

    def set_evals(self, run_id: str, records: list[dict[str, Any]]) -> None:
        """Make ``records`` the run's evaluations, in place of those it has."""
        with self.connect() as db:
            db.execute("DELETE FROM evals WHERE run_id=?", (run_id,))
            db.executemany(INSERT_EVAL, [eval_row(run_id, record) for record in records])

    def add_eval(self, run_id: str, record: dict[str, Any]) -> None:
        """Add one evaluation ``record`` (a ``metrics.jsonl`` line) and note its progress in the run's row."""
        with self.connect() as db:
            db.execute(INSERT_EVAL, eval_row(run_id, record))
            db.execute("UPDATE runs SET steps_done=?, examples_seen=?, wall_time=?, updated=? WHERE run_id=?",
                       (record["step"], record["examples_seen"], record["wall_time"], time.time(), run_id))

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any], error: str | None = None) -> None:
        """Record the run's final status and summary fields (columns of ``runs``)."""
        columns = ("steps_done", "examples_seen", "wall_time", "solved", "solved_step",
                   "best_val_metric", "best_val_step", "test_metric", "test_loss")
        values = [summary.get(c) for c in columns]
        with self.connect() as db:
            db.execute(
                f"UPDATE runs SET status=?, error=?, updated=?, {', '.join(c + '=COALESCE(?, ' + c + ')' for c in columns)} "
                "WHERE run_id=?",
                (status, error, time.time(), *values, run_id),
            )

    def mark_lost_runs(self, db: sqlite3.Connection) -> None:
        """Mark ``interrupted`` the runs recorded as running in a process of this machine that is gone
        (killed, or its machine restarted); runs of other machines are left as they are."""
        running = db.execute("SELECT run_id, pid FROM runs WHERE status='running' AND host=?", (socket.gethostname(),))
        for row in running.fetchall():
            if not process_alive(row["pid"]):
                db.execute("UPDATE runs SET status='interrupted', error=? WHERE run_id=? AND status='running'",
                           (f"its process {row['pid']} on {socket.gethostname()} is gone", row["run_id"]))

    # -- reading ------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.connect() as db:
            self.mark_lost_runs(db)
            row = db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return dict(row) if row else None

    def runs(self, suite: str | None = None, **equal: Any) -> list[dict[str, Any]]:
        """Rows of ``runs``, optionally of one suite and with columns equal to the given values."""
        where, args = [], []
        if suite:
            where.append("run_id IN (SELECT run_id FROM suite_runs WHERE suite=?)")
            args.append(suite)
        for column, value in equal.items():
            if column not in RUN_FILTERS:
                raise ValueError(f"cannot filter runs by {column!r}; choose from {', '.join(RUN_FILTERS)}")
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY created"
        with self.connect() as db:
            self.mark_lost_runs(db)
            return [dict(r) for r in db.execute(sql, args)]

    def evals(self, run_id: str) -> list[dict[str, Any]]:
        """The run's evaluation records, in step order."""
        with self.connect() as db:
            rows = db.execute("SELECT record FROM evals WHERE run_id=? ORDER BY step", (run_id,)).fetchall()
        return [json.loads(r["record"]) for r in rows]

    def suites(self) -> list[str]:
        with self.connect() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT suite FROM suite_runs ORDER BY suite")]
