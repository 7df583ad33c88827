"""The local Kubernetes control plane harness (etcd + kube-apiserver on loopback) for tests and
the local demo. See control_plane.py; the command line is ./controlplane."""

from .control_plane import ControlPlane, ControlPlaneError, free_port  # noqa: F401
from .tools import ToolMissing  # noqa: F401
