"""Pixel-by-pixel image tasks on the real MNIST / Fashion-MNIST files.

Expected values are computed here from ``read_idx`` and the published
figures (shared/data/PROVENANCE.md), independently of the task code.
"""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from longdeps.config import RunConfig
from longdeps.data import data_root
from longdeps.data.idx import read_idx
from longdeps.errors import LongdepsError
from longdeps.experiment import run_experiment
from longdeps.tasks import TASKS, make_task, images

ROOT = data_root()
MNIST, FASHION = ROOT / "mnist", ROOT / "fashion-mnist"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(), reason=f"no MNIST under {ROOT}: set LONGDEPS_DATA to a folder "
                                                            "with mnist/ or run `longdeps data fetch mnist`")
needs_fashion = pytest.mark.skipif(not FASHION.is_dir(), reason=f"no Fashion-MNIST under {ROOT}: "
                                                                "run `longdeps data fetch fashion-mnist`")

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist() -> dict[str, np.ndarray]:
    """The four MNIST arrays, read directly."""
    return {name: read_idx(MNIST / f"{name}-idx{3 if 'images' in name else 1}-ubyte.gz")
            for name in ("train-images", "train-labels", "t10k-images", "t10k-labels")}


@pytest.fixture(scope="module")
def smnist():
    return make_task("smnist")


def pixels(image: np.ndarray) -> np.ndarray:
    """A 28x28 image as the sequence of its pixels in scanline order, / 255, float32 ``(784,)``."""
    t = np.arange(784)
    return image[t // 28, t % 28].astype(np.float32) / np.float32(255)


# -- IDX files ------------------------------------------------------------------

@needs_mnist
def test_read_idx_gives_mnist_shapes_and_published_label_counts(mnist):
    assert mnist["train-images"].shape == (60000, 28, 28) and mnist["t10k-images"].shape == (10000, 28, 28)
    assert mnist["train-images"].dtype == np.uint8 and mnist["train-images"].flags.writeable
    assert np.bincount(mnist["train-labels"]).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist["t10k-labels"]).tolist() == TEST_COUNTS


@needs_fashion
def test_read_idx_gives_fashion_mnist_shapes_and_balanced_classes():
    assert read_idx(FASHION / "train-images-idx3-ubyte.gz").shape == (60000, 28, 28)
    assert read_idx(FASHION / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)
    assert np.bincount(read_idx(FASHION / "train-labels-idx1-ubyte.gz")).tolist() == [6000] * 10
    assert np.bincount(read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")).tolist() == [1000] * 10


@needs_mnist
def test_read_idx_reads_plain_files_and_big_endian_types(tmp_path, mnist):
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    assert np.array_equal(read_idx(plain), mnist["t10k-labels"])
    values = np.arange(-6, 6, dtype=">i4").reshape(3, 4)
    ints = tmp_path / "ints.idx"
    ints.write_bytes(b"\0\0\x0c\x02" + struct.pack(">II", 3, 4) + values.tobytes())
    read = read_idx(ints)
    assert read.dtype == np.int32 and np.array_equal(read, values)


@pytest.mark.parametrize("content, message", [
    (b"\x08\x03\0\0" + bytes(20), "not an IDX file"),                    # wrong magic
    (b"\0\0\x08\x01" + struct.pack(">I", 10) + bytes(9), "17 bytes, expected 18"),  # one value short
    (b"\0\0\x08\x03" + bytes(4), "too short for the header"),
    (b"\x1f\x8b" + bytes(20), "not a readable gzip file"),
])
def test_read_idx_refuses_bad_files_in_one_line_naming_them(tmp_path, content, message):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(LongdepsError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# -- the tasks ------------------------------------------------------------------

def test_tasks_are_registered_with_their_sizes_as_class_attributes():
    for name, variants in (("smnist", ("scanline",)), ("pmnist", ("rs92916", "cooijmans2016")),
                           ("sfashion", ("scanline",))):
        cls = TASKS[name]
        assert cls.variants == variants and cls.default_seq_len == 784 and cls.n_classes == 10
        assert cls.readout == "last" and cls.metric == "accuracy" and cls.higher_is_better


@needs_mnist
def test_smnist_reads_pixels_row_major_in_zero_one(smnist, mnist):
    index = torch.tensor([0, 7, 49999])
    batch = smnist.train_examples(index)
    assert batch.x.shape == (784, 3, 1) and batch.x.dtype == torch.float32 and batch.y.dtype == torch.long
    assert batch.x.min() >= 0 and batch.x.max() <= 1 and batch.x.max() == 1
    for b, i in enumerate(index.tolist()):
        assert np.array_equal(batch.x[:, b, 0].numpy(), pixels(mnist["train-images"][i]))
    assert batch.y.tolist() == mnist["train-labels"][index.numpy()].tolist()
    assert smnist.input_size == 1 and smnist.output_size == 10 and smnist.seq_len == 784


@needs_mnist
def test_pmnist_rs92916_is_one_fixed_permutation_of_the_smnist_pixels(smnist):
    expected = np.random.RandomState(92916).permutation(784)
    first, second = make_task("pmnist"), make_task("pmnist", variant="rs92916")
    assert first.variant == "rs92916"
    assert np.array_equal(first.index_map, expected) and np.array_equal(second.index_map, expected)
    assert sorted(first.index_map.tolist()) == list(range(784))
    index = torch.tensor([3, 1000, 42000])
    assert torch.equal(first.train_examples(index).x, smnist.train_examples(index).x[torch.from_numpy(expected)])


@needs_mnist
def test_pmnist_cooijmans2016_is_the_bn_lstm_codes_map_with_repeats(smnist):
    state = np.random.get_state()
    try:
        np.random.seed(1)
        expected = np.random.randint(0, 784, size=784)  # Cooijmans et al.'s call, global generator
    finally:
        np.random.set_state(state)
    task = make_task("pmnist", variant="cooijmans2016")
    assert np.array_equal(task.index_map, expected)
    distinct = len(np.unique(expected))
    assert distinct == 501 and abs(distinct - 784 * (1 - (1 - 1 / 784) ** 784)) < 10  # expectation ~495.8
    index = torch.tensor([5, 25000])
    assert torch.equal(task.train_examples(index).x, smnist.train_examples(index).x[torch.from_numpy(expected)])


@needs_mnist
def test_splits_are_first_50k_train_last_10k_validation_official_test(smnist, mnist):
    assert smnist.train_size == 50000
    assert torch.equal(smnist.train_examples(torch.tensor([49999])).x[:, 0, 0],
                       torch.from_numpy(pixels(mnist["train-images"][49999])))
    val, test = smnist.split("val"), smnist.split("test")
    assert [b.size for b in val] == [500] * 20 and [b.size for b in test] == [500] * 20
    assert torch.cat([b.y for b in val]).tolist() == mnist["train-labels"][50000:].tolist()
    assert torch.cat([b.y for b in test]).tolist() == mnist["t10k-labels"].tolist()
    for batch, b, image in ((val[0], 0, mnist["train-images"][50000]), (val[-1], 499, mnist["train-images"][59999]),
                            (test[3], 17, mnist["t10k-images"][1517])):
        assert np.array_equal(batch.x[:, b, 0].numpy(), pixels(image))
    assert smnist.split("val") is val  # built once


@needs_mnist
def test_sizes_take_the_first_examples_of_a_split(mnist):
    task = make_task("smnist", val_size=1200, test_size=300, train_size=1000)
    assert task.train_size == 1000
    assert [b.size for b in task.split("val")] == [500, 500, 200] and [b.size for b in task.split("test")] == [300]
    assert torch.cat([b.y for b in task.split("val")]).tolist() == mnist["train-labels"][50000:51200].tolist()
    with pytest.raises(LongdepsError, match="val_size=20000"):
        make_task("smnist", val_size=20000)


@pytest.mark.parametrize("seq_len", [100, 783, 785, 1000])
def test_seq_len_other_than_784_is_refused(seq_len):
    with pytest.raises(LongdepsError, match=f"seq_len={seq_len}"):
        make_task("smnist", seq_len=seq_len)


def test_missing_data_fails_when_the_task_is_built(tmp_path):
    with pytest.raises(LongdepsError, match="longdeps data fetch mnist"):
        make_task("pmnist", data_dir=tmp_path)


@needs_mnist
def test_metrics_solved_rule_and_class_prior_baseline(smnist, mnist):
    y = smnist.split("val")[0].y
    perfect = smnist.per_example_metrics(10 * torch.nn.functional.one_hot(y, 10).float(), y)
    assert perfect["accuracy"].mean() == 1 and perfect["loss"].max() < 1e-3
    wrong_logits = 10 * torch.nn.functional.one_hot((y + 1) % 10, 10).float()
    wrong = smnist.per_example_metrics(wrong_logits, y)
    assert wrong["accuracy"].sum() == 0 and torch.equal(wrong["loss"], smnist.per_example_loss(wrong_logits, y))
    assert smnist.solved({"accuracy": 0.98}) and not smnist.solved({"accuracy": 0.979})
    assert "our choice" in smnist.solved_rule and "0.98" in smnist.solved_rule
    prior = np.bincount(mnist["train-labels"][:50000], minlength=10) / 50000
    val = np.bincount(mnist["train-labels"][50000:], minlength=10) / 10000
    base = smnist.baseline()
    assert base["accuracy"] == pytest.approx(val[prior.argmax()]) and prior.argmax() == 1
    assert base["loss"] == pytest.approx(-(val * np.log(prior)).sum()) and abs(base["loss"] - math.log(10)) < 0.01


@needs_mnist
def test_pmnist_and_sfashion_thresholds():
    assert make_task("pmnist").solved({"accuracy": 0.95}) and not make_task("pmnist").solved({"accuracy": 0.94})
    if FASHION.is_dir():
        task = make_task("sfashion")
        assert task.solved({"accuracy": 0.88}) and not task.solved({"accuracy": 0.87})
        assert task.train_examples(torch.tensor([0])).x.shape == (784, 1, 1)


@needs_mnist
def test_decoded_files_are_shared_between_task_instances(smnist):
    smnist.part("train")
    before = images._decoded.cache_info()
    make_task("smnist").part("test")
    after = images._decoded.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 4


@needs_mnist
def test_a_short_training_run_on_smnist(tmp_path):
    config = RunConfig().with_overrides([
        "task.name=smnist", "task.val_size=64", "task.test_size=64", "cell.hidden_size=8", "train.steps=2",
        "train.eval_every=2", "train.checkpoint_every=2", "train.batch_size=16"])
    result = run_experiment(config, tmp_path, progress=False)
    assert result.summary["steps_done"] == 2 and 0 <= result.summary["test_metric"] <= 1
    assert result.summary["task"] == "smnist" and result.summary["baseline"]["accuracy"] > 0
