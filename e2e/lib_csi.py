"""Helpers for the CSI e2e suites: a VIOSCluster with a file pool, standalone agents serving the
same pool over their local API socket, vios-csi controller/node processes, csi-sanity runs.

Everything runs on this machine: the "nodes" are vios-csi node processes with their own node id,
agent and state directory; the Node objects they name are created in the local API server.
"""

import json
import os
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import yaml

from lib import agent as agent_module
from lib import procs
from lib.agent import BUILD_DIR, Agent

# VIOS_AGENT_BIN runs a vios-agent built elsewhere (another build directory) with these tests.
if os.environ.get("VIOS_AGENT_BIN"):
    agent_module.agent_binary = lambda: os.environ["VIOS_AGENT_BIN"]

E2E_DIR = os.path.dirname(os.path.abspath(__file__))
EXTENT = 16 << 20


def csi_binary():
    path = os.path.join(BUILD_DIR, "csi-driver", "vios-csi")
    if not os.access(path, os.X_OK):
        raise RuntimeError("vios-csi not built at %s (set VIOS_BUILD_DIR)" % path)
    return path


def tool_path(name):
    return subprocess.run([os.path.join(E2E_DIR, "tools", "tool-path"), name], check=True,
                          capture_output=True, text=True).stdout.strip()


def tool_versions():
    """KEY=value pins of e2e/tools/versions."""
    out = {}
    with open(os.path.join(E2E_DIR, "tools", "versions")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                out[key] = value
    return out


def pool_spec(pool_file, size="8Gi"):
    """The pool as both the VIOSCluster and the agent configuration spell it."""
    return {"name": "pool0", "extentSize": "16Mi",
            "backends": [{"name": "file0", "file": {"path": pool_file, "size": size}}]}


def create_cluster(cp, namespace, pool_file, name="local", size="8Gi"):
    obj = {"apiVersion": "vios.dev/v1alpha1", "kind": "VIOSCluster",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"pools": [pool_spec(pool_file, size)]}}
    cp.kubectl("apply", "-f", "-", input=json.dumps(obj))
    return name


def create_node(cp, name):
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    cp.kubectl("apply", "-f", "-", input=json.dumps(obj))


def start_agent(workdir, node, pool_file, size="8Gi"):
    """A standalone vios-agent serving the pool, with its local API on workdir/agent.sock."""
    pool = pool_spec(pool_file, size)
    pool["backends"][0]["file"]["create"] = True
    config = {
        "node": node,
        "stateDir": os.path.join(workdir, "state"),
        "listen": {"api": os.path.join(workdir, "agent.sock"),
                   "metrics": "127.0.0.1:%d" % procs.free_port()},
        "pools": [pool],
    }
    agent = Agent(workdir, config)
    agent.start()
    agent.api_socket = config["listen"]["api"]
    agent.metrics_url = "http://%s/metrics" % config["listen"]["metrics"]
    return agent


def agent_metric(agent, family, **labels):
    """The value of one sample of the agent's metrics, or None."""
    import urllib.request
    text = urllib.request.urlopen(agent.metrics_url, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(family + "{") and all(
                '%s="%s"' % (k, v) in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


class CsiProcess:
    """One vios-csi process (controller or node) on its own unix socket."""

    def __init__(self, workdir, mode, kubeconfig, namespace, cluster=None, node_id=None,
                 agent_socket=None, extra_args=()):
        self.workdir = workdir
        self.mode = mode
        self.socket = os.path.join(workdir, "csi.sock")
        self.log_path = os.path.join(workdir, "vios-csi-%s.log" % mode)
        argv = [csi_binary(), "--mode", mode, "--endpoint", "unix://" + self.socket,
                "--kubeconfig", kubeconfig, "--namespace", namespace]
        if cluster:
            argv += ["--cluster", cluster]
        if node_id:
            argv += ["--node-id", node_id, "--agent-socket", agent_socket,
                     "--state-dir", os.path.join(workdir, "state")]
        self.argv = argv + list(extra_args)
        self.proc = None

    @property
    def endpoint(self):
        return "unix://" + self.socket

    def start(self, timeout=30.0):
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.argv + ["--log-level", "debug"], stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.socket) and '"msg":"vios-csi started"' in self.log():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("vios-csi exited with %s:\n%s"
                                   % (self.proc.returncode, self.log()[-3000:]))
            time.sleep(0.05)
        raise TimeoutError("vios-csi did not start:\n" + self.log()[-3000:])

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc is not None:
            code = procs.stop(self.proc)
            self.proc = None
            return code
        return None


class SanityResult:
    def __init__(self, returncode, output, junit_path):
        self.returncode = returncode
        self.output = output
        self.passed, self.failed, self.skipped = [], [], []
        root = ET.parse(junit_path).getroot()
        for case in root.iter("testcase"):
            name = case.get("name", "")
            if case.find("failure") is not None or case.find("error") is not None:
                self.failed.append(name)
            elif case.find("skipped") is not None or case.get("status") == "skipped":
                self.skipped.append(name)
            else:
                self.passed.append(name)

    def summary(self):
        return "passed %d, failed %d, skipped %d" % (len(self.passed), len(self.failed),
                                                      len(self.skipped))


def run_sanity(workdir, node, controller, params, access_type="mount", timeout=1200,
               extra=()):
    """Runs csi-sanity against the two endpoints; returns a SanityResult."""
    os.makedirs(workdir, exist_ok=True)
    params_file = os.path.join(workdir, "params.yaml")
    with open(params_file, "w") as f:
        yaml.safe_dump(params, f)
    junit = os.path.join(workdir, "junit-%s.xml" % access_type)
    suffix = uuid.uuid4().hex[:6]
    argv = [tool_path("csi-sanity"),
            "-csi.endpoint", node.endpoint,
            "-csi.controllerendpoint", controller.endpoint,
            # Both must not exist: csi-sanity creates and removes them itself.
            "-csi.mountdir", os.path.join(workdir, "mnt-" + suffix),
            "-csi.stagingdir", os.path.join(workdir, "stage-" + suffix),
            "-csi.testvolumeparameters", params_file,
            "-csi.testvolumesize", str(4 * EXTENT),
            "-csi.testvolumeexpandsize", str(8 * EXTENT),
            "-csi.testvolumeaccesstype", access_type,
            "-ginkgo.junit-report", junit,
            "-ginkgo.no-color", *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    with open(os.path.join(workdir, "sanity-%s.log" % access_type), "w") as f:
        f.write(proc.stdout + proc.stderr)
    return SanityResult(proc.returncode, proc.stdout + proc.stderr, junit)


GRPC_CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
              "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
              "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
              "UNAUTHENTICATED"]


class CsiError(Exception):
    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


def call(endpoint_owner, method, request=None, timeout=300):
    """One CSI call through vios-csi-call; returns the response dict or raises CsiError."""
    tool = os.path.join(BUILD_DIR, "csi-driver", "vios-csi-call")
    proc = subprocess.run([tool, endpoint_owner.endpoint, method, json.dumps(request or {})],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode == 0:
        return json.loads(proc.stdout)
    if proc.returncode >= 10:
        code = GRPC_CODES[proc.returncode - 10]
        raise CsiError(code, proc.stderr.strip())
    raise RuntimeError("vios-csi-call %s failed: %s" % (method, proc.stderr))


def mount_cap(fs_type="ext4", mode="SINGLE_NODE_WRITER"):
    return {"mount": {"fsType": fs_type}, "accessMode": {"mode": mode}}


def block_cap(mode="SINGLE_NODE_WRITER"):
    return {"block": {}, "accessMode": {"mode": mode}}


class CsiEnv:
    """A VIOSCluster with one file pool, and per node: a standalone agent and a vios-csi node
    plugin; one vios-csi controller. Short paths under /tmp: unix socket paths are limited to
    108 bytes."""

    def __init__(self, cp, namespace, nodes=("a",), pool_size="8Gi"):
        import tempfile
        self.cp = cp
        self.namespace = namespace
        self.dir = tempfile.mkdtemp(prefix="csi-e2e-")
        self.pool_file = os.path.join(self.dir, "pool0.img")
        self.pool_size = pool_size
        self.cluster = create_cluster(cp, namespace, self.pool_file, size=pool_size)
        self.agents = {}
        self.nodes = {}
        self.node_ids = {}
        self.controller = None
        self.node_names = nodes

    def start(self):
        suffix = uuid.uuid4().hex[:6]
        for n in self.node_names:
            node_id = "csi-%s-%s" % (n, suffix)
            create_node(self.cp, node_id)
            self.node_ids[n] = node_id
            self.agents[n] = start_agent(os.path.join(self.dir, "agent-" + n), node_id,
                                         self.pool_file, self.pool_size)
            self.nodes[n] = CsiProcess(os.path.join(self.dir, "node-" + n), "node",
                                       self.cp.kubeconfig, self.namespace, node_id=node_id,
                                       agent_socket=self.agents[n].api_socket).start()
        self.controller = CsiProcess(os.path.join(self.dir, "controller"), "controller",
                                     self.cp.kubeconfig, self.namespace,
                                     cluster=self.cluster).start()
        return self

    def volumes(self):
        out = self.cp.kubectl("get", "viosvolumes", "-n", self.namespace, "-o", "json").stdout
        return json.loads(out)["items"]

    def logs(self):
        text = ""
        for p in [self.controller, *self.nodes.values()]:
            if p:
                text += "\n--- %s\n%s" % (p.log_path, p.log()[-3000:])
        for a in self.agents.values():
            text += "\n--- %s\n%s" % (a.log_path, a.log()[-3000:])
        return text

    def stop(self):
        for p in [self.controller, *self.nodes.values()]:
            if p:
                p.stop()
        for a in self.agents.values():
            a.stop()
        # Remove the work directory only when nothing is mounted below it any more (a failed
        # test may leave a mount; deleting through it would touch the volume, not our files).
        with open("/proc/self/mountinfo") as f:
            busy = any((" %s/" % self.dir) in line for line in f)
        if not busy:
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)


# --- Kubernetes-side components: kube-controller-manager (PV binder) and the CSI sidecars -------

DRIVER = "csi.vios.dev"
SIDECARS = ("csi-provisioner", "csi-attacher", "csi-resizer")


class KubeProcess:
    """One Go component (kube-controller-manager or a CSI sidecar) run from the tool cache with
    the control plane's admin kubeconfig; its log goes to workdir/<tool>.log."""

    def __init__(self, workdir, tool, args):
        self.workdir = workdir
        self.tool = tool
        self.argv = [tool_path(tool), *args]
        self.log_path = os.path.join(workdir, tool + ".log")
        self.proc = None

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(0.2)
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited with %s:\n%s" % (self.tool, self.proc.returncode,
                                                           self.log()[-3000:]))
        return self

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None


def start_controller_manager(workdir, kubeconfig):
    """kube-controller-manager with only the controllers a PVC needs without a kubelet: the PV
    binder (annotates claims for external provisioners, binds the PVs they create, releases
    them on delete) and the two protection controllers (they remove the in-use finalizers the
    StorageObjectInUseProtection admission plugin adds)."""
    return KubeProcess(workdir, "kube-controller-manager", [
        "--kubeconfig=" + kubeconfig,
        "--controllers=persistentvolume-binder-controller,persistentvolume-protection-controller,"
        "persistentvolumeclaim-protection-controller",
        "--leader-elect=false",
        "--secure-port=0",
        "--use-service-account-credentials=false",
        # The binder re-syncs claims and volumes every 15 s by default; 1 s keeps tests short.
        "--pvclaimbinder-sync-period=1s",
        "--v=2",
    ]).start()


def start_sidecars(workdir, kubeconfig, csi_socket, names=SIDECARS):
    """The kubernetes-csi sidecars against a vios-csi controller socket, leader election off
    (one replica each)."""
    # The client-side rate limit defaults to 5 requests/s, which would measure the sidecar's
    # throttle rather than the driver; the API server here is ours alone.
    common = ["--csi-address=" + csi_socket, "--kubeconfig=" + kubeconfig, "--timeout=120s",
              "--kube-api-qps=100", "--kube-api-burst=200", "--v=4"]
    extra = {
        "csi-provisioner": ["--worker-threads=16", "--retry-interval-start=1s",
                            "--retry-interval-max=10s"],
    }
    return {n: KubeProcess(workdir, n, common + extra.get(n, [])).start() for n in names}


def apply(cp, obj):
    cp.kubectl("apply", "-f", "-", input=json.dumps(obj))


def create_storage_class(cp, name, parameters, expansion=True):
    apply(cp, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": name}, "provisioner": DRIVER, "parameters": parameters,
               "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
               "allowVolumeExpansion": expansion})


def create_csi_node(cp, node):
    """The CSINode object node-driver-registrar would write: the attacher maps a Node name to
    the driver's node id through it."""
    apply(cp, {"apiVersion": "storage.k8s.io/v1", "kind": "CSINode",
               "metadata": {"name": node},
               "spec": {"drivers": [{"name": DRIVER, "nodeID": node}]}})


def pvc_object(name, namespace, storage_class, size, mode="Filesystem"):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                     "volumeMode": mode, "resources": {"requests": {"storage": size}}}}


def get_json(cp, *args):
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


def wait_for(what, fn, timeout=120.0, interval=0.25):
    """Polls fn until it returns something truthy; TimeoutError names what."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))
