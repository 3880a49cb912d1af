"""Character-level language modelling: predict the next character, in bits per character.

Tasks ``ptb-char`` (Penn Treebank, Mikolov et al. 2012 split, 50 symbols)
and ``shakespeare-char`` (Tiny Shakespeare, 65 symbols, first 90% of the text
for training, next 5% validation, last 5% test). The vocabulary is the sorted
set of the training symbols (PTB; "_" marks word boundaries and "\\n"
sentence ends) or of the whole text (Shakespeare). Inputs are one-hot
``(T, B, V)``, outputs logits ``(T, B, V)``, targets ``(T, B)`` (the input
shifted by one character).

The two training protocols of the papers are the task's variants; ``seq_len``
is the number of predictions per window or segment (default 100):

- ``windows`` (Cooijmans et al. 2016): the training text is cut into
  non-overlapping windows of ``seq_len + 1`` characters; each window is an
  independent example that starts from the initial state, and the sampler
  shuffles them. (The BN-LSTM code also shifts the windows by a random offset
  every epoch; we keep them fixed, so every target is seen once per epoch.)
- ``stream`` (the asRNN code): the training text is cut into ``B`` contiguous
  streams (``B`` = the batch size) and read in order, ``seq_len`` steps at a
  time; every segment starts from the final state of the previous one
  (carried state, truncated BPTT). Every target is seen once per epoch.

Evaluation reads the whole validation or test text, cut into ``eval_streams``
contiguous streams (10, as in the asRNN code) and those into segments of
``seq_len``, so that every character is predicted once; BPC is the mean over
all of them. It follows the training protocol: ``stream`` carries the state
from segment to segment, ``windows`` starts every segment from the initial
state (a model trained on windows has never run longer; one trained on
streams has never started from a reset state except once per epoch, and is
measured badly from one).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from longdeps.data import locate
from longdeps.errors import LongdepsError
from longdeps.tasks import register
from longdeps.tasks.base import Batch, Task


@lru_cache(maxsize=None)
def _read_symbols(path: Path, spaced: bool) -> tuple[str, ...]:
    """The symbols of a text file: space-separated tokens (``spaced``) or characters."""
    text = path.read_text(encoding="utf-8")
    if not spaced:
        return tuple(text)
    tokens = text.split(" ")
    return tuple(tokens[:-1] if tokens and tokens[-1] == "" else tokens)


def _encode(symbols: Sequence[str], vocabulary: dict[str, int], source: str) -> torch.Tensor:
    """Symbol ids as a 1-D ``uint8`` tensor (vocabularies here have < 256 symbols)."""
    try:
        return torch.tensor([vocabulary[s] for s in symbols], dtype=torch.uint8)
    except KeyError as err:
        raise LongdepsError(f"{source}: symbol {err.args[0]!r} is not in the vocabulary") from None


def streams(ids: torch.Tensor, count: int) -> torch.Tensor:
    """Cut ``ids`` into ``count`` contiguous streams, ``(count, N // count)``; the tail is dropped."""
    length = len(ids) // count
    if length < 2:
        raise LongdepsError(f"{len(ids)} symbols are too few for {count} streams")
    return ids[: count * length].view(count, length)


class SegmentBatches(Sequence[Batch]):
    """The segments of a set of streams, read in order, built when accessed.

    Segment ``k`` holds inputs ``streams[:, k*L : (k+1)*L]`` and targets one
    symbol later, ``L = seq_len`` (the last segment may be shorter); with
    ``carry`` every segment after the first ``continues`` the previous one,
    otherwise each starts from the initial state.
    """

    def __init__(self, task: "CharLanguageModel", stream_ids: torch.Tensor, seq_len: int, carry: bool = True):
        self.task, self.ids, self.seq_len, self.carry = task, stream_ids, seq_len, carry
        self.count = math.ceil((stream_ids.shape[1] - 1) / seq_len)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> Batch:
        if not 0 <= k < self.count:
            raise IndexError(k)
        window = self.ids[:, k * self.seq_len: (k + 1) * self.seq_len + 1].T  # (L + 1, B)
        return Batch(self.task.one_hot(window[:-1]), window[1:].long(), y_batch_dim=1, continues=self.carry and k > 0)


class CharLanguageModel(Task):
    """Next-character prediction on a text data set (see the module docstring)."""

    variants = ("windows", "stream")
    readout = "all"
    metric = "bpc"
    higher_is_better = False
    default_val_size = None
    default_test_size = None
    eval_streams = 10
    #: data set in ``longdeps.data`` and its files
    dataset: str
    files: dict[str, str]
    spaced: bool
    target_bpc: float

    def __init__(self, seq_len: int | None = None, variant: str | None = None, **options):
        super().__init__(seq_len, variant, **options)
        if self.fixed_train_size is not None:
            raise LongdepsError(f"task.train_size does not apply to {self.name!r} (its training text is fixed)")
        self.paths = locate(self.dataset, self.data_dir)
        self._vocabulary: list[str] = []
        self._ids: dict[str, torch.Tensor] = {}
        self._segments: dict[tuple[str, int], SegmentBatches] = {}

    # -- data ---------------------------------------------------------------
    def texts(self) -> dict[str, Sequence[str]]:
        """The train/val/test symbol sequences."""
        return {split: _read_symbols(self.paths[file], self.spaced) for split, file in self.files.items()}

    def vocabulary_symbols(self, texts: dict[str, Sequence[str]]) -> list[str]:
        return sorted(set(texts["train"]))

    @property
    def vocabulary(self) -> list[str]:
        """The symbols, in id order."""
        self.ids()
        return self._vocabulary

    def ids(self) -> dict[str, torch.Tensor]:
        """Symbol ids of each split, 1-D ``uint8``; read once."""
        if not self._ids:
            texts = self.texts()
            self._vocabulary = self.vocabulary_symbols(texts)
            index = {s: i for i, s in enumerate(self._vocabulary)}
            self._ids = {split: _encode(symbols, index, f"{self.name} {split}") for split, symbols in texts.items()}
        return self._ids

    @property
    def input_size(self) -> int:
        return len(self.vocabulary)

    @property
    def output_size(self) -> int:
        return len(self.vocabulary)

    def one_hot(self, ids: torch.Tensor) -> torch.Tensor:
        """``(T, B)`` ids -> ``(T, B, V)`` float32 one-hot inputs."""
        return F.one_hot(ids.long(), len(self.vocabulary)).float()

    @property
    def train_size(self) -> int:
        """Windows per epoch (``windows``); training symbols (``stream``, read by segments)."""
        return (len(self.ids()["train"]) - 1) // (self.seq_len + 1) if self.variant == "windows" else len(self.ids()["train"])

    @property
    def ordered(self) -> bool:
        return self.variant == "stream"

    def train_examples(self, index: torch.Tensor) -> Batch:
        """Windows ``index`` of the ``windows`` protocol, each from the initial state."""
        starts = index * (self.seq_len + 1)
        window = self.ids()["train"][starts[None, :] + torch.arange(self.seq_len + 1)[:, None]]  # (L + 1, B)
        return Batch(self.one_hot(window[:-1]), window[1:].long(), y_batch_dim=1)

    def stream_segments(self, split: str, count: int) -> SegmentBatches:
        key = (split, count)
        if key not in self._segments:
            ids = self.ids()[split]
            size = self.val_size if split == "val" else self.test_size if split == "test" else None
            carry = split == "train" or self.ordered
            self._segments[key] = SegmentBatches(self, streams(ids[:size] if size else ids, count), self.seq_len, carry)
        return self._segments[key]

    def segments(self, batch_size: int) -> int:
        """Segments per epoch of the ``stream`` protocol with ``batch_size`` streams."""
        return len(self.stream_segments("train", batch_size))

    def train_segment(self, k: int, batch_size: int) -> Batch:
        return self.stream_segments("train", batch_size)[k]

    def split(self, name: str) -> Sequence[Batch]:
        return self.stream_segments(name, self.eval_streams)

    # -- scoring ------------------------------------------------------------
    def per_example_loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats) over each sequence's steps, ``(B,)``."""
        return F.cross_entropy(outputs.permute(1, 2, 0), y.T, reduction="none").mean(dim=1)

    def per_example_metrics(self, outputs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = self.per_example_loss(outputs, y)
        correct = (outputs.argmax(dim=-1) == y).float().mean(dim=0)
        return {"loss": loss, "bpc": loss / math.log(2), "accuracy": correct}

    def solved(self, summary: dict[str, float]) -> bool:
        return summary["bpc"] <= self.target_bpc

    def target(self) -> dict[str, float]:
        return {"bpc": self.target_bpc}

    def baseline(self) -> dict[str, float]:
        """The unigram predictor (training symbol frequencies) on the test text."""
        ids = self.ids()
        prior = torch.bincount(ids["train"].long(), minlength=len(self.vocabulary)).double()
        prior /= prior.sum()
        test = ids["test"].long()
        nats = float(-(prior[test].clamp_min(1e-12).log()).mean())
        return {"loss": nats, "bpc": nats / math.log(2), "accuracy": float((test == prior.argmax()).double().mean())}


@register
class PennTreebankChars(CharLanguageModel):
    name = "ptb-char"
    description = ("Penn Treebank characters (Mikolov split, 50 symbols), bits per character; "
                   "variants: windows (Cooijmans et al. 2016), stream (asRNN code)")
    dataset = "ptb-char"
    files = {"train": "ptb.char.train.txt", "val": "ptb.char.valid.txt", "test": "ptb.char.test.txt"}
    spaced = True
    target_bpc = 1.5
    solved_rule = "validation BPC <= 1.5 (our choice: about where the asRNN and expRNN models of the asRNN README end)"
    n_classes = 50


@register
class ShakespeareChars(CharLanguageModel):
    name = "shakespeare-char"
    description = ("Tiny Shakespeare characters (65 symbols, contiguous 90/5/5 split), bits per character; "
                   "variants: windows, stream")
    dataset = "tinyshakespeare"
    files = {"text": "input.txt"}
    spaced = False
    target_bpc = 1.6
    solved_rule = "validation BPC <= 1.6 (our choice)"
    n_classes = 65

    def texts(self) -> dict[str, Sequence[str]]:
        text = _read_symbols(self.paths["input.txt"], spaced=False)
        train_end, val_end = int(0.9 * len(text)), int(0.95 * len(text))
        return {"train": text[:train_end], "val": text[train_end:val_end], "test": text[val_end:]}

    def vocabulary_symbols(self, texts: dict[str, Sequence[str]]) -> list[str]:
        return sorted(set().union(*texts.values()))
