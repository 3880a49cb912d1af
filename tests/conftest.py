"""Test-wide settings, and the device the device-sensitive tests run on.

``LONGDEPS_TEST_DEVICE`` (default ``cpu``) names a torch device, e.g. ``cuda``: every test that
takes the ``device`` fixture (cells against torch.nn and float64 references, gradient estimators
against theirs, the scan, the training grid, resuming) then runs there, and ``pytest -m device``
selects them alone. The tests run with TF32 off, which matters on a GPU only: they check the maths
to float32's rounding or finer.
"""

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

TEST_DEVICE = os.environ.get("LONGDEPS_TEST_DEVICE", "cpu")


def pytest_configure(config):
    config.addinivalue_line("markers", "device: runs on the device LONGDEPS_TEST_DEVICE names (the CPU by default)")
    from longdeps.config import check_device
    from longdeps.errors import LongdepsError

    try:
        check_device(TEST_DEVICE)
    except LongdepsError as err:
        raise pytest.UsageError(f"LONGDEPS_TEST_DEVICE: {err}") from None
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


def pytest_collection_modifyitems(items):
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture
def device() -> torch.device:
    """The device of the device-sensitive tests: ``LONGDEPS_TEST_DEVICE``, the CPU by default."""
    return torch.device(TEST_DEVICE)


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
