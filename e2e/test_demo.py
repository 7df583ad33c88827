"""The local demo (README's first command runs it through scripts/run-local): it must reach its
healthy, visible state, print what it promises, and leave nothing behind."""

import os
import subprocess
import sys

from lib.agent import BUILD_DIR

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def netns_list():
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True,
                              text=True).stdout.split())


def test_demo_runs_end_to_end_and_cleans_up(tmp_path):
    before = netns_list()
    workdir = str(tmp_path / "demo")
    res = subprocess.run([sys.executable, os.path.join(TOP, "scripts", "demo.py"), "--build",
                          BUILD_DIR, "--dir", workdir, "--no-wait"], capture_output=True,
                         text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    assert "vios is running" in out, out[-6000:]
    assert "hello.txt" in out and "data.bin" in out, out[-6000:]  # ls of the mounted volume
    for name in ("agent-a", "agent-b", "agent-c"):
        assert any(name in line and " Up" in line for line in out.splitlines()), out[-6000:]
    assert "pvc-demo" in out or "VIOSVolume" in out or "viosvolume" in out, out[-6000:]
    assert "vios_io_operations_total{" in out, out[-6000:]
    assert "nothing of vios is left running" in out
    assert not os.path.exists(workdir)
    assert netns_list() - before == set()
