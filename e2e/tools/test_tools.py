"""The tools build-tools made report the versions pinned in e2e/tools/versions (real version
strings, not v0.0.0-master or (dev))."""

import subprocess

import pytest

from controlplane import tools


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout


def test_kube_apiserver_version():
    assert run(tools.path("kube-apiserver"), "--version").strip() == (
        "Kubernetes " + tools.version("kube-apiserver"))


def test_kubectl_client_version():
    out = run(tools.path("kubectl"), "version", "--client", "-o", "yaml")
    assert "gitVersion: " + tools.version("kubectl") in out


def test_etcd_version():
    out = run(tools.path("etcd"), "--version")
    assert "etcd Version: " + tools.version("etcd").lstrip("v") in out


def test_csi_sanity_version():
    assert run(tools.path("csi-sanity"), "-version").strip() == (
        "Version = " + tools.version("csi-sanity"))


def test_helm_version():
    assert run(tools.path("helm"), "version", "--template", "{{.Version}}") == tools.version("helm")


def test_missing_tool_names_build_tools(monkeypatch, tmp_path):
    monkeypatch.setenv("VIOS_TOOLS_CACHE", str(tmp_path))
    with pytest.raises(tools.ToolMissing, match="run e2e/tools/build-tools"):
        tools.path("kube-apiserver")
