"""A standalone vios-agent serving file-pool volumes, driven by libiscsi's tools and vios-loadgen.

What a user of the agent's data path sees: the port answers INQUIRY and READ CAPACITY with the
volume's identity and size, verified I/O through it returns exactly what was written, CHAP and
the initiator ACL keep others out without disturbing admitted sessions, a garbage configuration
is refused with the field named, and the metrics endpoint counts the I/O.
"""

import json
import os
import subprocess
import threading
import urllib.request

import pytest

from lib.agent import BUILD_DIR, Agent, agent_binary, file_pool_config
from lib.procs import free_port

OPEN_TARGET = "iqn.2026-11.dev.vios:e2e:open"
CHAP_TARGET = "iqn.2026-11.dev.vios:e2e:chap"
ALLOWED = "iqn.2026-11.dev.vios:e2e-client"
CHAP_USER = "pod-a"
CHAP_SECRET = "pod-a-secret-123"
LOADGEN = os.path.join(BUILD_DIR, "bench", "loadgen", "vios-loadgen")


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("standalone"))
    config = file_pool_config(workdir, volume_size="96Mi", targets=[OPEN_TARGET, CHAP_TARGET],
                              initiators=[ALLOWED])
    config["ports"][1]["chap"] = {"user": CHAP_USER, "secret": CHAP_SECRET}
    config["listen"] = {"metrics": "127.0.0.1:%d" % free_port()}
    a = Agent(workdir, config).start()
    yield a
    code = a.stop()
    assert code == 0, "vios-agent exited with %s:\n%s" % (code, a.log()[-4000:])


def run(cmd, timeout=120):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def loadgen(url, *args, initiator=ALLOWED):
    out = run([LOADGEN, "--initiator-name", initiator, "--json", "--quiet", *args, url])
    return out.returncode, out.stdout


def test_inquiry_and_capacity_describe_the_volume(agent):
    inq = run(["iscsi-inq", "-i", ALLOWED, agent.url(OPEN_TARGET)])
    assert inq.returncode == 0, inq.stdout
    assert "VIOS" in inq.stdout
    cap = run(["iscsi-readcapacity16", "-i", ALLOWED, agent.url(OPEN_TARGET)])
    assert cap.returncode == 0, cap.stdout
    # 96 MiB of 512-byte blocks: last LBA 196607.
    assert "RETURNED LOGICAL BLOCK ADDRESS:196607" in cap.stdout, cap.stdout
    assert "Total size:100663296" in cap.stdout, cap.stdout


def test_discovery_lists_only_what_the_initiator_may_see(agent):
    allowed = run(["iscsi-ls", "-i", ALLOWED, "iscsi://127.0.0.1:%d" % agent.port])
    assert allowed.returncode == 0, allowed.stdout
    assert OPEN_TARGET in allowed.stdout and CHAP_TARGET in allowed.stdout
    stranger = run(["iscsi-ls", "-i", "iqn.2026-11.dev.vios:stranger",
                    "iscsi://127.0.0.1:%d" % agent.port])
    assert OPEN_TARGET not in stranger.stdout and CHAP_TARGET not in stranger.stdout


def test_verified_random_io_reads_back_what_was_written(agent):
    code, out = loadgen(agent.url(OPEN_TARGET), "--rw", "randrw", "--bs", "4k", "--qd", "16",
                        "--duration", "3", "--verify", "--seed", "7")
    assert code == 0, out
    result = json.loads(out)
    assert result["verify"]["failures"] == 0, result
    assert result["verify"]["blocks_checked"] > 0, result
    assert result["io_errors"] == 0, result
    assert result["ios"] > 100, result


def test_port_exposes_only_its_own_volume(agent):
    # Data written through one port must not be visible through the other (separate volumes).
    code, out = loadgen(agent.url(OPEN_TARGET), "--rw", "write", "--bs", "64k", "--ios", "64",
                        "--verify", "--seed", "11")
    assert code == 0, out
    code, out = loadgen("iscsi://%s%%%s@127.0.0.1:%d/%s/0" % (CHAP_USER, CHAP_SECRET, agent.port,
                                                              CHAP_TARGET),
                        "--rw", "read", "--bs", "64k", "--ios", "64")
    assert code == 0, out
    lun1 = run(["iscsi-inq", "-i", ALLOWED, agent.url(OPEN_TARGET, lun=1)])
    assert lun1.returncode != 0 or "Peripheral Qualifier:3" in lun1.stdout.replace(" ", "")


def test_wrong_chap_and_acl_refused_while_other_sessions_keep_working(agent):
    results = {}

    def background():
        results["load"] = loadgen(agent.url(OPEN_TARGET), "--rw", "randrw", "--qd", "8",
                                  "--duration", "4", "--verify")

    t = threading.Thread(target=background)
    t.start()
    wrong = run(["iscsi-inq", "-i", ALLOWED, "iscsi://%s%%%s@127.0.0.1:%d/%s/0" % (
        CHAP_USER, "not-the-secret-1", agent.port, CHAP_TARGET)])
    assert wrong.returncode != 0, wrong.stdout
    no_chap = run(["iscsi-inq", "-i", ALLOWED, agent.url(CHAP_TARGET)])
    assert no_chap.returncode != 0, no_chap.stdout
    stranger = run(["iscsi-inq", "-i", "iqn.2026-11.dev.vios:stranger", agent.url(OPEN_TARGET)])
    assert stranger.returncode != 0, stranger.stdout
    right = run(["iscsi-inq", "-i", ALLOWED, "iscsi://%s%%%s@127.0.0.1:%d/%s/0" % (
        CHAP_USER, CHAP_SECRET, agent.port, CHAP_TARGET)])
    assert right.returncode == 0, right.stdout
    t.join()
    code, out = results["load"]
    assert code == 0, out
    assert json.loads(out)["verify"]["failures"] == 0


def test_metrics_count_the_io(agent):
    port = int(agent.config["listen"]["metrics"].rsplit(":", 1)[1])
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    reads = [line for line in text.splitlines()
             if line.startswith("vios_io_operations_total") and 'scope="volume"' in line
             and 'name="vol0"' in line and 'op="read"' in line]
    assert reads and float(reads[0].rsplit(" ", 1)[1]) > 0, text[:3000]
    assert 'vios_port_logins_total{port="%s",result="failure"}' % CHAP_TARGET in text


@pytest.mark.parametrize("content,message", [
    ("pools: [\n  - {name: x\n", "not valid YAML at line"),
    ("pools:\n  - name: p\n    extentSize: lots\n", "pools[0].extentSize: 'lots' is not a byte"),
    ("nodes: a\n", "nodes: unknown field"),
])
def test_garbage_configuration_is_refused_with_the_field_named(tmp_path, content, message):
    path = tmp_path / "agent.yaml"
    path.write_text(content)
    out = run([agent_binary(), "--config", str(path)], timeout=30)
    assert out.returncode == 2, out.stdout
    assert message in out.stdout, out.stdout
