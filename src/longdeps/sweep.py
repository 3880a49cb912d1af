"""Suites: a base config, a grid of overrides and a list of seeds, run one by one.

A suite file (YAML)::

    name: default
    description: one line
    base:                       # a RunConfig as nested sections
      task: {name: adding, seq_len: 100}
    grid:                       # dotted keys -> values; the cartesian product is run
      cell.name: [srn, lstm]
    seeds: [0, 1, 2]

Built-in suites live in ``longdeps/suites/``; any path to a YAML file works too.
Runs already finished in the store are skipped, so a re-run continues a suite.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from longdeps.config import RunConfig, read_mapping
from longdeps.errors import LongdepsError
from longdeps.experiment import RunResult, run_experiment


@dataclass
class Suite:
    name: str
    description: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])

    def configs(self) -> list[RunConfig]:
        """Every run of the suite: grid points in file order, seeds innermost."""
        base = RunConfig.from_dict(self.base)
        keys = list(self.grid)
        runs = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            point = base.with_overrides([f"{k}={'null' if v is None else v}" for k, v in zip(keys, values)])
            runs.extend(point.with_overrides([f"train.seed={seed}"]) for seed in self.seeds)
        return runs


def builtin_suites() -> dict[str, Path]:
    """Names of the suites shipped with the package, and their files."""
    folder = resources.files("longdeps") / "suites"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def load_suite(name_or_path: str) -> Suite:
    """A built-in suite by name, or a suite file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        shipped = builtin_suites()
        if name_or_path not in shipped:
            raise LongdepsError(f"unknown suite {name_or_path!r}; built-in suites: {', '.join(sorted(shipped))} (or give a .yaml path)")
        path = shipped[name_or_path]
    elif not path.is_file():
        raise LongdepsError(f"suite file {name_or_path!r} does not exist")
    data = read_mapping(path)
    unknown = set(data) - {"name", "description", "base", "grid", "seeds"}
    if unknown:
        raise LongdepsError(f"{path}: unknown suite key(s) {', '.join(sorted(unknown))}")
    grid = data.get("grid") or {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise LongdepsError(f"{path}: grid entry {key!r} must be a non-empty list, got {values!r}")
    return Suite(name=data.get("name", path.stem), description=data.get("description", ""),
                 base=data.get("base") or {}, grid=grid, seeds=list(data.get("seeds") or [0]))


def run_suite(suite: Suite, results: str | Path, progress: bool | None = None,
              data_dir: str | None = None) -> list[RunResult]:
    """Run every config of ``suite`` in turn (finished ones are skipped)."""
    configs = suite.configs()
    done = []
    with tqdm(total=len(configs), desc=f"suite {suite.name}", unit="run", disable=None if progress is None else not progress) as bar:
        for config in configs:
            done.append(run_experiment(config, results, resume=True, progress=progress, suite=suite.name,
                                       data_dir=data_dir))
            bar.update(1)
    return done
