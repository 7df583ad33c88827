"""Runs a standalone vios-agent (node-agent/README.md) from a config written by the test."""

import os
import subprocess
import time

import yaml

from . import procs

BUILD_DIR = os.environ.get(
    "VIOS_BUILD_DIR",
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                 "build-ci"))


def agent_binary():
    path = os.path.join(BUILD_DIR, "node-agent", "app", "vios-agent")
    if not os.access(path, os.X_OK):
        raise RuntimeError("vios-agent not built at %s (set VIOS_BUILD_DIR)" % path)
    return path


class Agent:
    """A vios-agent process serving `config` (a dict in the agent's YAML schema)."""

    def __init__(self, workdir, config, host="127.0.0.1", port=None, netns=None):
        self.workdir = workdir
        self.host = host
        self.netns = netns  # lib.netns.Host to run in, or None for this namespace.
        self.port = port or (3260 if netns else procs.free_port(host))
        self.config = dict(config)
        self.config.setdefault("listen", {})["iscsi"] = ["%s:%d" % (self.host, self.port)]
        self.config_path = os.path.join(workdir, "agent.yaml")
        self.log_path = os.path.join(workdir, "agent.log")
        self.proc = None

    def start(self, extra_args=()):
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.config_path, "w") as f:
            yaml.safe_dump(self.config, f)
        log = open(self.log_path, "a")
        argv = [agent_binary(), "--config", self.config_path, *extra_args]
        if self.netns:
            argv = self.netns.command(argv)
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_started()
        return self

    def _wait_started(self, timeout=60.0):
        """The agent logs "agent started" once every portal listens."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if '"msg":"agent started"' in self.log():
                return
            if self.proc.poll() is not None:
                raise RuntimeError("vios-agent exited with %s:\n%s"
                                   % (self.proc.returncode, self.log()[-4000:]))
            time.sleep(0.05)
        raise TimeoutError("vios-agent did not start in %.0fs:\n%s" % (timeout, self.log()[-4000:]))

    def url(self, target, lun=0):
        return "iscsi://%s:%d/%s/%d" % (self.host, self.port, target, lun)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc is not None:
            code = procs.stop(self.proc)
            self.proc = None
            return code
        return None


def file_pool_config(workdir, volume_size="256Mi", targets=None, initiators=None):
    """A one-backend file pool with one volume per target, each port LUN 0 of its target."""
    targets = targets or ["iqn.2026-11.dev.vios:e2e"]
    volumes = []
    ports = []
    for i, target in enumerate(targets):
        name = "vol%d" % i
        volumes.append({"name": name, "pool": "pool0", "size": volume_size})
        port = {"target": target, "volume": name}
        if initiators:
            port["initiators"] = list(initiators)
        else:
            port["allowAnyInitiator"] = True
        ports.append(port)
    return {
        "node": "e2e",
        "stateDir": os.path.join(workdir, "state"),
        "pools": [{
            "name": "pool0",
            "extentSize": "16Mi",
            "backends": [{
                "name": "file0",
                "file": {"path": os.path.join(workdir, "pool0.img"), "size": "2Gi",
                         "create": True},
            }],
        }],
        "volumes": volumes,
        "ports": ports,
    }
