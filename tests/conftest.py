"""Test-wide settings."""

import os
from pathlib import Path

import pytest
import torch

# The tensors in the tests are small: a second intra-op thread only adds
# waiting, and when the cores are busy OpenMP threads spin against each other.
torch.set_num_threads(1)

# Real data sets: the project's shared copies, unless the environment names others.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "LONGDEPS_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["LONGDEPS_DATA"] = str(SHARED_DATA)


@pytest.fixture
def interrupt(monkeypatch):
    """``(config, root, step)``: run ``config`` into results ``root`` until Ctrl-C arrives just
    before update ``step`` (the run saves a checkpoint there)."""
    from longdeps.experiment import Run, run_experiment

    def run(config, root, step):
        train_step = Run.train_step

        def interrupted(self):
            if self.step == step:
                raise KeyboardInterrupt
            return train_step(self)

        monkeypatch.setattr(Run, "train_step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(config, root, progress=False)
        monkeypatch.setattr(Run, "train_step", train_step)

    return run


@pytest.fixture
def interrupt_and_resume(interrupt):
    """``(config, root, step) -> RunResult``: ``interrupt`` at update ``step``, then resume the run
    from what was saved to the end."""
    from longdeps.experiment import run_experiment

    def run(config, root, step):
        interrupt(config, root, step)
        return run_experiment(config, root, resume=True, progress=False)

    return run
