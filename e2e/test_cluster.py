"""Cluster-aware agents and the operator against the real API server (issue #4 acceptance).

Three vios-agents run as separate hosts, each in its own network namespace with its own address
in 127.77.1.0/24 on a shared bridge, started with exactly the flags the operator's node
DaemonSet passes; two vios-operator replicas and the API server run here. The tests run in
file order on one cluster (module fixture); each leaves the cluster healthy for the next.
"""

import json
import os
import subprocess
import time
import uuid

import pytest

from lib import netns
from lib.cluster import (ApiBridge, ClusterAgentProc, Fabric, OperatorProc, cut_api, get_json,
                         restore_api, wait_until)

AGENT_LEASE = 15  # ClusterAgentOptions.lease_duration default (seconds)
MEMBER_GRACE = 2  # --member-grace given to the operator below
NAMES = ("agent-a", "agent-b", "agent-c")

pytestmark = pytest.mark.skipif(not netns.available(), reason="needs root for netns")


def cluster_manifest(name, pool_dir, backends=1, extent="16Mi", size="1Gi"):
    return {
        "apiVersion": "vios.dev/v1alpha1", "kind": "VIOSCluster",
        "metadata": {"name": name},
        "spec": {"pools": [{
            "name": "pool0", "extentSize": extent,
            "backends": [{"name": "file%d" % i,
                          "file": {"path": os.path.join(pool_dir, "pool0-%d.img" % i),
                                   "size": size}}
                         for i in range(backends)]}]},
    }


def apply(cp, ns, obj):
    cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj))


class Cluster:
    def __init__(self, cp, workdir):
        self.cp = cp
        self.ns = "vios-e2e-%s" % uuid.uuid4().hex[:6]
        self.workdir = workdir
        self.pool_dir = os.path.join(workdir, "pool")
        os.makedirs(self.pool_dir)
        cp.kubectl("create", "namespace", self.ns)
        self.fabric = Fabric()
        self.bridge = ApiBridge(cp.state()["apiserver_port"])
        self.hosts = {}
        self.agents = {}
        for i, name in enumerate(NAMES):
            address = "127.77.1.%d" % (10 + i)
            host = self.fabric.host(name, address)
            self.bridge.expose(host)
            self.hosts[name] = host
            self.agents[name] = ClusterAgentProc(os.path.join(workdir, name), name, host, address,
                                                 cp, self.ns)
        self.operators = [OperatorProc(workdir, "op-%d" % i, cp, self.ns,
                                       member_grace="%ds" % MEMBER_GRACE) for i in range(2)]

    def member(self, name):
        return get_json(self.cp, "-n", self.ns, "viosmember", name)

    def state(self, name):
        return self.member(name).get("status", {}).get("state")

    def states(self):
        items = get_json(self.cp, "-n", self.ns, "viosmembers")["items"]
        return {m["metadata"]["name"]: m.get("status", {}).get("state") for m in items}

    def leader(self):
        lease = get_json(self.cp, "-n", self.ns, "lease", "vios-operator")
        return lease["spec"].get("holderIdentity")

    def close(self):
        for agent in self.agents.values():
            agent.stop()
        for op in self.operators:
            op.stop()
        self.bridge.close()
        self.fabric.destroy()


@pytest.fixture(scope="module")
def cluster(control_plane, tmp_path_factory):
    c = Cluster(control_plane, str(tmp_path_factory.mktemp("cluster")))
    try:
        apply(control_plane, c.ns, cluster_manifest("e2e", c.pool_dir))
        for op in c.operators:
            op.start()
        for agent in c.agents.values():
            agent.start()
        yield c
    finally:
        c.close()


def test_agents_register_are_admitted_and_see_each_other(cluster):
    wait_until(lambda: set(cluster.states().values()) == {"Up"} and len(cluster.states()) == 3,
               60, "three members Up")
    def cluster_status():
        status = get_json(cluster.cp, "-n", cluster.ns, "vioscluster", "e2e").get("status", {})
        return status if status.get("membersUp") == 3 else None

    status = wait_until(cluster_status, 30, "VIOSCluster.status.membersUp == 3")
    assert status["memberCount"] == 3
    assert {m["name"] for m in status["members"]} == set(NAMES)
    # Printer columns: kubectl shows state and paths without -o yaml.
    table = cluster.cp.kubectl("get", "-n", cluster.ns, "viosmembers").stdout
    header = table.splitlines()[0]
    assert "STATE" in header, table
    for name in NAMES:
        assert any(line.startswith(name) and "Up" in line for line in table.splitlines()), table
    for name, agent in cluster.agents.items():
        member = cluster.member(name)
        assert member["status"]["peerAddress"] == "%s:7470" % agent.address
        # Pools come from the VIOSCluster spec: the agent opened the file backend and says so.
        paths = wait_until(lambda: cluster.member(name)["status"].get("paths"), 20, "paths")
        assert [(p["pool"], p["backend"], p["state"]) for p in paths] == [
            ("pool0", "file0", "Healthy")], paths
        # The agent sees the other two members in its local copy of the cluster.
        state_file = os.path.join(agent.state_dir, "cluster-state.json")
        def peers_seen():
            with open(state_file) as f:
                f.readline()
                payload = json.loads(f.read())
            return {m["metadata"]["name"] for m in payload["members"]} == set(NAMES)
        wait_until(peers_seen, 20, "%s's local copy lists all members" % name)
        # The operator issued a peer certificate and the agent serves the peer channel with it.
        agent.wait_log('"msg":"peer channel listening"', 30)


# Connects with mutual TLS and ALPN h2, sends the HTTP/2 preface and an empty SETTINGS frame and
# prints what the server answers: a gRPC server that accepted the client sends its SETTINGS; one
# that refused the certificate ends the connection (TLS 1.3 reports that after the handshake).
H2_PROBE = r"""
import socket, ssl, sys
host, port, cert, key, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["h2"])
try:
    with socket.create_connection((host, port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            data = s.recv(9)
            print("ANSWER" if len(data) == 9 and data[3] == 4 else "CLOSED %r" % data)
except (ssl.SSLError, OSError) as e:
    print("REFUSED %s" % e)
"""


def test_peer_channel_refuses_a_certificate_from_another_ca(cluster, tmp_path):
    a, b = cluster.agents["agent-a"], cluster.agents["agent-b"]
    for agent in (a, b):
        agent.wait_log('"msg":"peer channel listening"', 30)
    peer_dir = os.path.join(b.state_dir, "peer")

    def probe(cert, key):
        res = cluster.hosts["agent-b"].run(
            ["python3", "-c", H2_PROBE, a.address, "7470", cert, key, peer_dir + "/ca.crt"],
            timeout=30)
        return res.stdout.strip()

    # agent-b's own certificate (from the cluster CA): the server answers HTTP/2.
    assert probe(peer_dir + "/tls.crt", peer_dir + "/tls.key") == "ANSWER"
    # A self-signed certificate with the same name (another CA): refused.
    key, crt = str(tmp_path / "rogue.key"), str(tmp_path / "rogue.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "1", "-subj", "/O=vios/CN=agent-b"], check=True,
                   capture_output=True)
    answer = probe(crt, key)
    assert answer.startswith("REFUSED") or answer.startswith("CLOSED"), answer
    # The refused peer disturbed nothing: the good one still gets in.
    assert probe(peer_dir + "/tls.crt", peer_dir + "/tls.key") == "ANSWER"


def test_spec_change_reaches_every_agent(cluster):
    started = time.monotonic()
    apply(cluster.cp, cluster.ns, cluster_manifest("e2e", cluster.pool_dir, backends=2))

    def everyone_has_file1():
        for name in NAMES:
            paths = cluster.member(name)["status"].get("paths", [])
            if ("file1", "Healthy") not in {(p["backend"], p["state"]) for p in paths}:
                return False
        return True

    wait_until(everyone_has_file1, 30, "file1 open on every agent", interval=0.05)
    elapsed = time.monotonic() - started
    print("spec change -> every agent's status shows the new backend: %.2f s" % elapsed)
    with open(os.path.join(cluster.workdir, "spec-change-seconds"), "w") as f:
        f.write("%.3f\n" % elapsed)
    for agent in cluster.agents.values():
        assert '"backend":"file1"' in agent.log(), agent.log()[-2000:]


def test_a_killed_agent_goes_down_with_an_event_and_comes_back(cluster):
    c = cluster.agents["agent-c"]
    c.kill()
    killed = time.monotonic()
    wait_until(lambda: cluster.state("agent-c") == "Down", AGENT_LEASE + MEMBER_GRACE + 10,
               "agent-c Down")
    down_after = time.monotonic() - killed
    print("agent-c Down %.1f s after SIGKILL (lease %d s + grace %d s)"
          % (down_after, AGENT_LEASE, MEMBER_GRACE))
    assert down_after <= AGENT_LEASE + MEMBER_GRACE + 5
    events = get_json(cluster.cp, "-n", cluster.ns, "events.events.k8s.io")["items"]
    assert any(e.get("regarding", {}).get("name") == "agent-c" and "Down" in e.get("reason", "")
               for e in events), [e.get("reason") for e in events]
    assert cluster.states()["agent-a"] == "Up" and cluster.states()["agent-b"] == "Up"
    c.start()
    wait_until(lambda: cluster.state("agent-c") == "Up", 30, "agent-c Up again")


def test_cut_off_from_the_api_server_the_agent_keeps_serving(cluster):
    b = cluster.agents["agent-b"]
    host = cluster.hosts["agent-b"]
    port_request = {
        "name": "pod-b", "volumeId": "vol-b", "sizeBytes": str(16 << 20), "pool": "pool0",
        "extents": [{"backend": "file0", "offset": str(512 << 20), "length": str(16 << 20)}],
        "allowedInitiators": ["iqn.2026-11.dev.vios:e2e-client"]}
    ctl = [os.path.join(os.path.dirname(b.argv()[0]), "vios-agentctl"), "--socket", b.socket]
    created = subprocess.run(ctl + ["create", json.dumps(port_request)], capture_output=True,
                             text=True, check=True)
    iqn = json.loads(created.stdout)["port"]["targetIqn"]
    portal = "%s:3260" % b.address

    def serves():
        res = host.run(["iscsi-inq", "-i", "iqn.2026-11.dev.vios:e2e-client",
                        "iscsi://%s/%s/0" % (portal, iqn)], timeout=20)
        return res.returncode == 0 and "VIOS" in res.stdout.upper()

    assert serves()
    apiport = cluster.bridge.port
    cut_api(host, apiport)
    try:
        # Still serving while cut off...
        time.sleep(3)
        assert serves()
        # ...and after a restart during the cut: up from the local copy, the port restored.
        b.stop()
        b.start()
        b.wait_log('"msg":"virtual port restored"', 30)
        assert "local copy" in b.log(since_start=True)
        assert serves()
    finally:
        restore_api(host)
    b.wait_log("rejoined", 60)
    wait_until(lambda: cluster.state("agent-b") == "Up", 30, "agent-b Up after the cut")
    hb = cluster.member("agent-b")["status"].get("lastHeartbeatTime")
    assert hb, cluster.member("agent-b")
    subprocess.run(ctl + ["delete", "pod-b"], check=True, capture_output=True)


def test_a_corrupt_local_state_file_is_reported_and_refetched(cluster):
    a = cluster.agents["agent-a"]
    a.stop()
    path = os.path.join(a.state_dir, "cluster-state.json")
    with open(path, "r+b") as f:
        f.seek(-20, os.SEEK_END)
        f.write(b"garbage garbage garb")
    a.start()
    wait_until(lambda: cluster.state("agent-a") == "Up", 30, "agent-a Up")
    assert "corrupt" in a.log(since_start=True)
    assert any(n.startswith("cluster-state.json.corrupt-") for n in os.listdir(a.state_dir))
    events = get_json(cluster.cp, "-n", cluster.ns, "events.events.k8s.io")["items"]
    wait_until(lambda: any(e.get("reason") == "LocalStateCorrupt" for e in get_json(
        cluster.cp, "-n", cluster.ns, "events.events.k8s.io")["items"]), 20,
        "LocalStateCorrupt event")
    # It fetched a good copy again.
    wait_until(lambda: os.path.getsize(path) > 100 and open(path).readline().startswith("{"), 20,
               "a fresh local copy")
    del events


def test_an_invalid_cluster_spec_is_reported_with_the_field(cluster):
    bad = cluster_manifest("bad", cluster.pool_dir, extent="64Mi", size="16Mi")
    apply(cluster.cp, cluster.ns, bad)

    def condition():
        status = get_json(cluster.cp, "-n", cluster.ns, "vioscluster", "bad").get("status", {})
        for cond in status.get("conditions", []):
            if cond["status"] == "False" and "file.size" in cond.get("message", ""):
                return cond
        return None

    cond = wait_until(condition, 30, "a condition naming the field")
    assert "spec.pools[0].backends[0].file.size" in cond["message"], cond
    # The good cluster is untouched.
    assert set(cluster.states().values()) == {"Up"}


def test_operator_leader_failover_without_status_flapping(cluster):
    leader = wait_until(cluster.leader, 20, "an operator leader")
    op = next(o for o in cluster.operators if o.identity == leader)
    op.kill()
    killed = time.monotonic()
    observed = []

    def other_leads():
        observed.append(cluster.states())
        holder = cluster.leader()
        return holder and holder != leader

    wait_until(other_leads, 15, "the other replica to lead", interval=0.1)
    took = time.monotonic() - killed
    print("operator handover %.1f s after SIGKILL (lease 3 s)" % took)
    # Bounded by lease duration + a retry period, as client-go (common/kube leader election).
    assert took <= 3 + 2 + 2
    for _ in range(20):  # watch the member states for a few seconds after the handover
        observed.append(cluster.states())
        time.sleep(0.2)
    assert all(set(s.values()) == {"Up"} for s in observed), observed
    op.start()
