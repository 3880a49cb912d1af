"""benchmarks/peers/copy_side_by_side.py: the table's window means, its matched longdeps runs, and a clean skip."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "peers" / "copy_side_by_side.py"
spec = importlib.util.spec_from_file_location("copy_side_by_side", SCRIPT)
peers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peers)


def test_window_means_and_table_rows():
    assert peers.window_means([1.0, 3.0, 5.0, 7.0, 9.0], 2.0, 2) == [1.0, 3.0, 4.5]  # (1+3)/2/2, (5+7)/2/2, 9/2
    text = peers.table({"a": [1.0, 3.0, 5.0, 7.0, 9.0], "b": [2.0, 2.0, 4.0]}, 2.0, 2).splitlines()
    assert text[0] == "| updates | a | b |"
    assert text[2:] == ["| 1-2 | 1.000 | 1.000 |", "| 3-4 | 3.000 | 2.000 |", "| 5 | 4.500 |  |"]


def test_without_reference_paths_it_skips_each_pair_in_one_line(tmp_path, capsys):
    assert peers.main(["--exprnn", str(tmp_path), "--out", str(tmp_path / "table.md")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"expRNN: no 1_copying.py under {tmp_path}; pair skipped",
                     "asRNN: no copytask.py under (no path given); pair skipped",
                     "no reference code to run; nothing written"]
    assert not (tmp_path / "table.md").exists()


@pytest.mark.filterwarnings("ignore:asrnn. the saturation p starts at exactly 0")  # the asRNN code's a = b = 0
@pytest.mark.parametrize("peer", ["expRNN", "asRNN"])
def test_matched_longdeps_runs_train(peer):
    losses = peers.our_losses(peer, seq_len=5, updates=2, seed=0)
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses) and losses[1] != losses[0]


def test_also_adds_a_column_only_where_the_pair_sets_the_key_otherwise():
    also = ["cell.orientation=B", "cell.orientation=BT", "optimizer.alpha=0.5", "cell.nonexistent=1"]
    assert peers.extra_columns("expRNN", also) == ["cell.orientation=B", "optimizer.alpha=0.5"]  # expRNN sets BT, 0.99
    assert peers.extra_columns("asRNN", also) == ["cell.orientation=BT", "optimizer.alpha=0.5"]  # asRNN sets B, 0.9
