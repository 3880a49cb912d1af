"""Tasks: each knows its data, its metric and its "solved" criterion.

``TASKS`` is the registry (``longdeps.registry``); ``make_task`` builds one.
"""

from __future__ import annotations

import inspect

from longdeps.config import TaskConfig
from longdeps.registry import Registry, defaults_of
from longdeps.tasks.base import Batch, Task

#: every task takes the options of the base class
TASKS = Registry("task", "task", defaults_of(TaskConfig), shared=tuple(inspect.signature(Task).parameters),
                 context=("data_dir",))


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its ``name``, described by its ``description``."""
    return TASKS.add(cls.name, cls, cls.description)


def make_task(name: str, seq_len: int | None = None, variant: str | None = None, **options) -> Task:
    """Build the task ``name``; ``options`` go to its constructor (val_size, data_seed, ...)."""
    return TASKS.build(name, {"seq_len": seq_len, "variant": variant, **options})


from longdeps.tasks import forecasting, images, own, synthetic, text, timeseries  # noqa: E402,F401  (each registers its tasks)

__all__ = ["Batch", "Task", "TASKS", "make_task", "register"]
