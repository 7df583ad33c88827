"""Where the pinned test-time tools live: the same layout as e2e/tools/paths (bash)."""

import os

TOOLS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")

_VERSION_KEYS = {
    "kube-apiserver": "KUBE_VERSION",
    "kubectl": "KUBE_VERSION",
    "etcd": "ETCD_VERSION",
    "csi-sanity": "CSI_TEST_VERSION",
    "helm": "HELM_VERSION",
}


class ToolMissing(RuntimeError):
    """A pinned tool has not been built into the tool cache."""


def versions():
    """The KEY=value pairs of e2e/tools/versions."""
    out = {}
    with open(os.path.join(TOOLS_DIR, "versions")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                out[key.strip()] = value.strip()
    return out


def cache_dir():
    return os.environ.get("VIOS_TOOLS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "vios", "tools")


def version(tool):
    return versions()[_VERSION_KEYS[tool]]


def path(tool):
    """The binary of tool at its pinned version; raises ToolMissing when it is not built."""
    p = os.path.join(cache_dir(), "%s-%s" % (tool, version(tool)), "bin", tool)
    if not os.access(p, os.X_OK):
        raise ToolMissing("%s %s is not built (%s is missing); run e2e/tools/build-tools"
                          % (tool, version(tool), p))
    return p
