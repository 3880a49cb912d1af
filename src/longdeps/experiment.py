"""One run: a ``RunConfig`` -> a trained model, metrics, checkpoints and a store row.

``Run`` is the training loop. A training step: the sampler draws a batch, the
continuation schedule sets the smoothing level, the gradient estimator fills
``.grad`` (inside the continuation's perturbation, if any), gradients are
clipped, the optimiser steps. Every ``eval_every`` updates the run's
``Evaluator`` (``longdeps.evaluation``) measures the model, in eval mode,
where cells are never smoothed, and the record, with the training losses
since the last one, goes to the run's ``RunFolder`` (``longdeps.runfolder``);
every ``checkpoint_every`` updates the whole training state (weights,
optimiser, random generators, records) is saved atomically, so ``resume``
continues exactly where the checkpoint left off. SIGINT or SIGTERM stops a
run at the end of the update under way and saves a checkpoint there (the
same signal again stops it at once). At the end the best-validation weights
are scored on the test set.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from longdeps.cells import State, detach_state, make_cell, map_state
from longdeps.config import EXECUTION_FIELDS, RunConfig, validate
from longdeps.continuation import make_continuation
from longdeps.data import sha256_of
from longdeps.errors import LongdepsError
from longdeps.evaluation import Evaluator
from longdeps.gradients import make_estimator
from longdeps.model import SequenceModel
from longdeps.optim import check_optimizer, make_optimizer, make_schedule
from longdeps.progress import Progress
from longdeps.registry import REGISTRIES, parameter_of, registry_of
from longdeps.runfolder import RunFolder
from longdeps.sampling import make_sampler
from longdeps.seeding import seeded_generator
from longdeps.signals import Interrupted, deferred
from longdeps.store import ResultStore
from longdeps.tasks import Task, make_task


@dataclass
class RunResult:
    run_id: str
    status: str  #: finished (failed and interrupted runs raise)
    summary: dict[str, Any]
    run_dir: Path
    already_finished: bool = False  #: it was finished before this call, which trained nothing: ``summary`` is its stored result


def resolve(config: RunConfig, data_dir: str | None = None) -> tuple[RunConfig, Task]:
    """``config`` as a run uses it, once validated (``validate``), and its task: the task's own
    ``seq_len``, ``variant`` and split sizes filled in, and every field of a component's section
    left at None (the component's own default) set to that default; each component's options are
    checked as building it checks them. The run id is ``config``'s, not the resolved config's."""
    validate(config)
    check_optimizer(config.optimizer, config.train.steps)
    task = make_task(config.task.name, data_dir=data_dir, **config.options("task"))
    filled: dict[str, dict[str, Any]] = {"task": {"seq_len": task.seq_len, "variant": task.variant,
                                                  "val_size": task.val_size, "test_size": task.test_size}}
    for section in [s for s in REGISTRIES if s != "task"]:
        values, registry = getattr(config, section), registry_of(section)
        how = EXECUTION_FIELDS.get(section, ())  # (read where the component is built, not by it)
        registry.check_options(values.name, {k: v for k, v in config.options(section).items() if k not in how})
        for f in dataclasses.fields(values):
            parameter = parameter_of(registry[values.name], f.name) if getattr(values, f.name) is None else None
            if parameter is not None and parameter.default not in (parameter.empty, None):
                filled.setdefault(section, {})[f.name] = parameter.default
    return config.updated(filled), task


class Run:
    """The training loop of one run, with everything it needs built from its config.

    Construction is deterministic in ``config.train.seed``: the model's
    initial weights come from the global torch generator seeded with it, and
    training batches from a generator of their own.
    """

    def __init__(self, config: RunConfig, store: ResultStore, suite: str | None = None, data_dir: str | None = None):
        self.config = config = validate(with_data_checksum(config))
        self.suite = suite
        self.run_id = config.run_id()
        self.device = torch.device(config.train.device)
        tc = config.train

        torch.manual_seed(tc.seed)
        config, self.task = resolve(config, data_dir)  # the components are built from the resolved config
        cell = make_cell(config.cell.name, self.task.input_size, config.cell.hidden_size, **config.options("cell"))
        self.model = SequenceModel(cell, self.task.output_size, self.task.readout, config.readout.init,
                                   config.readout.scale).to(self.device)
        self.estimator = make_estimator(config.gradient.name, seed=tc.seed, **config.options("gradient"))
        self.sampler = make_sampler(config.sampler.name, task=self.task, model=self.model, **config.options("sampler"))
        self.continuation = make_continuation(config.continuation.name, model=self.model, seed=tc.seed,
                                              updates_per_epoch=self.task.updates_per_epoch(tc.batch_size),
                                              **config.options("continuation"))
        self.optimizer = make_optimizer(config.optimizer, self.model)
        self.schedule = make_schedule(config.optimizer, self.optimizer, tc.steps)  #: stepped after every update
        self.folder = RunFolder(store, self.run_id, tc.log)
        self.data_generator = seeded_generator("train-batches", tc.seed)
        self.evaluator = Evaluator(self.task, self.model, self.estimator, self.sampler, self.continuation, tc, self.device)

        self.step = 0
        self.examples_seen = 0
        self.wall_time = 0.0
        self.losses: list[float] = []  #: training losses and gradient norms since the last evaluation
        self.norms: list[float] = []
        self.carry: State | None = None  #: final state of the last batch, for carried-state streams

    # -- state --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The training state a checkpoint keeps besides the records (``RunFolder.save_checkpoint``)."""
        return {
            "config": self.config.to_dict(), "cell": self.model.cell.extra_repr(), "step": self.step,
            "examples_seen": self.examples_seen,
            "wall_time": self.wall_time, "losses": self.losses, "norms": self.norms, "best": self.evaluator.best,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule else None,
            "data_generator": self.data_generator.get_state(), "torch_rng": torch.get_rng_state(),
            "sampler": self.sampler.state_dict(), "carry": self.carry, "estimator": self.estimator.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``; refused in one line where the cell this version builds from the
        config is not the one that wrote it (a default of the cell changed since; checkpoints of
        earlier versions do not say)."""
        built = self.model.cell.extra_repr()
        saved = state.get("cell", built)
        if built != saved:
            raise LongdepsError(f"run {self.run_id}: its checkpoint was written by cell ({saved}), but this version "
                                f"builds ({built}) from the same config; resume it with the version that wrote it, "
                                f"or pass --force to start over")
        self.step, self.examples_seen, self.wall_time = state["step"], state["examples_seen"], state["wall_time"]
        # (checkpoints of earlier versions hold no losses since the last evaluation)
        self.losses, self.norms = state.get("losses", []), state.get("norms", [])
        self.evaluator.best = state["best"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule:  # (a run of an earlier version had a constant rate and no schedule to save)
            self.schedule.load_state_dict(state["schedule"])
        self.data_generator.set_state(state["data_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.sampler.load_state_dict(state["sampler"])
        # (checkpoints written before states took torch's layout at the cell's boundary carry (B, H) parts)
        self.carry = None if state["carry"] is None else map_state(
            lambda s: (s[None] if s.dim() == 2 else s).to(self.device), state["carry"])
        self.estimator.load_state_dict(state["estimator"])

    def save_checkpoint(self) -> None:
        self.folder.save_checkpoint(self.state_dict())

    # -- the run ------------------------------------------------------------
    def prepare(self, resume: bool, force: bool) -> bool:
        """Decide how to start; returns False when the run is already finished."""
        status = self.folder.status()
        if force:
            self.folder.clear()
        elif status == "finished":
            return False
        elif resume and status is None:
            refuse_changed_file(self.folder.store, self.config)
        elif self.folder.has_checkpoint():
            if not resume:
                raise LongdepsError(f"run {self.run_id} stopped at a checkpoint ({status or 'unknown'}, "
                                    f"{self.folder.checkpoint_path}); pass --resume to continue it or --force to start over")
            self.load_state_dict(self.folder.load_checkpoint())
        self.folder.start(self.config.to_dict(), self.task, self.suite)
        return True

    def execute(self, resume: bool = False, force: bool = False, progress: bool = True) -> RunResult:
        """Train to ``train.steps`` updates (or until solved), then score the test set.

        ``progress``: a bar on a terminal, else a line per evaluation (``longdeps.progress``).
        On SIGINT or SIGTERM the update under way is finished and saved, and ``Interrupted`` raised.
        """
        if not self.prepare(resume, force):
            return RunResult(self.run_id, "finished", self.folder.result(), self.folder.path, already_finished=True)
        tc = self.config.train
        shown = Progress(progress, f"{self.run_id} {self.config.cell.name} {self.task.name}", tc.steps, self.step)
        if self.folder.notice:
            shown.warn(self.folder.notice)
        if self.folder.saved_step is not None:
            shown.note(f"resumes from update {self.step} of {tc.steps} "
                       f"({self.folder.previous_path if self.folder.notice else self.folder.checkpoint_path})")
        clock = time.perf_counter()
        first, finished = self.step, self.step >= tc.steps
        try:
            with deferred() as received:
                while not finished and not received:
                    smoothing = self.continuation.before_step(self.step, self.model)
                    loss, norm = self.train_step()
                    self.losses.append(loss)
                    self.norms.append(norm)
                    self.step += 1
                    shown.update()
                    if self.step == first + 1 and (compiling := self.model.cell.statistics().get("compile_seconds")):
                        shown.note(f"compiling the cell's step loop took {compiling:.1f} s")
                    finished = self.step == tc.steps
                    if self.step % tc.eval_every == 0 or finished:
                        self.wall_time += time.perf_counter() - clock
                        clock = time.perf_counter()
                        record = self.record_eval(smoothing)
                        shown.evaluated(record, self.task.metric)
                        finished = finished or (record["solved"] and tc.stop_when_solved)
                    if self.step % tc.checkpoint_every == 0 or finished:
                        self.save_checkpoint()
            if not finished:
                self.wall_time += time.perf_counter() - clock
                if self.folder.saved_step != self.step:
                    self.save_checkpoint()
                raise Interrupted(f"{signal.Signals(received[0]).name} received: run {self.run_id} stopped and saved "
                                  f"at update {self.step} in {self.folder.checkpoint_path} (continue with --resume)",
                                  received[0])
        except LongdepsError as err:
            self.folder.stop("failed", self.summary(), str(err))
            raise
        except Interrupted as err:
            self.folder.stop("interrupted", self.summary(), str(err))
            raise
        except KeyboardInterrupt:
            message = f"interrupted during update {self.step + 1}; run {self.run_id} stopped, {self.folder.kept()}"
            self.folder.stop("interrupted", self.summary(), message)
            raise Interrupted(message, signal.SIGINT) from None
        finally:
            shown.close()
            self.folder.close()
        return self.finish(shown)

    def train_step(self) -> tuple[float, float]:
        """One update; returns the batch loss and the gradient norm before clipping. The update waits
        for the device once, to read these two numbers."""
        batch = self.sampler.next_batch(self.config.train.batch_size, self.data_generator)
        if not torch.isfinite(batch.x).all():  # checked where the batch was made, before it moves
            raise LongdepsError(f"training batch at step {self.step} contains non-finite inputs (nan/inf); run {self.run_id} stopped, "
                                f"{self.folder.kept()}")
        batch = batch.to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with self.continuation.perturbation(self.model):
            losses, final = self.estimator.backward(self.model, batch, self.task, self.carry if batch.continues else None)
        clip = self.config.gradient.clip_norm
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip is not None else float("inf"))
        loss, norm = torch.stack([losses.mean().detach(), norm.to(losses)]).tolist()
        for name, value in (("loss", loss), ("gradient norm", norm)):
            if value != value or value in (float("inf"), float("-inf")):
                raise LongdepsError(f"{name} became {value} at step {self.step}; run {self.run_id} diverged, "
                                    f"{self.folder.kept()}")
        self.optimizer.step()
        if self.schedule:
            self.schedule.step()
        self.carry = detach_state(final) if self.task.ordered else None
        self.examples_seen += batch.size
        return loss, norm

    def record_eval(self, smoothing: dict[str, float]) -> dict[str, Any]:
        """Evaluate (``Evaluator.measure``; ``smoothing``: what the continuation set for the last
        update) and record it with the training losses since the last evaluation (``RunFolder.add``)."""
        losses, norms = self.losses, self.norms
        self.losses, self.norms = [], []
        record = {
            "step": self.step, "examples_seen": self.examples_seen, "wall_time": round(self.wall_time, 3),
            "train_loss": sum(losses) / len(losses), "grad_norm": sum(norms) / len(norms), "grad_norm_max": max(norms),
            **self.evaluator.measure(self.step, smoothing, self.folder.records),
        }
        self.folder.add(record)
        return record

    def summary(self) -> dict[str, Any]:
        solved = [r["step"] for r in self.folder.records if r["solved"]]
        best = self.evaluator.best
        return {
            "run_id": self.run_id, "steps_done": self.step, "examples_seen": self.examples_seen,
            "wall_time": round(self.wall_time, 3), "solved": bool(solved), "solved_step": solved[0] if solved else None,
            "best_val_metric": best["val"][self.task.metric] if best else None,
            "best_val_step": best["step"] if best else None,
        }

    def finish(self, shown: Progress) -> RunResult:
        """Score the best-validation weights on the test set and record the result."""
        test = self.evaluator.test(shown.batches(self.task.split("test"), "test"))
        summary = {**self.summary(), "test_metric": test[self.task.metric], "test_loss": test["loss"], "test": test,
                   **self.task.describe(), **self.estimator.describe(),
                   **self.model.cell.statistics()}
        self.folder.finish(summary)
        return RunResult(self.run_id, "finished", summary, self.folder.path)


def with_data_checksum(config: RunConfig) -> RunConfig:
    """``config`` with ``task.sha256``, the checksum of the file ``task.path`` of a task on a file of
    your own, so that the file is part of the run id (the task refuses a file with another one);
    other configs, and those that record it already, as they are."""
    options = dict(config.task.more)
    path = Path(str(options.get("path", ""))).expanduser()
    if "sha256" in options or "path" not in options or not path.is_file():
        return config  # (a missing file is refused by the task, in one line)
    return config.updated({"task": {"sha256": sha256_of(path)}})


def refuse_changed_file(store: ResultStore, config: RunConfig) -> None:
    """Refuse, in one line, to resume a run of a file of your own that changed since: a run in ``store``
    has ``config`` but for ``task.sha256``."""
    mine = config.to_dict()
    digest = mine["task"].pop("sha256", None)
    if digest is None:
        return
    for row in store.runs(task=config.task.name):
        theirs = json.loads(row["config"])
        was = theirs["task"].pop("sha256", None)
        if theirs == mine and was != digest:
            raise LongdepsError(f"task.path={mine['task'].get('path')} changed "
                                f"since run {row['run_id']} started (sha256 {digest}, it recorded {was}); --resume "
                                "continues that run only with its file: restore it, or train without --resume for a new run")


def run_experiment(config: RunConfig, results: str | Path = "longdeps-results", resume: bool = False,
                   force: bool = False, progress: bool = True, suite: str | None = None,
                   data_dir: str | None = None) -> RunResult:
    """Build and execute one run, recording it in the store at ``results``.

    ``data_dir`` is where data sets are read from (see ``longdeps.data``); it
    is not part of the config, so a run has the same id on every machine.
    """
    return Run(config, ResultStore(results), suite, data_dir).execute(resume=resume, force=force, progress=progress)
