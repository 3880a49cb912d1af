"""Optimisers from the config: thin wrappers over ``torch.optim``, with learning-rate groups.

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
    """``adam`` (Adam), ``sgd`` (SGD, classical momentum) or ``rmsprop`` (RMSprop) over ``model``'s
    parameter groups (``param_groups``), each group named and at ``lr`` times its scale."""
    scales = {"default": 1.0, "orthogonal": config.orthogonal_lr_scale}
    groups = [{"params": params, "lr": config.lr * scales[name], "name": name}
              for name, params in param_groups(model).items()]
    if config.name == "adam":
        optimizer = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    elif config.name == "sgd":
        optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    elif config.name == "rmsprop":
        optimizer = torch.optim.RMSprop(groups, lr=config.lr, alpha=config.alpha, momentum=config.momentum,
                                        weight_decay=config.weight_decay)
    else:
        raise LongdepsError(f"unknown optimizer {config.name!r}; choose from adam, sgd, rmsprop")
    hooks = [module.after_optimizer_step for module in model.modules() if hasattr(module, "after_optimizer_step")]
    if hooks:
        def after_step(optimizer, args, kwargs):
            for hook in hooks:
                hook()
        optimizer.register_step_post_hook(after_step)
    return optimizer
