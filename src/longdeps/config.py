"""The typed configuration of one run: one frozen dataclass per axis.

A ``RunConfig`` is built from defaults, a YAML/TOML file, and ``key=value``
overrides with dotted names (``cell.hidden_size=64``). Its canonical JSON
hashes to the run id, so the same settings always name the same run; the
``EXECUTION_FIELDS``, which say how a run is computed rather than what, are
left out of it, and the ``PLACEMENT_FIELDS`` (the device) enter it at one fixed
value. A section that chooses a component (``Component``) also
takes the options of that component it does not declare (``cell.scale=0.5``
for a cell whose constructor has ``scale``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from longdeps.errors import LongdepsError
from longdeps.registry import defaults_of, registry_of

#: the ranges a numeric field may declare: name -> (test, how the error states it); every range is finite
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "finite": (lambda v: True, "finite"),
    "positive": (lambda v: v > 0, "> 0"),
    "non-negative": (lambda v: v >= 0, ">= 0"),
    "probability": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "fraction": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "seed": (lambda v: 0 <= v < 2**63, "in [0, 2**63)"),  # what torch.manual_seed takes
}


def ranged(default: Any, kind: str, at_most: str | None = None) -> Any:
    """A dataclass field whose value (when not None) ``validate`` keeps in range ``kind`` of ``RANGES``,
    and at most the value of the field ``at_most`` of the same section."""
    return field(default=default, metadata={"range": kind, "at_most": at_most})


@dataclass(frozen=True)
class Component:
    """A section whose ``name`` chooses a component from its registry (``registry.REGISTRIES``). Besides
    its fields it holds the options of that component which it does not declare: ``more``, (key, value)
    pairs sorted by key, each of the type the component's constructor gives it, written flat by
    ``RunConfig.to_dict`` (so that a config without any hashes as before they existed)."""

    more: tuple[tuple[str, Any], ...] = field(default=(), kw_only=True)


@dataclass(frozen=True)
class TaskConfig(Component):
    """Which task, at which length; validation/test sets are fixed by ``data_seed``."""

    name: str = "adding"
    seq_len: int | None = ranged(None, "positive")  #: None: the task's default (100 for synthetic tasks)
    variant: str | None = None  #: None: the task's default variant
    val_size: int | None = ranged(None, "positive")  #: None: the task's default (1000 generated, or the whole split)
    test_size: int | None = ranged(None, "positive")  #: None: the task's default (1000 generated, or the whole split)
    train_size: int | None = ranged(None, "positive")  #: generated tasks: None for a fresh batch every update, N for a fixed pool
    data_seed: int = ranged(0, "seed")  #: seed of the generated validation/test sets and training pool


@dataclass(frozen=True)
class CellConfig(Component):
    """Which cell; options left at None take the cell's own default."""

    name: str = "lstm"
    hidden_size: int = ranged(128, "positive")  #: units of the state h_t
    native: bool = True  #: fused native kernel where the cell has one
    recurrent_init: str | None = None  #: default | orthogonal | identity | xavier
    input_init: str | None = None  #: default | orthogonal | xavier
    forget_bias: float | None = ranged(None, "finite")  #: lstm, bn-lstm: initial forget-gate bias (cell default 1.0)
    nonlinearity: str | None = None  #: srn only: tanh | relu
    batch_norm: bool | None = None  #: bn-lstm: False for the unnormalised control
    gamma: float | None = ranged(None, "finite")  #: bn-lstm: initial BN scale (0.1)
    initial_noise: float | None = ranged(None, "non-negative")  #: bn-lstm: std of the noise on h_0 in training
    statistics_momentum: float | None = ranged(None, "probability")  #: bn-lstm: monitoring moving-average rate (0.01)
    #: asrnn, orthrnn: expm | cayley (default expm); for these cells recurrent_init is cayley | henaff
    #: and orthrnn's nonlinearity is modrelu | linear
    orthogonal_map: str | None = None
    rebase_every: int | None = ranged(None, "positive")  #: asrnn, orthrnn: dynamic trivialisation every K updates (None: static)
    project_every: int | None = ranged(None, "positive")  #: asrnn, orthrnn: SVD re-projection of the bases every M-th rebase (default 1)
    orientation: str | None = None  #: asrnn, orthrnn: B (W_hh = B; asrnn's default) | BT (W_hh = B^T, the expRNN code's h @ B; orthrnn's)
    saturation_low: float | None = ranged(None, "finite", at_most="saturation_high")  #: asrnn: p ~ U(low, high); MNIST 0.02 (default), copy 0, PTB 0.8
    saturation_high: float | None = ranged(None, "finite")  #: asrnn: MNIST 0.02 (default), copy 0, PTB 3
    saturation_eps: float | None = ranged(None, "non-negative")  #: asrnn: D_f = diag(|p| + eps); MNIST 0.01 (default), copy 1e-5, PTB 0
    uf_group: str | None = None  #: asrnn: learning-rate group of U_f: default (authors' code, the cell default) | orthogonal
    #: run the step loop, where the cell runs no fused kernel, as torch.compile'd blocks of steps
    #: (longdeps.cells.compiled; needs a C++ compiler on CPU)
    compile: bool = False
    compile_block: int = ranged(16, "positive")  #: compile: steps per compiled block
    compile_fallback: bool = False  #: compile: run eagerly, with a warning, where compilation fails, instead of refusing


@dataclass(frozen=True)
class ReadoutConfig:
    """Initialisation of the linear readout after the cell (see ``longdeps.model.init_readout_``)."""

    #: default (PyTorch's nn.Linear) | kaiming (Kaiming-normal weights, zero bias: the expRNN/asRNN code)
    #: | uniform (weights ~ U(-scale, scale), zero bias)
    init: str = "default"
    scale: float = ranged(0.1, "positive")  #: uniform: half-width of the range


@dataclass(frozen=True)
class GradientConfig(Component):
    """How gradients are obtained through time, and clipped."""

    name: str = "bptt"  #: bptt | tbptt | dsf
    truncation: int | None = ranged(None, "positive")  #: tbptt: steps k
    clip_norm: float | None = ranged(None, "positive")  #: global L2 norm bound; None: no clipping
    #: dsf (None: the estimator's default): the fixed feedback A replacing every step Jacobian:
    #: stationary (the mean step Jacobian, the default) | stationary-diagonal (its diagonal) |
    #: uniform (diag(lambda), lambda ~ U[feedback_low, feedback_high]) | constant (lambda = feedback_low = feedback_high)
    feedback: str | None = None
    feedback_low: float | None = ranged(None, "probability", at_most="feedback_high")  #: dsf uniform/constant (default 0)
    feedback_high: float | None = ranged(None, "probability")  #: dsf uniform/constant (default 1)
    refresh_every: int | None = ranged(None, "positive")  #: dsf stationary: updates between two estimates of A (default 50)
    jacobian_steps: int | None = ranged(None, "positive")  #: dsf stationary: evenly spaced steps the mean is taken over (default 8)
    jacobian_examples: int | None = ranged(None, "positive")  #: dsf stationary: examples of the batch it is taken over (default 8)
    #: dsf: steps back each error travels through the exact Jacobians before the feedback (default 0)
    exact_window: int | None = ranged(None, "non-negative")


@dataclass(frozen=True)
class SamplerConfig(Component):
    """Which examples make each mini-batch; the ``sgr`` fields are read by that sampler only."""

    name: str = "uniform"  #: uniform | sgr
    replacement: bool = False  #: finite training sets: independent draws instead of shuffled passes
    #: sgr: the safe band [rho_min, rho_max] of the long-term gradient ratio
    #: rho_i = ||dL_i/dh_k0|| / ||dL_i/dh_T|| (unit output deltas), as log10 rho; the default
    #: is the best of the validation sweep benchmarks/sgr-band.yaml (docs/results/sgr/band)
    log10_rho_min: float = ranged(-3.5, "finite", at_most="log10_rho_max")
    log10_rho_max: float = ranged(0.5, "finite")  #: sgr: the upper end of the band, as log10 rho
    early_step: int = ranged(0, "non-negative")  #: sgr: k0, the 0-based step whose gradient norm rho compares with the last step's
    refresh_every: int = ranged(50, "positive")  #: sgr: updates between two estimates (a new pool each time)
    pool_size: int | None = ranged(1000, "positive")  #: sgr: training examples drawn and estimated at each refresh (None: all)
    #: sgr: when fewer pool examples lie in the band, batches are drawn from this many examples
    #: closest to the band instead (at least the batch size; 250 keeps the 1000 draws between two
    #: refreshes of the C&N set-up from repeating an example more than about 4 times)
    min_eligible: int = ranged(250, "positive")
    #: sgr: example (examples filtered by their ratio rho_i) | batch (batches composed by rejection so
    #: that log10 of the bound on their long-term gradient norm over their short-term one is in the band;
    #: the boundary between the two is the state after step early_step)
    rule: str = "example"
    batch_tries: int = ranged(100, "positive")  #: sgr rule=batch: candidate batches drawn per update before the closest is taken


@dataclass(frozen=True)
class ContinuationConfig(Component):
    """How the objective is smoothed over training, and the schedule of its level sigma
    (see ``longdeps.continuation``): ``stages`` stages of ``stage_length`` each, from
    ``sigma0`` down by ``shape``, then sigma = 0 to the end."""

    name: str = "none"  #: none | diffusion (closed-form diffused cell) | weight-noise (noise on the cell's weights)
    sigma0: float = ranged(0.1, "non-negative")  #: sigma of the first stage (std of the Gaussian over each weight)
    shape: str = "geometric"  #: geometric (sigma0 * ratio^k) | linear | cosine (both reach 0 after the last stage)
    ratio: float = ranged(0.5, "fraction")  #: geometric: factor from one stage to the next
    stages: int = ranged(4, "non-negative")  #: stages with sigma > 0 before the final stage at 0
    stage_length: float = ranged(100.0, "positive")  #: length of each stage, in ``unit``
    unit: str = "updates"  #: updates | epochs (a finite training set: task.train_size / train.batch_size updates)
    propagate: bool = False  #: diffusion: carry each unit's variance through time (moment propagation; srn only)


@dataclass(frozen=True)
class OptimizerConfig:
    """A ``torch.optim`` optimiser (adam, adamw, sgd or rmsprop) and its learning-rate schedule
    (``longdeps.optim``; docs/optimisers.md)."""

    name: str = "adam"  #: adam | adamw | sgd | rmsprop
    lr: float = ranged(1e-3, "positive")  #: the learning rate (the peak one, under a schedule)
    momentum: float = ranged(0.0, "probability")  #: sgd, rmsprop
    alpha: float = ranged(0.99, "probability")  #: rmsprop smoothing constant
    weight_decay: float = ranged(0.0, "non-negative")  #: L2 penalty (adam, sgd, rmsprop); decoupled decay (adamw)
    orthogonal_lr_scale: float = ranged(0.1, "positive")  #: lr factor of the "orthogonal" parameter group (see longdeps.optim)
    #: after the warm-up: constant | step (lr x gamma every step_size updates) | cosine (to 0 at train.steps)
    schedule: str = "constant"
    warmup: int = ranged(0, "non-negative")  #: updates of linear warm-up: update k (0-based) at lr (k+1)/(warmup+1)
    step_size: int = ranged(1000, "positive")  #: schedule=step: updates between two decays
    gamma: float = ranged(0.1, "fraction")  #: schedule=step: factor of each decay


@dataclass(frozen=True)
class TrainConfig:
    """Length of training and what is recorded along the way (units: updates)."""

    steps: int = ranged(2000, "positive")
    batch_size: int = ranged(32, "positive")
    seed: int = ranged(0, "seed")
    eval_every: int = ranged(100, "positive")
    checkpoint_every: int = ranged(500, "positive")
    stop_when_solved: bool = True
    profile_examples: int = ranged(100, "positive")  #: validation examples for the ||dL/dh_t|| profile
    #: cells with batch norm: training examples whose batch statistics are averaged into the
    #: population statistics before every evaluation (None: the whole training set, or 10,000
    #: generated examples; 0: use the moving averages instead)
    population_examples: int | None = ranged(None, "non-negative")
    #: at evaluations at least this many updates after the last measurement, the cosine between
    #: the estimator's gradient and the exact BPTT gradient on one fixed training batch (None: off)
    alignment_every: int | None = ranged(None, "positive")
    device: str = "cpu"  #: a torch device (cpu, cuda, cuda:1, mps) that this machine has
    log: str = "none"  #: none | csv | tensorboard: a copy of the evaluation records besides metrics.jsonl


@dataclass(frozen=True)
class RunConfig:
    task: TaskConfig = field(default_factory=TaskConfig)
    cell: CellConfig = field(default_factory=CellConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    gradient: GradientConfig = field(default_factory=GradientConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    continuation: ContinuationConfig = field(default_factory=ContinuationConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self, identity: bool = False, every: bool = False) -> dict[str, dict[str, Any]]:
        """Every field by section, but the ``EXECUTION_FIELDS`` and ``ADDED_FIELDS`` at their defaults
        (with ``every``, all of them); with ``identity``, what the run id hashes: none of the
        ``EXECUTION_FIELDS`` (those of ``HASHED_EXECUTION_FIELDS`` at their defaults), and the
        ``PLACEMENT_FIELDS`` at their fixed values."""
        data = dataclasses.asdict(self)
        for values in data.values():
            values.update(values.pop("more", ()))
        if every:
            return data
        for section, names in (*EXECUTION_FIELDS.items(), *ADDED_FIELDS.items()):
            for name in names:
                if (identity and name in EXECUTION_FIELDS.get(section, ())) or data[section][name] == _default(section, name):
                    del data[section][name]
        if identity:
            for section, names in HASHED_EXECUTION_FIELDS.items():
                data[section].update({name: _default(section, name) for name in names})
            for section, values in PLACEMENT_FIELDS.items():
                data[section].update(values)
        return data

    def options(self, section: str) -> dict[str, Any]:
        """The keyword options of the component section ``section`` names, as its ``make_<kind>``
        takes them: every field but ``name`` and the ``NOT_OPTIONS``, less those left at a default of
        None (the component's own default) and the ``EXECUTION_FIELDS`` at theirs, and every option
        the section does not declare."""
        skip, defaults = {"name", *NOT_OPTIONS.get(section, ())}, defaults_of(SECTIONS[section])
        return {key: value for key, value in self.to_dict()[section].items()
                if key not in skip and not (value is None and key in defaults and defaults[key] is None)}

    def run_id(self) -> str:
        """12 hex digits of the SHA-256 of the canonical JSON of ``to_dict(identity=True)``."""
        text = json.dumps(self.to_dict(identity=True), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Build from nested dicts; unknown sections or keys are errors."""
        return RunConfig().updated(data)

    def updated(self, data: dict[str, Any]) -> "RunConfig":
        """A copy with the sections of ``data`` (nested dicts) replaced field by field; in a component's
        section, a key it does not declare is an option of the component it names once replaced."""
        if not isinstance(data, dict):
            raise LongdepsError(f"a config must be a mapping of sections, got {type(data).__name__}")
        sections = {}
        for section, values in data.items():
            if section not in SECTIONS:
                raise LongdepsError(f"unknown config section {section!r}; choose from {', '.join(SECTIONS)}")
            if not isinstance(values, dict):
                raise LongdepsError(f"config section {section!r} must be a mapping, got {values!r}")
            current = getattr(self, section)
            component = isinstance(current, Component)
            declared = {f.name for f in dataclasses.fields(current)} - {"more"} if component else set(values)
            more = {key: value for key, value in values.items() if key not in declared}
            new = dataclasses.replace(current, **{k: _coerce(section, k, v) for k, v in values.items() if k in declared})
            if component and (more or new.more):
                new = dataclasses.replace(new, more=_component_options(section, new.name, {**dict(new.more), **more}))
            sections[section] = new
        return dataclasses.replace(self, **sections)

    def with_overrides(self, overrides: list[str]) -> "RunConfig":
        """Apply ``section.key=value`` strings in order."""
        return self.updated(parse_overrides(overrides))


def parse_overrides(overrides: list[str]) -> dict[str, dict[str, str]]:
    """``section.key=value`` strings as nested dicts of their (untyped) values, a later one winning."""
    data: dict[str, dict[str, str]] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise LongdepsError(f"override {item!r} is not of the form section.key=value (e.g. cell.hidden_size=64)")
        data.setdefault(section, {})[name] = value.strip()
    return data


#: section name -> its dataclass
SECTIONS: dict[str, type] = typing.get_type_hints(RunConfig)

#: the fields that say how a run is computed, not what it computes: the same maths, to float
#: rounding, as the number of threads or the torch version. They are not part of the run id, so a
#: run keeps its id, its results and its checkpoint whether they are set or not (a run started
#: eagerly resumes compiled, and the other way round), and ``to_dict`` leaves them out at their
#: defaults, so that the records of runs that do not set them (config.json, the store) read as
#: before the fields existed, and group with them in reports.
EXECUTION_FIELDS: dict[str, tuple[str, ...]] = {"cell": ("compile", "compile_block", "compile_fallback"),
                                                 "train": ("log",)}

#: the ``EXECUTION_FIELDS`` that run ids hashed before they were execution fields: the id holds each at
#: its default whatever it is set to, so that those ids stay
HASHED_EXECUTION_FIELDS: dict[str, tuple[str, ...]] = {"train": ("log",)}

#: fields added after run ids were first pinned: written (in records and in the id) only when set
#: away from their defaults, so that a config which leaves them keeps its id
ADDED_FIELDS: dict[str, tuple[str, ...]] = {"optimizer": ("schedule", "warmup", "step_size", "gamma")}

#: the fields that say where a run computes, each with the value the run id hashes it at whatever
#: it is set to, so that a run keeps its id and its checkpoint on another device (started on a GPU,
#: it resumes on a CPU). That value is the field's default, which earlier ids hashed, so they stay.
#: Unlike the ``EXECUTION_FIELDS`` these are always written, so that a record says where its run
#: computed last.
PLACEMENT_FIELDS: dict[str, dict[str, Any]] = {"train": {"device": "cpu"}}

#: the fields of a component's section that are not its options: what it is built with (the
#: cell's width) or what the trainer reads (the clipping bound)
NOT_OPTIONS: dict[str, tuple[str, ...]] = {"cell": ("hidden_size",), "gradient": ("clip_norm",)}


def _default(section: str, name: str) -> Any:
    """The default of field ``name`` of section ``section``."""
    return getattr(SECTIONS[section], name)


def validate(config: RunConfig) -> RunConfig:
    """``config`` itself, once every field that declares a range (``ranged``) is in it and
    ``train.device`` is available; else a one-line error naming the field and its value."""
    ranged_fields = [(section, getattr(config, section), f) for section in SECTIONS
                     for f in dataclasses.fields(SECTIONS[section]) if "range" in f.metadata]
    for section, values, f in ranged_fields:
        value = getattr(values, f.name)
        test, wanted = RANGES[f.metadata["range"]]
        if value is not None and not (math.isfinite(value) and test(value)):
            raise LongdepsError(f"{section}.{f.name} must be {wanted}, got {value!r}")
    for section, values, f in ranged_fields:
        value, bound = getattr(values, f.name), f.metadata["at_most"]
        if bound and None not in (value, getattr(values, bound)) and value > getattr(values, bound):
            raise LongdepsError(f"{section}.{f.name}={value!r} exceeds {section}.{bound}={getattr(values, bound)!r}")
    check_device(config.train.device)
    return config


def check_device(name: str) -> None:
    """A one-line error, naming the devices this machine has, unless torch knows device ``name`` and
    this machine has it: ``cpu`` (or ``cpu:0``: torch has one CPU device), a backend that is
    available, an index below its device count."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise LongdepsError(f"train.device={name!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    if device.type == "cpu":
        why = None if device.index in (None, 0) else "torch has one CPU device, cpu"
    else:
        backend = getattr(torch, device.type, None)
        if backend is None or not hasattr(backend, "is_available"):
            raise LongdepsError(f"train.device={name!r}: longdeps cannot check whether this machine has a "
                                f"{device.type} device")
        if not backend.is_available():
            why = f"torch.{device.type}.is_available() is False"
        elif device.index is not None and device.index >= backend.device_count():
            why = f"it has {backend.device_count()} {device.type} device(s)"
        else:
            why = None
    if why:
        raise LongdepsError(f"train.device={name!r} is not available on this machine ({why}); "
                            f"its devices: {', '.join(available_devices())}")


def available_devices() -> list[str]:
    """The torch devices of this machine: ``cpu``, then every device of each accelerator torch finds."""
    import torch

    names = ["cpu"]
    for kind in ("cuda", "xpu", "mps"):
        backend = getattr(torch, kind, None)
        if backend is not None and backend.is_available():
            names += [f"{kind}:{i}" for i in range(getattr(backend, "device_count", lambda: 1)())]
    return names


def _coerce(section: str, key: str, value: Any) -> Any:
    """``value`` (from a file or a ``key=value`` string) as the type of field ``section.key``."""
    hints = typing.get_type_hints(SECTIONS[section])
    if key not in hints:
        raise LongdepsError(f"unknown config key {section}.{key}; choose from {', '.join(hints)}")
    return _typed(f"{section}.{key}", hints[key], value)


def _component_options(section: str, name: str, options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """``options``, keys that section ``section`` does not declare, as ``Component.more``: sorted, each of
    the type component ``name``'s constructor gives it; one it does not take is refused in one line. An
    option of the registry's ``around`` at its default is left out (``cell.num_layers=1`` is today's run)."""
    registry = registry_of(section)
    typed = {key: _typed(f"{section}.{key}", registry.option_type(name, key), value)
             for key, value in sorted(options.items())}
    registry.check_options(name, typed)
    around = registry.around_options()
    return tuple((key, value) for key, value in typed.items() if key not in around or value != around[key].default)


def _typed(field: str, kind: Any, value: Any) -> Any:
    """``value`` (from a file or a ``key=value`` string) as ``kind``: bool, int, float or str, or an
    optional one; else a one-line error naming ``field`` and the value."""
    optional = typing.get_origin(kind) in (Union, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                return value.lower() in ("true", "yes", "1")
            if isinstance(value, bool):
                return value
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError):
        raise LongdepsError(f"{field} must be {kind.__name__}{' or null' if optional else ''}, got {value!r}") from None
    raise LongdepsError(f"{field} cannot be set from a config: its type is {getattr(kind, '__name__', kind)}, "
                        "not bool, int, float or str")


def load_config(path: str | Path) -> RunConfig:
    """Read a run config from a ``.yaml``/``.yml`` or ``.toml`` file."""
    path = Path(path)
    if not path.is_file():
        raise LongdepsError(f"config file {str(path)!r} does not exist")
    return RunConfig.from_dict(read_mapping(path))


def read_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML or TOML file."""
    text = path.read_text()
    if path.suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise LongdepsError(f"{path}: invalid TOML: {err}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise LongdepsError(f"{path}: invalid YAML: {str(err).splitlines()[0]}") from None
        return data or {}
    raise LongdepsError(f"config file {str(path)!r} must end in .yaml, .yml or .toml")
