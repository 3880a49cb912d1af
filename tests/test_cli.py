"""The command line as a user meets it: help, listings, errors, a suite and its report."""

import subprocess
import sys

import pytest

from longdeps.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "longdeps", *args], capture_output=True, text=True)


@pytest.mark.parametrize("command", [[], ["train"], ["bench"], ["report"], ["runs"], ["tasks"], ["cells"]])
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
    assert "srn" in capsys.readouterr().out


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
