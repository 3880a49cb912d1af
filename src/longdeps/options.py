"""What each component takes, for ``longdeps cells NAME`` and its kin: one row per option.

Every row comes from what validation itself reads: the component's constructor (which options it
takes, their types and its defaults, through ``longdeps.registry``) and its config section's
dataclass (a declared field's type, default and ``ranged`` range, and its ``#:`` comment as help).
An option that the section does not declare takes its help from the ``Args:`` of the component's
docstring. A section's fields that the run reads whichever component it names (``NOT_OPTIONS``,
``EXECUTION_FIELDS``) are listed with every component.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Union

from longdeps.config import EXECUTION_FIELDS, NOT_OPTIONS, RANGES, SECTIONS
from longdeps.registry import parameter_of, registry_of


@dataclass(frozen=True)
class Option:
    """One row: ``field`` (``section.option``), its type, its default as the run uses it (None: unset),
    its range (empty: any value of its type) and one line of help."""

    field: str
    type: str
    default: Any
    range: str
    help: str

    def row(self) -> tuple[str, str, str, str, str]:
        return self.field, self.type, "null" if self.default is None else str(self.default), self.range or "-", self.help


#: the range and what it does of each option every component of a kind takes through its registry's ``around``
AROUND_HELP = {
    "cell.num_layers": ("> 0", "recurrent layers, each reading the outputs of the one below (docs/depth.md)"),
    "cell.dropout": ("in [0, 1)", "num_layers >= 2: dropout on what each layer passes up, in training (not on "
                                  "recurrent connections)"),
    "cell.residual": ("-", "num_layers >= 2: add each layer's input to its output where both have hidden_size units"),
}


def component_options(section: str, name: str) -> list[Option]:
    """The options of component ``name`` of config section ``section`` (its name refused in one line
    where unknown), in constructor order, then the section's fields the run reads for every component."""
    registry = registry_of(section)
    cls = registry[name]
    config = SECTIONS[section]
    declared = {f.name: f for f in dataclasses.fields(config)}
    reads = [key for key in (*_constructor_options(cls), *registry.shared) if key not in registry.context]
    every = (*NOT_OPTIONS.get(section, ()), *EXECUTION_FIELDS.get(section, ()))
    rows = []
    for key in dict.fromkeys([*reads, *every]):
        parameter = parameter_of(cls, key)
        if key in declared:
            kind, default = typing.get_type_hints(config)[key], declared[key].default
            help_text, bounds = field_help(config).get(key, ""), range_of(declared[key], section)
        else:
            kind, default, help_text, bounds = registry.option_type(name, key), None, "", ""
        if default is None and parameter is not None and parameter.default is not parameter.empty:
            default = parameter.default
        rows.append(Option(f"{section}.{key}", type_name(kind), default, bounds,
                           help_text or docstring_args(cls).get(key, "")))
    for key, parameter in registry.around_options().items():  # what every component of the kind takes (stacking)
        bounds, help_text = AROUND_HELP.get(f"{section}.{key}", ("", ""))
        rows.append(Option(f"{section}.{key}", type_name(parameter.annotation), parameter.default, bounds, help_text))
    return rows


def section_options(section: str, names: tuple[str, ...] | None = None) -> list[Option]:
    """The rows of the fields ``names`` (all, by default) of a section that chooses no component."""
    config = SECTIONS[section]
    fields = [f for f in dataclasses.fields(config) if names is None or f.name in names]
    hints = typing.get_type_hints(config)
    return [Option(f"{section}.{f.name}", type_name(hints[f.name]), f.default, range_of(f, section),
                   field_help(config).get(f.name, "")) for f in fields]


def format_rows(rows: list[Option]) -> str:
    """The rows as aligned columns: ``section.option  type  default  range  help``."""
    table = [("option", "type", "default", "range", "help"), *(row.row() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[4]
                     for line in table).rstrip()


def _constructor_options(cls: type) -> list[str]:
    """The keyword parameters of ``cls``'s constructor, in order."""
    return [p.name for p in inspect.signature(cls).parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def range_of(f: dataclasses.Field, section: str) -> str:
    """The range a ``ranged`` field declares, as validation states it (empty: none)."""
    if "range" not in f.metadata:
        return ""
    wanted = RANGES[f.metadata["range"]][1]
    return wanted + (f", <= {section}.{f.metadata['at_most']}" if f.metadata["at_most"] else "")


def type_name(kind: Any) -> str:
    """``int``, ``float or null``, ...; ``?`` where the type is not known."""
    if kind is None:
        return "?"
    if typing.get_origin(kind) in (Union, types.UnionType):
        args = typing.get_args(kind)
        return " or ".join("null" if a is type(None) else getattr(a, "__name__", str(a)) for a in args)
    return getattr(kind, "__name__", str(kind))


@cache
def field_help(config: type) -> dict[str, str]:
    """The ``#:`` comment of each field of the dataclass ``config``: on the field's line, else on the
    lines just above it, joined into one line."""
    lines, first = inspect.getsourcelines(config)
    source = "".join(lines)
    found = {}
    for node in ast.parse(textwrap.dedent(source)).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = lines[node.lineno - 1]
            if "#:" in line:
                found[node.target.id] = line.split("#:", 1)[1].strip()
                continue
            above, k = [], node.lineno - 2
            while k >= 0 and lines[k].strip().startswith("#:"):
                above.insert(0, lines[k].strip()[2:].strip())
                k -= 1
            if above:
                found[node.target.id] = " ".join(above)
    return found


@cache
def docstring_args(cls: type) -> dict[str, str]:
    """The ``Args:`` entries of the docstrings of ``cls`` and its bases (``name: text`` or
    ``a, b: text``), each as one line."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        text = inspect.cleandoc(klass.__doc__ or "")
        block = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)*)", text, re.M)
        if not block:
            continue
        entries = re.findall(r"^    ([\w, ]+): (.*(?:\n        .*)*)", block.group(1), re.M)
        for names, help_text in entries:
            for key in names.split(","):
                found[key.strip()] = " ".join(help_text.split())
    return found
