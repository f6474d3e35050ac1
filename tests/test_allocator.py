"""Freed large arrays are reused by malloc, not mapped afresh from the kernel."""

import resource
import sys

import pytest
import torch

from tomoseg.nn.allocator import keep_freed_memory


def _faults_of_arrays(count: int, n: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(count):
        a = torch.empty(n).fill_(1.0)
        b = a[:1000].clone()  # a small allocation after the large one, as in real code
        del a, b
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_arrays_are_reused_without_page_faults():
    if not keep_freed_memory():
        pytest.skip("the C library is not glibc")
    assert keep_freed_memory()  # a second call is harmless
    n = 10 * 2**20  # 40 MB of float32: 10,240 pages, each faulted in if mapped afresh
    _faults_of_arrays(30, n)  # aligned allocations fragment the heap until freed blocks merge
    assert _faults_of_arrays(10, n) < 5_000  # glibc's defaults: ~100,000 (each array mapped afresh)
