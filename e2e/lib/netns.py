"""Test hosts in network namespaces, linked by veth pairs, all addresses inside 127.0.0.0/8.

DESIGN.md §13: each namespace's lo is narrowed to 127.0.0.1/32 and route_localnet is set, so
127.77.x.y addresses on the veth links are routed between namespaces instead of being local.

    san = Host("san"); agent = Host("agent")
    link(san, "127.77.0.1", agent, "127.77.0.2")
    agent.run(["iscsi-inq", ...]); san.popen(["tgtd", ...])
    ...; agent.destroy(); san.destroy()
"""

import itertools
import os
import subprocess
import uuid

_counter = itertools.count()


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Host:
    """One network namespace with lo narrowed to 127.0.0.1/32."""

    def __init__(self, role):
        self.name = "vios-%s-%s" % (role, uuid.uuid4().hex[:6])
        self.links = []
        _ip("netns", "add", self.name)
        self.sh("ip link set lo up && ip addr del 127.0.0.1/8 dev lo && "
                "ip addr add 127.0.0.1/32 dev lo && "
                "sysctl -qw net.ipv4.conf.all.route_localnet=1 "
                "net.ipv4.conf.default.route_localnet=1 net.ipv4.conf.lo.route_localnet=1")

    def command(self, argv):
        return ["ip", "netns", "exec", self.name, *argv]

    def sh(self, script):
        return subprocess.run(self.command(["sh", "-c", script]), check=True, capture_output=True,
                              text=True)

    def run(self, argv, **kwargs):
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.STDOUT)
        kwargs.setdefault("text", True)
        return subprocess.run(self.command(argv), **kwargs)

    def popen(self, argv, **kwargs):
        return subprocess.Popen(self.command(argv), **kwargs)

    def destroy(self):
        _ip("netns", "del", self.name, check=False)


def link(a, a_address, b, b_address, prefix=24):
    """A veth pair between hosts a and b with the given 127.x addresses."""
    n = "%d%s" % (next(_counter), uuid.uuid4().hex[:4])
    a_if, b_if = "va%s" % n, "vb%s" % n
    _ip("link", "add", a_if, "type", "veth", "peer", "name", b_if)
    for host, ifname, address in ((a, a_if, a_address), (b, b_if, b_address)):
        _ip("link", "set", ifname, "netns", host.name)
        host.sh("sysctl -qw net.ipv4.conf.%s.route_localnet=1 && ip addr add %s/%d dev %s && "
                "ip link set %s up" % (ifname, address, prefix, ifname, ifname))
        host.links.append(ifname)
    return a_if, b_if


def set_link(host, ifname, up):
    """Brings one end of a link up or down (path-loss tests)."""
    host.sh("ip link set %s %s" % (ifname, "up" if up else "down"))


def available():
    return os.geteuid() == 0
