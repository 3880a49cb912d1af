"""The README's "Your own data" example runs as written (with fewer updates): its Python block, then its
command-line block."""

import re
import shlex
from pathlib import Path

import pandas as pd
import torch

from longdeps.cli import main

PAGE = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language):
    """The README's code blocks in ``language`` that belong to the example (they read or write my-data.csv)."""
    return [b for b in re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), re.S) if "my-data.csv" in b]


def test_the_python_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = blocks("python")[0]
    assert "train.steps=300" in code
    exec(compile(code.replace("train.steps=300", "train.steps=20"), str(PAGE), "exec"), {})
    out = capsys.readouterr().out
    assert "'accuracy':" in out and "p_yes" in out


def test_the_command_line_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks("python")[0].split("config = ")[0], str(PAGE), "exec"), {})  # writes my-data.csv
    lines = blocks("bash")[0].strip().splitlines()
    run_id = None
    for line in lines:
        args = shlex.split(line.replace("train.steps=300", "train.steps=20"))
        assert args[0] == "longdeps"
        assert main([arg.replace("RUN_ID", str(run_id)) for arg in args[1:]]) == 0
        if args[1] == "train":
            run_id = re.search(r"run (\w+): finished", capsys.readouterr().out).group(1)
    assert set(pd.read_csv("predictions.csv").columns) == {"id", "class", "p_no", "p_yes"}
    assert torch.jit.load("model.pt")(torch.zeros(20, 1, 1)).shape == (20, 1, 2)
