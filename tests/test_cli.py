"""The command line as a user meets it: help, listings, errors, a suite and its report."""

import dataclasses
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from longdeps.cli import LISTINGS, main
from longdeps.config import RANGES, SECTIONS, RunConfig
from longdeps.experiment import Run
from longdeps.options import component_options
from longdeps.registry import registry_of
from longdeps.store import SCHEMA, ResultStore
from longdeps.tasks import TASKS

#: a run of a few seconds
TINY = ["--task", "adding", "--cell", "srn", "--hidden", "4", "--seq-len", "8", "--steps", "10", "--batch-size", "8",
        "task.val_size=16", "task.test_size=16", "train.eval_every=5", "train.profile_examples=4"]


TINY_SUITE = ("name: tiny\nbase:\n  task: {name: adding, seq_len: 8, val_size: 100, test_size: 100}\n"
              "  cell: {hidden_size: 8}\n  train: {steps: 20, eval_every: 10, batch_size: 8}\n"
              "grid:\n  cell.name: [srn, lstm]\n")


@pytest.fixture
def tiny_suite(tmp_path):
    """A suite file of two runs (two cells, one seed)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SUITE)
    return str(path)


def run(*args):
    return subprocess.run([sys.executable, "-m", "longdeps", *args], capture_output=True, text=True)


@pytest.mark.parametrize("command", [[], ["train"], ["bench"], ["report"], ["runs"], *([c] for c in LISTINGS)])
def test_help(command):
    proc = run(*command, "--help")
    assert proc.returncode == 0 and "usage: longdeps" in proc.stdout


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_do_not_import_torch(flag):
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "longdeps", flag], capture_output=True, text=True)
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert proc.returncode == 0 and "longdeps.cli" in imported
    assert not {"torch", "numpy", "matplotlib"} & imported
    assert proc.stdout.startswith("usage: longdeps" if flag == "--help" else "longdeps 0.1.0")


def test_listings(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("adding", "multiplication", "temporal-order", "temporal-order-3", "copy"):
        assert f"\n{name} " in "\n" + out
    assert main(["cells"]) == 0
    out = capsys.readouterr().out
    assert "srn" in out and "every cell stacks: cell.num_layers=1, cell.dropout=0.0, cell.residual=False" in out


@pytest.mark.parametrize("args, message", [
    (["train", "--task", "addding"], "longdeps: error: unknown task 'addding'; choose from adding, copy"),
    (["train", "--cell", "gruu"], "longdeps: error: unknown cell 'gruu'"),
    (["train", "cell.hidden_size=x"], "longdeps: error: cell.hidden_size must be int, got 'x'"),
    (["train", "--config", "nowhere.yaml"], "longdeps: error: config file 'nowhere.yaml' does not exist"),
    (["bench", "no-such-suite"], "longdeps: error: unknown suite 'no-such-suite'"),
])
def test_bad_input_is_one_line_and_non_zero(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["runs", "--results", "TMP/typo"], "no results in 'TMP/typo' (no results.sqlite there)"),
    (["report", "--results", "TMP/typo"], "no results in 'TMP/typo'"),
    (["report", "--results", "TMP/typo", "--sweep", "default"], "no results in 'TMP/typo'"),
    (["train", "--results", "TMP/file", "--steps", "1"], "results root 'TMP/file' is a file, not a folder"),
    (["data", "check", "--data-dir", "TMP/typo"], "15 of 15 data sets are missing or corrupted: mnist, fashion-mnist"),
])
def test_failures_are_one_line_and_non_zero_and_create_nothing(args, message, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert main([a.replace("TMP", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"longdeps: error: {message}".replace("TMP", str(tmp_path))) and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_data_check_names_a_corrupted_set_and_fails(tmp_path, capsys):
    from longdeps.data import DATASETS

    (file,) = DATASETS["ucr:GunPoint"].files[:1]
    (tmp_path / file.path).parent.mkdir(parents=True)
    (tmp_path / file.path).write_text("truncated")
    assert main(["data", "check", "--data-dir", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    (line,) = [line for line in out.splitlines() if line.startswith("ucr:GunPoint ")]
    assert "the file is corrupted or truncated" in line and "data sets are missing or corrupted" in err


def test_print_config(capsys):
    assert main(["train", "--task", "copy", "--seq-len", "30", "--lr", "0.01", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert '"name": "copy"' in out and '"seq_len": 30' in out and '"lr": 0.01' in out


@pytest.mark.parametrize("args", [
    ["--task", "adding", "train.eval_every=10", "--steps", "5", "train.log=csv"],
    ["train.log=csv", "--steps", "5", "train.eval_every=10", "--task", "adding"],
])
def test_train_overrides_go_before_between_and_after_the_flags(args, capsys):
    assert main(["train", *args, "--print-config"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["task"]["name"], config["train"]["steps"], config["train"]["eval_every"], config["train"]["log"]) \
        == ("adding", 5, 10, "csv")


@pytest.mark.parametrize("command, args", [
    ("sweep", ["SUITE", "train.eval_every=7", "--sequential", "train.log=csv", "--results", "R"]),
    ("sweep", ["train.eval_every=7", "--results", "R", "SUITE", "--sequential", "train.log=csv"]),
    ("reproduce", ["--results", "R", "SUITE", "train.eval_every=7", "--workers", "1", "train.log=csv"]),
    ("bench", ["train.eval_every=7", "--no-progress", "train.log=csv", "SUITE", "--out", "O", "--results", "R"]),
])
def test_sweep_commands_take_overrides_anywhere(command, args, tiny_suite):
    from longdeps.cli import build_parser, suite_and_overrides
    from longdeps.sweep import load_suite

    parsed = build_parser().parse_args([command, *(a.replace("SUITE", tiny_suite) for a in args)])
    name, overrides = suite_and_overrides(parsed)
    assert (name, overrides, parsed.results) == (tiny_suite, ["train.eval_every=7", "train.log=csv"], "R")
    configs = load_suite(name).with_overrides(overrides).configs()
    assert len(configs) == 2 and {c.cell.name for c in configs} == {"srn", "lstm"}
    assert all((c.train.eval_every, c.train.log, c.train.steps) == (7, "csv", 20) for c in configs)


def test_bench_overrides_alone_run_the_default_suite():
    from longdeps.cli import build_parser, suite_and_overrides

    assert suite_and_overrides(build_parser().parse_args(["bench", "train.device=cpu"])) == ("default", ["train.device=cpu"])


@pytest.mark.parametrize("args, message", [
    (["sweep", "SUITE", "cell.name=gru"], "suite 'tiny': its grid varies cell.name, which an override cannot set"),
    (["sweep", "SUITE", "SUITE"], "`longdeps sweep` runs one suite, got"),
    (["sweep", "train.steps=3"], "`longdeps sweep` needs a suite before its overrides"),
    (["sweep", "SUITE", "train.steps=x"], "train.steps must be int, got 'x'"),
])
def test_bad_sweep_overrides_are_one_line(args, message, tiny_suite, tmp_path, capsys):
    assert main([a.replace("SUITE", tiny_suite) for a in args] + ["--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"longdeps: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_print_config_shows_every_default_the_run_uses(tmp_path, capsys):
    """What --print-config prints is what the run builds: the task's own length and variant, each
    component's own defaults, every field (also those the records leave out at their defaults)."""
    args = ["--task", "adding", "--cell", "gru", "--gradient", "dsf", "task.val_size=20", "task.test_size=20"]
    assert main(["train", *args, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["task"] | {"name": "adding", "seq_len": 100, "variant": "arjovsky2016", "val_size": 20} == printed["task"]
    assert printed["gradient"]["feedback"] == "stationary" and printed["gradient"]["refresh_every"] == 50
    assert printed["cell"]["recurrent_init"] == "default" and printed["cell"]["forget_bias"] is None  # gru has none
    assert printed["train"]["log"] == "none" and printed["optimizer"]["schedule"] == "constant"
    config = RunConfig().with_overrides(["task.name=adding", "cell.name=gru", "gradient.name=dsf", *args[6:]])
    run = Run(config, ResultStore(tmp_path))
    assert (run.task.seq_len, run.task.variant, run.estimator.refresh_every) == (100, "arjovsky2016", 50)
    assert run.run_id == config.run_id() != RunConfig.from_dict(printed).run_id()  # the id is the config's as given


@pytest.mark.parametrize("args, message", [
    (["train.steps=-5", "sampler.pool_size=10"], "train.steps must be > 0, got -5"),
    (["--cell", "gru", "cell.forget_bias=2"], "cell.forget_bias=2.0 applies to lstm and bn-lstm only, not cell 'gru'"),
    (["optimizer.gamma=0.5"], "optimizer.gamma=0.5 applies to optimizer.schedule=step only, not constant"),
    (["task.variant=nope"], "unknown variant 'nope' for task 'adding'; choose from arjovsky2016, hs1997, ms2011, "
                            "pascanu2013, cn2016"),
])
def test_print_config_refuses_what_a_run_refuses(args, message, tmp_path, capsys):
    assert main(["train", "--task", "adding", *args, "--print-config"]) == 2
    assert capsys.readouterr() == ("", f"longdeps: error: {message}\n")
    assert main(["train", "--task", "adding", *args, "--results", str(tmp_path / "r"), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"longdeps: error: {message}\n"


@pytest.mark.parametrize("command, hint", [(c, f"longdeps {c} NAME shows its options") for c in LISTINGS])
def test_every_listing_ends_with_how_to_see_the_options(command, hint, capsys):
    assert main([command]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(hint)


def test_the_options_of_a_cell_come_from_its_constructor_and_its_config_section(capsys):
    assert main(["cells", "lstm"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cell lstm: LSTM") and lines[1].split() == ["option", "type", "default", "range", "help"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["cell.forget_bias"][:6] == ["cell.forget_bias", "float", "or", "null", "1.0", "finite"]
    assert rows["cell.hidden_size"][1:4] == ["int", "128", ">"] and rows["cell.compile"][1:4] == ["bool", "False", "-"]
    assert "cell.nonlinearity" not in rows and "cell.input_size" not in rows  # srn's option; what it is built with


@pytest.mark.parametrize("section", ["task", "cell", "gradient", "sampler", "continuation"])
def test_every_listed_option_and_default_is_one_the_config_accepts(section):
    """Each row of every component: a field a config takes for that component, at the listed default."""
    for name in registry_of(section):
        for row in component_options(section, name):
            if row.default is not None and row.field != f"{section}.name":
                overrides = [f"{section}.name={name}", f"{row.field}={row.default}"]
                assert RunConfig().with_overrides(overrides).options(section).get(row.field.split(".")[1],
                                                                                  row.default) == row.default
            field = dict((f.name, f) for f in dataclasses.fields(SECTIONS[section])).get(row.field.split(".")[1])
            if field is not None and "range" in field.metadata:
                assert row.range.startswith(RANGES[field.metadata["range"]][1])


def test_a_task_lists_its_success_criterion_per_variant(capsys):
    assert main(["tasks", "adding"]) == 0
    out = capsys.readouterr().out
    for variant in TASKS["adding"].variants:
        assert f"solved ({variant}): {TASKS['adding'].solved_rule_of(variant)}\n" in out
    assert "solved (cn2016): validation success rate > 99%, success being |y - t| <= 0.08" in out
    assert "\ntask.seq_len " in out and "\ntask.eval_batch_size " in out
    assert main(["tasks", "pmnist", ]) == 0  # a task on a data set is listed without its data
    assert "solved (rs92916): validation accuracy >= 0.95" in capsys.readouterr().out
    assert main(["optimizers", "sgd"]) == 0
    rows = {line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]}
    assert {"optimizer.momentum", "optimizer.schedule", "optimizer.warmup"} <= rows and "optimizer.alpha" not in rows
    assert main(["cells", "lstmm"]) == 2
    assert capsys.readouterr().err.startswith("longdeps: error: unknown cell 'lstmm'; choose from asrnn")


def test_output_into_a_closed_pipe_ends_quietly():
    """`longdeps ... | head -1`: the reader is gone before the output is written (main handles it
    for every command)."""
    proc = subprocess.Popen([sys.executable, "-m", "longdeps", "train", "--task", "adding", "--print-config"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == ""


def test_threads(tmp_path, capsys):
    assert main(["train", "--threads", "0", "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "longdeps: error: --threads must be at least 1, got 0\n"
    before = torch.get_num_threads()
    try:
        assert main(["train", "--threads", "1", *TINY, "--results", str(tmp_path), "--no-progress"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_finished_run_says_so_and_shows_its_stored_result(tmp_path, capsys):
    assert main(["train", *TINY, "--results", str(tmp_path), "--no-progress"]) == 0
    first = capsys.readouterr().out.strip()
    run_id = first.split()[1].rstrip(":")
    assert first.startswith(f"run {run_id}: finished; 10 updates, solved=False; best val success=")
    outcome, folder = first.split("; ", 1)[1].rsplit("; ", 1)
    assert main(["train", *TINY, "train.log=csv", "--results", str(tmp_path), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == (f"run {run_id}: already finished ({outcome}; stored result in {folder}); "
                                               "--force retrains")
    assert not (Path(folder) / "metrics.csv").exists()  # nothing was trained again


def test_runs_lists_and_filters_samplers_and_continuations_of_an_older_index(tmp_path, capsys):
    old = SCHEMA.replace(",\n    pid INTEGER, host TEXT           -- the process of a running run", "")
    with sqlite3.connect(tmp_path / "results.sqlite") as db:  # an index of the first schema
        db.executescript(old)
        for run_id, sampler, continuation in (("a", "uniform", "none"), ("b", "sgr", "none"), ("c", "sgr", "diffusion")):
            db.execute("INSERT INTO runs (run_id, status, task, cell, sampler, continuation, config) "
                       "VALUES (?, 'finished', 'adding', 'srn', ?, ?, '{}')", (run_id, sampler, continuation))
    for filters, wanted in (([], "abc"), (["--sampler", "sgr"], "bc"), (["--continuation", "diffusion"], "c"),
                            (["--sampler", "sgr", "--continuation", "none"], "b")):
        assert main(["runs", "--results", str(tmp_path), *filters]) == 0
        header, *rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
        assert header[7:10] == ["gradient", "sampler", "continuation"]
        assert [(row[0], row[8], row[9]) for row in rows] == [
            (r, {"a": "uniform"}.get(r, "sgr"), {"c": "diffusion"}.get(r, "none")) for r in wanted]


def test_bench_suite_file_writes_report_with_plots(tmp_path, capsys):
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        "name: tiny\ndescription: two cells, two seeds\n"
        "base:\n  task: {name: adding, seq_len: 8, val_size: 100, test_size: 100}\n"
        "  cell: {hidden_size: 8}\n  train: {steps: 20, eval_every: 10, batch_size: 8}\n"
        "grid:\n  cell.name: [srn, lstm]\nseeds: [0, 1]\n")
    results = tmp_path / "results"
    with open(tmp_path / "log", "w") as log:  # longdeps bench > log 2>&1
        subprocess.run([sys.executable, "-m", "longdeps", "bench", str(suite), "--results", str(results)],
                       stdout=log, stderr=subprocess.STDOUT, check=True)
    lines = (tmp_path / "log").read_text().splitlines()
    for cell in ("srn", "lstm"):  # a line per evaluation of each of the two runs of the cell
        assert sum(f" {cell} adding: update " in line for line in lines) == 4
    assert sum(line.startswith("sweep tiny: run ") and " finished; " in line for line in lines) == 4
    report = results / "reports" / "tiny" / "report.md"
    text = report.read_text()
    assert "| cell=srn | 2 |" in text and "| cell=lstm | 2 |" in text
    for png in ("learning_curves.png", "gradient_profile.png"):
        assert (report.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"({png})" in text
    capsys.readouterr()
    assert main(["runs", "--results", str(results), "--suite", "tiny", "--cell", "lstm"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all("\tlstm\t" in line for line in lines[1:])
    # a second bench re-uses the finished runs
    assert main(["bench", str(suite), "--results", str(results), "--no-progress"]) == 0
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "all")]) == 0
    assert "| cell=" in (tmp_path / "all" / "report.md").read_text()
    capsys.readouterr()
    assert main(["report", "--results", str(results), "--sweep", "nosuch"]) == 2
    assert capsys.readouterr().err.startswith("longdeps: error: no finished runs of suite 'nosuch' in ")
    assert not (results / "reports" / "nosuch").exists()
