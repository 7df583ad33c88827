"""Small process helpers for e2e tests: free ports, waiting for a TCP listener, stopping cleanly."""

import os
import signal
import socket
import subprocess
import time


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago on host."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_listener(host, port, timeout=20.0, proc=None, log=None):
    """Waits until host:port accepts connections; fails early if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = ""
            if log and os.path.exists(log):
                with open(log, errors="replace") as f:
                    tail = f.read()[-3000:]
            raise RuntimeError("process exited with %s before listening on %s:%d\n%s"
                               % (proc.returncode, host, port, tail))
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("nothing listening on %s:%d after %.0fs" % (host, port, timeout))


def stop(proc, timeout=10.0):
    """SIGTERM, then SIGKILL after timeout; returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
