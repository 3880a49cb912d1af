"""Tasks: each knows its data, its metric and its "solved" criterion.

``TASKS`` maps a registry name to its class; ``make_task`` builds one.
"""

from __future__ import annotations

from longdeps.errors import LongdepsError
from longdeps.tasks.base import Batch, Task

TASKS: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its ``name``."""
    TASKS[cls.name] = cls
    return cls


def make_task(name: str, seq_len: int | None = None, variant: str | None = None, **options) -> Task:
    """Build the task ``name``; ``options`` go to its constructor (val_size, data_seed, ...)."""
    if name not in TASKS:
        raise LongdepsError(f"unknown task {name!r}; choose from {', '.join(sorted(TASKS))}")
    return TASKS[name](seq_len=seq_len, variant=variant, **options)


from longdeps.tasks import images, synthetic, text, timeseries  # noqa: E402,F401  (each registers its tasks)

__all__ = ["Batch", "Task", "TASKS", "make_task", "register"]
