"""Typed configs: files, overrides, run ids, and their one-line errors."""

import pytest

from longdeps import LongdepsError
from longdeps.config import RunConfig, load_config


def test_overrides_are_typed_and_run_id_follows_settings():
    config = RunConfig().with_overrides(["cell.hidden_size=64", "optimizer.lr=1e-3", "gradient.clip_norm=none",
                                         "train.stop_when_solved=false", "task.variant=cn2016"])
    assert config.cell.hidden_size == 64 and config.optimizer.lr == 1e-3
    assert config.gradient.clip_norm is None and config.train.stop_when_solved is False
    assert config.task.variant == "cn2016"
    assert config.run_id() == RunConfig.from_dict(config.to_dict()).run_id()
    assert config.run_id() != config.with_overrides(["train.seed=1"]).run_id()
    assert len(config.run_id()) == 12


@pytest.mark.parametrize("override, message", [
    ("cell.hidden=3", "unknown config key cell.hidden"),
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
