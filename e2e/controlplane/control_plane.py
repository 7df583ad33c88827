"""A real Kubernetes control plane on loopback: etcd + kube-apiserver, like envtest.

    cp = ControlPlane("/tmp/cp", install_crds=True)
    cp.start()                       # returns the admin kubeconfig path
    cp.kubectl("get", "crd")
    cp.restart_apiserver()           # same port, certificates and etcd
    cp.compact()                     # etcd compacted: old resourceVersions answer 410 Gone
    cp.stop()                        # SIGTERM, then SIGKILL; nothing left running

Everything lives in one directory: pki/, etcd/ (data), etcd.log, apiserver.log, kubeconfig and
state.json (ports, pids and the process start times that guard against pid reuse). Because the
state is on disk, one process can start the control plane and another stop it (the CLI does so).
"""

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

from . import pki
from . import tools

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT = float(os.environ.get("VIOS_CONTROLPLANE_TIMEOUT", "120"))
STOP_GRACE = 15.0
COMPACT_REV_KEY = b"compact_rev_key"  # k8s.io/apiserver/pkg/storage/etcd3/compact.go


def free_port():
    """A loopback TCP port that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_time(pid):
    """The start time of pid in clock ticks (field 22 of /proc/PID/stat), None if it is gone or a
    zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def _write_private(path, config):
    """Writes a kubeconfig atomically, mode 0600: block YAML like kubectl writes (JSON, which is
    YAML too, if PyYAML is missing)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        try:
            import yaml
            yaml.safe_dump(config, f, default_flow_style=False, sort_keys=False)
        except ImportError:
            json.dump(config, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class ControlPlaneError(RuntimeError):
    pass


class ControlPlane:
    """One etcd + kube-apiserver pair whose state lives in directory dir."""

    def __init__(self, dir, install_crds=False, crds_dir=None):
        self.dir = os.path.abspath(dir)
        self.install_crds = install_crds
        self.crds_dir = crds_dir or os.path.join(SOURCE_DIR, "crds")
        self.pki = os.path.join(self.dir, "pki")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self._state_path = os.path.join(self.dir, "state.json")
        self._children = {}  # name -> Popen, for the processes this object started

    # ---- state on disk -------------------------------------------------------------------

    def state(self):
        try:
            with open(self._state_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def _save(self, state):
        tmp = self._state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=2)
        os.replace(tmp, self._state_path)

    @property
    def server(self):
        return "https://127.0.0.1:%d" % self.state()["apiserver_port"]

    @property
    def etcd_url(self):
        return "http://127.0.0.1:%d" % self.state()["etcd_client_port"]

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self):
        """Starts etcd and kube-apiserver, writes the kubeconfig, waits for /readyz (and the CRDs
        when asked). Returns the kubeconfig path. On failure everything started is stopped."""
        binaries = {t: tools.path(t) for t in ("etcd", "kube-apiserver", "kubectl")}
        if self.running():
            raise ControlPlaneError("a control plane is already running in " + self.dir)
        os.makedirs(self.dir, exist_ok=True)
        pki.generate(self.pki)
        state = {"binaries": binaries}
        self._save(state)
        try:
            self._start_etcd(state)
            for attempt in range(3):  # the port can be taken between probe and bind: retry
                state["apiserver_port"] = free_port()
                self._save(state)
                self._write_kubeconfig(state)
                try:
                    self._start_apiserver(state)
                    break
                except ControlPlaneError:
                    self._stop_process(state, "apiserver")
                    if attempt == 2 or "address already in use" not in self._log_tail("apiserver"):
                        raise
            if self.install_crds:
                self.apply_crds()
        except BaseException:
            self.stop()
            raise
        return self.kubeconfig

    def stop(self):
        """Stops kube-apiserver, etcd and the watchdog: SIGTERM, then SIGKILL after a grace
        period. Idempotent; leaves the directory in place."""
        state = self.state()
        for name in ("apiserver", "etcd", "watchdog"):
            self._stop_process(state, name)
        if state:
            self._save(state)

    def running(self):
        state = self.state()
        return any(self._alive(state, n) for n in ("apiserver", "etcd"))

    def restart_apiserver(self):
        """Stops kube-apiserver and starts it again on the same port with the same certificates
        and etcd; returns when it is ready."""
        state = self.state()
        if not self._alive(state, "etcd"):
            raise ControlPlaneError("etcd is not running in " + self.dir)
        self._stop_process(state, "apiserver")
        self._save(state)
        self._start_apiserver(state)

    def compact(self, restart_apiserver=True):
        """Compacts etcd to its current revision so that older resourceVersions answer 410 Gone.
        Returns the revision.

        The compaction is announced the way kube-apiserver's own compactor does it (the
        compact_rev_key protocol), so the API server knows the compacted revision. Its watch cache
        keeps its own event history, though, and keeps serving watches from old
        resourceVersions; restart_apiserver (the default) restarts it so the cache starts at the
        current revision and every older resourceVersion, for lists and watches, gets 410."""
        key = base64.b64encode(COMPACT_REV_KEY).decode()
        for _ in range(5):
            got = self._etcd_post("/v3/kv/range", {"key": key})
            revision = int(got["header"]["revision"])
            kvs = got.get("kvs") or []
            version = int(kvs[0].get("version", 0)) if kvs else 0
            # Compare-and-swap on the key's version, exactly like the apiserver's compactor.
            txn = self._etcd_post("/v3/kv/txn", {
                "compare": [{"target": "VERSION", "key": key, "result": "EQUAL",
                             "version": str(version)}],
                "success": [{"request_put": {
                    "key": key, "value": base64.b64encode(str(revision).encode()).decode()}}],
            })
            if txn.get("succeeded"):
                break
        else:
            raise ControlPlaneError("could not update compact_rev_key: the API server's compactor "
                                    "kept racing")
        try:
            self._etcd_post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        except ControlPlaneError as e:
            if "compacted" not in str(e):  # already compacted to this revision: fine
                raise
        if restart_apiserver:
            self.restart_apiserver()
        return revision

    def watchdog(self, owner_pid, poll=0.5):
        """Blocks until owner_pid exits (or the control plane is stopped), then stops it. The CLI
        runs this in a detached process so a crashed test never leaves processes behind."""
        while _start_time(owner_pid) is not None and self.running():
            time.sleep(poll)
        state = self.state()
        state.pop("watchdog", None)  # do not signal ourselves
        self._save(state)
        self.stop()

    # ---- kubectl ------------------------------------------------------------------------

    def kubectl(self, *args, check=True, input=None, timeout=60):
        """Runs the pinned kubectl with the admin kubeconfig; returns the CompletedProcess (text)."""
        # Discovery cache inside dir: ports are random, ~/.kube/cache would only grow.
        cmd = [tools.path("kubectl"), "--kubeconfig", self.kubeconfig,
               "--cache-dir", os.path.join(self.dir, "kubectl-cache"), *args]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise ControlPlaneError("kubectl %s failed (%d): %s"
                                    % (" ".join(args), res.returncode, res.stderr.strip()))
        return res

    def apply_crds(self, timeout=60):
        """Applies crds/*.yaml and waits until every CRD is Established."""
        files = sorted(f for f in os.listdir(self.crds_dir) if f.endswith(".yaml"))
        if not files:
            raise ControlPlaneError("no CRDs in " + self.crds_dir)
        args = ["apply", "--server-side", "--field-manager=vios-controlplane"]
        for f in files:
            args += ["-f", os.path.join(self.crds_dir, f)]
        names = self.kubectl(*args, "-o", "name").stdout.split()
        self.kubectl("wait", "--for=condition=Established", "--timeout=%ds" % timeout, *names,
                     timeout=timeout + 10)
        return names

    # ---- etcd ---------------------------------------------------------------------------

    def _start_etcd(self, state):
        for attempt in range(3):  # a free port can be taken between probe and bind: retry
            client, peer = free_port(), free_port()
            state.update(etcd_client_port=client, etcd_peer_port=peer)
            cmd = [
                state["binaries"]["etcd"],
                "--name=vios",
                "--data-dir=" + os.path.join(self.dir, "etcd"),
                "--listen-client-urls=http://127.0.0.1:%d" % client,
                "--advertise-client-urls=http://127.0.0.1:%d" % client,
                "--listen-peer-urls=http://127.0.0.1:%d" % peer,
                "--initial-advertise-peer-urls=http://127.0.0.1:%d" % peer,
                "--initial-cluster=vios=http://127.0.0.1:%d" % peer,
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",  # test data: durability across power loss is not needed
                "--log-level=warn",
            ]
            self._spawn(state, "etcd", cmd)
            try:
                self._wait(lambda: self._etcd_healthy(), state, "etcd", 30)
                return
            except ControlPlaneError:
                self._stop_process(state, "etcd")
                if attempt == 2 or "address already in use" not in self._log_tail("etcd"):
                    raise

    def _etcd_healthy(self):
        try:
            with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as r:
                return json.load(r).get("health") == "true"
        except (OSError, ValueError):
            return False

    def _etcd_post(self, path, body):
        req = urllib.request.Request(self.etcd_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            raise ControlPlaneError("etcd %s: %s" % (path, e.read().decode(errors="replace")))
        except OSError as e:
            raise ControlPlaneError("etcd %s: %s" % (path, e))

    # ---- kube-apiserver -----------------------------------------------------------------

    def _apiserver_cmd(self, state):
        p = lambda name: os.path.join(self.pki, name)  # noqa: E731
        port = state["apiserver_port"]
        return [
            state["binaries"]["kube-apiserver"],
            "--etcd-servers=http://127.0.0.1:%d" % state["etcd_client_port"],
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The endpoint reconciler refuses loopback addresses (1.37); nothing here needs the
            # default/kubernetes Endpoints.
            "--endpoint-reconciler-type=none",
            "--secure-port=%d" % port,
            "--cert-dir=" + p("apiserver-certs"),
            "--tls-cert-file=" + p("apiserver.crt"),
            "--tls-private-key-file=" + p("apiserver.key"),
            "--client-ca-file=" + p("ca.crt"),
            "--token-auth-file=" + p("tokens.csv"),
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--service-account-issuer=https://127.0.0.1:%d" % port,
            "--service-account-key-file=" + p("sa.pub"),
            "--service-account-signing-key-file=" + p("sa.key"),
            "--allow-privileged=true",
            "--profiling=false",
        ]

    def _start_apiserver(self, state):
        self._spawn(state, "apiserver", self._apiserver_cmd(state))
        self._wait(self._apiserver_ready, state, "apiserver", READY_TIMEOUT)

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.pki, "admin.crt"), os.path.join(self.pki, "admin.key"))
        return ctx

    def _apiserver_ready(self):
        try:
            with urllib.request.urlopen(self.server + "/readyz", timeout=5,
                                        context=self.ssl_context()) as r:
                return r.status == 200 and r.read().strip() == b"ok"
        except (OSError, ValueError):
            return False

    def _write_kubeconfig(self, state):
        """Writes three admin kubeconfigs: kubeconfig (credentials embedded as *-data),
        kubeconfig-files (the same credentials as file paths under pki/) and kubeconfig-token
        (a bearer token from --token-auth-file), so clients can test every way of configuring."""
        def b64(name):
            with open(os.path.join(self.pki, name), "rb") as f:
                return base64.b64encode(f.read()).decode()

        server = "https://127.0.0.1:%d" % state["apiserver_port"]
        pki_path = lambda name: os.path.join(self.pki, name)  # noqa: E731
        variants = {
            self.kubeconfig: (
                {"certificate-authority-data": b64("ca.crt")},
                {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")}),
            self.kubeconfig + "-files": (
                {"certificate-authority": pki_path("ca.crt")},
                {"client-certificate": pki_path("admin.crt"), "client-key": pki_path("admin.key")}),
            self.kubeconfig + "-token": (
                {"certificate-authority-data": b64("ca.crt")},
                {"token": self._admin_token()}),
        }
        for path, (cluster, user) in variants.items():
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "vios-local", "cluster": dict(server=server, **cluster)}],
                "users": [{"name": "vios-admin", "user": user}],
                "contexts": [{"name": "vios-local", "context": {
                    "cluster": "vios-local", "user": "vios-admin", "namespace": "default"}}],
                "current-context": "vios-local",
                "preferences": {},
            }
            _write_private(path, config)

    def _admin_token(self):
        """The static bearer token of the admin user (pki/tokens.csv, group system:masters)."""
        path = os.path.join(self.pki, "admin.token")
        if not os.path.exists(path):
            token = base64.b32encode(os.urandom(20)).decode().lower()
            with open(os.path.join(self.pki, "tokens.csv"), "w") as f:
                f.write('%s,vios-token-admin,vios-token-admin,"system:masters"\n' % token)
            with open(path, "w") as f:
                f.write(token)
        with open(path) as f:
            return f.read().strip()

    # ---- processes ----------------------------------------------------------------------

    def _spawn(self, state, name, cmd):
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        try:
            log.write(("\n==== %s %s\n" % (time.strftime("%H:%M:%S"), " ".join(cmd))).encode())
            log.flush()
            # A new session: the process outlives the CLI that started it and has its own group.
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True)
        finally:
            log.close()
        self._children[name] = proc
        state[name] = {"pid": proc.pid, "start_time": _start_time(proc.pid)}
        self._save(state)

    def _alive(self, state, name):
        entry = state.get(name)
        if not entry:
            return False
        child = self._children.get(name)
        if child is not None and child.poll() is not None:
            return False
        return _start_time(entry["pid"]) == entry["start_time"]

    def _wait(self, ready, state, name, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._alive(state, name):
                raise ControlPlaneError("%s exited while starting; %s.log says:\n%s"
                                        % (name, name, self._log_tail(name)))
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneError("%s not ready after %.0fs; %s.log says:\n%s"
                                % (name, timeout, name, self._log_tail(name)))

    def _log_tail(self, name, lines=30):
        try:
            with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def _stop_process(self, state, name):
        """SIGTERM to the process group, SIGKILL after STOP_GRACE; only if the pid still names the
        process we started (same start time)."""
        if not self._alive(state, name):
            state.pop(name, None)
            self._children.pop(name, None)
            return
        pid = state[name]["pid"]
        for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            except PermissionError:
                os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self._alive(state, name):
                time.sleep(0.05)
            if not self._alive(state, name):
                break
        child = self._children.pop(name, None)
        if child is not None:
            child.wait(timeout=5)  # reap it
        if _start_time(pid) == state[name]["start_time"]:
            raise ControlPlaneError("%s (pid %d) did not stop" % (name, pid))
        state.pop(name, None)
