"""Every command and snippet of the README runs as written, with smaller budgets where it trains.

The set-up line (`pip install ...`) and the test command (`python -m pytest`) are what CI itself
runs; every `longdeps ...` command and every Python block is run here, in the README's order, into
one fresh results root (so that `runs` and `report` find what `bench` and `train` wrote).
"""

import io
import os
import re
import shlex
from pathlib import Path

from longdeps.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()
#: the Python blocks, but the "Your own data" example, which tests/test_own_data_example.py runs
PYTHON_BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", TEXT, re.S) if "my-data.csv" not in b]

#: how a README command is cut down to test size: (pattern, replacement), applied in order
BUDGETS = [
    (r"^longdeps bench$", "longdeps bench train.steps=20 train.eval_every=10 --sequential --threads 1"),
    (r"--steps 4000", "--steps 30"),
]
#: the commands that read or write a results root, and those that read a data folder
TAKES_RESULTS = {"train", "bench", "runs", "report"}
TAKES_DATA_DIR = {"data"}


def readme_commands() -> list[str]:
    """The `longdeps ...` lines of the README's indented command blocks, without their comments."""
    outside_fences = re.sub(r"```.*?```", "", TEXT, flags=re.S)
    lines = [line[4:] for line in outside_fences.splitlines() if line.startswith("    longdeps ")]
    return [line.split("  #")[0].strip() for line in lines]


def test_the_readme_has_the_set_up_main_job_and_test_commands_first():
    head = TEXT[:TEXT.index("## ")]
    assert "pip install torch==2.13.0 && pip install -e '.[dev]'" in head
    assert "\n    longdeps bench\n" in head and "\n    python -m pytest\n" in head


def test_every_readme_command_runs(tmp_path, monkeypatch, capsys):
    shared = Path(os.environ["LONGDEPS_DATA"])  # tests/conftest.py: the shared copies
    monkeypatch.setattr("longdeps.data.files.open_url",  # `data fetch` reads the shared copies, not the network
                        lambda url: io.BytesIO((shared / "mnist" / url.rsplit("/", 1)[-1]).read_bytes()))
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert len(commands) >= 8 and commands[0] == "longdeps bench"
    for command in commands:
        for pattern, replacement in BUDGETS:
            command = re.sub(pattern, replacement, command)
        argv = shlex.split(command)[1:]
        if argv[0] in TAKES_RESULTS:
            argv += ["--results", str(tmp_path / "results")]
        if argv[0] in TAKES_DATA_DIR:
            argv += ["--data-dir", str(shared if argv[1] == "check" else tmp_path / "data")]
        assert main(argv) == 0, f"README command failed: {command}\n{capsys.readouterr().err}"
    out = capsys.readouterr().out
    assert "report: " in out and (tmp_path / "results" / "reports" / "default" / "report.md").is_file()
    assert (tmp_path / "data" / "mnist" / "train-labels-idx1-ubyte.gz").is_file()


def test_every_readme_snippet_runs_in_order(capsys):
    namespace = {}  # one namespace, as a reader pasting the blocks into one session: later blocks use earlier ones
    for block in PYTHON_BLOCKS:
        exec(compile(block.replace("range(500)", "range(3)"), "README.md", "exec"), namespace)  # the loop cut to 3 updates
    out = capsys.readouterr().out
    assert "training loss " in out and "'kind': 'stationary'" in out
    assert re.search(r"sgr: \[\d+(, \d+)*\] of 100 candidate batches in the band", out)
    assert re.search(r"val success=[0-9.]+ \(loss [0-9.]+\), test success=[0-9.]+; solved=(True|False): ", out)
