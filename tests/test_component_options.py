"""A component's options are its constructor's keyword parameters: a run config sets one that its
section does not declare as a field (``cell.scale=0.5``) from a file, an override or a suite grid,
typed as the constructor types it, refused in one line for a component that does not take it,
and part of the run id only where it is set. The cell here is written and registered in this file
alone, as a new cell would be in its own."""

import json

import pytest
import torch

from longdeps import LongdepsError
from longdeps.cells import CELLS, SRN
from longdeps.cli import main
from longdeps.config import RunConfig, load_config
from longdeps.experiment import Run, run_experiment
from longdeps.report import differing_fields, setting_details
from longdeps.reporting import Setting
from longdeps.store import ResultStore
from longdeps.sweep import load_suite

TINY = ["task.name=adding", "task.seq_len=6", "task.train_size=16", "task.val_size=8", "task.test_size=8",
        "cell.hidden_size=4", "train.batch_size=4", "train.steps=2", "train.eval_every=2", "train.profile_examples=4"]


class ScaledSRN(SRN):
    """An SRN whose initial weights are multiplied by ``scale``: an option no config field declares."""

    name, description = "toy", "an SRN with scaled initial weights (tests/test_component_options.py)"

    def __init__(self, input_size: int, hidden_size: int, batch_first: bool = False, native: bool = True,
                 scale: float = 1.0):
        super().__init__(input_size, hidden_size, batch_first, native)
        self.scale = scale
        with torch.no_grad():
            self.rnn.weight_hh_l0.mul_(scale)
            self.rnn.weight_ih_l0.mul_(scale)


@pytest.fixture(autouse=True)
def toy(monkeypatch):
    monkeypatch.setitem(CELLS, "toy", ScaledSRN)


def test_files_and_overrides_in_any_order_set_the_option_typed(tmp_path):
    (tmp_path / "run.yaml").write_text("cell: {name: toy, scale: 0.5}\n")
    (tmp_path / "run.toml").write_text('[cell]\nname = "toy"\nscale = 0.5\n')
    given = RunConfig().with_overrides(["cell.scale=0.5", "cell.name=toy"])
    assert load_config(tmp_path / "run.yaml") == load_config(tmp_path / "run.toml") == given
    assert given.options("cell") == {"native": True, "scale": 0.5}
    assert given.to_dict()["cell"]["scale"] == 0.5 and "more" not in given.to_dict()["cell"]
    # an int in a file is the constructor's float, as a declared float field would be
    assert RunConfig.from_dict({"cell": {"name": "toy", "scale": 1}}).options("cell")["scale"] == 1.0
    with pytest.raises(LongdepsError, match="^cell.scale must be float, got 'half'$"):
        given.with_overrides(["cell.scale=half"])


def test_the_option_is_part_of_the_run_id_only_where_set_and_survives_config_json():
    toy = RunConfig().with_overrides(["cell.name=toy"])
    scaled = toy.with_overrides(["cell.scale=0.5"])
    assert "scale" not in toy.to_dict()["cell"] and scaled.run_id() != toy.run_id()
    assert scaled.run_id() != toy.with_overrides(["cell.scale=0.25"]).run_id()
    back = RunConfig.from_dict(json.loads(json.dumps(scaled.to_dict())))
    assert back == scaled and back.run_id() == scaled.run_id()


@pytest.mark.parametrize("overrides, message", [
    (["cell.name=srn", "cell.scale=0.5"], "^cell.scale=0.5 applies to toy only, not cell 'srn'$"),
    (["cell.name=toy", "cell.scal=0.5"], "^cell 'toy' takes no option 'scal'$"),
    (["cell.name=toy", "cell.input_size=3"], "^cell 'toy' takes no option 'input_size'$"),
    (["cell.name=toy", "cell.scale=0.5", "cell.name=lstm"], "^cell.scale=0.5 applies to toy only, not cell 'lstm'$"),
])
def test_an_option_the_chosen_component_does_not_take_is_refused_in_one_line(overrides, message):
    with pytest.raises(LongdepsError, match=message):
        RunConfig().with_overrides(overrides)


def test_an_option_set_for_one_cell_is_refused_once_another_is_chosen():
    scaled = RunConfig().with_overrides(["cell.name=toy", "cell.scale=0.5"])
    with pytest.raises(LongdepsError, match="^cell.scale=0.5 applies to toy only, not cell 'srn'$"):
        scaled.with_overrides(["cell.name=srn"])


def test_a_suite_grid_sweeps_the_option(tmp_path):
    (tmp_path / "toy.yaml").write_text("base: {cell: {name: toy, hidden_size: 4}}\ngrid:\n  cell.scale: [0.5, 1.0]\n")
    configs = load_suite(str(tmp_path / "toy.yaml")).configs()
    assert [config.options("cell")["scale"] for config in configs] == [0.5, 1.0]
    assert len({config.run_id() for config in configs}) == 2


def test_the_command_line_sets_the_option(capsys):
    assert main(["train", "--cell", "toy", "cell.scale=0.5", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["cell"] == {**RunConfig().to_dict(every=True)["cell"], "name": "toy", "scale": 0.5}


def test_a_run_with_the_option_trains_and_its_config_json_builds_it_again(tmp_path):
    config = RunConfig().with_overrides(TINY + ["cell.name=toy", "cell.scale=0.5"])
    result = run_experiment(config, tmp_path, progress=False)
    assert result.status == "finished" and result.summary["steps_done"] == 2 and result.run_id == config.run_id()
    saved = RunConfig.from_dict(json.loads((result.run_dir / "config.json").read_text()))
    assert saved == config
    run = Run(saved, ResultStore(tmp_path))  # as `longdeps resume` builds it
    assert run.run_id == config.run_id() and run.model.cell.scale == 0.5


def test_a_report_tells_settings_apart_by_an_option_only_some_of_them_set():
    plain = {"cell.name": "srn", "cell.hidden_size": 4}
    scaled = {"cell.name": "toy", "cell.hidden_size": 4, "cell.scale": 0.5}
    assert differing_fields([plain, scaled]) == ["cell.name", "cell.scale"]
    settings = [Setting("cell=srn", plain, [], []), Setting("cell=toy", scaled, [], [])]
    assert setting_details(settings)[2:] == ["- cell=toy: scale=0.5", ""]
