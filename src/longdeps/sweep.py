"""Sweeps: a suite's grid of runs, in this process, on a local process pool or on a Ray cluster.

A suite file (YAML)::

    name: default
    description: one line
    base:                       # a RunConfig as nested sections
      task: {name: adding, seq_len: 100}
    grid:                       # dotted keys -> values; the cartesian product is run
      gradient: [{name: bptt}, {name: tbptt, truncation: 1}]   # a section -> fields set together
      cell.name: [srn, lstm]
      optimizer.lr: [0.01, 0.001]
      model:                    # any other key: sections set together
        - {cell: {name: lstm, hidden_size: 68}, optimizer: {lr: 0.001}}
        - {cell: {name: srn}, seeds: [0, 1, 2, 3, 4]}   # its points' own seeds
    seeds: [0, 1, 2]            # every other point's
    paper:                      # optional: published figures, shown beside ours in the report
      - setting: {cell.name: lstm}          # the grid points it applies to
        metric: test_metric                 # one of longdeps.report.PAPER_METRICS
        value: 0.9996
        source: Hochreiter & Schmidhuber 1997, Table 7

Every grid point x seed is one run, named by the hash of its resolved config
(``RunConfig.run_id``), so a sweep started again skips finished runs,
resumes interrupted ones from their last checkpoint and retries failed ones.
A failed run (any exception, a diverging loss included) is recorded in the
store as ``failed`` with its error, and the other runs go on. Ctrl-C or
SIGTERM stops a sweep: each run under way saves a checkpoint at its current
update, and the same sweep started again continues them.

Executors; each calls ``run_one`` once per run:

- ``Sequential``: in this process, one run after another;
- ``LocalPool`` (the default): ``workers`` processes (default: one per core),
  each with ``cores // workers`` torch threads, so workers x threads <= cores;
- ``RayExecutor``: one Ray task per run, with one CPU and one torch thread,
  on the cluster at ``address`` (``auto``: the cluster this machine belongs
  to; ``local``: start one here with ``workers`` CPUs).

Every executor writes to one results root: the SQLite index (WAL mode;
concurrent writers wait for each other) and the run folders. Ray tasks open
the root by its absolute path and write their checkpoints there themselves:
on a cluster the results root must be on a filesystem that every node
mounts at the same path, and longdeps must be installed on every node.

Built-in suites live in ``longdeps/suites/``, the reproduction suites in the
repository's ``benchmarks/`` folder; any path to a YAML file works too.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml
from tqdm.auto import tqdm

from longdeps.allocator import keep_freed_memory
from longdeps.config import SECTIONS, RunConfig, parse_overrides, read_mapping, validate
from longdeps.errors import LongdepsError
from longdeps.experiment import run_experiment, with_data_checksum
from longdeps.report import PAPER_METRICS
from longdeps.reporting import mean_std
from longdeps.runfolder import rebuild_index
from longdeps.signals import sigterm_as_interrupt
from longdeps.store import ResultStore, atomic_write_text

SUITE_KEYS = ("name", "description", "base", "grid", "seeds", "paper")
PAPER_KEYS = ("setting", "metric", "value", "source")


def _override(key: str, value: Any) -> str:
    """A ``section.key=value`` override string for a value read from YAML."""
    return f"{key}={'null' if value is None else value}"


def _grid_overrides(key: str, value: Any) -> list[str]:
    """One grid entry as overrides.

    - ``section.key: value``: one field;
    - ``section: {key: value, ...}``: fields of one section set together
      (e.g. ``gradient: [{name: bptt}, {name: tbptt, truncation: 1}]``);
    - ``LABEL: {section: {key: value}, ...}`` under any key that is not a config
      section: fields of several sections set together, e.g. a model with its own
      optimiser settings (``model: [{cell: {name: lstm}, optimizer: {lr: 0.001}}]``);
      its ``seeds`` (``_entry_seeds``) are no override.
    """
    section = key.split(".")[0]
    if section not in SECTIONS:
        if not isinstance(value, dict):
            raise LongdepsError(f"grid key {key!r} is not a config section, so each of its entries must be a mapping "
                                f"of sections to fields, got {value!r}")
        return [o for k, v in value.items() if k != "seeds" for o in _grid_overrides(k, v)]
    if isinstance(value, dict):
        return [o for k, v in value.items() for o in _grid_overrides(f"{key}.{k}", v)]
    return [_override(key, value)]


def _entry_seeds(key: str, value: Any) -> list[int] | None:
    """The seeds that a grouped grid entry (under a key that is not a config section) names for the
    points it is part of, e.g. ``{task: {name: ptb-char}, seeds: [0, 1, 2]}``; None where it names none."""
    if key.split(".")[0] in SECTIONS or not isinstance(value, dict) or "seeds" not in value:
        return None
    seeds = value["seeds"]
    if not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds) \
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise LongdepsError(f"grid entry {key!r}: seeds must be a non-empty list of distinct integers, got {seeds!r}")
    return seeds


@dataclass
class Suite:
    name: str
    description: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    paper: list[dict[str, Any]] = field(default_factory=list)

    def points(self) -> list[tuple[str, list[RunConfig]]]:
        """The grid points in file order (last key fastest), each as (label, its configs in seed order):
        the suite's seeds, or those that a grouped entry of the point names (``_entry_seeds``); a task on a
        file of your own with the file's checksum, as its run records it."""
        base = RunConfig.from_dict(self.base)
        keys = list(self.grid)
        points = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            overrides = [o for k, v in zip(keys, values) for o in _grid_overrides(k, v)]
            named = [(k, seeds) for k, v in zip(keys, values) if (seeds := _entry_seeds(k, v)) is not None]
            if len(named) > 1:
                raise LongdepsError(f"grid entries of {named[0][0]!r} and {named[1][0]!r} both name seeds for one point; "
                                    "name them under one grid key only")
            point = base.with_overrides(overrides)
            label = ", ".join(overrides) or "base"
            seeds = named[0][1] if named else self.seeds
            points.append((label, [with_data_checksum(point.with_overrides([f"train.seed={seed}"])) for seed in seeds]))
        return points

    def configs(self) -> list[RunConfig]:
        """Every run of the suite: grid points in file order, seeds innermost."""
        return [config for _, configs in self.points() for config in configs]

    def with_overrides(self, overrides: list[str]) -> "Suite":
        """This suite with ``section.key=value`` overrides in its base, so in every run (e.g.
        ``train.device=cuda``); a field the grid varies is refused, since the grid would win."""
        if not overrides:
            return self
        data = parse_overrides(overrides)
        varied = {o.partition("=")[0] for key, values in self.grid.items() for v in values
                  for o in _grid_overrides(key, v)}
        clash = sorted({f"{section}.{name}" for section, names in data.items() for name in names} & varied)
        if clash:
            raise LongdepsError(f"suite {self.name!r}: its grid varies {', '.join(clash)}, which an override cannot "
                                "set; copy the suite file and change its grid instead")
        base = {section: dict(values) for section, values in self.base.items()}
        for section, values in data.items():
            base.setdefault(section, {}).update(values)
        suite = replace(self, base=base)
        for config in suite.configs():
            validate(config)
        return suite


def builtin_suites() -> dict[str, Path]:
    """Names of the suites shipped with the package, and their files."""
    folder = resources.files("longdeps") / "suites"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def benchmark_suites() -> dict[str, Path]:
    """Names of the reproduction suites in ``benchmarks/`` (of the working directory, else of this checkout)."""
    folders = [Path.cwd() / "benchmarks", Path(__file__).resolve().parents[2] / "benchmarks"]
    return {p.stem: p for folder in reversed(folders) if folder.is_dir() for p in sorted(folder.glob("*.yaml"))}


def known_suites() -> dict[str, Path]:
    return {**benchmark_suites(), **builtin_suites()}


def load_suite(name_or_path: str, names: dict[str, Path] | None = None) -> Suite:
    """A suite by name (among ``names``, default: built-in and benchmark suites), or a suite file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        names = known_suites() if names is None else names
        if name_or_path not in names:
            raise LongdepsError(f"unknown suite {name_or_path!r}; known suites: {', '.join(sorted(names)) or 'none'} "
                                "(or give a .yaml path)")
        path = names[name_or_path]
    elif not path.is_file():
        raise LongdepsError(f"suite file {name_or_path!r} does not exist")
    data = read_mapping(path)
    unknown = set(data) - set(SUITE_KEYS)
    if unknown:
        raise LongdepsError(f"{path}: unknown suite key(s) {', '.join(sorted(unknown))}")
    grid = data.get("grid") or {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise LongdepsError(f"{path}: grid entry {key!r} must be a non-empty list, got {values!r}")
    seeds = list(data.get("seeds") or [0])
    if len(set(seeds)) != len(seeds):
        raise LongdepsError(f"{path}: seeds must be distinct, got {seeds}")
    suite = Suite(name=data.get("name", path.stem), description=data.get("description", ""),
                  base=data.get("base") or {}, grid=grid, seeds=seeds)
    for config in suite.configs():  # every grid value must fit its config field, before any run starts
        validate(config)
    suite.paper = [_paper_entry(path, entry, RunConfig.from_dict(suite.base)) for entry in data.get("paper") or []]
    return suite


def _paper_entry(path: Path, entry: Any, base: RunConfig) -> dict[str, Any]:
    """A ``paper:`` entry checked, its setting values coerced to the types of the fields of the suite's
    ``base`` config (an option of the base's task, such as ``task.horizon``, too)."""
    if not isinstance(entry, dict) or set(entry) != set(PAPER_KEYS) or not isinstance(entry["setting"], dict):
        raise LongdepsError(f"{path}: a paper entry needs exactly the keys {', '.join(PAPER_KEYS)} "
                            f"(setting a mapping of config fields), got {entry!r}")
    if entry["metric"] not in PAPER_METRICS:
        raise LongdepsError(f"{path}: paper metric {entry['metric']!r} is not one of {', '.join(PAPER_METRICS)}")
    setting = {}
    for key, value in entry["setting"].items():
        section, _, name = key.partition(".")
        config = base.with_overrides([_override(key, value)])
        setting[key] = config.to_dict()[section][name]
    return {**entry, "setting": setting}


def save_suite(root: str | Path, suite: Suite) -> Path:
    """Keep the suite's definition under the results root (``suites/NAME.yaml``), for reports."""
    path = Path(root) / "suites" / f"{suite.name}.yaml"
    atomic_write_text(path, yaml.safe_dump(asdict(suite), sort_keys=False))
    return path


def recorded_suite(root: str | Path, name: str) -> Suite | None:
    """The definition of suite ``name`` as last swept into ``root``, else the known suite of that name, else None."""
    path = Path(root) / "suites" / f"{name}.yaml"
    if path.is_file():
        return load_suite(str(path))
    return load_suite(name) if name in known_suites() else None


def reindex(root: str | Path) -> tuple[Path | None, dict[str, str], list[str], list[str]]:
    """Rebuild the index of results root ``root`` from its run folders (``runfolder.rebuild_index``)
    and its suites' membership from the suite definitions kept there (``save_suite``).

    Returns where the old index went (None: there was none), the status of each run restored, the
    suites restored, and a line for each folder or suite left out and why.
    """
    backup, restored, skipped = rebuild_index(root)
    store, suites = ResultStore(root), []
    for path in sorted((Path(root) / "suites").glob("*.yaml")):
        try:
            suite = load_suite(str(path))
        except LongdepsError as err:
            skipped.append(f"suite {path}: {err}")
            continue
        store.add_to_suite(suite.name, [config.run_id() for config in suite.configs()])
        suites.append(suite.name)
    return backup, restored, suites, skipped


# -- one run, in any executor ---------------------------------------------------

@dataclass
class RunOutcome:
    run_id: str
    status: str  #: finished | failed
    error: str | None = None


def run_one(config: RunConfig, results: str, data_dir: str | None = None, threads: int | None = None,
            progress: bool = False) -> RunOutcome:
    """Run, resume or skip (when finished) one config; a failure is recorded in the store, never raised.

    ``threads``: torch intra-op threads for this process (None: leave as is); ``progress``: the
    run's own progress (``longdeps.progress``).
    """
    if threads:
        torch.set_num_threads(threads)
    try:
        result = run_experiment(config, results, resume=True, progress=progress, data_dir=data_dir)
    except Exception as err:  # noqa: BLE001 - any failure of one run is recorded; the sweep goes on
        return record_failure(results, config, err)
    return RunOutcome(result.run_id, result.status)


def record_failure(results: str | Path, config: RunConfig, err: BaseException) -> RunOutcome:
    """Mark the run of ``config`` failed with ``err`` (creating its row if it failed before starting)."""
    message = str(err) if isinstance(err, LongdepsError) else f"{type(err).__name__}: {err}"
    store, run_id = ResultStore(results), config.run_id()
    if store.get_run(run_id) is None:
        store.start_run(run_id, config.to_dict(), None, config.task.variant)
    store.finish_run(run_id, "failed", {}, error=message)
    return RunOutcome(run_id, "failed", message)


# -- executors -----------------------------------------------------------------

def cpu_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise LongdepsError(f"{name} must be at least 1, got {value}")
    return value


class Executor:
    """Runs configs with ``run_one``; a context manager that holds its workers.

    ``slots``: how many runs go at once; ``map`` yields outcomes in completion order.
    """

    slots = 1

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def map(self, configs: list[RunConfig], results: str, data_dir: str | None, progress: bool) -> Iterator[RunOutcome]:
        """``run_one`` of each config (``progress``: each run's own)."""
        raise NotImplementedError


class Sequential(Executor):
    """One run after another in this process (``threads``: None leaves torch's setting alone)."""

    def __init__(self, threads: int | None = None):
        self.threads = _positive("threads", threads)

    def map(self, configs, results, data_dir, progress):
        for config in configs:
            yield run_one(config, results, data_dir, self.threads, progress)


def _start_worker() -> None:
    """Pool worker initialiser: keep freed memory for the next step (``longdeps.allocator``), and exit
    once the sweep's process is gone, so a killed sweep leaves no orphans."""
    keep_freed_memory()

    def watch() -> None:
        multiprocessing.parent_process().join()
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class LocalPool(Executor):
    """``workers`` local processes (default: one per core), ``threads`` torch threads each (default: cores // workers).

    Workers are started by a forkserver that has imported torch once (spawn
    where there is no forkserver); each worker runs many runs in turn. As
    with any multiprocessing, a script that sweeps must guard its entry
    point with ``if __name__ == "__main__":``.
    """

    def __init__(self, workers: int | None = None, threads: int | None = None):
        self.slots = _positive("workers", workers) or cpu_cores()
        self.threads = _positive("threads", threads) or max(1, cpu_cores() // self.slots)

    def __enter__(self) -> "LocalPool":
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
        else:  # pragma: no cover
            context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(self.slots, mp_context=context, initializer=_start_worker)
        return self

    def __exit__(self, exc_type: type | None, *exc: Any) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            # SIGTERM asks each run under way to save at its current update (``Run.execute``); a worker
            # that the terminal's Ctrl-C reached already is stopping and takes no harm from it
            for process in self.pool._processes.values():
                process.terminate()
        self.pool.shutdown(cancel_futures=True)

    def map(self, configs, results, data_dir, progress):
        futures = {self.pool.submit(run_one, config, results, data_dir, self.threads, progress): config
                   for config in configs}
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as err:  # noqa: BLE001 - a worker process died (BrokenProcessPool)
                yield record_failure(results, futures[future], err)


class RayExecutor(Executor):
    """One Ray task per run (``threads`` CPUs and torch threads each) on the cluster at ``address``.

    ``address``: a Ray address, ``auto``, or ``local`` to start a Ray instance
    here with ``workers`` CPUs (default: one per core). A Ray session that is
    already initialised in this process is used as it is.
    """

    def __init__(self, address: str = "auto", workers: int | None = None, threads: int = 1):
        self.address, self.workers, self.threads = address, _positive("workers", workers), _positive("threads", threads)

    def __enter__(self) -> "RayExecutor":
        try:
            import ray
        except ImportError:
            raise LongdepsError("Ray is not installed; install it with pip install 'longdeps[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started and self.address == "local":
            ray.init(num_cpus=self.workers or cpu_cores(), include_dashboard=False, log_to_driver=False)
        elif self.started:
            try:
                ray.init(address=self.address, log_to_driver=False)
            except ConnectionError as err:
                raise LongdepsError(f"cannot reach a Ray cluster at --ray-address {self.address!r}: {err}") from None
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // self.threads)
        self.task = ray.remote(num_cpus=self.threads)(run_one)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.started:
            self.ray.shutdown()

    def map(self, configs, results, data_dir, progress):
        pending = {self.task.remote(config, results, data_dir, self.threads, progress): config for config in configs}
        while pending:
            (ref,), _ = self.ray.wait(list(pending), num_returns=1)
            config = pending.pop(ref)
            try:
                yield self.ray.get(ref)
            except self.ray.exceptions.RayError as err:  # the task's worker or node died
                yield record_failure(results, config, err)


# -- a sweep -------------------------------------------------------------------

def run_suite(suite: Suite, results: str | Path, executor: Executor | None = None, progress: bool | None = None,
              data_dir: str | None = None) -> list[RunOutcome]:
    """Run every run of ``suite`` not finished yet with ``executor`` (default: ``LocalPool()``).

    Returns one outcome per run, in suite order. ``progress=None`` shows the
    sweep's bar (runs done, running, failed; ETA) when standard error is a
    terminal; when standard output is not one (a log), each run also prints a
    line per evaluation and the sweep a line per finished run.
    """
    store = ResultStore(results)
    root = str(store.root.resolve())
    save_suite(root, suite)
    configs = list({config.run_id(): config for config in suite.configs()}.values())
    store.add_to_suite(suite.name, [config.run_id() for config in configs])
    status = {row["run_id"]: row["status"] for row in store.runs(suite=suite.name)}
    outcomes = {c.run_id(): RunOutcome(c.run_id(), "finished") for c in configs if status.get(c.run_id()) == "finished"}
    pending = [c for c in configs if c.run_id() not in outcomes]
    executor = executor or LocalPool()
    logged = progress is not False and not sys.stdout.isatty()
    with sigterm_as_interrupt(), executor, tqdm(total=len(configs), initial=len(outcomes), desc=f"sweep {suite.name}", unit="run",
                        disable=None if progress is None else not progress, dynamic_ncols=True) as bar:
        failed = 0
        bar.set_postfix({"running": min(executor.slots, len(pending)), "failed": failed})
        for outcome in executor.map(pending, root, data_dir, logged):
            outcomes[outcome.run_id] = outcome
            failed += outcome.status == "failed"
            bar.set_postfix({"running": min(executor.slots, len(configs) - len(outcomes)), "failed": failed}, refresh=False)
            bar.update(1)
            if logged:
                print(f"sweep {suite.name}: run {outcome.run_id} {outcome.status}; {len(outcomes)}/{len(configs)} done, "
                      f"{failed} failed", flush=True)
    return [outcomes[c.run_id()] for c in configs]


def summary_table(suite: Suite, results: str | Path) -> str:
    """One markdown line per grid point: runs, finished, failed, mean ± std of the test metric."""
    rows = {row["run_id"]: row for row in ResultStore(results).runs(suite=suite.name)}
    metrics = sorted({row["metric"] for row in rows.values() if row["metric"]})
    lines = [f"| grid point | n | finished | failed | test {metrics[0] if len(metrics) == 1 else 'metric'} |",
             "|---|---|---|---|---|"]
    for label, configs in suite.points():
        runs = [rows[c.run_id()] for c in configs if c.run_id() in rows]
        done = [r for r in runs if r["status"] == "finished"]
        failed = sum(r["status"] == "failed" for r in runs)
        lines.append(f"| {label} | {len(configs)} | {len(done)} | {failed} | {mean_std([r['test_metric'] for r in done])} |")
    return "\n".join(lines)
