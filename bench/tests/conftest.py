"""Fixtures for bench integration tests: the vios-loadgen binary and a private tgtd."""
import os
import shutil
from pathlib import Path

import pytest

from tgtd import Tgtd

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def loadgen():
    path = os.environ.get("VIOS_LOADGEN")
    if not path:
        found = sorted(REPO.glob("build*/bench/loadgen/vios-loadgen"))
        path = str(found[0]) if found else None
    if not path or not os.access(path, os.X_OK):
        pytest.fail("vios-loadgen not built (set VIOS_LOADGEN)")
    return path


@pytest.fixture
def tgtd(tmp_path):
    if not shutil.which("tgtd"):
        pytest.fail("tgtd not installed (Debian package tgt; scripts/setup)")
    daemon = Tgtd(tmp_path).start()
    try:
        yield daemon
    finally:
        daemon.stop()
