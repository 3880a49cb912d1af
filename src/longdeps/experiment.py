"""One run: a ``RunConfig`` -> a trained model, metrics, checkpoints and a store row.

A training step: the sampler draws a batch, the continuation schedule sets
the smoothing level, the gradient estimator fills ``.grad`` (inside the
continuation's perturbation, if any), gradients are clipped, the optimiser
steps. Evaluation runs in eval mode, where cells are never smoothed. Every ``eval_every`` updates the model is scored
on the fixed validation set and the per-step gradient profile
``||dL/dh_t||`` is taken on a fixed probe batch (the record also holds what
the sampler reports, e.g. ``sgr``'s refreshes); every ``checkpoint_every``
updates the whole training state (weights, optimiser, random generators,
history) is saved atomically, so ``resume`` continues exactly where the
checkpoint left off. SIGINT or SIGTERM stops a run at the end of the update
under way and saves a checkpoint there (the same signal again stops it at once).
At the end the best-validation weights are scored on the test set.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from longdeps.cells import State, detach_state, make_cell
from longdeps.config import RunConfig, validate
from longdeps.continuation import make_continuation
from longdeps.errors import LongdepsError
from longdeps.gradients import alignment, hidden_gradient_norms, make_estimator
from longdeps.logs import make_log
from longdeps.model import SequenceModel
from longdeps.optim import make_optimizer
from longdeps.progress import Progress
from longdeps.sampling import make_sampler
from longdeps.signals import Interrupted, deferred
from longdeps.store import ResultStore, atomic_torch_save, atomic_write_text
from longdeps.seeding import seeded_generator
from longdeps.tasks import Batch, Task, make_task


@dataclass
class RunResult:
    run_id: str
    status: str  #: finished (failed and interrupted runs raise)
    summary: dict[str, Any]
    run_dir: Path


@torch.no_grad()
def evaluate(model: SequenceModel, task: Task, batches: Iterable[Batch], device: torch.device | str = "cpu") -> dict[str, float]:
    """Each metric of ``task.per_example_metrics`` averaged over ``batches``.

    Per-example values are weighted by the number of outputs they average
    (1 for many-to-one tasks, the steps for many-to-many ones), so the result
    is the mean over all predictions. A batch that ``continues`` the previous
    one starts from its final state.
    """
    was_training = model.training
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    count, state = 0, None
    for batch in batches:
        batch = batch.to(device)
        outputs, final = model(batch.x, state if batch.continues else None)
        weight = batch.x.shape[0] if task.readout == "all" else 1
        for key, values in task.per_example_metrics(outputs, batch.y).items():
            sums[key] += float(values.sum()) * weight
        count += batch.size * weight
        state = final
    model.train(was_training)
    return {key: total / count for key, total in sums.items()}


class Run:
    """Everything one run needs, built from its config.

    Construction is deterministic in ``config.train.seed``: the model's
    initial weights come from the global torch generator seeded with it, and
    training batches from a generator of their own.
    """

    def __init__(self, config: RunConfig, store: ResultStore, suite: str | None = None, data_dir: str | None = None):
        self.config = validate(config)
        self.store = store
        self.suite = suite
        self.run_id = config.run_id()
        self.dir = store.run_dir(self.run_id)
        self.device = torch.device(config.train.device)
        tc = config.train

        torch.manual_seed(tc.seed)
        t = config.task
        self.task = make_task(t.name, t.seq_len, t.variant, val_size=t.val_size, test_size=t.test_size,
                              train_size=t.train_size, data_seed=t.data_seed, data_dir=data_dir)
        cell = make_cell(config.cell.name, self.task.input_size, config.cell.hidden_size, **config.cell.options())
        self.model = SequenceModel(cell, self.task.output_size, self.task.readout, config.readout.init,
                                   config.readout.scale).to(self.device)
        self.estimator = make_estimator(config.gradient.name, seed=tc.seed, **config.gradient.options())
        self.sampler = make_sampler(config.sampler, self.task, self.model)
        self.continuation = make_continuation(config.continuation, self.model, self.task.updates_per_epoch(tc.batch_size),
                                              tc.seed)
        self.optimizer = make_optimizer(config.optimizer, self.model)
        self.log = make_log(tc.log)
        self.data_generator = seeded_generator("train-batches", tc.seed)
        self.probe = self.task.split("val")[0]
        self.probe = self.probe.select(torch.arange(min(tc.profile_examples, self.probe.size)))
        self.alignment_batch = self.task.fixed_train_batch(tc.batch_size, tc.seed) if tc.alignment_every else None

        self.step = 0
        self.saved_step: int | None = None  #: the update of the checkpoint on disk
        self.examples_seen = 0
        self.wall_time = 0.0
        self.losses: list[float] = []  #: training losses and gradient norms since the last evaluation
        self.norms: list[float] = []
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.carry: State | None = None  #: final state of the last batch, for carried-state streams

    # -- state --------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.dir / "checkpoint.pt"

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(), "step": self.step, "examples_seen": self.examples_seen,
            "wall_time": self.wall_time, "losses": self.losses, "norms": self.norms, "history": self.history, "best": self.best,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "data_generator": self.data_generator.get_state(), "torch_rng": torch.get_rng_state(),
            "sampler": self.sampler.state_dict(), "carry": self.carry, "estimator": self.estimator.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.examples_seen, self.wall_time = state["step"], state["examples_seen"], state["wall_time"]
        self.saved_step = self.step
        # (checkpoints of earlier versions hold no losses since the last evaluation)
        self.losses, self.norms = state.get("losses", []), state.get("norms", [])
        self.history, self.best = state["history"], state["best"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.data_generator.set_state(state["data_generator"])
        torch.set_rng_state(state["torch_rng"])
        self.sampler.load_state_dict(state["sampler"])
        self.carry = state["carry"]
        self.estimator.load_state_dict(state["estimator"])

    def save_checkpoint(self) -> None:
        atomic_torch_save(self.state_dict(), self.checkpoint_path)
        self.saved_step = self.step

    def kept(self) -> str:
        """What a stopped run leaves on disk, for its messages."""
        if self.saved_step is None:
            return "no checkpoint was written"
        return f"its last checkpoint (update {self.saved_step}) is kept in {self.checkpoint_path}"

    def write_metrics(self) -> None:
        atomic_write_text(self.dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))

    # -- the run ------------------------------------------------------------
    def prepare(self, resume: bool, force: bool) -> bool:
        """Decide how to start; returns False when the run is already finished."""
        row = self.store.get_run(self.run_id)
        has_checkpoint = self.checkpoint_path.exists()
        if force:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.store.reset_evals(self.run_id)
        elif row is not None and row["status"] == "finished":
            return False
        elif resume and has_checkpoint:
            self.load_state_dict(torch.load(self.checkpoint_path, weights_only=False))
        elif has_checkpoint:
            raise LongdepsError(f"run {self.run_id} stopped at a checkpoint ({row['status'] if row else 'unknown'}, "
                                f"{self.checkpoint_path}); pass --resume to continue it or --force to start over")
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.dir / "config.json", json.dumps(self.config.to_dict(), indent=2) + "\n")
        self.store.start_run(self.run_id, self.config.to_dict(), self.task.metric, self.task.variant, self.suite,
                             seq_len=self.task.seq_len)
        self.store.reset_evals(self.run_id, after_step=self.step)
        self.write_metrics()
        return True

    def execute(self, resume: bool = False, force: bool = False, progress: bool = True) -> RunResult:
        """Train to ``train.steps`` updates (or until solved), then score the test set.

        ``progress``: a bar on a terminal, else a line per evaluation (``longdeps.progress``).
        On SIGINT or SIGTERM the update under way is finished and saved, and ``Interrupted`` raised.
        """
        if not self.prepare(resume, force):
            return RunResult(self.run_id, "finished", json.loads((self.dir / "result.json").read_text()), self.dir)
        tc = self.config.train
        shown = Progress(progress, f"{self.run_id} {self.config.cell.name} {self.task.name}", tc.steps, self.step)
        if self.saved_step is not None:
            shown.note(f"resumes from update {self.step} of {tc.steps} ({self.checkpoint_path})")
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
                    compiling = self.model.cell.statistics().get("compile_seconds")
                    if self.step == first + 1 and compiling:
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
                if self.saved_step != self.step:
                    self.save_checkpoint()
                raise Interrupted(f"{signal.Signals(received[0]).name} received: run {self.run_id} stopped and saved "
                                  f"at update {self.step} in {self.checkpoint_path} (continue with --resume)", received[0])
        except LongdepsError as err:
            self.store.finish_run(self.run_id, "failed", self.summary(), error=str(err))
            raise
        except Interrupted as err:
            self.store.finish_run(self.run_id, "interrupted", self.summary(), error=str(err))
            raise
        except KeyboardInterrupt:
            message = f"interrupted during update {self.step + 1}; run {self.run_id} stopped, {self.kept()}"
            self.store.finish_run(self.run_id, "interrupted", self.summary(), error=message)
            raise Interrupted(message, signal.SIGINT) from None
        finally:
            shown.close()
            if self.log:
                self.log.close()
        return self.finish(shown)

    def train_step(self) -> tuple[float, float]:
        """One update; returns the batch loss and the gradient norm before clipping."""
        batch = self.sampler.next_batch(self.config.train.batch_size, self.data_generator).to(self.device)
        if not torch.isfinite(batch.x).all():
            raise LongdepsError(f"training batch at step {self.step} contains non-finite inputs (nan/inf); run {self.run_id} stopped, "
                                f"{self.kept()}")
        self.optimizer.zero_grad(set_to_none=True)
        with self.continuation.perturbation(self.model):
            losses, final = self.estimator.backward(self.model, batch, self.task, self.carry if batch.continues else None)
        loss = float(losses.mean())
        clip = self.config.gradient.clip_norm
        norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip is not None else float("inf")))
        for name, value in (("loss", loss), ("gradient norm", norm)):
            if value != value or value in (float("inf"), float("-inf")):
                raise LongdepsError(f"{name} became {value} at step {self.step}; run {self.run_id} diverged, "
                                    f"{self.kept()}")
        self.optimizer.step()
        self.carry = detach_state(final) if self.task.ordered else None
        self.examples_seen += batch.size
        return loss, norm

    def population_inputs(self, examples: int | None = None) -> Iterator[torch.Tensor]:
        """Training inputs for one pass of population statistics, in batches of ``train.batch_size``:
        the first ``examples`` of the training set (all of it by default), or for a generated
        task 10,000 examples drawn with a generator of their own. For carried-state streams an
        example is one stream's segment, read in order from the start of the epoch."""
        size, batch_size = self.task.train_size, self.config.train.batch_size
        if self.task.ordered:
            segments = self.task.segments(batch_size)
            for k in range(segments if examples is None else min(segments, -(-examples // batch_size))):
                yield self.task.train_segment(k, batch_size).x.to(self.device)
            return
        total = examples or size or 10_000
        generator = seeded_generator("population", self.config.train.seed, self.step)
        for start in range(0, min(total, size) if size else total, batch_size):
            if size:
                batch = self.task.train_examples(torch.arange(start, min(start + batch_size, total, size)))
            else:
                batch = self.task.sample(min(batch_size, total - start), generator)
            yield batch.x.to(self.device)

    def recompute_population(self, examples: int | None = None) -> int:
        """The cell's ``before_evaluation`` pass over training data (batch norm: population
        statistics); returns the number of batches it read (0 for cells that need none)."""
        return self.model.cell.before_evaluation(self.model, self.population_inputs(examples))

    def record_eval(self, smoothing: dict[str, float]) -> dict[str, Any]:
        """Score the model on the validation set, take the gradient profile, and record both with the
        training losses since the last evaluation (in the store, ``metrics.jsonl`` and ``train.log``)."""
        losses, norms = self.losses, self.norms
        self.losses, self.norms = [], []
        if self.config.train.population_examples != 0:
            self.recompute_population(self.config.train.population_examples)
        val = evaluate(self.model, self.task, self.task.split("val"), self.device)
        self.model.eval()
        profile = hidden_gradient_norms(self.model, self.probe.to(self.device), self.task).mean(dim=1)
        self.model.train()
        record = {
            "step": self.step, "examples_seen": self.examples_seen, "wall_time": round(self.wall_time, 3),
            "train_loss": sum(losses) / len(losses), "grad_norm": sum(norms) / len(norms), "grad_norm_max": max(norms),
            "val": val, "val_metric": val[self.task.metric], "solved": bool(self.task.solved(val)),
            "grad_profile": [float(v) for v in profile],
            "smoothing": {**smoothing, **self.continuation.statistics(self.model, self.probe.x.to(self.device))},
            **self.sampler.statistics(),
            **self.estimator.statistics(),
            **self.model.cell.statistics(),
        }
        if self.alignment_due():
            record["alignment"] = alignment(self.model, self.alignment_batch.to(self.device), self.task, self.estimator)
        self.history.append(record)
        self.store.add_eval(self.run_id, record)
        with open(self.dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.log:
            self.log.write(self.dir, self.history)
        if self.best is None or self.is_better(val, self.best["val"]):
            self.best = {"step": self.step, "val": val, "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
        return record

    def alignment_due(self) -> bool:
        """Whether this evaluation measures the gradient's alignment: ``train.alignment_every``
        updates or more after the last one that did."""
        every = self.config.train.alignment_every
        if not every:
            return False
        last = max((r["step"] for r in self.history if "alignment" in r), default=0)
        return self.step - last >= every

    def is_better(self, new: dict[str, float], old: dict[str, float]) -> bool:
        """Higher (or lower) headline metric, then lower loss."""
        sign = 1 if self.task.higher_is_better else -1
        return (sign * new[self.task.metric], -new["loss"]) > (sign * old[self.task.metric], -old["loss"])

    def summary(self) -> dict[str, Any]:
        solved = [r["step"] for r in self.history if r["solved"]]
        return {
            "run_id": self.run_id, "steps_done": self.step, "examples_seen": self.examples_seen,
            "wall_time": round(self.wall_time, 3), "solved": bool(solved), "solved_step": solved[0] if solved else None,
            "best_val_metric": self.best["val"][self.task.metric] if self.best else None,
            "best_val_step": self.best["step"] if self.best else None,
        }

    def finish(self, shown: Progress) -> RunResult:
        """Score the best-validation weights on the test set and record the result."""
        final_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.best["model"])
        test = evaluate(self.model, self.task, shown.batches(self.task.split("test"), "test"), self.device)
        self.model.load_state_dict(final_state)
        summary = {**self.summary(), "test_metric": test[self.task.metric], "test_loss": test["loss"], "test": test,
                   **self.task.describe(), **self.estimator.describe(), **self.model.cell.statistics()}
        atomic_write_text(self.dir / "result.json", json.dumps(summary, indent=2) + "\n")
        self.store.finish_run(self.run_id, "finished", summary)
        return RunResult(self.run_id, "finished", summary, self.dir)


def run_experiment(config: RunConfig, results: str | Path = "longdeps-results", resume: bool = False,
                   force: bool = False, progress: bool = True, suite: str | None = None,
                   data_dir: str | None = None) -> RunResult:
    """Build and execute one run, recording it in the store at ``results``.

    ``data_dir`` is where data sets are read from (see ``longdeps.data``); it
    is not part of the config, so a run has the same id on every machine.
    """
    return Run(config, ResultStore(results), suite, data_dir).execute(resume=resume, force=force, progress=progress)
