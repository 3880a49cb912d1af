"""One registry pattern for every kind of component: cells, gradient estimators, samplers,
continuations and tasks (``docs/architecture.md``, "Adding a component").

A component is a class registered under a name (``cls.name``) with a one-line description
(``cls.description``). It declares

- its ``options``: the keyword parameters of its constructor, typed, with their defaults (where it
  takes ``**options``, the registry's ``shared`` ones, which every component of its kind takes, go
  there); a field of its config section set to anything but its default for a component that does
  not read it is refused with one line naming it;
- as data on the class, its ``needs``: capability -> the peer (``"cell"`` or ``"task"``) that must
  provide it; a peer lists what it provides in ``provides``, and a combination it lacks is refused
  with one line naming both.

Each kind builds the same way, through ``Registry.build``:
``make_<kind>(name, <what it is built with, as keywords>, **options)``, e.g.
``make_sampler("sgr", task=task, model=model, rule="batch")`` or
``make_continuation("diffusion", model=model, sigma0=1.0)``. A run config sets any option of the
component its section names (``cell.scale=0.5``), whether the section declares it as a field or
not: ``option_type`` gives the type an undeclared one is read as.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from importlib import import_module
from typing import Any

from longdeps.errors import LongdepsError

#: capability -> what it means, for the refusals
CAPABILITIES = {
    "diffused form": "a closed-form Gaussian-diffused version of every nonlinearity",
    "independent examples": "examples that do not depend on each other in training (no batch statistics)",
    "fixed training set": "a fixed, unordered training set (task.train_size)",
    "carried readout input": "a readout input that the next step reads, so that ||dL/dh_t|| measures the "
                             "gradient flowing back through time",
}

#: config section -> the module that defines the registry its ``name`` chooses from, and that registry
REGISTRIES = {"task": ("longdeps.tasks", "TASKS"), "cell": ("longdeps.cells", "CELLS"),
              "gradient": ("longdeps.gradients", "ESTIMATORS"), "sampler": ("longdeps.sampling", "SAMPLERS"),
              "continuation": ("longdeps.continuation", "CONTINUATIONS")}


class Registry(dict):
    """The components of one kind: a dict from name to class.

    Args:
        kind: what a component is, for messages (``"cell"``).
        section: its config section, for messages (``"cell"``).
        defaults: the section's fields and their default values.
        shared: fields every component of this kind takes.
        context: the constructor parameters that are what a component is built with (``build``'s
            context, e.g. a cell's sizes), which no config sets.
        around: a function that builds around any component of this kind (the cells' ``stacked``):
            its keyword-only parameters are options of every component, which ``make_<kind>`` takes
            out before ``build``.
    """

    def __init__(self, kind: str, section: str, defaults: dict[str, Any], shared: tuple[str, ...] = (),
                 context: tuple[str, ...] = (), around: Any = None):
        super().__init__()
        self.kind, self.section, self.defaults, self.shared, self.context = kind, section, defaults, shared, context
        self.around = around

    def around_options(self) -> dict[str, inspect.Parameter]:
        """The options ``around`` takes (its keyword-only parameters, annotations evaluated)."""
        if self.around is None:
            return {}
        hints = typing.get_type_hints(self.around)
        return {p.name: p.replace(annotation=hints.get(p.name, p.annotation))
                for p in inspect.signature(self.around).parameters.values() if p.kind is p.KEYWORD_ONLY}

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
        reads = set(self.shared) | set(options_of(self[name])) | set(self.around_options())
        for key, value in options.items():
            if key not in reads and (key not in self.defaults or value != self.defaults[key]):
                takers = " and ".join(self.takers(key))
                if not takers:
                    raise LongdepsError(f"{self.kind} {name!r} takes no option {key!r}")
                raise LongdepsError(f"{self.section}.{key}={value!r} applies to {takers} only, not {self.kind} {name!r}")

    def option_type(self, name: str, key: str) -> Any:
        """The type of option ``key``, one the config section does not declare, as component ``name``
        (else the first that takes it) declares it: its annotation, else its default's type (None:
        neither). Refused in one line where no component takes it as an option."""
        parameter = self.around_options().get(key)
        if parameter is not None:
            return parameter.annotation
        if key not in self.context:
            for taker in (name, *self):
                parameter = parameter_of(self[taker], key)
                if parameter is not None:
                    if parameter.annotation is not parameter.empty:
                        return parameter.annotation
                    return None if parameter.default is parameter.empty else type(parameter.default)
        raise LongdepsError(f"{self.kind} {name!r} takes no option {key!r}")

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

    def build(self, name: str, options: dict[str, Any], peers: dict[str, Any] | None = None, **context: Any) -> Any:
        """Component ``name`` built with ``context`` (what the components of this kind are built with;
        what its constructor does not name it is not given) and its ``options``, once they and its
        needs of ``peers`` are checked. An option it does not read, left at its default, is not given."""
        self.check_options(name, options)
        self.check_needs(name, peers or {})
        cls = self[name]
        named = options_of(cls)
        forwards = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls).parameters.values())
        reads = set(named) | (set(self.shared) if forwards else set())
        return cls(**{key: value for key, value in context.items() if key in named},
                   **{key: value for key, value in options.items() if key in reads})


def options_of(cls: type) -> tuple[str, ...]:
    """The parameters a component's constructor names (its options, and what it is built with)."""
    parameters = inspect.signature(cls).parameters.values()
    return tuple(p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def parameter_of(cls: type, key: str) -> inspect.Parameter | None:
    """Parameter ``key`` of the constructor of ``cls`` or, through its ``**options``, of a base class's,
    with its annotation evaluated; None where there is none."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            parameters = inspect.signature(klass).parameters
            if key in options_of(klass):
                hints = typing.get_type_hints(klass.__init__)
                return parameters[key].replace(annotation=hints.get(key, parameters[key].annotation))
            if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
                return None
    return None


def registry_of(section: str) -> Registry:
    """The registry of config section ``section`` (``REGISTRIES``), its package imported on first use:
    the registries sit above the config, which reads them only for options it does not declare."""
    module, name = REGISTRIES[section]
    return getattr(import_module(module), name)


def check_variant(section: str, switch: str, chosen: str, variants: dict[str, tuple[str, ...]], given: dict[str, Any],
                  cls: type) -> None:
    """Within one component: refuse, in one line, an unknown value ``chosen`` of its option ``switch``
    (``variants``: each value -> the options only it reads), and an option of ``given`` that only
    other values read set to anything but its default in ``cls``'s constructor."""
    if chosen not in variants:
        raise LongdepsError(f"unknown {section}.{switch} {chosen!r}; choose from {', '.join(variants)}")
    defaults = inspect.signature(cls).parameters
    for key, value in given.items():
        if key not in variants[chosen] and value != defaults[key].default:
            takers = ", ".join(variant for variant, keys in variants.items() if key in keys)
            raise LongdepsError(f"{section}.{key}={value!r} applies to {section}.{switch}={takers} only, not {chosen}")


def defaults_of(section: type) -> dict[str, Any]:
    """A config section dataclass's fields and their defaults."""
    return {f.name: f.default for f in dataclasses.fields(section)}
