"""Optimisers from the config: thin wrappers over ``torch.optim``."""

from __future__ import annotations

from typing import Iterable

import torch

from longdeps.config import OptimizerConfig
from longdeps.errors import LongdepsError


def make_optimizer(config: OptimizerConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``adam`` (Adam), ``sgd`` (SGD, classical momentum) or ``rmsprop`` (RMSprop)."""
    if not config.lr > 0:
        raise LongdepsError(f"optimizer.lr must be positive, got {config.lr!r}")
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, alpha=config.alpha, momentum=config.momentum,
                                   weight_decay=config.weight_decay)
    raise LongdepsError(f"unknown optimizer {config.name!r}; choose from adam, sgd, rmsprop")
