"""Freed large arrays are reused by malloc, not mapped afresh from the kernel."""

import os
import platform
import resource
from pathlib import Path

import pytest
import torch

from tomoseg.allocator import keep_freed_memory


def _faults_of_arrays(count: int, n: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(count):
        a = torch.empty(n).fill_(1.0)
        b = a[:1000].clone()  # a small allocation after the large one, as in real code
        del a, b
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _huge_pages_always() -> bool:
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return thp.exists() and "[always]" in thp.read_text()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
@pytest.mark.skipif(os.environ.get("TOMOSEG_MALLOC") == "default", reason="TOMOSEG_MALLOC=default keeps glibc's settings")
@pytest.mark.skipif(_huge_pages_always(), reason="fresh mappings fault once per 2 MiB page: the test could not fail")
def test_large_arrays_are_reused_without_page_faults():
    assert keep_freed_memory()
    assert keep_freed_memory()  # a second call is harmless
    n = 10 * 2**20  # 40 MB of float32: 10,240 pages, each faulted in if mapped afresh
    _faults_of_arrays(30, n)  # aligned allocations fragment the heap until freed blocks merge
    assert _faults_of_arrays(10, n) < 5_000  # glibc's defaults: ~100,000 (each array mapped afresh)


def test_opting_out_keeps_glibcs_settings(monkeypatch):
    from tomoseg import allocator

    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setenv("TOMOSEG_MALLOC", "default")
    calls = []
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: calls.append(a))
    assert not keep_freed_memory()
    assert calls == []  # the C library was not touched


class _Libc:
    """A C library whose mallopt refuses mmap thresholds above ``limit``, as older glibc versions do."""

    def __init__(self, limit: int) -> None:
        self.limit, self.calls = limit, []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return int(param != -3 or value <= self.limit)


@pytest.mark.parametrize(
    ("limit", "expected", "calls"),
    [
        (2**40, True, [(-3, 256 * 2**20), (-1, 512 * 2**20)]),
        (32 * 2**20, True, [(-3, 256 * 2**20), (-3, 32 * 2**20), (-1, 512 * 2**20)]),
        # no mmap threshold accepted: the trim threshold alone would switch glibc's adaptation off
        (0, False, [(-3, 256 * 2**20), (-3, 32 * 2**20)]),
    ],
)
def test_trim_threshold_only_after_an_accepted_mmap_threshold(monkeypatch, limit, expected, calls):
    from tomoseg import allocator

    libc = _Libc(limit)
    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.delenv("TOMOSEG_MALLOC", raising=False)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *a: libc)
    assert keep_freed_memory() is expected
    assert libc.calls == calls
