"""Several vios-agents serving ONE VIOSVolume, for the cluster reservation suites (issue #8).

Built on lib.cluster (namespaces, the API bridge, agents and the operator):

    c = PrCluster(control_plane, workdir, names=("agent-a", "agent-b", "agent-c")).start()
    s = c.session("agent-a", "iqn.2026-11.dev.vios:pr-a1")  # vios-prtool in agent-a's namespace
    s("register 0 a1") -> {"cmd": "register", "status": "GOOD", "us": ...}
    c.reservation()                                         # VIOSVolume.status.reservation
    c.close()

The VIOSCluster has one file pool whose backend file every agent opens (the namespaces share
the file system), and every agent has a virtual port with the SAME target name for the volume,
created through its local API as the CSI node plugin does: each agent serves the same extents,
and its reservation policy is the cluster one (the VIOSVolume exists).
"""

import json
import os
import queue
import subprocess
import threading
import time
import uuid

from .agent import BUILD_DIR
from .cluster import ApiBridge, ClusterAgentProc, Fabric, OperatorProc, get_json, wait_until

PRTOOL = os.path.join(BUILD_DIR, "node-agent", "reservation", "vios-prtool")
AGENTCTL = os.path.join(BUILD_DIR, "node-agent", "app", "vios-agentctl")
VOLUME = "vol-pr"
PORT = "pr-cluster"  # the same port name on every agent gives the same target name
VOLUME_BYTES = 64 << 20


class PrSession:
    """One vios-prtool process: one iSCSI session (one I_T nexus) kept open across commands."""

    def __init__(self, host, initiator, url, timeout=30):
        if not os.access(PRTOOL, os.X_OK):
            raise RuntimeError("%s not built (ninja vios-prtool; set VIOS_BUILD_DIR)" % PRTOOL)
        self.initiator = initiator
        self.url = url
        self.proc = host.popen([PRTOOL, "--initiator-name", initiator, "--timeout", str(timeout),
                                url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, bufsize=1)
        self._answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._next(60)
        if first.get("status") != "LOGGED_IN":
            raise RuntimeError("%s -> %s: %r" % (initiator, url, first))

    def _read(self):
        for line in self.proc.stdout:
            self._answers.put(json.loads(line))
        self._answers.put({"status": "EXITED", "error": self.proc.stderr.read()[-2000:]})

    def _next(self, timeout):
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("%s: no answer in %ds" % (self.initiator, timeout)) from None

    def __call__(self, line, timeout=90):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self._next(timeout)
        answer["initiator"] = self.initiator
        return answer

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class PrCluster:
    def __init__(self, cp, workdir, names, initiators):
        self.cp = cp
        self.workdir = workdir
        self.names = list(names)
        self.initiators = list(initiators)
        self.ns = "vios-pr-%s" % uuid.uuid4().hex[:6]
        self.pool_dir = os.path.join(workdir, "pool")
        os.makedirs(self.pool_dir, exist_ok=True)
        self.fabric = Fabric()
        self.bridge = ApiBridge(cp.state()["apiserver_port"])
        self.hosts, self.agents, self.sessions = {}, {}, []
        self.targets = {}  # port name -> target name (the same on every agent)
        for i, name in enumerate(self.names):
            host = self.fabric.host(name, "127.77.1.%d" % (10 + i))
            self.bridge.expose(host)
            self.hosts[name] = host
            self.agents[name] = ClusterAgentProc(os.path.join(workdir, name), name, host,
                                                 host.address, cp, self.ns, cluster="pr")
        self.operator = OperatorProc(workdir, "op", cp, self.ns, member_grace="2s")

    def start(self):
        cp, ns = self.cp, self.ns
        cp.kubectl("create", "namespace", ns)
        apply(cp, ns, {
            "apiVersion": "vios.dev/v1alpha1", "kind": "VIOSCluster", "metadata": {"name": "pr"},
            "spec": {"pools": [{"name": "pool0", "extentSize": "16Mi", "backends": [
                {"name": "file0", "file": {"path": os.path.join(self.pool_dir, "pool0.img"),
                                           "size": "256Mi"}}]}]}})
        apply(cp, ns, {
            "apiVersion": "vios.dev/v1alpha1", "kind": "VIOSVolume", "metadata": {"name": VOLUME},
            "spec": {"cluster": "pr", "pool": "pool0", "size": str(VOLUME_BYTES),
                     "accessModes": ["ReadWriteMany"], "volumeMode": "Block",
                     "transport": "iscsi",
                     "extents": [{"backend": "file0", "offset": 0, "length": VOLUME_BYTES}]}})
        self.operator.start()
        for agent in self.agents.values():
            agent.start()
        # Reservation updates go to every member the operator marks Up, over the peer channel:
        # wait for both (each agent has a peer path to every other one).
        others = len(self.names) - 1
        for agent in self.agents.values():
            wait_until(lambda a=agent: a.log().count('"msg":"peer path added"') >= others, 90,
                       "%s's peer channels" % agent.name)
        wait_until(lambda: all(self.member_state(n) == "Up" for n in self.names), 60,
                   "every member Up")
        for name in self.names:
            self.create_port(name)
        return self

    def member_state(self, name):
        return get_json(self.cp, "-n", self.ns, "viosmember", name).get("status", {}).get("state")

    def create_port(self, name, port=PORT, initiators=None):
        """A virtual port for the volume on agent `name`; returns its target name."""
        agent = self.agents[name]
        request = {"name": port, "volumeId": VOLUME, "sizeBytes": str(VOLUME_BYTES),
                   "pool": "pool0",
                   "extents": [{"backend": "file0", "offset": "0", "length": str(VOLUME_BYTES)}],
                   "allowedInitiators": list(initiators or self.initiators)}
        out = subprocess.run([AGENTCTL, "--socket", agent.socket, "create", json.dumps(request)],
                             capture_output=True, text=True)
        assert out.returncode == 0, (name, out.stderr)
        target = json.loads(out.stdout)["port"]["targetIqn"]
        self.targets.setdefault(port, target)
        assert self.targets[port] == target, (self.targets, target)
        return target

    def url(self, name, port=PORT):
        return "iscsi://%s:3260/%s/0" % (self.agents[name].address, self.targets[port])

    def session(self, name, initiator, port=PORT):
        s = PrSession(self.hosts[name], initiator, self.url(name, port))
        self.sessions.append(s)
        return s

    def volume(self):
        return get_json(self.cp, "-n", self.ns, "viosvolume", VOLUME)

    def reservation(self):
        return self.volume().get("status", {}).get("reservation", {})

    def watch(self):
        """Every VIOSVolume.status.reservation the API server records from now on, in order."""
        return ReservationWatch(self.cp, self.ns, self.volume()["metadata"]["resourceVersion"])

    def close(self):
        for s in self.sessions:
            s.close()
        for agent in self.agents.values():
            agent.stop()
        self.operator.stop()
        self.bridge.close()
        self.fabric.destroy()


def apply(cp, ns, obj):
    cp.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj))


class ReservationWatch:
    """A watch on the VIOSVolume from a resourceVersion on: the store's order of writes."""

    def __init__(self, cp, ns, resource_version):
        from controlplane import tools  # e2e/ is on sys.path (conftest)
        path = ("/apis/vios.dev/v1alpha1/namespaces/%s/viosvolumes?watch=1&fieldSelector="
                "metadata.name%%3D%s&resourceVersion=%s" % (ns, VOLUME, resource_version))
        self.proc = subprocess.Popen(
            [tools.path("kubectl"), "--kubeconfig", cp.kubeconfig, "get", "--raw", path],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.states = []  # (resourceVersion, status.reservation)
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            obj = event.get("object", {})
            with self._lock:
                self.states.append((obj.get("metadata", {}).get("resourceVersion"),
                                    obj.get("status", {}).get("reservation", {})))

    def reservations(self, until, timeout=10):
        """The recorded reservations, once the last one equals `until` (the current status)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = [r for _, r in self.states]
            if (got and got[-1] == until) or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def close(self):
        self.proc.kill()
        self.proc.wait()
