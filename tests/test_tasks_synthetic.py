"""Synthetic tasks: each variant's generator against its definition, written out here independently.

Expected windows are 0-based and inclusive, derived by hand from the sources
named in ``longdeps.tasks.synthetic``.
"""

from __future__ import annotations

import math

import pytest
import torch

from longdeps.errors import LongdepsError
from longdeps.tasks import TASKS, make_task


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


PAIR = [("adding", v) for v in ("arjovsky2016", "hs1997", "ms2011", "pascanu2013", "cn2016")] + \
       [("multiplication", v) for v in ("pascanu2013", "hs1997", "ms2011", "cn2016")]
ORDER = [(name, v) for name in ("temporal-order", "temporal-order-3") for v in ("pascanu2013", "ms2011", "cn2016")]
ALL = PAIR + ORDER + [("copy", "arjovsky2016"), ("copy", "exprnn")]

# target as a function of the two marked values
TARGET = {
    ("adding", "arjovsky2016"): lambda a, b: a + b,
    ("adding", "hs1997"): lambda a, b: 0.5 + (a + b) / 4,
    ("adding", "ms2011"): lambda a, b: a + b,
    ("adding", "pascanu2013"): lambda a, b: (a + b) / 2,
    ("adding", "cn2016"): lambda a, b: (a + b) / 2,
    ("multiplication", "pascanu2013"): lambda a, b: a * b,
    ("multiplication", "hs1997"): lambda a, b: a * b,
    ("multiplication", "ms2011"): lambda a, b: a * b,
    ("multiplication", "cn2016"): lambda a, b: a * b,
}
VALUES = {"arjovsky2016": (0.0, 1.0), "ms2011": (0.0, 1.0), "pascanu2013": (0.0, 1.0), "cn2016": (-1.0, 1.0)}


def value_range(name: str, variant: str) -> tuple[float, float]:
    if variant == "hs1997":
        return (-1.0, 1.0) if name == "adding" else (0.0, 1.0)
    return VALUES[variant]


def minus_one_steps(variant: str, L: int) -> set[int]:
    return {"hs1997": {0, L - 1}, "ms2011": {0, L - 4}}.get(variant, set())


def hs_first_pair_marked(T: int) -> float:
    # X1 on the first pair (1 in 10), or X2 there: rank 0 of T//2 - 1 unmarked pairs
    return 0.1 + 0.9 / (T // 2 - 1)


def pair_structure(name: str, variant: str, batch) -> tuple[int, torch.Tensor]:
    """Check what every pair batch must satisfy; returns L and the marked steps (2, B), ascending."""
    x, y = batch.x, batch.y
    L, B, C = x.shape
    assert C == 2 and x.dtype == torch.float32 and y.dtype == torch.float32 and y.shape == (B,)
    assert batch.y_batch_dim == 0
    marker = x[:, :, 1]
    assert ((marker == -1) | (marker == 0) | (marker == 1)).all()
    marked = marker == 1
    assert (marked.sum(0) == 2).all()
    steps = marked.t().nonzero()[:, 1].view(B, 2).t()
    # -1 exactly on the variant's start/end steps that are not marked
    expected = torch.zeros(L, B, dtype=torch.bool)
    for s in minus_one_steps(variant, L):
        expected[s] = True
    expected &= ~marked
    assert torch.equal(marker == -1, expected)
    a, b = x[steps, torch.arange(B), 0]
    torch.testing.assert_close(y, TARGET[name, variant](a, b), rtol=0, atol=1e-6)
    lo, hi = value_range(name, variant)
    assert x[:, :, 0].min() >= lo and x[:, :, 0].max() <= hi
    return L, steps


# -- registry ------------------------------------------------------------------

def test_registry_names_variants_and_defaults():
    assert TASKS["adding"].variants == ("arjovsky2016", "hs1997", "ms2011", "pascanu2013", "cn2016")
    assert TASKS["multiplication"].variants == ("pascanu2013", "hs1997", "ms2011", "cn2016")
    for name in ("temporal-order", "temporal-order-3"):
        assert TASKS[name].variants == ("pascanu2013", "ms2011", "cn2016")
    assert TASKS["copy"].variants == ("arjovsky2016", "exprnn")
    assert make_task("adding", 100).variant == "arjovsky2016"
    assert make_task("multiplication", 100).variant == "pascanu2013"
    for name, variant in ALL:
        task = make_task(name, 100, variant)
        assert task.description and "\n" not in task.description
        assert task.solved_rule and task.describe()["solved_rule"] == task.solved_rule
        assert task.higher_is_better
        # the target's thresholds are the rule's: met, solved; missed by one of them, not
        target = task.describe()["target"]
        better = {k: v + 1e-6 if k != "mse" else v / 2 for k, v in target.items()}
        perfect = {"success": 1.0, "accuracy": 1.0, "mse": 0.0}
        assert target and task.solved({**perfect, **better})
        for key, value in target.items():
            assert not task.solved({**perfect, **better, key: value - 1e-6 if key != "mse" else value * 2})


def test_bad_variant_names_it():
    with pytest.raises(LongdepsError, match="bogus"):
        make_task("adding", 100, "bogus")
    with pytest.raises(LongdepsError, match="ms2011"):
        make_task("copy", 100, "ms2011")


# -- adding and multiplication ---------------------------------------------------

# marked windows at T = 100 for the fixed-window variants
PAIR_WINDOWS_T100 = {
    "arjovsky2016": [(0, 49), (50, 99)],
    "ms2011": [(1, 9), (10, 49)],
    "cn2016": [(0, 10), (11, 55)],  # T' = ceil((11/10) * 100) = 111 in double precision
}
LENGTHS_T100 = {"arjovsky2016": (100, 100), "hs1997": (100, 110), "ms2011": (101, 110),
                "pascanu2013": (100, 109), "cn2016": (100, 100)}


@pytest.mark.parametrize("name,variant", PAIR)
def test_pair_generator_matches_definition(name, variant):
    task = make_task(name, 100, variant)
    g = gen(1)
    lengths, first, second = [], [], []
    for _ in range(60):
        batch = task.sample(100, g)
        L, steps = pair_structure(name, variant, batch)
        lengths.append(L)
        if variant == "pascanu2013":  # windows depend on the drawn length l
            k, m = int(L * .1), int(L * .4)
            assert (steps[0] <= k - 1).all() and (steps[1] >= k).all() and (steps[1] <= k + m - 1).all()
        first.append(steps[0])
        second.append(steps[1])
    first, second = torch.cat(first), torch.cat(second)
    lo_len, hi_len = LENGTHS_T100[variant]
    assert min(lengths) == lo_len and max(lengths) == hi_len
    if variant in PAIR_WINDOWS_T100:
        (a0, a1), (b0, b1) = PAIR_WINDOWS_T100[variant]
        assert (first.min(), first.max(), second.min(), second.max()) == (a0, a1, b0, b1)
    elif variant == "pascanu2013":
        assert (first.min(), first.max(), second.min(), second.max()) == (0, 9, 10, 52)  # l = 109: 10 + 43 - 1
    else:  # hs1997: X1 among the first ten pairs, X2 among the first 49 unmarked ones -> both in [0, 49]
        assert first.min() == 0 and first.max() == 9 and second.max() == 49
        assert (first <= 9).all()
        frac = (first == 0).float().mean().item()
        assert abs(frac - hs_first_pair_marked(100)) < 0.02


@pytest.mark.parametrize("name,variant", PAIR)
def test_pair_values_are_uniform(name, variant):
    batch = make_task(name, 100, variant).sample(2000, gen(2))
    free = batch.x[1:, :, 1] == 0  # unmarked steps (step 0 may hold H&S's neutral value)
    values = batch.x[1:, :, 0][free]
    lo, hi = value_range(name, variant)
    assert abs(values.mean().item() - (lo + hi) / 2) < 5e-3
    assert abs(values.var().item() / ((hi - lo) ** 2 / 12) - 1) < 0.02
    marked = batch.x[1:, :, 0][batch.x[1:, :, 1] == 1]  # marked values: same law
    assert abs(marked.mean().item() - (lo + hi) / 2) < 0.05


@pytest.mark.parametrize("name", ["adding", "multiplication"])
def test_hs1997_marked_first_pair_counts_as_neutral(name):
    batch = make_task(name, 20, "hs1997").sample(4000, gen(3))
    pair_structure(name, "hs1997", batch)
    first_marked = batch.x[0, :, 1] == 1
    assert 0.15 < first_marked.float().mean() < 0.25  # 0.1 + 0.9 / 9 = 0.2
    neutral = 0.0 if name == "adding" else 1.0
    assert (batch.x[0, first_marked, 0] == neutral).all()


@pytest.mark.parametrize("name,variant", [nv for nv in PAIR if nv[1] in ("hs1997", "ms2011", "pascanu2013")])
def test_variable_lengths_one_per_batch_and_varying(name, variant):
    task = make_task(name, 100, variant)
    g = gen(4)
    lengths = {task.sample(3, g).x.shape[0] for _ in range(30)}
    lo, hi = LENGTHS_T100[variant]
    assert len(lengths) > 3 and min(lengths) >= lo and max(lengths) <= hi


@pytest.mark.parametrize("name,variant", PAIR)
def test_pair_baseline_monte_carlo(name, variant):
    T = 20 if variant == "hs1997" else 100
    task = make_task(name, T, variant)
    base = task.baseline()
    batch = task.sample(20000, gen(5))
    lo, hi = value_range(name, variant)
    if name == "adding":
        c = TARGET[name, variant](torch.tensor((lo + hi) / 2), torch.tensor((lo + hi) / 2)).item()
    elif variant == "hs1997":
        q = hs_first_pair_marked(T)
        c = (1 - q) / 4 + q / 2
    else:
        c = ((lo + hi) / 2) ** 2
    outputs = torch.full((batch.size, 1), c)
    metrics = task.per_example_metrics(outputs, batch.y)
    for key in ("mse", "success"):
        values = metrics[key]
        se = values.std().item() / math.sqrt(values.numel())
        assert abs(values.mean().item() - base[key]) < 4 * se + 1e-4, key
    assert base["loss"] == base["mse"]
    summary = {k: v.mean().item() for k, v in metrics.items()}
    assert not task.solved(summary) and not task.solved(base)


def test_pair_baseline_values_from_methods_md():
    expected = {("adding", "arjovsky2016"): 1 / 6, ("adding", "ms2011"): 1 / 6, ("adding", "pascanu2013"): 1 / 24,
                ("adding", "cn2016"): 1 / 6, ("multiplication", "pascanu2013"): 7 / 144,
                ("multiplication", "ms2011"): 7 / 144, ("multiplication", "cn2016"): 1 / 9}
    for (name, variant), mse in expected.items():
        assert make_task(name, 100, variant).baseline()["mse"] == pytest.approx(mse)
    # H&S 1997: 1/24 when the first pair is never marked; marking it (prob q) leaves one value: 1/48
    q = hs_first_pair_marked(100)
    assert make_task("adding", 100, "hs1997").baseline()["mse"] == pytest.approx((1 - q) / 24 + q / 48)


@pytest.mark.parametrize("name,variant", PAIR)
def test_pair_loss_metrics_and_perfect_predictions(name, variant):
    task = make_task(name, 100, variant, val_size=200, test_size=200, eval_batch_size=100)
    assert task.readout == "last" and task.metric == "success" and (task.input_size, task.output_size) == (2, 1)
    batch = task.split("val")[0]
    outputs = batch.y.unsqueeze(1).clone()
    outputs[0, 0] += 0.5
    loss = task.per_example_loss(outputs, batch.y)
    assert loss.shape == (batch.size,) and loss[0] == pytest.approx(0.25) and (loss[1:] == 0).all()
    metrics = task.per_example_metrics(outputs, batch.y)
    assert set(metrics) == {"loss", "mse", "success"}
    assert metrics["success"][0] == 0 and (metrics["success"][1:] == 1).all()
    perfect = {k: v.mean().item() for k, v in task.per_example_metrics(batch.y.unsqueeze(1), batch.y).items()}
    assert task.solved(perfect)


def test_pair_success_thresholds_and_criteria():
    y = torch.zeros(4)

    def success(name, variant, errors):
        task = make_task(name, 100, variant)
        return task.per_example_metrics(torch.tensor(errors).unsqueeze(1), y)["success"].tolist()

    assert success("adding", "pascanu2013", [0.19, -0.199, 0.21, -0.3]) == [1, 1, 0, 0]  # (y - t)^2 > 0.04 errs
    assert success("adding", "cn2016", [0.079, -0.079, 0.081, 0.2]) == [1, 1, 0, 0]
    assert success("multiplication", "cn2016", [0.039, -0.039, 0.041, 0.08]) == [1, 1, 0, 0]
    assert success("adding", "ms2011", [0.039, -0.039, 0.041, 0.08]) == [1, 1, 0, 0]
    assert success("adding", "hs1997", [0.039, -0.039, 0.041, 0.08]) == [1, 1, 0, 0]
    assert success("adding", "arjovsky2016", [0.039, -0.039, 0.041, 0.08]) == [1, 1, 0, 0]

    def solved(name, variant, **summary):
        return make_task(name, 100, variant).solved({"loss": summary.get("mse", 0.0), **summary})

    assert solved("adding", "pascanu2013", success=1.0, mse=0.001)
    assert not solved("adding", "pascanu2013", success=0.9999, mse=0.001)
    for variant in ("cn2016", "ms2011"):  # strictly above 99% success (error rate below 1%)
        assert solved("adding", variant, success=0.995, mse=0.01)
        assert not solved("adding", variant, success=0.99, mse=0.01)
    assert solved("adding", "hs1997", success=1.0, mse=0.005)
    assert not solved("adding", "hs1997", success=1.0, mse=0.02)
    assert not solved("adding", "hs1997", success=0.999, mse=0.001)
    assert solved("multiplication", "hs1997", success=1 - 12 / 2000, mse=0.01)
    assert not solved("multiplication", "hs1997", success=1 - 13 / 2000, mse=0.01)
    assert solved("adding", "arjovsky2016", success=0.5, mse=0.0016)
    assert not solved("adding", "arjovsky2016", success=1.0, mse=0.0017)


# -- temporal order ----------------------------------------------------------------

ORDER_WINDOWS_T100 = {
    ("temporal-order", "pascanu2013"): [(10, 19), (50, 59)],
    ("temporal-order-3", "pascanu2013"): [(10, 19), (30, 39), (60, 69)],
    ("temporal-order", "cn2016"): [(9, 19), (39, 49)],  # 1-based [10, 20], [40, 50]
    ("temporal-order-3", "cn2016"): [(9, 19), (29, 39), (59, 69)],
    ("temporal-order", "ms2011"): [(1, 10), (40, 50)],
    ("temporal-order-3", "ms2011"): [(1, 10), (30, 40), (50, 60)],
}


def order_structure(task, batch) -> tuple[int, torch.Tensor]:
    """Check one-hot layout, marks and targets; returns L and relevant steps (n, B), ascending."""
    x, y = batch.x, batch.y
    L, B, C = x.shape
    n = 3 if task.name == "temporal-order-3" else 2
    framed = task.variant == "ms2011"
    assert C == (8 if framed else 6) and x.dtype == torch.float32 and y.dtype == torch.long and y.shape == (B,)
    assert ((x == 0) | (x == 1)).all() and (x.sum(-1) == 1).all()
    symbols = x.argmax(-1)
    relevant = symbols <= 1
    assert (relevant.sum(0) == n).all()
    steps = relevant.t().nonzero()[:, 1].view(B, n).t()
    bits = symbols[steps, torch.arange(B)]
    assert torch.equal(y, sum(bits[k] << k for k in range(n)))
    if framed:
        assert (symbols[0] == 7).all() and (symbols[-1] == 6).all()
        assert ((symbols[1:-1] >= 2) & (symbols[1:-1] <= 5) | relevant[1:-1]).all()
        assert torch.equal(y, torch.arange(B) % 2 ** n)
    else:
        assert symbols.max() <= 5
    return L, steps


@pytest.mark.parametrize("name,variant", ORDER)
def test_temporal_order_generator_matches_definition(name, variant):
    task = make_task(name, 100, variant)
    n = 3 if name == "temporal-order-3" else 2
    assert (task.output_size, task.readout, task.metric) == (2 ** n, "last", "accuracy")
    g = gen(6)
    lengths, all_steps, ys, distractors = [], [], [], []
    for _ in range(40):
        batch = task.sample(100, g)
        L, steps = order_structure(task, batch)
        lengths.append(L)
        all_steps.append(steps)
        ys.append(batch.y)
        symbols = batch.x.argmax(-1)
        distractors.append(symbols[(symbols >= 2) & (symbols <= 5)])
    steps = torch.cat(all_steps, dim=1)
    for k, (lo, hi) in enumerate(ORDER_WINDOWS_T100[name, variant]):
        assert (steps[k].min().item(), steps[k].max().item()) == (lo, hi)
    expected_len = (101, 110) if variant == "ms2011" else (100, 100)
    assert (min(lengths), max(lengths)) == expected_len
    counts = torch.bincount(torch.cat(ys), minlength=2 ** n).float()
    assert (counts / counts.sum() - 1 / 2 ** n).abs().max() < 0.02
    d = torch.bincount(torch.cat(distractors) - 2, minlength=4).float()
    assert (d / d.sum() - 0.25).abs().max() < 0.01


@pytest.mark.parametrize("name,variant", ORDER)
def test_temporal_order_baseline_and_solved(name, variant):
    task = make_task(name, 100, variant)
    K = task.output_size
    batch = task.sample(4000, gen(7))
    base = task.baseline()
    assert base == {"loss": pytest.approx(math.log(K)), "accuracy": pytest.approx(1 / K)}
    metrics = task.per_example_metrics(torch.zeros(batch.size, K), batch.y)  # uniform prediction
    assert metrics["loss"].mean().item() == pytest.approx(math.log(K))
    assert abs(metrics["accuracy"].mean().item() - 1 / K) < 0.03
    assert not task.solved({k: v.mean().item() for k, v in metrics.items()}) and not task.solved(base)
    perfect = task.per_example_metrics(10.0 * torch.nn.functional.one_hot(batch.y, K).float(), batch.y)
    assert task.per_example_loss(torch.zeros(batch.size, K), batch.y).shape == (batch.size,)
    assert task.solved({k: v.mean().item() for k, v in perfect.items()})


def test_temporal_order_criteria():
    def solved(variant, acc):
        return make_task("temporal-order", 100, variant).solved({"loss": 0.1, "accuracy": acc})

    assert solved("pascanu2013", 1.0) and not solved("pascanu2013", 0.999)
    assert solved("ms2011", 0.99) and not solved("ms2011", 0.989)
    assert solved("cn2016", 0.995) and not solved("cn2016", 0.99)


# -- copy memory -----------------------------------------------------------------

@pytest.mark.parametrize("T", [1, 10, 100])
def test_copy_layout_is_exact(T):
    task = make_task("copy", T)
    assert (task.input_size, task.output_size, task.readout, task.metric) == (10, 9, "all", "accuracy")
    batch = task.sample(500, gen(8))
    x, y = batch.x, batch.y
    assert x.shape == (T + 20, 500, 10) and x.dtype == torch.float32 and (x.sum(-1) == 1).all()
    assert y.shape == (T + 20, 500) and y.dtype == torch.long and batch.y_batch_dim == 1
    seq = x.argmax(-1)
    assert ((seq[:10] >= 1) & (seq[:10] <= 8)).all()
    assert (seq[10:T + 9] == 0).all() and (seq[T + 9] == 9).all() and (seq[T + 10:] == 0).all()
    assert (y[:T + 10] == 0).all() and torch.equal(y[T + 10:], seq[:10])
    sub = batch.select(torch.tensor([3, 1]))
    assert torch.equal(sub.y, y[:, [3, 1]]) and torch.equal(sub.x, x[:, [3, 1]])


# T = 3, written out by hand: S a symbol (1..8), _ a blank, M the delimiter 9
COPY_T3 = {
    #                inputs                    targets
    "arjovsky2016": ("SSSSSSSSSS__M__________", "_____________SSSSSSSSSS"),  # Arjovsky: M one step before the recall
    "exprnn": ("SSSSSSSSSS___M_________", "_____________SSSSSSSSSS"),  # expRNN/asRNN: K, L blanks, M, K - 1 blanks
}


@pytest.mark.parametrize("variant", COPY_T3)
def test_copy_marker_and_recall_positions_at_t3(variant):
    task = make_task("copy", 3, variant)
    batch = task.sample(64, gen(10))
    seq, y = batch.x.argmax(-1), batch.y
    want_x, want_y = COPY_T3[variant]
    for t, (cx, cy) in enumerate(zip(want_x, want_y)):
        assert ((seq[t] >= 1) & (seq[t] <= 8)).all() if cx == "S" else (seq[t] == {"_": 0, "M": 9}[cx]).all(), t
        assert ((y[t] >= 1) & (y[t] <= 8)).all() if cy == "S" else (y[t] == 0).all(), t
    assert torch.equal(y[13:], seq[:10])  # the symbols, in order, on the last 10 steps


def test_copy_symbols_uniform_and_baseline_monte_carlo():
    T = 100
    task = make_task("copy", T)
    batch = task.sample(5000, gen(9))
    counts = torch.bincount(batch.y[-10:].flatten(), minlength=9)[1:].float()
    assert (counts / counts.sum() - 1 / 8).abs().max() < 0.01
    # memoryless predictor: blank with certainty, then uniform over 1..8 for the last 10 steps
    outputs = torch.full((T + 20, batch.size, 9), -1e4)
    outputs[:T + 10, :, 0] = 0.0
    outputs[T + 10:, :, 1:] = 0.0
    metrics = task.per_example_metrics(outputs, batch.y)
    base = task.baseline()
    assert base["loss"] == pytest.approx(10 * math.log(8) / 120) and base["loss"] == pytest.approx(0.1733, abs=1e-4)
    assert metrics["loss"].mean().item() == pytest.approx(base["loss"], rel=1e-5)
    assert abs(metrics["accuracy"].mean().item() - base["accuracy"]) < 0.01
    assert not task.solved({k: v.mean().item() for k, v in metrics.items()}) and not task.solved(base)
    perfect = task.per_example_metrics(10.0 * torch.nn.functional.one_hot(batch.y, 9).float(), batch.y)
    assert (perfect["accuracy"] == 1).all() and perfect["loss"].max() < 1e-3
    assert task.solved({k: v.mean().item() for k, v in perfect.items()})
    assert task.solved({"loss": 0.0, "accuracy": 0.99}) and not task.solved({"loss": 0.0, "accuracy": 0.98})


# -- reproducibility and fixed splits -------------------------------------------------

@pytest.mark.parametrize("name,variant", ALL)
def test_batches_reproducible_from_generator(name, variant):
    task = make_task(name, 50, variant)
    a, b, c = task.sample(16, gen(11)), task.sample(16, gen(11)), task.sample(16, gen(12))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert a.x.shape != c.x.shape or not torch.equal(a.x, c.x)


@pytest.mark.parametrize("name,variant", ALL)
def test_fixed_splits(name, variant):
    opts = dict(val_size=48, test_size=48, eval_batch_size=32)
    t1, t2 = make_task(name, 50, variant, **opts), make_task(name, 50, variant, **opts)
    val1, val2, test1 = t1.split("val"), t2.split("val"), t1.split("test")
    assert [b.size for b in val1] == [32, 16]
    for b1, b2 in zip(val1, val2):
        assert torch.equal(b1.x, b2.x) and torch.equal(b1.y, b2.y)
    assert val1[0].x.shape != test1[0].x.shape or not torch.equal(val1[0].x, test1[0].x)
    other = make_task(name, 50, variant, data_seed=1, **opts).split("val")[0]
    assert other.x.shape != val1[0].x.shape or not torch.equal(other.x, val1[0].x)


# -- small T -----------------------------------------------------------------------

MIN_T = {
    ("adding", "arjovsky2016"): 2,   # one step in each half
    ("adding", "hs1997"): 11,        # the first ten pairs must not reach the final (-1) pair
    ("adding", "ms2011"): 20,        # [max(1, f(1)), f(10)) needs f(10) >= 2
    ("adding", "pascanu2013"): 10,   # randint(int(0.1 T)) needs int(0.1 T) >= 1
    ("adding", "cn2016"): 4,         # [1, round(T'/10)] needs T' = ceil(1.1 T) >= 5
    ("temporal-order", "pascanu2013"): 10,
    ("temporal-order", "ms2011"): 10,  # length range [f(100) + 1, f(110)] non-empty
    ("temporal-order", "cn2016"): 5,   # round(T/10) >= 1
    ("copy", "arjovsky2016"): 1,
    ("copy", "exprnn"): 1,
}
for (_name, _variant), _t in list(MIN_T.items()):
    if _name == "adding" and _variant != "arjovsky2016":
        MIN_T["multiplication", _variant] = _t
    if _name == "temporal-order":
        MIN_T["temporal-order-3", _variant] = _t


def check_batch(task, batch):
    if task.name in ("adding", "multiplication"):
        pair_structure(task.name, task.variant, batch)
    elif task.name.startswith("temporal-order"):
        order_structure(task, batch)
    else:
        assert batch.x.shape[0] == task.seq_len + 20


@pytest.mark.parametrize("name,variant", ALL)
def test_smallest_seq_len_works_and_below_raises(name, variant):
    T = MIN_T[name, variant]
    task = make_task(name, T, variant)
    for seed in range(5):
        check_batch(task, task.sample(64, gen(seed)))
    if T > 1:
        with pytest.raises(LongdepsError, match=f"seq_len={T - 1}"):
            make_task(name, T - 1, variant)
    if T <= 10:
        ten = make_task(name, 10, variant)
        check_batch(ten, ten.sample(64, gen(0)))


def test_overlapping_windows_raise():
    # C&N 3-bit at T = 8: 1-based [1, 2] and [2, 3] share step 2
    with pytest.raises(LongdepsError, match="seq_len=8"):
        make_task("temporal-order-3", 8, "cn2016")
    nine = make_task("temporal-order-3", 9, "cn2016")
    check_batch(nine, nine.sample(32, gen()))


def pair_steps(name, variant, T, seeds=3):
    task = make_task(name, T, variant)
    return torch.cat([pair_structure(name, variant, task.sample(200, gen(s)))[1] for s in range(seeds)], dim=1)


def test_small_t_windows():
    # Pascanu temporal order at T = 10: int(0.1 * 10) = 1, so every position is fixed
    task = make_task("temporal-order-3", 10, "pascanu2013")
    steps = order_structure(task, task.sample(64, gen()))[1]
    assert (steps[0] == 1).all() and (steps[1] == 3).all() and (steps[2] == 6).all()
    # C&N adding at T = 10: T' = ceil(11.000000000000002) = 12 -> 1-based I in [1, 1], J in [2, 6]
    steps = pair_steps("adding", "cn2016", 10)
    assert (steps[0] == 0).all() and steps[1].min() == 1 and steps[1].max() == 5
    # Arjovsky at odd T = 11: [0, T//2) and [T//2, 2 (T//2)) = [5, 10): the last step is never marked
    steps = pair_steps("adding", "arjovsky2016", 11)
    assert (steps[0].min(), steps[0].max(), steps[1].min(), steps[1].max()) == (0, 4, 5, 9)
    # M&S adding at T = 20: L in [21, 22], I = 1, J in [2, 9], -1 at 0 and L - 4 (checked in pair_structure)
    steps = pair_steps("adding", "ms2011", 20)
    assert (steps[0] == 1).all() and steps[1].min() == 2 and steps[1].max() == 9
