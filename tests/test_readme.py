"""The README's own-loop example runs as written (with fewer updates)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_training_loop_of_your_own_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (loop,) = [b for b in blocks if "estimator.backward" in b]
    assert "range(500)" in loop
    exec(compile(loop.replace("range(500)", "range(3)"), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert out.startswith("training loss ") and "'kind': 'stationary'" in out
