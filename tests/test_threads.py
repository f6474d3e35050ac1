"""CPU threads: the cores a process may use (affinity, cgroup quota), and OpenMP's wait policy."""

import os
import subprocess
import sys

import pytest
import torch

from tomoseg.nn import threads
from tomoseg.workflows.pipeline import torch_threads


def test_cgroup_quota_in_cores(tmp_path):
    v2 = tmp_path / "cpu.max"
    v1 = (tmp_path / "quota", tmp_path / "period")
    v2.write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(v2, v1) == 1.5
    v2.write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(v2, v1) is None
    v2.unlink()
    v1[0].write_text("200000\n")
    v1[1].write_text("100000\n")
    assert threads.cgroup_cpu_limit(v2, v1) == 2.0
    v1[0].write_text("-1\n")  # v1's "no limit"
    assert threads.cgroup_cpu_limit(v2, v1) is None
    v1[0].unlink()
    assert threads.cgroup_cpu_limit(v2, v1) is None


def test_available_cores_follow_affinity_and_quota(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.available_cores() == 4
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 1.5)
    assert threads.available_cores() == 2  # rounded up
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: 0.2)
    assert threads.available_cores() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.setattr(threads, "cgroup_cpu_limit", lambda: None)
    assert threads.available_cores() == 1


def test_default_torch_threads_are_the_available_cores(monkeypatch):
    import tomoseg.workflows.pipeline as pipeline

    before = torch.get_num_threads()
    monkeypatch.setattr(pipeline, "available_cores", lambda: 1)
    with torch_threads(None):
        assert torch.get_num_threads() == 1
    with torch_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("given", [None, "ACTIVE"])
def test_the_cli_makes_waiting_threads_sleep_unless_told_otherwise(given):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    # the policy at the moment torch is first imported (by the command), seen by an import hook
    code = ("import os, sys\n"
            "class Spy:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch':\n"
            "            print(os.environ.get('OMP_WAIT_POLICY'), flush=True)\n"
            "            sys.meta_path.remove(self)\n"
            "sys.meta_path.insert(0, Spy())\n"
            "import tomoseg.cli.main as m\n"
            "sys.exit(m.main(['export', 'missing.csv', '-o', 'out.csv', '-q']))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "missing.csv" in r.stderr, r.stderr
    assert r.stdout.split() == [given or "PASSIVE"]
