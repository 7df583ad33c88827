"""tgtd as the SAN (FIELD-NOTES: user-space iSCSI target, no kernel modules), optionally inside a
test host's network namespace."""

import os
import subprocess
import time

from . import procs


class Tgtd:
    """One tgtd instance (its own control port -C) serving file-backed LUNs."""

    _next_control = 400 + os.getpid() % 200

    def __init__(self, workdir, address="127.0.0.1", port=3260, host=None):
        Tgtd._next_control += 1
        self.control = Tgtd._next_control
        self.workdir = workdir
        self.address = address
        self.port = port
        self.host = host
        self.proc = None
        self.tids = []

    def _cmd(self, argv):
        return self.host.command(argv) if self.host else argv

    def tgtadm(self, *args):
        out = subprocess.run(self._cmd(["tgtadm", "-C", str(self.control), "--lld", "iscsi",
                                        *args]), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError("tgtadm %s: %s" % (" ".join(args), out.stderr or out.stdout))
        return out.stdout

    def start(self):
        log = open(os.path.join(self.workdir, "tgtd-%d.log" % self.control), "a")
        self.proc = subprocess.Popen(self._cmd(["tgtd", "-f", "-C", str(self.control), "--iscsi",
                                                "portal=%s:%d" % (self.address, self.port)]),
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.tgtadm("--mode", "target", "--op", "show")
                return self
            except RuntimeError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("tgtd did not start (control port %d)" % self.control)
                time.sleep(0.1)

    def add_lun(self, iqn, backing_file, size_bytes):
        with open(backing_file, "a") as f:
            f.truncate(size_bytes)
        tid = len(self.tids) + 1
        self.tgtadm("--mode", "target", "--op", "new", "--tid", str(tid), "--targetname", iqn)
        self.tgtadm("--mode", "logicalunit", "--op", "new", "--tid", str(tid), "--lun", "1",
                    "--backing-store", backing_file)
        self.tgtadm("--mode", "target", "--op", "bind", "--tid", str(tid),
                    "--initiator-address", "ALL")
        self.tids.append(tid)
        return tid

    def stop(self):
        """tgtd ignores SIGTERM while targets exist: delete them, then the system."""
        if self.proc is None:
            return
        for tid in self.tids:
            try:
                self.tgtadm("--mode", "target", "--op", "delete", "--force", "--tid", str(tid))
            except RuntimeError:
                pass
        try:
            self.tgtadm("--mode", "system", "--op", "delete")
        except RuntimeError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            procs.stop(self.proc)
        self.proc = None
