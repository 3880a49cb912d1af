"""One registry pattern for every kind of component: cells, gradient estimators, samplers,
continuations and tasks (``docs/architecture.md``, "Adding a component").

A component is a class registered under a name (``cls.name``) with a one-line description
(``cls.description``). As data on the class it declares

- ``options``: the fields of its config section it reads (besides those every component of its
  kind takes, the registry's ``shared``): its constructor's keyword parameters, or an ``options``
  tuple where the constructor takes the section's config object; a field set to anything but its default for a component
  that does not read it is refused with one line naming it;
- ``needs``: capability -> the peer (``"cell"`` or ``"task"``) that must provide it; a peer lists
  what it provides in ``provides``, and a combination it lacks is refused with one line naming both.

Each kind builds through one function, ``make_<kind>``, which calls ``Registry.checked`` and then the
class: cells and estimators from a name and keyword options (``make_cell(name, I, H, **options)``),
samplers and continuations from their config section's object (``make_sampler(config, task, model)``).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from longdeps.errors import LongdepsError

#: capability -> what it means, for the refusals
CAPABILITIES = {
    "diffused form": "a closed-form Gaussian-diffused version of every nonlinearity",
    "independent examples": "examples that do not depend on each other in training (no batch statistics)",
    "fixed training set": "a fixed, unordered training set (task.train_size)",
}


class Registry(dict):
    """The components of one kind: a dict from name to class.

    Args:
        kind: what a component is, for messages (``"cell"``).
        section: its config section, for messages (``"cell"``).
        defaults: the section's fields and their default values.
        shared: fields every component of this kind takes.
    """

    def __init__(self, kind: str, section: str, defaults: dict[str, Any], shared: tuple[str, ...] = ()):
        super().__init__()
        self.kind, self.section, self.defaults, self.shared = kind, section, defaults, shared

    def add(self, name: str, cls: type, description: str) -> type:
        """Register ``cls`` as ``name`` with a one-line ``description``; returns it."""
        cls.name, cls.description = name, description
        self[name] = cls
        return cls

    def __getitem__(self, name: str) -> type:
        if name not in self:
            raise LongdepsError(f"unknown {self.kind} {name!r}; choose from {', '.join(sorted(self))}")
        return super().__getitem__(name)

    def takers(self, option: str) -> list[str]:
        """The components that read ``option``."""
        return [name for name, cls in self.items() if option in options_of(cls)]

    def check_options(self, name: str, options: dict[str, Any]) -> None:
        """Refuse, in one line, the first option that component ``name`` does not read and that is
        set to anything but its default."""
        reads = set(self.shared) | set(options_of(self[name]))
        for key, value in options.items():
            if key not in reads and (key not in self.defaults or value != self.defaults[key]):
                takers = " and ".join(self.takers(key))
                if not takers:
                    raise LongdepsError(f"{self.kind} {name!r} takes no option {key!r}")
                raise LongdepsError(f"{self.section}.{key}={value!r} applies to {takers} only, not {self.kind} {name!r}")

    def check_needs(self, name: str, peers: dict[str, Any]) -> None:
        """Refuse, in one line, a capability that component ``name`` needs and its peer (an
        object with ``name`` and ``provides``) lacks."""
        for capability, role in getattr(self[name], "needs", {}).items():
            peer = peers.get(role)
            if peer is None:
                raise LongdepsError(f"{self.kind} {name!r} needs the {role} it works with; build it with one")
            if capability not in peer.provides:
                raise LongdepsError(f"{self.kind} {name!r} cannot be combined with {role} {peer.name!r}: it needs "
                                    f"{CAPABILITIES[capability]}")

    def checked(self, name: str, options: dict[str, Any], peers: dict[str, Any] | None = None) -> type:
        """The class of ``name`` once its ``options`` and its needs of ``peers`` are checked."""
        self.check_options(name, options)
        self.check_needs(name, peers or {})
        return self[name]


def options_of(cls: type) -> tuple[str, ...]:
    """The options a component reads: its ``options`` where it declares them (components built from
    their section's config object), else the keyword parameters of its constructor."""
    declared = getattr(cls, "options", None)
    return tuple(inspect.signature(cls).parameters) if declared is None else declared


def defaults_of(section: type) -> dict[str, Any]:
    """A config section dataclass's fields and their defaults."""
    return {f.name: f.default for f in dataclasses.fields(section)}
