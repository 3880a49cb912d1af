"""Orthogonal matrices as parametrisations of unconstrained square matrices (expRNN style).

``Orthogonal`` plugs into ``torch.nn.utils.parametrize``: the stored parameter
``X`` ``(n, n)`` is unconstrained, and the module's weight is

    Q = base @ phi(A),   A = triu(X, 1) - triu(X, 1)^T  (skew-symmetric),

with ``phi`` the matrix exponential ``expm(A)`` (``torch.linalg.matrix_exp``)
or the Cayley map ``(I + A)^-1 (I - A)``, both orthogonal for every skew
``A``, so ``Q`` is orthogonal after every optimiser step (Lezcano-Casado &
Martinez-Rubio 2019). ``base`` is a fixed orthogonal buffer, the identity at
the start.

Dynamic trivialisation is an option: ``retrivialise(module)`` moves every
such parametrisation to ``base <- Q``, ``X <- 0`` (``Q`` unchanged), so that
the next steps work near ``A = 0``, and with ``project=True`` re-projects the
new base onto the orthogonal matrices (the nearest one, by an SVD) against
the round-off that accumulates in ``base @ phi(A)``. The authors' copy-task
setting rebases every 100 optimiser steps and projects every 30th (expRNN)
or 100th (asRNN) rebase; a cell does it by ``rebase_every`` and
``project_every`` through its ``after_optimizer_step`` hook (see
``longdeps.optim``), a user by calling ``retrivialise`` whenever they like.

Why not ``torch.nn.utils.parametrizations.orthogonal``: it takes the skew
part from the lower triangle, scales its Cayley map differently, and sets
``base`` from the initial matrix at registration (``A = 0``), so it cannot
hold a Cayley- or Henaff-initialised skew parameter on ``base = I`` as the
expRNN and asRNN code do.

Skew initialisers (``henaff_init_``, ``cayley_init_``) fill ``X`` with a
skew matrix made of 2x2 blocks on the diagonal, whose upper entries
``(0, 1), (2, 3), ...`` carry the values; ``triu(X, 1) - triu(X, 1)^T``
returns it unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from longdeps.errors import LongdepsError

MAPS = ("expm", "cayley")


def skew(x: torch.Tensor) -> torch.Tensor:
    """The skew-symmetric matrix ``A_u - A_u^T`` of the strict upper triangle ``A_u`` of ``x`` ``(n, n)``."""
    upper = x.triu(1)
    return upper - upper.mT


def cayley_map(a: torch.Tensor) -> torch.Tensor:
    """``(I + A)^-1 (I - A)`` for a skew ``A`` ``(n, n)`` (by a solve, not an inverse)."""
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    return torch.linalg.solve(eye + a, eye - a)


class Orthogonal(nn.Module):
    """``X -> base @ phi(skew(X))``: an orthogonal ``(n, n)`` matrix from an unconstrained one.

    Args:
        n: size of the square matrix.
        orthogonal_map: ``"expm"`` (matrix exponential) or ``"cayley"``.
    """

    base: torch.Tensor

    def __init__(self, n: int, orthogonal_map: str = "expm"):
        super().__init__()
        if orthogonal_map not in MAPS:
            raise LongdepsError(f"unknown orthogonal map {orthogonal_map!r}; choose from {', '.join(MAPS)}")
        self.orthogonal_map = orthogonal_map
        self.register_buffer("base", torch.eye(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = skew(x)
        q = torch.linalg.matrix_exp(a) if self.orthogonal_map == "expm" else cayley_map(a)
        return self.base @ q

    @torch.no_grad()
    def rebase(self, x: torch.Tensor, project: bool = True) -> None:
        """``base <- Q`` (with ``project``: the orthogonal matrix nearest ``Q``, ``U V^T`` of its SVD), ``x <- 0``."""
        q = self(x)
        if project:
            u, _, vh = torch.linalg.svd(q)
            q = u @ vh
        self.base.copy_(q)
        x.zero_()

    def extra_repr(self) -> str:
        return f"{self.base.shape[0]}, orthogonal_map={self.orthogonal_map!r}"


def make_orthogonal_(module: nn.Module, name: str, orthogonal_map: str = "expm") -> nn.Module:
    """Register ``Orthogonal`` on the square parameter ``module.<name>``, whose current
    value becomes the unconstrained ``X`` (so fill it with a skew initialiser first)."""
    n = getattr(module, name).shape[0]
    parametrize.register_parametrization(module, name, Orthogonal(n, orthogonal_map).to(getattr(module, name)))
    return module


def retrivialise(module: nn.Module, project: bool = True) -> int:
    """Dynamic trivialisation: ``base <- Q``, ``X <- 0`` for every ``Orthogonal`` in ``module``,
    the new bases re-projected onto the orthogonal matrices if ``project``.

    The matrices are unchanged (to round-off); returns how many were rebased.
    """
    count = 0
    for sub in module.modules():
        if isinstance(sub, parametrize.ParametrizationList) and isinstance(sub[0], Orthogonal):
            if len(sub) != 1:
                raise LongdepsError("an Orthogonal parametrisation must be the only one on its tensor")
            sub[0].rebase(sub.original, project)
            count += 1
    return count


def _fill_blocks_(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``x`` <- the skew matrix with ``values[k]`` at ``(2k, 2k+1)`` and ``-values[k]`` at ``(2k+1, 2k)``."""
    k = torch.arange(values.numel(), device=x.device)
    x.zero_()
    x[2 * k, 2 * k + 1] = values
    x[2 * k + 1, 2 * k] = -values
    return x


@torch.no_grad()
def henaff_init_(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Henaff et al. (2016): 2x2 blocks with angle ``theta ~ U(-pi, pi)``; ``x`` ``(n, n)`` in place."""
    theta = torch.empty(x.shape[0] // 2, dtype=x.dtype, device=x.device).uniform_(-math.pi, math.pi, generator=generator)
    return _fill_blocks_(x, theta)


@torch.no_grad()
def cayley_init_(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Helfrich et al. (2018): 2x2 blocks with entry ``-tan(s / 2)``, ``s ~ U(0, pi/2)``; ``x`` ``(n, n)`` in place."""
    s = torch.empty(x.shape[0] // 2, dtype=x.dtype, device=x.device).uniform_(0, math.pi / 2, generator=generator)
    return _fill_blocks_(x, -torch.tan(s / 2))


#: skew initialisers by name
SKEW_INITS = {"cayley": cayley_init_, "henaff": henaff_init_}
