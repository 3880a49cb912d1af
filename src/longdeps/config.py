"""The typed configuration of one run: one frozen dataclass per axis.

A ``RunConfig`` is built from defaults, a YAML/TOML file, and ``key=value``
overrides with dotted names (``cell.hidden_size=64``). Its canonical JSON
hashes to the run id, so the same settings always name the same run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from longdeps.errors import LongdepsError


@dataclass(frozen=True)
class TaskConfig:
    """Which task, at which length; validation/test sets are fixed by ``data_seed``."""

    name: str = "adding"
    seq_len: int | None = None  #: None: the task's default (100 for synthetic tasks)
    variant: str | None = None  #: None: the task's default variant
    val_size: int | None = None  #: None: the task's default (1000 generated, or the whole split)
    test_size: int | None = None
    train_size: int | None = None  #: generated tasks: None for a fresh batch every update, N for a fixed pool
    data_seed: int = 0


@dataclass(frozen=True)
class CellConfig:
    """Which cell; options left at None take the cell's own default."""

    name: str = "lstm"
    hidden_size: int = 128
    native: bool = True  #: fused native kernel where the cell has one
    recurrent_init: str | None = None  #: default | orthogonal | identity | xavier
    input_init: str | None = None  #: default | orthogonal | xavier
    forget_bias: float | None = None  #: lstm only (cell default 1.0)
    nonlinearity: str | None = None  #: srn only: tanh | relu
    batch_norm: bool | None = None  #: bn-lstm: False for the unnormalised control
    gamma: float | None = None  #: bn-lstm: initial BN scale (0.1)
    initial_noise: float | None = None  #: bn-lstm: std of the noise on h_0 in training
    statistics_momentum: float | None = None  #: bn-lstm: monitoring moving-average rate (0.01)
    #: asrnn, orthrnn: expm | cayley (default expm); for these cells recurrent_init is cayley | henaff
    #: and orthrnn's nonlinearity is modrelu | linear
    orthogonal_map: str | None = None
    rebase_every: int | None = None  #: asrnn, orthrnn: dynamic trivialisation every K updates (None: static)
    project_every: int | None = None  #: asrnn, orthrnn: SVD re-projection of the bases every M-th rebase (default 1)
    orientation: str | None = None  #: asrnn, orthrnn: W_hh = B (default) | BT (W_hh = B^T, the expRNN code's h @ B)
    saturation_low: float | None = None  #: asrnn: p ~ U(low, high); MNIST 0.02 (default), copy 0, PTB 0.8
    saturation_high: float | None = None  #: asrnn: MNIST 0.02 (default), copy 0, PTB 3
    saturation_eps: float | None = None  #: asrnn: D_f = diag(|p| + eps); MNIST 0.01 (default), copy 1e-5, PTB 0
    uf_group: str | None = None  #: asrnn: learning-rate group of U_f: default (authors' code, the cell default) | orthogonal

    def options(self) -> dict[str, Any]:
        """The cell constructor's keyword arguments that are set."""
        skip = {"name", "hidden_size"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip and v is not None}


@dataclass(frozen=True)
class ReadoutConfig:
    """Initialisation of the linear readout after the cell (see ``longdeps.model.init_readout_``)."""

    #: default (PyTorch's nn.Linear) | kaiming (Kaiming-normal weights, zero bias: the expRNN/asRNN code)
    #: | uniform (weights ~ U(-scale, scale), zero bias)
    init: str = "default"
    scale: float = 0.1  #: uniform: half-width of the range


@dataclass(frozen=True)
class GradientConfig:
    """How gradients are obtained through time, and clipped."""

    name: str = "bptt"  #: bptt | tbptt | dsf
    truncation: int | None = None  #: tbptt: steps k
    clip_norm: float | None = None  #: global L2 norm bound; None: no clipping
    #: dsf (None: the estimator's default): the fixed feedback A replacing every step Jacobian:
    #: stationary (the mean step Jacobian, the default) | stationary-diagonal (its diagonal) |
    #: uniform (diag(lambda), lambda ~ U[feedback_low, feedback_high]) | constant (lambda = feedback_low = feedback_high)
    feedback: str | None = None
    feedback_low: float | None = None  #: dsf uniform/constant (default 0)
    feedback_high: float | None = None  #: dsf uniform/constant (default 1)
    refresh_every: int | None = None  #: dsf stationary: updates between two estimates of A (default 50)
    jacobian_steps: int | None = None  #: dsf stationary: evenly spaced steps the mean is taken over (default 8)
    jacobian_examples: int | None = None  #: dsf stationary: examples of the batch it is taken over (default 8)
    exact_window: int | None = None  #: dsf: steps back each error travels through the exact Jacobians before the feedback (default 0)

    def options(self) -> dict[str, Any]:
        """The estimator's options (every field but the name and the clipping bound)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("name", "clip_norm")}


@dataclass(frozen=True)
class SamplerConfig:
    """Which examples make each mini-batch; the ``sgr`` fields are read by that sampler only."""

    name: str = "uniform"  #: uniform | sgr
    replacement: bool = False  #: finite training sets: independent draws instead of shuffled passes
    #: sgr: the safe band [rho_min, rho_max] of the long-term gradient ratio
    #: rho_i = ||dL_i/dh_k0|| / ||dL_i/dh_T|| (unit output deltas), as log10 rho; the default
    #: is the best of the validation sweep benchmarks/sgr-band.yaml (docs/results/sgr/band)
    log10_rho_min: float = -3.5
    log10_rho_max: float = 0.5
    early_step: int = 0  #: sgr: k0, the 0-based step whose gradient norm rho compares with the last step's
    refresh_every: int = 50  #: sgr: updates between two estimates (a new pool each time)
    pool_size: int | None = 1000  #: sgr: training examples drawn and estimated at each refresh (None: all)
    #: sgr: when fewer pool examples lie in the band, batches are drawn from this many examples
    #: closest to the band instead (at least the batch size; 250 keeps the 1000 draws between two
    #: refreshes of the C&N set-up from repeating an example more than about 4 times)
    min_eligible: int = 250
    #: sgr: example (examples filtered by their ratio rho_i) | batch (batches composed by rejection so
    #: that log10 of the bound on their long-term gradient norm over their short-term one is in the band;
    #: the boundary between the two is the state after step early_step)
    rule: str = "example"
    batch_tries: int = 100  #: sgr rule=batch: candidate batches drawn per update before the closest is taken


@dataclass(frozen=True)
class ContinuationConfig:
    """How the objective is smoothed over training, and the schedule of its level sigma
    (see ``longdeps.continuation``): ``stages`` stages of ``stage_length`` each, from
    ``sigma0`` down by ``shape``, then sigma = 0 to the end."""

    name: str = "none"  #: none | diffusion (closed-form diffused cell) | weight-noise (noise on the cell's weights)
    sigma0: float = 0.1  #: sigma of the first stage (std of the Gaussian over each weight)
    shape: str = "geometric"  #: geometric (sigma0 * ratio^k) | linear | cosine (both reach 0 after the last stage)
    ratio: float = 0.5  #: geometric: factor from one stage to the next
    stages: int = 4  #: stages with sigma > 0 before the final stage at 0
    stage_length: float = 100.0  #: length of each stage, in ``unit``
    unit: str = "updates"  #: updates | epochs (a finite training set: task.train_size / train.batch_size updates)


@dataclass(frozen=True)
class OptimizerConfig:
    """A ``torch.optim`` optimiser: adam, sgd or rmsprop."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0  #: sgd, rmsprop
    alpha: float = 0.99  #: rmsprop smoothing constant
    weight_decay: float = 0.0
    orthogonal_lr_scale: float = 0.1  #: lr factor of the "orthogonal" parameter group (see longdeps.optim)


@dataclass(frozen=True)
class TrainConfig:
    """Length of training and what is recorded along the way (units: updates)."""

    steps: int = 2000
    batch_size: int = 32
    seed: int = 0
    eval_every: int = 100
    checkpoint_every: int = 500
    stop_when_solved: bool = True
    profile_examples: int = 100  #: validation examples for the ||dL/dh_t|| profile
    #: cells with batch norm: training examples whose batch statistics are averaged into the
    #: population statistics before every evaluation (None: the whole training set, or 10,000
    #: generated examples; 0: use the moving averages instead)
    population_examples: int | None = None
    #: at evaluations at least this many updates after the last measurement, the cosine between
    #: the estimator's gradient and the exact BPTT gradient on one fixed training batch (None: off)
    alignment_every: int | None = None
    device: str = "cpu"


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

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def run_id(self) -> str:
        """12 hex digits of the SHA-256 of the canonical JSON of the config."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        """Build from nested dicts; unknown sections or keys are errors."""
        return RunConfig().updated(data)

    def updated(self, data: dict[str, Any]) -> "RunConfig":
        """A copy with the sections of ``data`` (nested dicts) replaced field by field."""
        if not isinstance(data, dict):
            raise LongdepsError(f"a config must be a mapping of sections, got {type(data).__name__}")
        sections = {}
        for section, values in data.items():
            if section not in SECTIONS:
                raise LongdepsError(f"unknown config section {section!r}; choose from {', '.join(SECTIONS)}")
            if not isinstance(values, dict):
                raise LongdepsError(f"config section {section!r} must be a mapping, got {values!r}")
            current = getattr(self, section)
            sections[section] = dataclasses.replace(current, **{k: _coerce(section, k, v) for k, v in values.items()})
        return dataclasses.replace(self, **sections)

    def with_overrides(self, overrides: list[str]) -> "RunConfig":
        """Apply ``section.key=value`` strings in order."""
        data: dict[str, dict[str, Any]] = {}
        for item in overrides:
            key, sep, value = item.partition("=")
            section, dot, name = key.strip().partition(".")
            if not sep or not dot:
                raise LongdepsError(f"override {item!r} is not of the form section.key=value (e.g. cell.hidden_size=64)")
            data.setdefault(section, {})[name] = value.strip()
        return self.updated(data)


#: section name -> its dataclass
SECTIONS: dict[str, type] = typing.get_type_hints(RunConfig)


def _coerce(section: str, key: str, value: Any) -> Any:
    """``value`` (from a file or a ``key=value`` string) as the type of field ``section.key``."""
    hints = typing.get_type_hints(SECTIONS[section])
    if key not in hints:
        raise LongdepsError(f"unknown config key {section}.{key}; choose from {', '.join(hints)}")
    kind = hints[key]
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
        return str(value)
    except (TypeError, ValueError):
        raise LongdepsError(f"{section}.{key} must be {kind.__name__}{' or null' if optional else ''}, got {value!r}") from None


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
