"""How runs and sweeps stop on SIGINT (Ctrl-C) and SIGTERM without losing work.

A run defers both signals to the end of the update under way, saves a
checkpoint there and raises ``Interrupted`` (``Run.execute``); a sweep turns
SIGTERM into ``Interrupted`` as Ctrl-C is a ``KeyboardInterrupt``, and asks
its runs under way to save. Python runs signal handlers in the main thread
only; elsewhere signals keep their handling.
"""

from __future__ import annotations

import signal
import threading
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterator


class Interrupted(KeyboardInterrupt):
    """A run or sweep stopped by a signal; the message says what it saved."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum

    def __reduce__(self):  # a pool worker's run sends it back to the sweep
        return Interrupted, (str(self), self.signum)


@contextmanager
def handling(signals: tuple[int, ...], handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Within the block, ``handler`` handles ``signals`` (in the main thread; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def deferred() -> Iterator[list[int]]:
    """Within the block, SIGINT and SIGTERM are appended to the yielded list instead of stopping the
    process; the same signal a second time raises ``KeyboardInterrupt``."""
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if signum in received:
            raise KeyboardInterrupt
        received.append(signum)

    with handling((signal.SIGINT, signal.SIGTERM), handler):
        yield received


def sigterm_as_interrupt() -> AbstractContextManager[None]:
    """A context in which SIGTERM raises ``Interrupted``, as Ctrl-C raises ``KeyboardInterrupt``."""
    def handler(signum: int, frame: Any) -> None:
        raise Interrupted("SIGTERM received", signum)

    return handling((signal.SIGTERM,), handler)
