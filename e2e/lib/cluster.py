"""A vios cluster on one machine: agents as hosts in their own network namespaces, the operator
and the local control plane in this one (DESIGN.md §13: every address inside 127.0.0.0/8).

    fabric = Fabric()                                  # a hub namespace with a bridge
    a = fabric.host("agent-a", "127.77.1.10")          # lib.netns.Host on the bridge
    bridge = ApiBridge(control_plane.state()["apiserver_port"])
    bridge.expose(a)                                   # 127.0.0.1:<port> inside a reaches the API
    agent = ClusterAgentProc(workdir, "agent-a", a, "127.77.1.10", control_plane, "vios-e2e")
    agent.start(); ...; agent.kill(); fabric.destroy()

Namespaces cannot reach this namespace's loopback. ApiBridge opens a listening socket INSIDE
each agent namespace (setns(2) on a helper thread, so the socket belongs to that namespace) and
relays every connection to the API server here: the agents use the kubeconfig unchanged, and
an nftables rule in an agent's namespace cuts that agent (and only it) off the API server.
"""

import ctypes
import json
import os
import socket
import subprocess
import threading
import time
import uuid

from . import netns, procs
from .agent import BUILD_DIR

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")


def binary(*parts):
    path = os.path.join(BUILD_DIR, *parts)
    if not os.access(path, os.X_OK):
        raise RuntimeError("%s not built (set VIOS_BUILD_DIR)" % path)
    return path


class Fabric:
    """A hub namespace holding one Linux bridge; hosts are attached with a veth each."""

    def __init__(self, subnet_prefix=24):
        self.hub = netns.Host("hub")
        self.hub.sh("ip link add br0 type bridge && ip link set br0 up")
        self.prefix = subnet_prefix
        self.hosts = []

    def host(self, role, address):
        """A new host (network namespace) on this network."""
        h = netns.Host(role)
        h.address = address
        h.fabric_if = self.attach(h, address)
        self.hosts.append(h)
        return h

    def attach(self, h, address):
        """Attaches a host to this network with address (a second network: the SAN); returns
        the host-side interface name."""
        n = uuid.uuid4().hex[:6]
        h_if, hub_if = "e%s" % n, "h%s" % n
        for argv in (["link", "add", h_if, "type", "veth", "peer", "name", hub_if],
                     ["link", "set", hub_if, "netns", self.hub.name],
                     ["link", "set", h_if, "netns", h.name]):
            subprocess.run(["ip", *argv], check=True, capture_output=True)
        self.hub.sh("ip link set %s master br0 && ip link set %s up" % (hub_if, hub_if))
        h.sh("sysctl -qw net.ipv4.conf.%s.route_localnet=1 && ip addr add %s/%d dev %s && "
             "ip link set %s up" % (h_if, address, self.prefix, h_if, h_if))
        h.links.append(h_if)
        return h_if

    def destroy(self):
        for h in self.hosts:
            h.destroy()
        self.hub.destroy()


def pump(src, dst):
    """Copies src to dst until either side ends, then shuts both down (one direction of a
    relayed TCP connection)."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ApiBridge:
    """Relays 127.0.0.1:port inside agent namespaces to 127.0.0.1:port here."""

    def __init__(self, port):
        self.port = port
        self._stop = False
        self._listeners = []
        self._own_ns = os.open("/proc/self/ns/net", os.O_RDONLY)

    def expose(self, host):
        result = {}

        def open_listener():
            fd = os.open("/var/run/netns/%s" % host.name, os.O_RDONLY)
            try:
                _setns(fd)  # this thread only
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", self.port))
                s.listen(64)
                result["socket"] = s
            except OSError as e:
                result["error"] = e
            finally:
                os.close(fd)

        t = threading.Thread(target=open_listener)
        t.start()
        t.join()  # the thread ends: its namespace switch goes with it
        if "error" in result:
            raise result["error"]
        listener = result["socket"]
        self._listeners.append(listener)
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def _accept_loop(self, listener):
        while not self._stop:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    def close(self):
        self._stop = True
        for s in self._listeners:
            s.close()


def cut_api(host, port):
    """Drops every packet to the API bridge inside host (nftables), both new and established."""
    host.sh("nft add table inet vios_cut && "
            "nft 'add chain inet vios_cut out { type filter hook output priority 0; }' && "
            "nft add rule inet vios_cut out tcp dport %d drop && "
            "nft add rule inet vios_cut out tcp sport %d drop" % (port, port))


def restore_api(host):
    host.sh("nft delete table inet vios_cut")


class ClusterAgentProc:
    """vios-agent in cluster mode, started with the flags the operator's DaemonSet passes."""

    def __init__(self, workdir, name, host, address, control_plane, namespace, cluster="e2e",
                 extra_args=()):
        self.workdir = workdir
        self.name = name
        self.host = host
        self.address = address
        self.cp = control_plane
        self.namespace = namespace
        self.cluster = cluster
        self.extra_args = list(extra_args)
        self.state_dir = os.path.join(workdir, "state")
        self.socket = os.path.join(workdir, "agent.sock")
        self.log_path = os.path.join(workdir, "agent.log")
        self.metrics_port = 9470
        self.proc = None

    def argv(self):
        return [binary("node-agent", "app", "vios-agent"),
                "--cluster=" + self.cluster, "--namespace=" + self.namespace,
                "--node-name=" + self.name, "--kubeconfig=" + self.cp.kubeconfig,
                "--state-dir=" + self.state_dir, "--socket=" + self.socket,
                "--advertise-address=" + self.address, "--peer-port=7470",
                "--peer-data-port=7471",  # as the operator's DaemonSet passes it
                "--metrics-address=%s:%d" % (self.address, self.metrics_port),
                *self.extra_args]

    def start(self, wait=True):
        os.makedirs(self.workdir, exist_ok=True)
        self._log_offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        log = open(self.log_path, "a")
        # nsenter, not `ip netns exec`: that one also unshares the mount namespace, and the
        # agent's FUSE exports must be visible to the node plugin (losetup) here.
        self.proc = subprocess.Popen(
            ["nsenter", "--net=/var/run/netns/%s" % self.host.name, *self.argv()], stdout=log,
            stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_log('"msg":"agent started"', 60)
        return self

    def log(self, since_start=False):
        with open(self.log_path, errors="replace") as f:
            text = f.read()
        return text[self._log_offset:] if since_start else text

    def wait_log(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log(since_start=True):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s"
                                   % (self.name, self.proc.returncode, self.log()[-4000:]))
            time.sleep(0.1)
        raise TimeoutError("%s: no %r in %.0fs:\n%s" % (self.name, needle, timeout,
                                                         self.log()[-4000:]))

    def metrics(self):
        res = self.host.run(["curl", "-sf", "http://%s:%d/metrics" % (self.address,
                                                                       self.metrics_port)])
        return res.stdout

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc is not None:
            code = procs.stop(self.proc)
            self.proc = None
            return code
        return None


class OperatorProc:
    """One vios-operator replica in this namespace."""

    def __init__(self, workdir, identity, control_plane, namespace, lease_duration="3s",
                 member_grace="2s"):
        self.workdir = workdir
        self.identity = identity
        self.cp = control_plane
        self.namespace = namespace
        self.lease_duration = lease_duration
        self.member_grace = member_grace
        self.metrics_port = procs.free_port()
        self.log_path = os.path.join(workdir, "operator-%s.log" % identity)
        self.proc = None

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [binary("operator", "vios-operator"), "--kubeconfig=" + self.cp.kubeconfig,
             "--namespace=" + self.namespace, "--leader-elect=true",
             "--lease-duration=" + self.lease_duration, "--member-grace=" + self.member_grace,
             "--identity=" + self.identity,
             "--metrics-address=127.0.0.1:%d" % self.metrics_port],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None


def get_json(cp, *args):
    return json.loads(cp.kubectl("get", "-o", "json", *args).stdout)


def wait_until(predicate, timeout, what, interval=0.2):
    """Polls predicate until it returns a truthy value; returns it, or fails naming what."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except Exception as e:  # noqa: BLE001 - a transient kubectl failure is retried
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))
