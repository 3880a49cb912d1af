"""The uniform sampler: shuffled epochs, draws with replacement, and its saved state."""

import torch

from longdeps.sampling import make_sampler
from longdeps.tasks import make_task


def pool_task(size=10):
    return make_task("adding", seq_len=5, variant="cn2016", train_size=size)


def drawn_rows(task, batch):
    """Which pool rows a batch holds (rows are told apart by their inputs)."""
    pool = task.train_examples(torch.arange(task.train_size)).x
    return [int(torch.nonzero((pool == batch.x[:, [i]]).all(dim=(0, 2)))[0]) for i in range(batch.size)]


def test_shuffled_epochs_draw_every_example_once_per_epoch():
    task = pool_task()
    sampler = make_sampler("uniform", task=task)
    gen = torch.Generator().manual_seed(0)
    rows = sum((drawn_rows(task, sampler.next_batch(4, gen)) for _ in range(5)), [])  # 20 draws = 2 epochs
    assert sorted(rows[:10]) == list(range(10)) and sorted(rows[10:]) == list(range(10))
    assert rows[:10] != rows[10:]


def test_draws_with_replacement_repeat_examples():
    task = pool_task()
    sampler = make_sampler("uniform", task=task, replacement=True)
    rows = drawn_rows(task, sampler.next_batch(10, torch.Generator().manual_seed(0)))
    assert len(set(rows)) < 10  # ten independent draws from ten hit them all with probability 10!/10^10


def test_sampler_state_round_trip_continues_the_same_sequence():
    task = pool_task()
    a, gen_a = make_sampler("uniform", task=task), torch.Generator().manual_seed(1)
    a.next_batch(3, gen_a)
    saved, gen_state = a.state_dict(), gen_a.get_state()
    expected = [drawn_rows(task, a.next_batch(3, gen_a)) for _ in range(4)]
    b, gen_b = make_sampler("uniform", task=task), torch.Generator()
    b.load_state_dict(saved)
    gen_b.set_state(gen_state)
    assert [drawn_rows(task, b.next_batch(3, gen_b)) for _ in range(4)] == expected


def test_generated_task_without_pool_gets_fresh_batches():
    task = make_task("adding", seq_len=5)
    sampler = make_sampler("uniform", task=task)
    gen = torch.Generator().manual_seed(0)
    assert not torch.equal(sampler.next_batch(4, gen).x, sampler.next_batch(4, gen).x)
