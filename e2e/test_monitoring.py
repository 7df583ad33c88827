"""Monitoring end to end: a real Prometheus scrapes a running vios-operator, vios-agent (joined to
its VIOSCluster) and vios-csi controller; the chart's alert rules load and evaluate cleanly, every
alert and dashboard query is evaluated through the HTTP API, and `promtool check metrics` finds no
lint problem in any of our /metrics endpoints. Also the promtool rule tests of the chart.

The alert rules and the dashboard are the chart's own files (charts/vios/files), not copies.
"""

import json
import os
import re
import subprocess
import tempfile
import time
import uuid

import pytest

import lib_csi
from lib import procs
from lib.agent import BUILD_DIR, Agent
from lib.prometheus import PROMTOOL, Prometheus, check_metrics, fetch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(REPO, "charts", "vios")
RULES = os.path.join(CHART, "files", "vios-alerts.rules.yaml")
RULE_TESTS = os.path.join(CHART, "tests", "vios-alerts.test.yaml")
DASHBOARD = os.path.join(CHART, "files", "vios-dashboard.json")

# Metrics that may have no series in this one-agent system (a query on them must still parse and
# evaluate): the peer channel's (series exist per peer; this agent has none), and those whose
# exporters landed in this session and are absent from older builds (path health, rerouting,
# reservations, pool capacity). Every other vios_* metric in a query must have series here.
PENDING_METRICS = {
    "vios_path_health", "vios_rerouted", "vios_reroutes_total", "vios_peer_io_operations_total",
    "vios_peer_io_latency_seconds_bucket", "vios_peer_io_bytes_total", "vios_path_probes_total",
    "vios_peer_io_transport_total",
    "vios_pr_operations_total", "vios_pr_conflicts_total", "vios_pr_preemptions_total",
    "vios_pr_store_errors_total", "vios_pr_notify_latency_seconds_bucket",
    "vios_pool_capacity_bytes", "vios_pool_allocated_bytes",
}
# Queries that are empty in a healthy system by design, with data in the metrics they read:
# - vios_operator_reconcile_errors_total: a counter child exists only after a first error;
# - unhealthy paths only: `vios_path_health{state!="healthy"} == 1`.
EMPTY_WHEN_HEALTHY = {"vios_operator_reconcile_errors_total"}


def test_promtool_check_rules():
    proc = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 12 rules found" in proc.stdout, proc.stdout


def test_promtool_rule_unit_tests_fire_every_alert():
    proc = subprocess.run([PROMTOOL, "test", "rules", RULE_TESTS], capture_output=True,
                          text=True, cwd=os.path.dirname(RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every alert of the rules file has a test case in which it fires.
    alerts = set(re.findall(r"^\s*- alert: (\w+)", open(RULES).read(), re.M))
    tests = open(RULE_TESTS).read()
    fired = set(re.findall(r"alertname: (\w+)\n\s*exp_alerts:\n\s*- exp_labels", tests))
    assert alerts == fired, "alerts without a firing test: %s" % sorted(alerts - fired)
    assert len(alerts) == 12


def alert_exprs():
    import yaml
    out = {}
    for group in yaml.safe_load(open(RULES))["groups"]:
        for rule in group["rules"]:
            out[rule["alert"]] = rule["expr"]
    return out


def dashboard_exprs():
    dash = json.load(open(DASHBOARD))
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            # Grafana's $__rate_interval is at least 4 scrape intervals; 1m here (1 s scrapes).
            out.append((panel["title"], target["expr"].replace("$__rate_interval", "1m")))
    return out


def metric_names(expr):
    return set(re.findall(r"\bvios_[a-z_]+", expr))


class System:
    def __init__(self, endpoints, agent):
        self.endpoints = endpoints  # {job: "127.0.0.1:port"}
        self.agent = agent


@pytest.fixture
def system(control_plane, namespace):
    """vios-operator, a cluster-mode vios-agent with one volume and port, a vios-csi controller,
    all serving /metrics on 127.0.0.1, and a VIOSCluster; yields the metrics endpoints."""
    workdir = tempfile.mkdtemp(prefix="mon-e2e-")
    procs_started = []
    cluster = "mon"
    pool_file = os.path.join(workdir, "pool0.img")
    lib_csi.create_cluster(control_plane, namespace, pool_file, name=cluster, size="1Gi")
    endpoints = {}
    try:
        # The operator, leader-elected in the test namespace.
        port = procs.free_port()
        log = open(os.path.join(workdir, "operator.log"), "a")
        op = subprocess.Popen(
            [os.path.join(BUILD_DIR, "operator", "vios-operator"),
             "--kubeconfig=" + control_plane.kubeconfig, "--namespace=" + namespace,
             "--lease-namespace=" + namespace, "--lease-duration=3s", "--member-grace=2s",
             "--metrics-address=127.0.0.1:%d" % port],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs_started.append(op)
        procs.wait_for_listener("127.0.0.1", port, proc=op, log=log.name)
        endpoints["vios-operator"] = "127.0.0.1:%d" % port

        # The agent: the cluster's pool, one volume behind one virtual port, joined to the cluster.
        port = procs.free_port()
        pool = lib_csi.pool_spec(pool_file, "1Gi")
        pool["backends"][0]["file"]["create"] = True
        config = {
            "node": "mon-node",
            "stateDir": os.path.join(workdir, "state"),
            "listen": {"metrics": "127.0.0.1:%d" % port},
            "pools": [pool],
            "volumes": [{"name": "vol0", "pool": "pool0", "size": "64Mi"}],
            "ports": [{"target": "iqn.2026-11.dev.vios:mon", "volume": "vol0",
                       "allowAnyInitiator": True}],
            "cluster": {"name": cluster, "namespace": namespace,
                        "kubeconfig": control_plane.kubeconfig},
        }
        agent = Agent(os.path.join(workdir, "agent"), config).start()
        procs_started.append(agent)
        endpoints["vios-agent"] = "127.0.0.1:%d" % port

        # The CSI controller; one CreateVolume and one refused call give its RPC metrics series.
        port = procs.free_port()
        csi = lib_csi.CsiProcess(os.path.join(workdir, "csi"), "controller",
                                 control_plane.kubeconfig, namespace, cluster=cluster)
        csi.argv += ["--metrics-address", "127.0.0.1:%d" % port]
        csi.start()
        procs_started.append(csi)
        endpoints["vios-csi"] = "127.0.0.1:%d" % port
        lib_csi.call(csi, "CreateVolume", {
            "name": "mon-" + uuid.uuid4().hex[:6],
            "capacityRange": {"requiredBytes": str(32 << 20)},
            "volumeCapabilities": [lib_csi.mount_cap()]})
        with pytest.raises(lib_csi.CsiError):
            lib_csi.call(csi, "CreateVolume", {"name": ""})

        # Wait until the operator admitted the agent (the members gauge then says Up).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if 'vios_operator_members{state="Up"} 1' in fetch(
                    "http://%s/metrics" % endpoints["vios-operator"]):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the operator never counted the agent Up:\n" + fetch(
                "http://%s/metrics" % endpoints["vios-operator"]))
        yield System(endpoints, agent)
    finally:
        for p in reversed(procs_started):
            if hasattr(p, "stop"):
                p.stop()
            else:
                procs.stop(p)


@pytest.fixture
def prometheus(system):
    workdir = tempfile.mkdtemp(prefix="prom-e2e-")
    prom = Prometheus(workdir, {job: [target] for job, target in system.endpoints.items()},
                      rule_files=[RULES]).start()
    try:
        prom.wait_for_targets_up()
        yield prom
    finally:
        prom.stop()


def test_promtool_check_metrics_on_every_endpoint(system):
    problems = {}
    for job, target in system.endpoints.items():
        text = fetch("http://%s/metrics" % target)
        assert "vios_" in text, "%s exports no vios_ metric" % job
        code, output = check_metrics(text)
        if code != 0 or output:
            problems[job] = output
    assert not problems, "promtool check metrics:\n" + json.dumps(problems, indent=2)


def test_prometheus_evaluates_every_alert_and_dashboard_query(prometheus):
    # The rules loaded and every rule evaluated without error.
    time.sleep(2.5)  # two rule evaluations
    rules = [r for g in prometheus.rules() for r in g["rules"]]
    assert len(rules) == 12
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad

    have = {m for m in PENDING_METRICS | {n for _, e in dashboard_exprs()
                                         for n in metric_names(e)}
            if prometheus.query("count(%s)" % m)}
    report = []

    # Alerts: in this healthy system none fires, and each expression evaluates without error.
    for name, expr in alert_exprs().items():
        result = prometheus.query(expr)
        assert result == [], "%s fires in a healthy system: %s" % (name, result)
        missing = metric_names(expr) - have
        report.append("alert %s: evaluated, empty%s" % (
            name, " (no series yet: %s)" % ", ".join(sorted(missing)) if missing else ""))
        assert not (missing - PENDING_METRICS - EMPTY_WHEN_HEALTHY), (name, missing)

    # Dashboard: every query evaluates; those on metrics the running system exports return data.
    for title, expr in dashboard_exprs():
        result = prometheus.query(expr)
        names = metric_names(expr)
        missing = names - have
        assert not (missing - PENDING_METRICS - EMPTY_WHEN_HEALTHY), (title, expr, missing)
        healthy_empty = "!=\"healthy\"" in expr
        if not missing and not healthy_empty:
            assert result, "dashboard panel %r returns no data: %s" % (title, expr)
        report.append("panel %r: %d series%s" % (
            title, len(result), " (no series yet: %s)" % ", ".join(sorted(missing))
            if missing else ""))
    print("\n".join(report))


def test_member_down_alert_fires_from_real_metrics(system, prometheus):
    """The agent dies (SIGKILL: no Leaving); once its Lease expires the operator counts it Down,
    and ViosMemberDown's expression returns that member count through the real scrape, and the
    rule goes pending."""
    expr = alert_exprs()["ViosMemberDown"]
    assert prometheus.query(expr) == []
    system.agent.proc.kill()
    system.agent.proc.wait()
    deadline = time.monotonic() + 90  # Lease 15 s + grace 2 s + scrape and evaluation
    while time.monotonic() < deadline:
        result = prometheus.query(expr)
        pending = prometheus.query('ALERTS{alertname="ViosMemberDown"}')
        if result and pending:
            assert float(result[0]["value"][1]) == 1
            assert pending[0]["metric"]["alertstate"] in ("pending", "firing")
            assert pending[0]["metric"]["severity"] == "critical"
            return
        time.sleep(1)
    raise AssertionError("ViosMemberDown never went pending; operator metrics:\n" + fetch(
        "http://%s/metrics" % system.endpoints["vios-operator"]))
