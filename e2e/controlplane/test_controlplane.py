"""The harness CLI itself: up/down leave nothing running, the watchdog cleans up after a dead
owner, restart-apiserver keeps port and data, compact makes old resourceVersions 410."""

import json
import socket
import os
import subprocess
import time

from controlplane import ControlPlane, tools
from controlplane.control_plane import _start_time

CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "controlplane")


def cli(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=180)


def pids(state):
    return [state[n]["pid"] for n in ("etcd", "apiserver", "watchdog") if n in state]


def test_watchdog_stops_everything_when_owner_dies(tmp_path):
    owner = subprocess.Popen(["sleep", "600"])
    res = cli("up", "--dir", str(tmp_path), "--watch-pid", str(owner.pid))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(tmp_path / "kubeconfig")
    state = json.loads(cli("status", "--dir", str(tmp_path)).stdout)
    assert state["running"] and len(pids(state)) == 3
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_start_time(p) for p in pids(state)):
        time.sleep(0.2)
    assert not any(_start_time(p) for p in pids(state))
    assert json.loads(cli("status", "--dir", str(tmp_path)).stdout)["running"] is False


def test_down_is_idempotent_and_complete(tmp_path):
    assert cli("up", "--dir", str(tmp_path)).returncode == 0
    state = json.loads(cli("status", "--dir", str(tmp_path)).stdout)
    assert cli("down", "--dir", str(tmp_path)).returncode == 0
    assert not any(_start_time(p) for p in pids(state))
    assert cli("down", "--dir", str(tmp_path)).returncode == 0


def test_restart_keeps_port_data_and_compact_expires_old_versions(control_plane):
    cp = control_plane
    port = cp.state()["apiserver_port"]
    rv = cp.kubectl("create", "configmap", "harness-probe", "-o",
                    "jsonpath={.metadata.resourceVersion}").stdout
    cp.kubectl("label", "configmap", "harness-probe", "round=1")
    cp.restart_apiserver()
    assert cp.state()["apiserver_port"] == port
    assert cp.kubectl("get", "configmap", "harness-probe", "-o", "name").stdout.strip() == (
        "configmap/harness-probe")
    cp.compact()
    res = cp.kubectl("get", "--raw", "/api/v1/namespaces/default/configmaps?watch=1"
                     "&timeoutSeconds=5&resourceVersion=" + rv, check=False)
    assert '"code":410' in res.stdout, res.stdout + res.stderr


def test_second_start_in_same_dir_is_refused(control_plane):
    try:
        ControlPlane(control_plane.dir).start()
    except RuntimeError as e:
        assert "already running" in str(e)
    else:
        raise AssertionError("a second control plane started in the same directory")


def test_every_kubeconfig_variant_is_cluster_admin(control_plane):
    kubectl = tools.path("kubectl")
    for suffix, user in (("", "vios-admin"), ("-files", "vios-admin"),
                         ("-token", "vios-token-admin")):
        config = control_plane.kubeconfig + suffix
        out = subprocess.run([kubectl, "--kubeconfig", config, "auth", "whoami", "-o", "json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)["status"]["userInfo"]
        assert info["username"] == user
        assert "system:masters" in info["groups"]


def test_start_retries_when_the_apiserver_port_is_taken(tmp_path, monkeypatch):
    from controlplane import control_plane as module
    real = module.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [taken.getsockname()[1]]
        calls = []

        def first_taken():
            calls.append(1)
            # etcd takes the first two ports; the apiserver's first try gets the taken one.
            return ports.pop() if len(calls) == 3 and ports else real()

        monkeypatch.setattr(module, "free_port", first_taken)
        cp = ControlPlane(str(tmp_path))
        try:
            cp.start()
            assert cp.state()["apiserver_port"] != taken.getsockname()[1]
            assert cp.kubectl("get", "--raw", "/readyz").stdout == "ok"
        finally:
            cp.stop()
    assert "address already in use" in (tmp_path / "apiserver.log").read_text()
