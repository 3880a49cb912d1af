"""Optimisers and learning-rate schedules from the config: thin wrappers over ``torch.optim``
and ``torch.optim.lr_scheduler``, with learning-rate groups (every option: docs/optimisers.md).

Any submodule of the model can declare two optional methods, and
``make_optimizer`` honours them for every cell alike:

- ``param_groups() -> dict[str, list[Parameter]]``: parameters that train at
  another learning rate, by group name (``longdeps.cells.base.PARAM_GROUPS``); ``"orthogonal"`` trains at
  ``lr * orthogonal_lr_scale`` (the asRNN/expRNN code's recurrent learning rate,
  lr/10 in most published settings). Parameters not named stay in ``"default"``.
- ``after_optimizer_step()``: called after every ``optimizer.step()`` (through
  a step post-hook), e.g. for the dynamic trivialisation of orthogonal weights.
"""

from __future__ import annotations

import torch
from torch import nn

from longdeps.cells.base import PARAM_GROUPS
from longdeps.config import OptimizerConfig
from longdeps.errors import LongdepsError
from longdeps.registry import check_variant

#: each optimiser: its ``torch.optim`` class and the options of ``OptimizerConfig`` it reads besides lr
OPTIMIZERS = {"adam": (torch.optim.Adam, ("weight_decay",)), "adamw": (torch.optim.AdamW, ("weight_decay",)),
              "sgd": (torch.optim.SGD, ("momentum", "weight_decay")),
              "rmsprop": (torch.optim.RMSprop, ("alpha", "momentum", "weight_decay"))}
#: each schedule after the warm-up and the options only it reads
SCHEDULES = {"constant": (), "step": ("step_size", "gamma"), "cosine": ()}


def optimizer_of(name: str) -> tuple[type[torch.optim.Optimizer], tuple[str, ...]]:
    """``OPTIMIZERS[name]``; an unknown name is refused in one line."""
    if name not in OPTIMIZERS:
        raise LongdepsError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def check_optimizer(config: OptimizerConfig, steps: int) -> None:
    """Refuse, in one line, an unknown optimiser or schedule, an option only another schedule reads
    set away from its default, and a warm-up that does not end before ``steps`` (train.steps)."""
    optimizer_of(config.name)
    check_variant("optimizer", "schedule", config.schedule, SCHEDULES,
                  {"step_size": config.step_size, "gamma": config.gamma}, OptimizerConfig)
    if config.warmup and config.warmup >= steps:
        raise LongdepsError(f"optimizer.warmup={config.warmup} must be less than train.steps={steps}")


def param_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Every parameter of ``model`` in exactly one group, by name (empty groups left out)."""
    groups: dict[str, list[nn.Parameter]] = {name: [] for name in PARAM_GROUPS}
    claimed: set[int] = set()
    for module in model.modules():
        for name, params in getattr(module, "param_groups", dict)().items():
            if name not in PARAM_GROUPS:
                raise LongdepsError(f"{type(module).__name__} declares unknown parameter group {name!r}; "
                                    f"choose from {', '.join(PARAM_GROUPS)}")
            for p in params:
                if id(p) in claimed:
                    raise LongdepsError(f"a parameter of {type(module).__name__} is declared in two groups")
                claimed.add(id(p))
                groups[name].append(p)
    groups["default"] = [p for p in model.parameters() if id(p) not in claimed] + groups["default"]
    return {name: params for name, params in groups.items() if params}


def make_optimizer(config: OptimizerConfig, model: nn.Module) -> torch.optim.Optimizer:
    """``adam`` (Adam), ``adamw`` (AdamW: decoupled weight decay), ``sgd`` (SGD, classical momentum)
    or ``rmsprop`` (RMSprop) over ``model``'s parameter groups (``param_groups``), each group named
    and at ``lr`` times its scale."""
    cls, reads = optimizer_of(config.name)
    scales = {"default": 1.0, "orthogonal": config.orthogonal_lr_scale}
    groups = [{"params": params, "lr": config.lr * scales[name], "name": name}
              for name, params in param_groups(model).items()]
    optimizer = cls(groups, lr=config.lr, **{key: getattr(config, key) for key in reads})
    hooks = [module.after_optimizer_step for module in model.modules() if hasattr(module, "after_optimizer_step")]
    if hooks:
        def after_step(optimizer, args, kwargs):
            for hook in hooks:
                hook()
        optimizer.register_step_post_hook(after_step)
    return optimizer


def make_schedule(config: OptimizerConfig, optimizer: torch.optim.Optimizer,
                  steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule of a run of ``steps`` updates, stepped once after every update;
    None for a constant rate without warm-up.

    ``warmup`` updates of linear warm-up (``LinearLR``: update k, 0-based, at lr (k+1)/(warmup+1)),
    then ``schedule``: ``constant``; ``step`` (``StepLR``: lr gamma^j after j times ``step_size``
    updates, counted from the end of the warm-up); ``cosine`` (``CosineAnnealingLR``: from lr down
    to 0 at update ``steps``). ``SequentialLR`` joins the two. Every group keeps its own scale.
    """
    check_optimizer(config, steps)
    lr_scheduler = torch.optim.lr_scheduler
    after = {"constant": lambda: None,
             "step": lambda: lr_scheduler.StepLR(optimizer, config.step_size, config.gamma),
             "cosine": lambda: lr_scheduler.CosineAnnealingLR(optimizer, steps - config.warmup)}[config.schedule]()
    if not config.warmup:
        return after
    warmup = lr_scheduler.LinearLR(optimizer, 1 / (config.warmup + 1), 1.0, config.warmup)
    return warmup if after is None else lr_scheduler.SequentialLR(optimizer, [warmup, after], [config.warmup])
