"""Typed configs: files, overrides, run ids, and their one-line errors."""

import dataclasses
import typing

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cli import main
from longdeps.config import RANGES, SECTIONS, RunConfig, load_config, validate

#: values outside each declared range (RANGES), for float fields and, where they are integers, int fields
OUTSIDE = {"finite": [float("nan"), float("inf")], "positive": [0, -1, float("-inf")], "non-negative": [-1, float("nan")],
           "probability": [-0.5, 1.5], "fraction": [0, 1.5], "seed": [-1, 2**63]}


def declared_ranges():
    """(section.key, range, at_most, is_int) of every field that declares a range."""
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if "range" in f.metadata:
                yield f"{section}.{f.name}", f.metadata["range"], f.metadata["at_most"], int in typing.get_args(hints[f.name]) or hints[f.name] is int


OUT_OF_RANGE = [(key, value) for key, kind, _, is_int in declared_ranges() for value in OUTSIDE[kind]
                if not is_int or float(value).is_integer()]


def test_overrides_are_typed_and_run_id_follows_settings():
    config = RunConfig().with_overrides(["cell.hidden_size=64", "optimizer.lr=1e-3", "gradient.clip_norm=none",
                                         "train.stop_when_solved=false", "task.variant=cn2016"])
    assert config.cell.hidden_size == 64 and config.optimizer.lr == 1e-3
    assert config.gradient.clip_norm is None and config.train.stop_when_solved is False
    assert config.task.variant == "cn2016"
    assert config.run_id() == RunConfig.from_dict(config.to_dict()).run_id()
    assert config.run_id() != config.with_overrides(["train.seed=1"]).run_id()
    assert len(config.run_id()) == 12


def test_the_device_is_recorded_but_not_part_of_the_run_id():
    config = RunConfig()
    for device in ("cuda", "cuda:1", "mps"):
        moved = config.with_overrides([f"train.device={device}"])
        assert moved.run_id() == config.run_id() and moved.to_dict()["train"]["device"] == device
    assert config.to_dict()["train"]["device"] == "cpu"


def test_how_a_run_is_logged_is_not_part_of_its_id():
    config = RunConfig()
    for log in ("csv", "tensorboard"):
        logged = config.with_overrides([f"train.log={log}"])
        assert logged.run_id() == config.run_id() and logged.to_dict()["train"]["log"] == log
    assert "log" not in config.to_dict()["train"]  # the records of runs that leave it read as before
    assert config.to_dict(identity=True)["train"]["log"] == "none"  # as the ids pinned before it hashed it


@pytest.mark.parametrize("override, message", [
    ("cell.hidden=3", "^cell 'lstm' takes no option 'hidden'$"),
    ("optimizer.momentun=0.9", "unknown config key optimizer.momentun"),
    ("cell.hidden_size=abc", "cell.hidden_size must be int, got 'abc'"),
    ("cell.hidden_size=2.5", "cell.hidden_size must be int, got '2.5'"),
    ("train.stop_when_solved=maybe", "train.stop_when_solved must be bool"),
    ("model.x=1", "unknown config section 'model'"),
    ("hidden_size=1", "not of the form section.key=value"),
])
def test_bad_overrides_name_the_bad_value(override, message):
    with pytest.raises(LongdepsError, match=message):
        RunConfig().with_overrides([override])


def test_yaml_and_toml_files_give_the_same_config(tmp_path):
    (tmp_path / "run.yaml").write_text("task: {name: copy, seq_len: 50}\ncell: {name: srn, recurrent_init: orthogonal}\n"
                                       "optimizer: {lr: 0.0005}\n")
    (tmp_path / "run.toml").write_text('[task]\nname = "copy"\nseq_len = 50\n[cell]\nname = "srn"\n'
                                       'recurrent_init = "orthogonal"\n[optimizer]\nlr = 5e-4\n')
    a, b = load_config(tmp_path / "run.yaml"), load_config(tmp_path / "run.toml")
    assert a == b and a.task.name == "copy" and a.optimizer.lr == 5e-4


def test_bad_files(tmp_path):
    with pytest.raises(LongdepsError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("task: {seq_len: [1, 2]}\n")
    with pytest.raises(LongdepsError, match=r"task.seq_len must be int or null, got \[1, 2\]"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LongdepsError, match="must end in .yaml, .yml or .toml"):
        load_config(tmp_path / "bad.json")


def test_every_declared_range_has_values_outside_it():
    assert set(OUTSIDE) == set(RANGES)
    keys = {key for key, _, _, _ in declared_ranges()}
    assert keys == {key for key, _ in OUT_OF_RANGE} and {"gradient.clip_norm", "train.population_examples"} <= keys
    validate(RunConfig())


@pytest.mark.parametrize("key, value", OUT_OF_RANGE)
def test_a_value_out_of_its_declared_range_is_one_line_and_exit_2(key, value, tmp_path, capsys):
    assert main(["train", "--results", str(tmp_path), f"{key}={value}"]) == 2
    err = capsys.readouterr().err
    section, name = key.split(".")
    coerced = getattr(getattr(RunConfig().with_overrides([f"{key}={value}"]), section), name)
    assert err.startswith(f"longdeps: error: {key} must be ") and err.endswith(f", got {coerced!r}\n")
    assert err.count("\n") == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key, bound", [(key, at_most) for key, _, at_most, _ in declared_ranges() if at_most])
def test_a_lower_end_above_its_upper_end_is_refused(key, bound):
    section = key.split(".")[0]
    with pytest.raises(LongdepsError, match=f"{key}=0.5 exceeds {section}.{bound}=0.25"):
        validate(RunConfig().with_overrides([f"{key}=0.5", f"{section}.{bound}=0.25"]))


@pytest.mark.parametrize("device, message", [
    ("cuda", "train.device='cuda' is not available on this machine (torch.cuda.is_available() is False)"),
    ("gpu0", "train.device='gpu0' is not a torch device"),
])
def test_an_unavailable_device_is_one_line(device, message, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--results", str(tmp_path), f"train.device={device}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"longdeps: error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("device, why", [
    ("cuda:1", "it has 1 cuda device(s)"),
    ("cuda:7", "it has 1 cuda device(s)"),
    ("cpu:1", "torch has one CPU device, cpu"),
    ("cpu:7", "torch has one CPU device, cpu"),
])
def test_a_device_index_the_machine_lacks_is_refused_naming_its_devices(device, why, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with one GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for here in ("cpu", "cpu:0", "cuda", "cuda:0"):
        validate(RunConfig().with_overrides([f"train.device={here}"]))
    assert main(["train", "--results", str(tmp_path), f"train.device={device}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"longdeps: error: train.device={device!r} is not available on this machine ({why}); "
                          "its devices: cpu, cuda:0") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
