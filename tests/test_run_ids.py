"""Run ids are the names of results on disk: the same settings must keep the same id. Pinned
for every suite shipped and a few single runs; a new config field changes them all (it is part
of the hashed config), so a change here must be deliberate, and results roots from before it
are not resumed. After such a change, ``python tests/test_run_ids.py`` prints the pins of the
suite files as they are now, to paste into ``SUITES``."""

import hashlib
from pathlib import Path

import pytest

from longdeps.config import RunConfig
from longdeps.sweep import load_suite

ROOT = Path(__file__).resolve().parents[1]

#: suite file -> (runs, the first 16 hex digits of the SHA-256 of their ids joined by commas)
SUITES = {
    "benchmarks/adding-hs1997.yaml": (6, "4654058f43b4960e"),
    "benchmarks/asrnn.yaml": (24, "eac468a83862fa60"),
    "benchmarks/diffusion-pilot.yaml": (9, "2a3c6e8ccc0eb273"),
    "benchmarks/diffusion-sweep.yaml": (90, "f61d18bcb551d03e"),
    "benchmarks/diffusion-variants.yaml": (30, "5883ce64196b3ad0"),
    "benchmarks/diffusion.yaml": (120, "53bc2fdd02049b59"),
    "benchmarks/dsf-adding.yaml": (50, "501dfd2634a43471"),
    "benchmarks/dsf.yaml": (30, "9da69007c2c639c5"),
    "benchmarks/estimators.yaml": (182, "10819ef783105f84"),
    "benchmarks/depth.yaml": (51, "e873ea90bcc88bdf"),
    "benchmarks/ett.yaml": (36, "6484132bde4cb521"),
    "benchmarks/recurrent-batchnorm.yaml": (6, "7ec529782fea8186"),
    "benchmarks/sgr-band-t100.yaml": (14, "519833b34a1de1ad"),
    "benchmarks/sgr-band.yaml": (16, "61e29d8233034a92"),
    "benchmarks/sgr-pilot-lr.yaml": (12, "8ceac3f822273e21"),
    "benchmarks/sgr-pilot.yaml": (18, "1f3ab7648f71041a"),
    "benchmarks/sgr-t100.yaml": (30, "ab92485cedeb721d"),
    "benchmarks/sgr.yaml": (30, "61da4bfcf2906cff"),
    "benchmarks/sweep-speedup.yaml": (16, "b0bd303deeb90f20"),
    "src/longdeps/suites/default.yaml": (6, "de4d4b07055db3ca"),
}

RUNS = [
    ([], "52e4fe32f8f8"),
    (["cell.name=asrnn", "cell.saturation_low=0.8", "cell.saturation_high=3"], "6871f24cf066"),
    (["gradient.name=dsf", "gradient.feedback=uniform"], "6204b5f2c967"),
    (["sampler.name=sgr", "sampler.rule=batch", "task.train_size=2000"], "411f61e5af38"),
    (["continuation.name=diffusion", "continuation.unit=epochs"], "f3b917f7e583"),
]


def shipped_suites() -> list[str]:
    """Every suite file in the repository, relative to its root."""
    return sorted(str(p.relative_to(ROOT)) for folder in ("benchmarks", "src/longdeps/suites")
                  for p in (ROOT / folder).glob("*.yaml"))


def pin(path: str) -> tuple[int, str]:
    """The runs of suite ``path`` and the first 16 hex digits of the SHA-256 of their ids joined by commas."""
    ids = [config.run_id() for config in load_suite(str(ROOT / path)).configs()]
    return len(ids), hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]


def test_every_suite_file_is_pinned():
    missing = sorted(set(shipped_suites()) - set(SUITES))
    assert not missing, f"pin the run ids of {missing}"


@pytest.mark.parametrize("path", SUITES)
def test_suite_run_ids_are_unchanged(path):
    assert pin(path) == SUITES[path]


@pytest.mark.parametrize("overrides,run_id", RUNS)
def test_run_ids_are_unchanged(overrides, run_id):
    assert RunConfig().with_overrides(overrides).run_id() == run_id


if __name__ == "__main__":
    for path in shipped_suites():
        print(f"    {path!r}: {pin(path)!r},".replace("'", '"'))
