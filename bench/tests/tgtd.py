"""Tgtd: a private tgtd instance for bench tests (FIELD-NOTES: tgt 1.0.85 in user space).

Listens on 127.0.0.1 with a free port and its own control port (-C), so it never meets another
tgtd on the machine. Stop deletes the targets first and then the system: tgtd ignores SIGTERM
while targets exist; a kill of our own process is the last resort.
"""
import os
import random
import socket
import subprocess
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tgtd:
    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.control = self._free_control_port()
        self.tids = []
        self.proc = None

    @staticmethod
    def _free_control_port():
        for _ in range(100):
            c = random.randint(2000, 30000)
            if not Path(f"/var/run/tgtd/socket.{c}").exists():
                return c
        raise RuntimeError("no free tgtd control port")

    def adm(self, *args, check=True):
        cmd = ["tgtadm", "-C", str(self.control), "--lld", "iscsi", *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
        return p

    def start(self):
        log = open(self.workdir / f"tgtd-{self.control}.log", "w")
        self.proc = subprocess.Popen(
            ["tgtd", "-f", "-C", str(self.control), "--iscsi", f"portal=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tgtd exited with {self.proc.returncode}")
            if self.adm("--mode", "system", "--op", "show", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError("tgtd did not answer on its control port")

    def add_target(self, iqn, backing_file):
        tid = len(self.tids) + 1
        self.adm("--mode", "target", "--op", "new", "--tid", str(tid), "--targetname", iqn)
        self.tids.append(tid)
        self.adm("--mode", "logicalunit", "--op", "new", "--tid", str(tid), "--lun", "1",
                 "--backing-store", str(backing_file))
        self.adm("--mode", "target", "--op", "bind", "--tid", str(tid), "--initiator-address",
                 "ALL")
        return f"iscsi://127.0.0.1:{self.port}/{iqn}/1"

    def stop(self):
        if self.proc is None:
            return
        for tid in reversed(self.tids):
            self.adm("--mode", "target", "--op", "delete", "--force", "--tid", str(tid),
                     check=False)
        self.adm("--mode", "system", "--op", "delete", check=False)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for suffix in ("", ".lock"):
            try:
                os.unlink(f"/var/run/tgtd/socket.{self.control}{suffix}")
            except FileNotFoundError:
                pass
        self.proc = None
