"""Run ids are the names of results on disk: the same settings must keep the same id. Pinned
from the code before the registries (issue 15): every suite shipped, and a few single runs."""

import hashlib
from pathlib import Path

import pytest

from longdeps.config import RunConfig
from longdeps.sweep import load_suite

ROOT = Path(__file__).resolve().parents[1]

#: suite file -> (runs, the first 16 hex digits of the SHA-256 of their ids joined by commas)
SUITES = {
    "benchmarks/adding-hs1997.yaml": (6, "14e3dd12812fdb95"),
    "benchmarks/asrnn.yaml": (18, "8f3898dbdd9e902b"),
    "benchmarks/diffusion-variants.yaml": (30, "3e54794567f4d984"),
    "benchmarks/diffusion.yaml": (40, "504a107c9b15b639"),
    "benchmarks/dsf-adding.yaml": (50, "4c8ff1e8ed70dc68"),
    "benchmarks/dsf.yaml": (30, "c29277fa25edf0cf"),
    "benchmarks/recurrent-batchnorm.yaml": (6, "5e80026c6c7684ae"),
    "benchmarks/sgr-band.yaml": (16, "bcd531f9bc308d87"),
    "benchmarks/sgr-pilot.yaml": (18, "8ffe565eed0df70e"),
    "benchmarks/sgr.yaml": (60, "a731c7474377a1d2"),
    "benchmarks/sweep-speedup.yaml": (16, "bb2d9a4c2b3c5593"),
    "src/longdeps/suites/default.yaml": (6, "b8238b4cfd517e48"),
}

RUNS = [
    ([], "c445deb5ad39"),
    (["cell.name=asrnn", "cell.saturation_low=0.8", "cell.saturation_high=3"], "9cf03d8a53d8"),
    (["gradient.name=dsf", "gradient.feedback=uniform"], "41e80c142dd4"),
    (["sampler.name=sgr", "sampler.rule=batch", "task.train_size=2000"], "8b6e909ee2f3"),
    (["continuation.name=diffusion", "continuation.unit=epochs"], "9707c48950c9"),
]


def test_every_suite_file_is_pinned():
    shipped = {str(p.relative_to(ROOT)) for folder in ("benchmarks", "src/longdeps/suites")
               for p in (ROOT / folder).glob("*.yaml")}
    assert shipped <= set(SUITES), f"pin the run ids of {sorted(shipped - set(SUITES))}"


@pytest.mark.parametrize("path", SUITES)
def test_suite_run_ids_are_unchanged(path):
    ids = [config.run_id() for config in load_suite(str(ROOT / path)).configs()]
    assert (len(ids), hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]) == SUITES[path]


@pytest.mark.parametrize("overrides,run_id", RUNS)
def test_run_ids_are_unchanged(overrides, run_id):
    assert RunConfig().with_overrides(overrides).run_id() == run_id
