"""The ``longdeps`` command line: train, sweep, reproduce, bench, report, runs, the component listings
(tasks, cells, gradients, samplers, continuations, optimizers), data."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from longdeps import __version__
from longdeps.allocator import keep_freed_memory
from longdeps.errors import LongdepsError
from longdeps.signals import Interrupted
from longdeps.store import DEFAULT_ROOT

DATA_DIR_HELP = "where data sets live (default: $LONGDEPS_DATA, else ~/.cache/longdeps)"

#: listing command -> the config section whose components it lists (optimizer: its ``optimizer.name``), and what they are
LISTINGS = {"tasks": ("task", "tasks"), "cells": ("cell", "recurrent cells"), "gradients": ("gradient", "gradient estimators"),
            "samplers": ("sampler", "samplers"), "continuations": ("continuation", "continuations"),
            "optimizers": ("optimizer", "optimisers")}

#: CLI flag -> config field, for the most common settings
FLAGS = {
    "task": ("task.name", str), "variant": ("task.variant", str), "seq_len": ("task.seq_len", int),
    "cell": ("cell.name", str), "hidden": ("cell.hidden_size", int), "gradient": ("gradient.name", str),
    "truncation": ("gradient.truncation", int), "clip": ("gradient.clip_norm", float),
    "optimizer": ("optimizer.name", str), "lr": ("optimizer.lr", float), "steps": ("train.steps", int),
    "batch_size": ("train.batch_size", int), "seed": ("train.seed", int),
}


class IntermixedParser(argparse.ArgumentParser):
    """A command's parser that takes its positionals (a suite, ``section.key=value`` overrides) between
    its flags in any order, as ``parse_intermixed_args`` does, also when it parses as a subcommand."""

    _parsing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._parsing:  # the intermixed parse's own two passes
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longdeps", description="Recurrent networks on long-term dependencies.")
    parser.add_argument("--version", action="version", version=f"longdeps {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=IntermixedParser)

    train = sub.add_parser("train", help="train one run", description=(
        "Train one run. Settings come from the defaults, then --config, then the flags, then key=value "
        "overrides of any config field (e.g. cell.recurrent_init=orthogonal train.eval_every=50), "
        "before, between or after the flags."))
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
    train.add_argument("--print-config", action="store_true",
                       help="print the config as the run would use it (every default filled in) and exit")
    train.add_argument("--threads", type=int, help="torch threads of this run (default: torch's, one per core); "
                       "e.g. 1 for each of several runs sharing a machine")

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
    bench.add_argument("suite", nargs="?", help="suite name or YAML file (default: default)")
    add_sweep_arguments(bench, report=True)

    report = sub.add_parser("report", help="write a markdown report with PNG plots from the store")
    report.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    report.add_argument("--sweep", "--suite", dest="sweep", metavar="NAME",
                        help="only the runs of this suite, with the paper's figures it declares")
    report.add_argument("--out", help="report folder (default: RESULTS/reports/NAME or RESULTS/reports/all)")
    add_costs_argument(report)

    runs = sub.add_parser("runs", help="list runs in the store")
    runs.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    runs.add_argument("--reindex", action="store_true",
                      help="first rebuild the store's index (results.sqlite) from the run folders, "
                           "the old index moved aside to results.sqlite.before-reindex-TIME")
    runs.add_argument("--suite")
    for column in ("task", "cell", "gradient", "sampler", "continuation", "status"):
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

    for command, (section, what) in LISTINGS.items():
        listing = sub.add_parser(command, help=f"list the {what}, or the options of one", description=(
            f"Without NAME, list the {what}; with NAME, print each option it takes as {section}.option, type, "
            f"default, range and help{' (and its success criterion per variant)' if section == 'task' else ''}."))
        listing.add_argument("name", nargs="?", metavar="NAME", help=f"one of the {what}")

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

    data = sub.add_parser("data", help="check or download the real data sets",
                          description="Data sets live in --data-dir, else $LONGDEPS_DATA, else ~/.cache/longdeps.")
    data.add_argument("action", choices=["check", "fetch"], help="check: verify every known set; fetch: download one")
    data.add_argument("name", nargs="?", help="data set to fetch (see `longdeps data check`)")
    data.add_argument("--data-dir", help=DATA_DIR_HELP)
    return parser


def add_costs_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--costs", nargs="+", metavar="FILE",
                        help="JSON files of benchmarks/gradient_cost.py: the cost-quality frontier takes the time of an "
                             "update from them (default: from the runs' own wall time)")


def add_sweep_arguments(parser: argparse.ArgumentParser, report: bool = False) -> None:
    """The overrides of every run, where results go and which executor runs the suite."""
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="set a config field in every run of the suite (not one its grid varies), "
                             "e.g. train.device=cuda")
    parser.add_argument("--results", default=DEFAULT_ROOT, help="results root (default: %(default)s)")
    if report:
        parser.add_argument("--out", help="report folder (default: RESULTS/reports/SUITE)")
        add_costs_argument(parser)
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

    config = load_config(args.config) if args.config else RunConfig()
    flags = [f"{key}={getattr(args, flag)}" for flag, (key, _) in FLAGS.items() if getattr(args, flag) is not None]
    config = config.with_overrides(expand_file_task(flags) + args.overrides)
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise LongdepsError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.print_config:
        import json

        from longdeps.experiment import resolve

        print(json.dumps(resolve(config, args.data_dir)[0].to_dict(every=True), indent=2))
        return
    from longdeps.experiment import run_experiment

    result = run_experiment(config, args.results, resume=args.resume, force=args.force,
                            progress=not args.no_progress, data_dir=args.data_dir)
    s = result.summary
    outcome = (f"{s['steps_done']} updates, solved={s['solved']}{' at update ' + str(s['solved_step']) if s['solved'] else ''}; "
               f"best val {s.get('metric', 'metric')}={s['best_val_metric']:.4g}, test={s['test_metric']:.4g}, "
               f"test loss={s['test_loss']:.4g}")
    if result.already_finished:
        print(f"run {result.run_id}: already finished ({outcome}; stored result in {result.run_dir}); --force retrains")
    else:
        print(f"run {result.run_id}: {result.status}; {outcome}; {result.run_dir}")


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
    name, overrides = suite_and_overrides(args)
    suite = load_suite(name, names).with_overrides(overrides)
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
        print(f"report: {suite_report(args.results, suite.name, args.out, args.costs)}")
    print(f"{len(outcomes)} runs, {len(failed)} failed")
    if failed:
        raise LongdepsError(f"{len(failed)} of {len(outcomes)} runs of suite {suite.name!r} failed (listed above; "
                            f"longdeps runs --suite {suite.name} --status failed --results {args.results})")


def suite_and_overrides(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The suite a sweep command names and its ``section.key=value`` overrides, in any order: its first
    positional is the suite unless it is an override (then ``bench``'s default suite)."""
    words = ([args.suite] if args.suite is not None else []) + args.overrides
    names = [word for word in words if "=" not in word]
    if len(names) > 1:
        raise LongdepsError(f"`longdeps {args.command}` runs one suite, got {', '.join(map(repr, names))}; "
                            "every other argument must be a section.key=value override")
    if not names and args.command != "bench":
        raise LongdepsError(f"`longdeps {args.command}` needs a suite before its overrides, "
                            f"e.g. `longdeps {args.command} NAME {' '.join(words)}`")
    return (names[0] if names else "default"), [word for word in words if "=" in word]


def suite_report(results: str, name: str, out: str | None = None, costs: list[str] | None = None) -> Path:
    """Write suite ``name``'s report page, with the description and paper figures of its definition
    (``costs``: cost files for the frontier, ``report.write_report``)."""
    from longdeps.report import write_report
    from longdeps.store import ResultStore
    from longdeps.sweep import recorded_suite

    store = ResultStore(results, create=False)
    suite = recorded_suite(results, name)
    return write_report(store, out or Path(results) / "reports" / name, suite=name,
                        title=f"Suite `{name}`", description=suite.description if suite else "",
                        paper=suite.paper if suite else None, costs=costs)


def cmd_report(args: argparse.Namespace) -> None:
    from longdeps.report import write_report
    from longdeps.store import ResultStore

    if args.sweep:
        print(f"report: {suite_report(args.results, args.sweep, args.out, args.costs)}")
        return
    out = args.out or Path(args.results) / "reports" / "all"
    print(f"report: {write_report(ResultStore(args.results, create=False), out, costs=args.costs)}")


def cmd_runs(args: argparse.Namespace) -> None:
    from longdeps.store import ResultStore

    if args.reindex:
        reindex(args.results)
    rows = ResultStore(args.results, create=False).runs(suite=args.suite, task=args.task, cell=args.cell,
                                                        gradient=args.gradient, sampler=args.sampler,
                                                        continuation=args.continuation, status=args.status)
    header = ("run_id", "status", "task", "variant", "seq_len", "cell", "hidden_size", "gradient", "sampler",
              "continuation", "seed", "steps_done", "solved_step", "best_val_metric", "test_metric", "error")
    print("\t".join(header))
    for row in rows:
        print("\t".join("" if row[c] is None else (f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c])) for c in header))


def reindex(results: str) -> None:
    """``runs --reindex``: rebuild the index, saying on standard error what it holds and where the old one went."""
    from longdeps.sweep import reindex as rebuild

    if not (Path(results) / "runs").is_dir():
        raise LongdepsError(f"no run folders in {str(Path(results) / 'runs')!r} to rebuild the index from; "
                            "pass the --results folder that your runs wrote to")
    backup, restored, suites, skipped = rebuild(results)
    for line in skipped:
        print(f"left out: {line}", file=sys.stderr)
    finished = sum(status == "finished" for status in restored.values())
    print(f"rebuilt {Path(results) / 'results.sqlite'} from {len(restored)} run folders ({finished} finished, "
          f"{len(restored) - finished} unfinished, {len(skipped)} left out; suites: {', '.join(suites) or 'none'}); "
          + (f"the old index is kept as {backup}" if backup else "there was no index"), file=sys.stderr)


def cmd_listing(args: argparse.Namespace) -> None:
    """``tasks``, ``cells``, ``gradients``, ``samplers``, ``continuations``, ``optimizers``: the components
    of a kind, one a line, or with NAME the options of one (``longdeps.options``)."""
    from longdeps.options import component_options, format_rows, section_options

    section, what = LISTINGS[args.command]
    hint = f"longdeps {args.command} NAME shows its options"
    if section == "optimizer":
        from longdeps.optim import OPTIMIZERS, SCHEDULES, optimizer_of

        if not args.name:
            for name, (cls, _) in OPTIMIZERS.items():
                print(f"{name:8s} torch.optim.{cls.__name__}")
            print(f"{hint} and the learning-rate schedules")
            return
        cls, reads = optimizer_of(args.name)
        print(f"optimizer {args.name}: torch.optim.{cls.__name__}; learning-rate schedules: {', '.join(SCHEDULES)}")
        print(format_rows(section_options("optimizer", ("name", "lr", *reads, "orthogonal_lr_scale", "schedule",
                                                        "warmup", "step_size", "gamma"))))
        return
    from longdeps.registry import registry_of

    registry = registry_of(section)
    if not args.name:
        width = max(map(len, registry)) + 1
        for name in sorted(registry):
            cls = registry[name]
            print(f"{name:{width}s} {cls.description}")
            if section == "task":
                print(f"{'':{width}s} {task_facts(cls)}")
        if section == "cell":
            stacking = ", ".join(f"cell.{key}={p.default}" for key, p in registry.around_options().items())
            print(f"every cell stacks: {stacking} (docs/depth.md)")
        print(hint + (" and its success criterion per variant" if section == "task" else ""))
        return
    cls = registry[args.name]
    print(f"{section} {args.name}: {cls.description}")
    if section == "task":
        print(task_facts(cls))
        for variant in cls.variants:
            print(f"solved ({variant}): {cls.solved_rule_of(variant)}")
    print(format_rows(component_options(section, args.name)))


def task_facts(cls: type) -> str:
    """One line on task class ``cls``: variants, default length, classes, metric, readout."""
    classes = f"{cls.n_classes} classes" if cls.n_classes else "regression"
    return (f"variants: {', '.join(cls.variants)} (default {cls.variants[0]}); seq_len default {cls.default_seq_len}; "
            f"{classes}; metric: {cls.metric} ({'higher' if cls.higher_is_better else 'lower'} is better); "
            f"readout: {cls.readout}")


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
    if run.folder.notice:
        print(f"run {args.run_id}: {run.folder.notice}", file=sys.stderr)
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
            "runs": cmd_runs, **dict.fromkeys(LISTINGS, cmd_listing), "data": cmd_data, "population": cmd_population,
            "predict": cmd_predict, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        COMMANDS[args.command](args)
        sys.stdout.flush()  # here, so that a reader gone before the end is seen below
    except BrokenPipeError:  # the reader of the output went away (`longdeps ... | head -1`): end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except LongdepsError as err:
        print(f"longdeps: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # a run's ``Interrupted`` says what it saved
        print(f"longdeps: {str(err) or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
