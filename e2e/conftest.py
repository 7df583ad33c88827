"""Shared fixtures for the e2e suites.

control_plane: one local etcd + kube-apiserver (with the vios CRDs) per pytest session, started
by the harness in e2e/controlplane. If the tools are not built the fixture errors, so the tests
fail with the harness's message ("run e2e/tools/build-tools"); they never skip.
namespace: a fresh namespace per test (namespaces are not deleted: without a controller manager
they would stay Terminating).
"""

import os
import re
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from controlplane import ControlPlane  # noqa: E402


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    cp = ControlPlane(str(tmp_path_factory.mktemp("controlplane")), install_crds=True)
    cp.start()
    yield cp
    cp.stop()


@pytest.fixture
def namespace(control_plane, request):
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = "t-%s-%s" % (base, uuid.uuid4().hex[:6])
    control_plane.kubectl("create", "namespace", name)
    return name
