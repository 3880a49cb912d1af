"""The allocator setting that keeps freed memory mapped for the next training step."""

import platform
import subprocess
import sys

import pytest

PROGRAM = """
import resource, torch
import longdeps.experiment  # the heap of a process that trains, with the library loaded
from longdeps.allocator import keep_freed_memory
assert keep_freed_memory()
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20).sum()  # 64 MB, twice glibc's largest mmap threshold
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(*[faults() for _ in range(4)])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")
def test_a_large_tensor_reuses_freed_pages():
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True)
    first, *later = map(int, out.stdout.split())
    # 64 MB of fresh pages are faulted in once (16,384 of 4 KB), then reused instead of mapped afresh
    assert min(later) * 10 < first
