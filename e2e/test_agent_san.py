"""A vios-agent whose pool is a SAN LUN: tgtd in its own network namespace (the SAN host), the
agent in another (the node), linked by a veth pair with 127.77.x addresses (DESIGN.md §13).
The initiator tools run on the node host and reach the agent's virtual port on its loopback."""

import json
import os

import pytest

from lib import netns
from lib.agent import BUILD_DIR, Agent
from lib.san import Tgtd

SAN_IQN = "iqn.2026-11.dev.vios:san:lun1"
TARGET = "iqn.2026-11.dev.vios:e2e:san-backed"
INITIATOR = "iqn.2026-11.dev.vios:e2e-client"
LOADGEN = os.path.join(BUILD_DIR, "bench", "loadgen", "vios-loadgen")


@pytest.fixture(scope="module")
def hosts():
    san, node = netns.Host("san"), netns.Host("node")
    netns.link(san, "127.77.0.1", node, "127.77.0.2")
    yield san, node
    node.destroy()
    san.destroy()


@pytest.fixture(scope="module")
def san(hosts, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("san"))
    tgtd = Tgtd(workdir, address="127.77.0.1", port=3260, host=hosts[0]).start()
    tgtd.add_lun(SAN_IQN, os.path.join(workdir, "lun1.img"), 512 << 20)
    yield tgtd
    tgtd.stop()


@pytest.fixture(scope="module")
def agent(hosts, san, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("node"))
    config = {
        "node": "node-a",
        "pools": [{"name": "san", "extentSize": "16Mi", "backends": [{
            "name": "lun1",
            "iscsi": {"portal": "127.77.0.1:3260", "iqn": SAN_IQN, "lun": 1},
        }]}],
        "volumes": [{"name": "vol0", "pool": "san", "size": "128Mi"}],
        "ports": [{"target": TARGET, "volume": "vol0", "initiators": [INITIATOR]}],
    }
    a = Agent(workdir, config, netns=hosts[1]).start()
    yield a
    code = a.stop()
    assert code == 0, a.log()[-4000:]


def test_port_over_san_lun_answers_inquiry_and_capacity(hosts, agent):
    node = hosts[1]
    inq = node.run(["iscsi-inq", "-i", INITIATOR, agent.url(TARGET)])
    assert inq.returncode == 0 and "VIOS" in inq.stdout, inq.stdout
    cap = node.run(["iscsi-readcapacity16", "-i", INITIATOR, agent.url(TARGET)])
    assert cap.returncode == 0 and "Total size:134217728" in cap.stdout, cap.stdout
    ls = node.run(["iscsi-ls", "-i", INITIATOR, "iscsi://127.0.0.1:%d" % agent.port])
    assert TARGET in ls.stdout, ls.stdout


def test_verified_io_through_the_san(hosts, agent):
    out = hosts[1].run([LOADGEN, "--initiator-name", INITIATOR, "--json", "--quiet", "--rw",
                        "randrw", "--bs", "4k", "--qd", "16", "--duration", "3", "--verify",
                        agent.url(TARGET)], timeout=120)
    assert out.returncode == 0, out.stdout
    result = json.loads(out.stdout)
    assert result["verify"]["failures"] == 0 and result["io_errors"] == 0, result
    assert result["verify"]["blocks_checked"] > 0, result


def test_sequential_128k_writes_verified(hosts, agent):
    out = hosts[1].run([LOADGEN, "--initiator-name", INITIATOR, "--json", "--quiet", "--rw",
                        "write", "--bs", "128k", "--qd", "8", "--size-limit", "64m", "--ios",
                        "512", "--verify", agent.url(TARGET)], timeout=120)
    assert out.returncode == 0, out.stdout
    result = json.loads(out.stdout)
    assert result["verify"]["failures"] == 0 and result["verify"]["readback_blocks"] > 0, result
