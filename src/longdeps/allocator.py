"""Keep freed memory for reuse: the C allocator's settings for long training loops.

torch allocates CPU tensors with ``malloc``. glibc serves a request above its
mmap threshold (32 MB at most) with fresh pages and returns them to the system
when the tensor is freed, so a training step that allocates the same large
tensors every time (at T = 784, batch 100, hidden 100: the ``(T, B, 4H)``
input projection and its gradient, or the workspace of ``torch.nn.LSTM``'s
oneDNN kernel) faults in every 4 KB page of them again at every step:
60,000-150,000 page faults, 100-180 ms a step on a 2-core machine, where
``nn.LSTM``'s whole step otherwise takes about 100 ms.

``keep_freed_memory`` makes ``malloc`` serve every request from its heap and
keep freed memory mapped, so that the next step reuses it. The process then
holds on to its peak memory until it exits. The ``longdeps`` commands and
benchmarks call it; a script of your own may call it first thing.
"""

from __future__ import annotations

import ctypes
import platform

#: ``mallopt`` parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Serve all allocations from the heap and never trim it below 2 GB of free space;
    returns False (and changes nothing) where the C library is not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
