"""The ``longdeps`` command line: train, sweep, reproduce, bench, report, runs, tasks, cells, data."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from longdeps import __version__
from longdeps.allocator import keep_freed_memory
from longdeps.errors import LongdepsError
from longdeps.signals import Interrupted
from longdeps.store import DEFAULT_ROOT

DATA_DIR_HELP = "where data sets live (default: $LONGDEPS_DATA, else ~/.cache/longdeps)"

#: CLI flag -> config field, for the most common settings
FLAGS = {
    "task": ("task.name", str), "variant": ("task.variant", str), "seq_len": ("task.seq_len", int),
    "cell": ("cell.name", str), "hidden": ("cell.hidden_size", int), "gradient": ("gradient.name", str),
    "truncation": ("gradient.truncation", int), "clip": ("gradient.clip_norm", float),
    "optimizer": ("optimizer.name", str), "lr": ("optimizer.lr", float), "steps": ("train.steps", int),
    "batch_size": ("train.batch_size", int), "seed": ("train.seed", int),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longdeps", description="Recurrent networks on long-term dependencies.")
    parser.add_argument("--version", action="version", version=f"longdeps {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train one run", description=(
        "Train one run. Settings come from the defaults, then --config, then the flags, then key=value "
        "overrides of any config field (e.g. cell.recurrent_init=orthogonal train.eval_every=50)."))
    train.add_argument("overrides", nargs="*", metavar="section.key=value", help="override any config field")
    train.add_argument("--config", help="a YAML or TOML run config")
    for flag, (key, kind) in FLAGS.items():
        train.add_argument(f"--{flag.replace('_', '-')}", type=kind, help=f"sets {key}")
    train.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    train.add_argument("--data-dir", help=DATA_DIR_HELP)
    train.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    train.add_argument("--force", action="store_true", help="discard an existing run with the same config and start over")
    train.add_argument("--no-progress", action="store_true",
                       help="hide the progress bar (on a terminal) or the line per evaluation (elsewhere)")
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")

    sweep = sub.add_parser("sweep", help="run a suite's grid of runs and print its summary", description=(
        "Run every run of a suite (a YAML file, or a built-in or benchmark suite's name) that is not finished "
        "yet: finished runs are skipped, interrupted ones resume from their last checkpoint, failed ones are "
        "tried again. Runs go to a local process pool unless --sequential or --ray-address says otherwise."))
    sweep.add_argument("suite", help="suite YAML file or name")
    add_sweep_arguments(sweep)

    reproduce = sub.add_parser("reproduce", help="run a reproduction suite from benchmarks/ and write its report",
                               description="Sweep benchmarks/NAME.yaml, then write its report with the paper's figures.")
    reproduce.add_argument("suite", metavar="NAME", help="a suite in benchmarks/ (file name without .yaml)")
    add_sweep_arguments(reproduce, report=True)

    bench = sub.add_parser("bench", help="run a suite of runs and write its report",
                           description="Sweep a suite (built-in name or YAML path), then write its report.")
    bench.add_argument("suite", nargs="?", default="default", help="suite name or YAML file (default: %(default)s)")
    add_sweep_arguments(bench, report=True)

    report = sub.add_parser("report", help="write a markdown report with PNG plots from the store")
    report.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    report.add_argument("--sweep", "--suite", dest="sweep", metavar="NAME",
                        help="only the runs of this suite, with the paper's figures it declares")
    report.add_argument("--out", help="report folder (default: RESULTS/reports/NAME or RESULTS/reports/all)")

    runs = sub.add_parser("runs", help="list runs in the store")
    runs.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    runs.add_argument("--suite")
    for column in ("task", "cell", "gradient", "status"):
        runs.add_argument(f"--{column}")

    population = sub.add_parser("population", help="recompute a run's batch-norm population statistics",
                                description="Recompute the batch-norm population statistics of a run's last "
                                            "checkpoint from one pass over training data, score it on the "
                                            "validation and test sets, and save the checkpoint.")
    population.add_argument("run_id", help="the run (see `longdeps runs`)")
    population.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    population.add_argument("--examples", type=int, help="training examples in the pass (default: all)")
    population.add_argument("--data-dir", help=DATA_DIR_HELP)
    population.add_argument("--device", help="torch device to compute on (default: the run's train.device)")

    predict = sub.add_parser("predict", help="predict with a trained run on new data", description=(
        "Read new sequences (a file in the format the run was trained on: .npz, .csv, .parquet, .ts) with the "
        "run's preprocessing and write its best-validation model's predictions: class names and probabilities, "
        "or values in the file's units (forecasting: the horizon after the series' last row)."))
    predict.add_argument("run", help="a run id (see `longdeps runs`) or a run folder")
    predict.add_argument("--input", required=True, help="the new data")
    predict.add_argument("--output", required=True, help="where the predictions go: .csv, .parquet or .npz")
    predict.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    predict.add_argument("--device", default="cpu", help="torch device to compute on (default: %(default)s)")

    export = sub.add_parser("export", help="export a trained run's model (TorchScript)", description=(
        "Trace a run's best-validation model, inputs (T, B, I) standardised as in training -> outputs, into a "
        "TorchScript file, checked to give the model's outputs; a cell that cannot be traced is refused."))
    export.add_argument("run", help="a run id (see `longdeps runs`) or a run folder")
    export.add_argument("--format", choices=["torchscript"], default="torchscript", help="(default: %(default)s)")
    export.add_argument("--output", help="the file to write (default: RUN_FOLDER/model.pt)")
    export.add_argument("--seq-len", type=int, help="input length to trace at (default: the run's)")
    export.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    export.add_argument("--data-dir", help=DATA_DIR_HELP)

    sub.add_parser("tasks", help="list the tasks: variants, sequence length, classes, metric")
    sub.add_parser("cells", help="list the recurrent cells")

    data = sub.add_parser("data", help="check or download the real data sets",
                          description="Data sets live in --data-dir, else $LONGDEPS_DATA, else ~/.cache/longdeps.")
    data.add_argument("action", choices=["check", "fetch"], help="check: verify every known set; fetch: download one")
    data.add_argument("name", nargs="?", help="data set to fetch (see `longdeps data check`)")
    data.add_argument("--data-dir", help=DATA_DIR_HELP)
    return parser


def add_sweep_arguments(parser: argparse.ArgumentParser, report: bool = False) -> None:
    """Where results go and which executor runs the suite."""
    parser.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    if report:
        parser.add_argument("--out", help="report folder (default: RESULTS/reports/SUITE)")
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--workers", type=int, help="runs at once on this machine (default: one per core); "
                        "with --ray-address local, the CPUs of the Ray instance it starts")
    parser.add_argument("--threads", type=int, help="torch threads per run (default: cores // workers; 1 on Ray; "
                        "as it is with --sequential)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sequential", action="store_true", help="run in this process, one run after another")
    where.add_argument("--ray-address", metavar="ADDRESS", help="run on a Ray cluster: its address, 'auto' (the "
                       "cluster this machine belongs to) or 'local' (start one here); the results root must be on "
                       "a filesystem every node mounts at the same path")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def cmd_train(args: argparse.Namespace) -> None:
    from longdeps.config import RunConfig, load_config
    from longdeps.experiment import run_experiment

    config = load_config(args.config) if args.config else RunConfig()
    flags = [f"{key}={getattr(args, flag)}" for flag, (key, _) in FLAGS.items() if getattr(args, flag) is not None]
    config = config.with_overrides(expand_file_task(flags) + args.overrides)
    if args.print_config:
        import json

        print(json.dumps(config.to_dict(), indent=2))
        return
    result = run_experiment(config, args.results, resume=args.resume, force=args.force,
                            progress=not args.no_progress, data_dir=args.data_dir)
    s = result.summary
    print(f"run {result.run_id}: {result.status}; {s['steps_done']} updates, solved={s['solved']}"
          f"{' at update ' + str(s['solved_step']) if s['solved'] else ''}; best val {s.get('metric', 'metric')}="
          f"{s['best_val_metric']:.4g}, test={s['test_metric']:.4g}, test loss={s['test_loss']:.4g}; {result.run_dir}")


def expand_file_task(overrides: list[str]) -> list[str]:
    """``task.name=file:PATH`` (from ``--task file:PATH``) as ``task.name=file task.path=PATH``."""
    expanded = []
    for item in overrides:
        if item.startswith("task.name=file:"):
            expanded += ["task.name=file", f"task.path={item.removeprefix('task.name=file:')}"]
        else:
            expanded.append(item)
    return expanded


def make_executor(args: argparse.Namespace):
    """The executor the flags ask for: --sequential, --ray-address, else the local pool."""
    from longdeps.sweep import LocalPool, RayExecutor, Sequential

    if args.sequential:
        if args.workers:
            raise LongdepsError("--workers does not apply with --sequential")
        return Sequential(args.threads)
    if args.ray_address:
        return RayExecutor(args.ray_address, args.workers, args.threads or 1)
    return LocalPool(args.workers, args.threads)


def cmd_sweep(args: argparse.Namespace) -> None:
    """``sweep``, ``reproduce`` and ``bench``: run a suite, print its summary; the last two write its report."""
    from longdeps.sweep import benchmark_suites, builtin_suites, known_suites, load_suite, run_suite, summary_table

    names = {"sweep": known_suites, "reproduce": benchmark_suites, "bench": builtin_suites}[args.command]()
    suite = load_suite(args.suite, names)
    try:
        outcomes = run_suite(suite, args.results, make_executor(args), progress=False if args.no_progress else None,
                             data_dir=args.data_dir)
    except KeyboardInterrupt as err:
        raise Interrupted(f"{str(err) or 'SIGINT received'}; sweep {suite.name} stopped, each run under way saved at its "
                          f"current update (longdeps runs --suite {suite.name} --status interrupted --results "
                          f"{args.results}); the same command continues it", getattr(err, "signum", signal.SIGINT)) from None
    print(summary_table(suite, args.results))
    labels = {c.run_id(): f"{label}, seed {c.train.seed}" for label, configs in suite.points() for c in configs}
    failed = [o for o in outcomes if o.status == "failed"]
    for outcome in failed:
        print(f"failed: run {outcome.run_id} ({labels[outcome.run_id]}): {outcome.error}")
    if args.command == "sweep":
        print(f"report: longdeps report --sweep {suite.name} --results {args.results}")
    elif len(failed) < len(outcomes):
        print(f"report: {suite_report(args.results, suite.name, args.out)}")
    print(f"{len(outcomes)} runs, {len(failed)} failed")
    if failed:
        raise LongdepsError(f"{len(failed)} of {len(outcomes)} runs of suite {suite.name!r} failed (listed above; "
                            f"longdeps runs --suite {suite.name} --status failed --results {args.results})")


def suite_report(results: str, name: str, out: str | None = None) -> Path:
    """Write suite ``name``'s report page, with the description and paper figures of its definition."""
    from longdeps.report import write_report
    from longdeps.store import ResultStore
    from longdeps.sweep import recorded_suite

    store = ResultStore(results, create=False)
    suite = recorded_suite(results, name)
    return write_report(store, out or Path(results) / "reports" / name, suite=name,
                        title=f"Suite `{name}`", description=suite.description if suite else "",
                        paper=suite.paper if suite else None)


def cmd_report(args: argparse.Namespace) -> None:
    from longdeps.report import write_report
    from longdeps.store import ResultStore

    if args.sweep:
        print(f"report: {suite_report(args.results, args.sweep, args.out)}")
        return
    print(f"report: {write_report(ResultStore(args.results, create=False), args.out or Path(args.results) / 'reports' / 'all')}")


def cmd_runs(args: argparse.Namespace) -> None:
    from longdeps.store import ResultStore

    rows = ResultStore(args.results, create=False).runs(suite=args.suite, task=args.task, cell=args.cell,
                                                        gradient=args.gradient, status=args.status)
    header = ("run_id", "status", "task", "variant", "seq_len", "cell", "hidden_size", "gradient", "seed",
              "steps_done", "solved_step", "best_val_metric", "test_metric", "error")
    print("\t".join(header))
    for row in rows:
        print("\t".join("" if row[c] is None else (f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])) for c in header))


def cmd_tasks(args: argparse.Namespace) -> None:
    from longdeps.tasks import TASKS

    for name, cls in sorted(TASKS.items()):
        classes = f"{cls.n_classes} classes" if cls.n_classes else "regression"
        print(f"{name:22s} {cls.description}\n{'':22s} variants: {', '.join(cls.variants)} (default {cls.variants[0]}); "
              f"seq_len default {cls.default_seq_len}; {classes}; metric: {cls.metric} "
              f"({'higher' if cls.higher_is_better else 'lower'} is better); readout: {cls.readout}")


def cmd_cells(args: argparse.Namespace) -> None:
    from longdeps.cells import CELLS

    for name in sorted(CELLS):
        print(f"{name:8s} {CELLS[name].description}")


def cmd_population(args: argparse.Namespace) -> None:
    import json

    from longdeps.config import RunConfig
    from longdeps.evaluation import evaluate
    from longdeps.experiment import Run
    from longdeps.store import ResultStore

    store = ResultStore(args.results, create=False)
    folder = store.run_dir(args.run_id)
    if not (folder / "checkpoint.pt").is_file():
        raise LongdepsError(f"run {args.run_id!r} has no checkpoint in {folder}")
    config = RunConfig.from_dict(json.loads((folder / "config.json").read_text()))
    if args.device:  # the device is not part of the run id: the run stays the same
        config = config.with_overrides([f"train.device={args.device}"])
    run = Run(config, store, data_dir=args.data_dir)
    run.load_state_dict(run.folder.load_checkpoint())
    batches = run.evaluator.recompute_population(args.examples, run.step)
    if not batches:
        raise LongdepsError(f"run {args.run_id!r} has no batch-normalised cell: there are no population statistics")
    scores = {split: evaluate(run.model, run.task, run.task.split(split), run.device) for split in ("val", "test")}
    run.save_checkpoint()
    print(f"run {args.run_id}: population statistics from {batches} training batches; "
          + "; ".join(f"{split} {run.task.metric}={s[run.task.metric]:.4g} loss={s['loss']:.4g}" for split, s in scores.items()))


def cmd_data(args: argparse.Namespace) -> None:
    from longdeps.data import check_all, data_root, fetch

    if args.action == "fetch":
        if not args.name:
            raise LongdepsError("`longdeps data fetch` needs a data set name, e.g. `longdeps data fetch mnist`")
        for path in fetch(args.name, args.data_dir):
            print(f"ok {path}")
        return
    print(f"data root: {data_root(args.data_dir)}")
    report = check_all(args.data_dir)
    for name, status in report:
        print(f"{name:22s} {status}")
    bad = [name for name, status in report if status != "ok"]
    if bad:
        raise LongdepsError(f"{len(bad)} of {len(report)} data sets are missing or corrupted: {', '.join(bad)} (see above)")


def cmd_predict(args: argparse.Namespace) -> None:
    from longdeps.inference import load_run, write_predictions

    trained = load_run(args.run, args.results, device=args.device)
    frame = trained.predict(args.input)
    print(f"run {trained.run_id}: {len(frame)} predictions -> {write_predictions(frame, args.output)}")


def cmd_export(args: argparse.Namespace) -> None:
    from longdeps.inference import export_torchscript, load_run

    trained = load_run(args.run, args.results, data_dir=args.data_dir)
    path = export_torchscript(trained, args.output or trained.folder / "model.pt", args.seq_len)
    print(f"run {trained.run_id}: {args.format} -> {path}")


COMMANDS = {"train": cmd_train, "sweep": cmd_sweep, "reproduce": cmd_sweep, "bench": cmd_sweep, "report": cmd_report,
            "runs": cmd_runs, "tasks": cmd_tasks, "cells": cmd_cells, "data": cmd_data, "population": cmd_population,
            "predict": cmd_predict, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        COMMANDS[args.command](args)
    except LongdepsError as err:
        print(f"longdeps: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a run's ``Interrupted`` says what it saved
        print(f"longdeps: {str(err) or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
