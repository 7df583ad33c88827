"""The Helm chart (charts/vios) against the pinned helm and a real kube-apiserver: lint, template
with the default and the full values, server-side dry-run of every rendered object, a real
install (objects accepted and correct, RBAC exactly as the binaries need it) and uninstall.
There is no kubelet: pods never run; the objects must be accepted and right.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import yaml

from controlplane import tools

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(REPO, "charts", "vios")
FULL_VALUES = os.path.join(CHART, "ci", "full-values.yaml")
RULES = os.path.join(CHART, "files", "vios-alerts.rules.yaml")
DASHBOARD = os.path.join(CHART, "files", "vios-dashboard.json")
KUBE_VERSION = tools.version("kubectl").lstrip("v")
MONITORING_API = "monitoring.coreos.com/v1"


def helm(*args, check=True, kubeconfig=None):
    cmd = [tools.path("helm"), *args]
    if kubeconfig:
        cmd += ["--kubeconfig", kubeconfig]
    env = dict(os.environ, HELM_CACHE_HOME="/tmp/vios-helm/cache",
               HELM_CONFIG_HOME="/tmp/vios-helm/config", HELM_DATA_HOME="/tmp/vios-helm/data")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError("helm %s failed (%d):\n%s%s"
                             % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


def render(*args, namespace="vios-system"):
    out = helm("template", "vios", CHART, "--namespace", namespace, "--kube-version",
               KUBE_VERSION, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    return out


def containers(deployment):
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_helm_lint_default_and_full_values():
    for extra in ([], ["-f", FULL_VALUES]):
        proc = helm("lint", "--strict", CHART, *extra)
        assert "0 chart(s) failed" in proc.stdout, proc.stdout
        assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout


def test_schema_rejects_bad_values(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("storageClasses:\n  - name: x\n    parameters: {transport: nfs}\n"
                   "operator: {replicas: 0}\nunknownKey: 1\n")
    proc = helm("template", "vios", CHART, "-f", str(bad), "--kube-version", KUBE_VERSION,
                check=False)
    assert proc.returncode != 0
    for problem in ("transport", "replicas", "unknownKey"):
        assert problem in proc.stderr, proc.stderr


def test_template_default_values():
    docs = by_kind(render())
    # Optional resources render only where their API exists; the VIOSCluster only when asked.
    for kind in ("ServiceMonitor", "PrometheusRule", "VIOSCluster", "CustomResourceDefinition"):
        assert kind not in docs, kind
    op = docs["Deployment"]["vios-operator"]
    assert op["spec"]["replicas"] == 2
    args = containers(op)["vios-operator"]["args"]
    assert "--leader-elect=true" in args
    assert "--namespace=vios-system" in args
    assert "--agent-image=ghcr.io/vios-dev/vios-agent:0.1.0" in args
    assert ("--registrar-image=registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0"
            in args)
    assert "--agent-service-account=vios-agent" in args
    sc = op["spec"]["template"]["spec"]["securityContext"]
    assert sc["runAsNonRoot"] is True

    csi = containers(docs["Deployment"]["vios-csi-controller"])
    assert set(csi) == {"vios-csi", "csi-provisioner", "csi-attacher", "csi-resizer",
                        "liveness-probe"}
    assert "--mode=controller" in csi["vios-csi"]["args"]
    for name in ("csi-provisioner", "csi-attacher", "csi-resizer", "liveness-probe"):
        assert csi[name]["image"].startswith("registry.k8s.io/sig-storage/" + name.replace(
            "liveness-probe", "livenessprobe")), csi[name]["image"]
        assert "--csi-address=/csi/csi.sock" in csi[name]["args"]
    for name in ("csi-provisioner", "csi-attacher", "csi-resizer"):
        assert "--leader-election" in csi[name]["args"]

    assert docs["CSIDriver"]["csi.vios.dev"]["spec"]["attachRequired"] is True
    sclass = docs["StorageClass"]["vios"]
    assert sclass["provisioner"] == "csi.vios.dev"
    assert sclass["parameters"] == {"fsType": "ext4", "transport": "fuse"}
    assert set(docs["PodDisruptionBudget"]) == {"vios-operator", "vios-csi-controller"}
    assert set(docs["ServiceAccount"]) == {"vios-operator", "vios-csi-controller", "vios-agent"}
    # The dashboard ConfigMap holds the dashboard file itself.
    cm = docs["ConfigMap"]["vios-dashboard"]
    assert json.loads(cm["data"]["vios.json"]) == json.load(open(DASHBOARD))
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_template_full_values_with_monitoring_api():
    docs = by_kind(render("-f", FULL_VALUES, "--api-versions", MONITORING_API))
    op = docs["Deployment"]["vios-operator"]
    assert op["spec"]["replicas"] == 3
    args = containers(op)["vios-operator"]["args"]
    assert not any(a.startswith("--namespace=") for a in args)  # clusterWide
    assert "--agent-image=registry.example.com/vios/vios-agent:0.1.0-test" in args
    assert "ClusterRole" in docs and "vios-operator" in docs["ClusterRole"]
    assert set(docs["StorageClass"]) == {"vios-fuse", "vios-iscsi-xfs"}
    assert docs["StorageClass"]["vios-iscsi-xfs"]["parameters"] == {
        "cluster": "prod", "pool": "bulk", "fsType": "xfs", "transport": "iscsi"}
    assert docs["StorageClass"]["vios-fuse"]["metadata"]["annotations"][
        "storageclass.kubernetes.io/is-default-class"] == "true"
    cluster = docs["VIOSCluster"]["prod"]
    assert [p["name"] for p in cluster["spec"]["pools"]] == ["fast", "bulk"]
    # vios-csi zeroes extents through the pool files: their directories are mounted.
    csi_pod = docs["Deployment"]["vios-csi-controller"]["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in containers(docs["Deployment"]["vios-csi-controller"])[
        "vios-csi"]["volumeMounts"]}
    assert {"/srv/vios-pools", "/var/lib/vios"} <= mounts
    assert {v["hostPath"]["path"] for v in csi_pod["volumes"] if "hostPath" in v} == {
        "/srv/vios-pools", "/var/lib/vios"}
    # The PrometheusRule is the rules file, verbatim (one source for promtool and the chart).
    rule = docs["PrometheusRule"]["vios"]
    assert rule["spec"] == yaml.safe_load(open(RULES))
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    sm = docs["ServiceMonitor"]["vios"]
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    # Every metrics Service the ServiceMonitor selects has a port named metrics.
    selected = [s for s in docs["Service"].values()
                if s["metadata"]["labels"].get("vios.dev/metrics") == "true"]
    assert len(selected) == 3
    assert all(s["spec"]["ports"][0]["name"] == "metrics" for s in selected)
    assert docs["PodDisruptionBudget"]["vios-operator"]["spec"]["minAvailable"] == 2


def test_crds_are_the_repository_files():
    # crds/ in the chart is the repository's crds/ (a symlink), and packaging follows it: the
    # packaged chart holds exactly the three CRDs, without the examples or the README.
    assert os.path.realpath(os.path.join(CHART, "crds")) == os.path.join(REPO, "crds")
    out = helm("template", "vios", CHART, "--include-crds", "--kube-version",
               KUBE_VERSION).stdout
    crds = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "CustomResourceDefinition"]
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "viosclusters.vios.dev", "viosmembers.vios.dev", "viosvolumes.vios.dev"]


def test_package_contains_the_crds(tmp_path):
    helm("package", CHART, "--destination", str(tmp_path))
    tgz = tmp_path / "vios-0.1.0.tgz"
    names = subprocess.run(["tar", "tzf", str(tgz)], capture_output=True, text=True,
                           check=True).stdout.split()
    crds = sorted(n for n in names if n.startswith("vios/crds/"))
    assert crds == ["vios/crds/vios.dev_viosclusters.yaml", "vios/crds/vios.dev_viosmembers.yaml",
                    "vios/crds/vios.dev_viosvolumes.yaml"], crds
    assert "vios/files/vios-alerts.rules.yaml" in names
    assert not any(n.startswith("vios/tests/") or n.startswith("vios/ci/") for n in names)


# Minimal stand-ins for the Prometheus operator's CRDs, so the API server serves
# monitoring.coreos.com/v1 and the chart's optional objects render and apply.
def monitoring_crd(kind, plural):
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "%s.monitoring.coreos.com" % plural},
        "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                 "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}}}]}}


@pytest.fixture
def monitoring_crds(control_plane):
    crds = [monitoring_crd("ServiceMonitor", "servicemonitors"),
            monitoring_crd("PrometheusRule", "prometheusrules")]
    body = "\n---\n".join(json.dumps(c) for c in crds)
    control_plane.kubectl("apply", "-f", "-", input=body)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          "crd/servicemonitors.monitoring.coreos.com",
                          "crd/prometheusrules.monitoring.coreos.com")
    yield
    control_plane.kubectl("delete", "-f", "-", "--wait=false", input=body, check=False)


def dry_run_apply(control_plane, namespace, docs):
    body = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    res = control_plane.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-",
                                "-o", "name", input=body, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_dry_run_server_default_values(control_plane, namespace):
    docs = render(namespace=namespace)
    applied = dry_run_apply(control_plane, namespace, docs)
    assert len(applied) == len(docs)


def test_dry_run_server_full_values(control_plane, namespace, monitoring_crds):
    docs = render("-f", FULL_VALUES, "--api-versions", MONITORING_API, namespace=namespace)
    applied = dry_run_apply(control_plane, namespace, docs)
    assert len(applied) == len(docs)
    assert "vioscluster.vios.dev/prod" in applied
    assert "prometheusrule.monitoring.coreos.com/vios" in applied


def can_i(control_plane, namespace, sa, verb, resource):
    resource, _, sub = resource.partition("/")  # "kind/x" would name an object x, not a subresource
    extra = ["--subresource", sub] if sub else []
    res = control_plane.kubectl("auth", "can-i", verb, resource, *extra, "-n", namespace,
                                "--as", "system:serviceaccount:%s:%s" % (namespace, sa),
                                check=False)
    return res.stdout.strip() == "yes"


def test_install_and_uninstall(control_plane, namespace, monitoring_crds):
    kc = control_plane.kubeconfig
    install = helm("install", "vios", CHART, "-n", namespace, "--set", "cluster.create=true",
                   "--set", "csiController.defaultCluster=local", kubeconfig=kc)
    try:
        # NOTES.txt tells the user what to do next, true to this install.
        notes = install.stdout[install.stdout.index("NOTES:"):]
        print(notes)
        assert "kubectl -n %s get viosclusters,viosmembers -o wide" % namespace in notes
        assert "storageClassName: vios" in notes
        assert "a ServiceMonitor and a PrometheusRule (vios) were created" in notes
        assert "helm -n %s uninstall vios" % namespace in notes
        status = json.loads(helm("status", "vios", "-n", namespace, "-o", "json",
                                 kubeconfig=kc).stdout)
        assert status["info"]["status"] == "deployed"

        def get(*args):
            return json.loads(control_plane.kubectl("get", *args, "-o", "json").stdout)

        op = get("deployment", "vios-operator", "-n", namespace)
        assert op["spec"]["replicas"] == 2
        assert "--leader-elect=true" in op["spec"]["template"]["spec"]["containers"][0]["args"]
        csi = get("deployment", "vios-csi-controller", "-n", namespace)
        assert len(csi["spec"]["template"]["spec"]["containers"]) == 5
        assert get("csidriver", "csi.vios.dev")["spec"]["attachRequired"] is True
        assert get("storageclass", "vios")["provisioner"] == "csi.vios.dev"
        cluster = get("vioscluster", "local", "-n", namespace)
        assert cluster["spec"]["pools"][0]["name"] == "default"
        # The API server served monitoring.coreos.com/v1, so helm rendered the optional objects.
        get("servicemonitor", "vios", "-n", namespace)
        rule = get("prometheusrule", "vios", "-n", namespace)
        assert rule["spec"] == yaml.safe_load(open(RULES))
        get("pdb", "vios-operator", "-n", namespace)
        get("configmap", "vios-dashboard", "-n", namespace)

        # Least privilege, judged by the API server's own RBAC authorizer.
        allowed = [
            ("vios-operator", "update", "viosclusters.vios.dev/status"),
            ("vios-operator", "patch", "viosmembers.vios.dev/status"),
            ("vios-operator", "create", "daemonsets.apps"),
            ("vios-operator", "create", "secrets"),
            ("vios-operator", "update", "leases.coordination.k8s.io"),
            ("vios-operator", "create", "events.events.k8s.io"),
            ("vios-csi-controller", "create", "viosvolumes.vios.dev"),
            ("vios-csi-controller", "update", "viosvolumes.vios.dev/status"),
            ("vios-csi-controller", "update", "configmaps"),
            ("vios-csi-controller", "create", "persistentvolumes"),
            ("vios-csi-controller", "patch", "volumeattachments.storage.k8s.io/status"),
            ("vios-agent", "patch", "viosmembers.vios.dev"),
            ("vios-agent", "patch", "viosmembers.vios.dev/status"),
            ("vios-agent", "create", "leases.coordination.k8s.io"),
            ("vios-agent", "get", "viosvolumes.vios.dev"),
            ("vios-agent", "patch", "viosvolumes.vios.dev/status"),
            ("vios-agent", "get", "secrets"),  # its own peer-TLS Secret, by name
        ]
        denied = [
            ("vios-operator", "delete", "viosclusters.vios.dev"),
            ("vios-operator", "list", "secrets"),
            ("vios-operator", "create", "viosvolumes.vios.dev"),
            ("vios-csi-controller", "get", "secrets"),
            ("vios-csi-controller", "create", "daemonsets.apps"),
            ("vios-csi-controller", "patch", "viosmembers.vios.dev/status"),
            ("vios-agent", "list", "secrets"),
            ("vios-agent", "watch", "secrets"),
            ("vios-agent", "update", "viosclusters.vios.dev/status"),
            ("vios-agent", "update", "viosmembers.vios.dev/status"),
            ("vios-agent", "create", "viosvolumes.vios.dev"),
            ("vios-agent", "delete", "viosmembers.vios.dev"),
            ("vios-agent", "create", "daemonsets.apps"),
        ]
        wrong = [(sa, verb, res, "expected allowed") for sa, verb, res in allowed
                 if not can_i(control_plane, namespace, sa, verb, res)]
        wrong += [(sa, verb, res, "expected denied") for sa, verb, res in denied
                  if can_i(control_plane, namespace, sa, verb, res)]
        assert not wrong, wrong
    finally:
        helm("uninstall", "vios", "-n", namespace, "--wait", "--timeout", "120s",
             kubeconfig=kc)
    # Everything the release created is gone (the CRDs stay, as Helm documents).
    for args in (("deployments", "-n", namespace), ("csidriver", "csi.vios.dev"),
                 ("storageclass", "vios"), ("clusterrole", "vios-csi-controller"),
                 ("serviceaccounts", "vios-agent", "-n", namespace),
                 ("viosclusters", "local", "-n", namespace)):
        res = control_plane.kubectl("get", *args, "-o", "name", check=False)
        assert res.stdout.strip() in ("", "No resources found"), (args, res.stdout)
    control_plane.kubectl("get", "crd", "viosclusters.vios.dev")


def sa_kubeconfig(control_plane, namespace, sa, path):
    """A kubeconfig that authenticates as ServiceAccount sa (a TokenRequest token)."""
    token = control_plane.kubectl("create", "token", sa, "-n", namespace,
                                  "--duration=1h").stdout.strip()
    admin = yaml.safe_load(open(control_plane.kubeconfig))
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": admin["clusters"][0]["name"],
                                              "user": sa, "namespace": namespace}}],
        "current-context": sa,
    }
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    os.chmod(path, 0o600)
    return path


def chart_args(deployment, container, replace):
    """The container's args as the chart renders them, with the flags in `replace` swapped for
    test-local values (ports, sockets)."""
    out = []
    for arg in containers(deployment)[container]["args"]:
        name = arg.split("=", 1)[0]
        out.append(replace.pop(name) if name in replace else arg)
    return out + list(replace.values())


def test_binaries_work_with_the_charts_flags_and_rbac(control_plane, namespace, tmp_path):
    """The installed release's operator and CSI controller run with exactly the chart's flags
    under their own ServiceAccounts, and an agent under the agent ServiceAccount joins: the RBAC
    is enough for what the binaries do, and the API server refuses nothing."""
    import lib_csi
    from lib import procs
    from lib.agent import BUILD_DIR, Agent

    work = tempfile.mkdtemp(prefix="helm-rbac-")  # short: unix socket paths are limited
    pool_file = os.path.join(work, "pool0.img")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "cluster": {"create": True, "name": "rbac",
                    "spec": {"pools": [lib_csi.pool_spec(pool_file, "1Gi")]}},
        "csiController": {"defaultCluster": "rbac"}}))
    kc = control_plane.kubeconfig
    helm("install", "vios", CHART, "-n", namespace, "-f", str(values), kubeconfig=kc)
    started = []
    try:
        def deployment(name):
            return json.loads(control_plane.kubectl(
                "get", "deployment", name, "-n", namespace, "-o", "json").stdout)

        # vios-operator with the chart's args.
        port = procs.free_port()
        args = chart_args(deployment("vios-operator"), "vios-operator", {
            "--metrics-address": "--metrics-address=127.0.0.1:%d" % port,
            "--kubeconfig": "--kubeconfig=" + sa_kubeconfig(
                control_plane, namespace, "vios-operator", os.path.join(work, "op.kubeconfig"))})
        op_log = os.path.join(work, "operator.log")
        with open(op_log, "w") as log:
            op = subprocess.Popen([os.path.join(BUILD_DIR, "operator", "vios-operator"), *args],
                                  stdout=log, stderr=subprocess.STDOUT)
        started.append(lambda: procs.stop(op))

        # The operator reconciles the chart's VIOSCluster: the node DaemonSet appears, with the
        # chart's agent image, registrar image and ServiceAccount.
        ds = wait_for(lambda: get_json(control_plane, "daemonset", "rbac-node", "-n", namespace),
                      "the node DaemonSet", op_log)
        pod = ds["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "vios-agent"
        images = {c["name"]: c["image"] for c in pod["containers"]}
        assert images["vios-agent"] == "ghcr.io/vios-dev/vios-agent:0.1.0"
        assert images["node-driver-registrar"].startswith(
            "registry.k8s.io/sig-storage/csi-node-driver-registrar:")

        # An agent under the agent ServiceAccount joins; the operator admits it (Up).
        agent_kc = sa_kubeconfig(control_plane, namespace, "vios-agent",
                                 os.path.join(work, "agent.kubeconfig"))
        pool = lib_csi.pool_spec(pool_file, "1Gi")
        pool["backends"][0]["file"]["create"] = True
        agent = Agent(os.path.join(work, "agent"), {
            "node": "rbac-node-a", "stateDir": os.path.join(work, "agent", "state"),
            "pools": [pool],
            "cluster": {"name": "rbac", "namespace": namespace, "kubeconfig": agent_kc}}).start()
        started.append(agent.stop)
        member = wait_for(lambda: up_member(control_plane, namespace, "rbac-node-a"),
                          "the agent's VIOSMember Up", op_log)
        assert member["status"]["state"] == "Up"

        # vios-csi controller with the chart's args provisions a volume.
        csi_dir = os.path.join(work, "csi")
        csi = lib_csi.CsiProcess(csi_dir, "controller", kc, namespace)
        csi.argv = [lib_csi.csi_binary(), *chart_args(
            deployment("vios-csi-controller"), "vios-csi", {
                "--endpoint": "--endpoint=unix://" + csi.socket,
                "--metrics-address": "--metrics-address=127.0.0.1:%d" % procs.free_port(),
                "--kubeconfig": "--kubeconfig=" + sa_kubeconfig(
                    control_plane, namespace, "vios-csi-controller",
                    os.path.join(work, "csi.kubeconfig"))})]
        csi.start()
        started.append(csi.stop)
        vol = lib_csi.call(csi, "CreateVolume", {
            "name": "pvc-rbac", "capacityRange": {"requiredBytes": str(16 << 20)},
            "volumeCapabilities": [lib_csi.mount_cap()]})
        assert vol["volume"]["volumeId"]
        lib_csi.call(csi, "DeleteVolume", {"volumeId": vol["volume"]["volumeId"]})

        for path in (op_log, agent.log_path, csi.log_path):
            text = open(path, errors="replace").read()
            assert "forbidden" not in text.lower(), "%s:\n%s" % (path, text[-3000:])
    finally:
        for stop in reversed(started):
            stop()
        helm("uninstall", "vios", "-n", namespace, "--wait", "--timeout", "120s", kubeconfig=kc)
        shutil.rmtree(work, ignore_errors=True)


def get_json(control_plane, *args):
    res = control_plane.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def up_member(control_plane, namespace, name):
    m = get_json(control_plane, "viosmember", name, "-n", namespace)
    return m if m and m.get("status", {}).get("state") == "Up" else None


def wait_for(fn, what, log_path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out waiting for %s; %s:\n%s" % (
        what, log_path, open(log_path, errors="replace").read()[-4000:]))
