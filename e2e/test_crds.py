"""The vios CRDs against a real kube-apiserver: they establish, objects round-trip with defaults,
the status subresource works, invalid objects are rejected naming the field, printer columns show.
Also checks that the API server built from source reports its real, pinned version."""

import copy
import json
import os
import re

import pytest
import yaml

from controlplane import tools

CRDS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "crds")
EXAMPLES = os.path.join(CRDS, "examples")
KINDS = {  # resource -> (example, short name)
    "viosclusters": ("vioscluster-file.yaml", "viosc"),
    "viosmembers": ("viosmember.yaml", "viosm"),
    "viosvolumes": ("viosvolume.yaml", "viosv"),
}


def load(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        return yaml.safe_load(f)


def create(cp, ns, obj, check=True):
    return cp.kubectl("create", "-n", ns, "-f", "-", "-o", "json", input=json.dumps(obj),
                      check=check)


def get(cp, ns, resource, name):
    return json.loads(cp.kubectl("get", "-n", ns, resource, name, "-o", "json").stdout)


def patch(cp, ns, resource, name, body, status=False, check=True):
    args = ["patch", "-n", ns, resource, name, "--type=merge", "-p", json.dumps(body), "-o",
            "json"]
    if status:
        args.append("--subresource=status")
    return cp.kubectl(*args, check=check)


def test_apiserver_reports_pinned_version(control_plane):
    out = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    pinned = tools.versions()["KUBE_VERSION"]
    assert out["serverVersion"]["gitVersion"] == pinned
    assert out["clientVersion"]["gitVersion"] == pinned
    assert out["serverVersion"]["major"] == "1"
    assert out["serverVersion"]["minor"] == pinned.split(".")[1]


def test_crds_are_established_with_names(control_plane):
    for resource, (_, short) in KINDS.items():
        crd = json.loads(control_plane.kubectl(
            "get", "crd", resource + ".vios.dev", "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", conditions
        assert conditions.get("NamesAccepted") == "True", conditions
        assert crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"]["shortNames"] == [short]
        assert crd["spec"]["names"]["categories"] == ["vios"]
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        assert version["subresources"] == {"status": {}}


def test_cluster_defaults_are_applied(control_plane, namespace):
    created = json.loads(create(control_plane, namespace, load("vioscluster-file.yaml")).stdout)
    spec = created["spec"]
    assert spec["virtualPorts"] == {"iqnPrefix": "iqn.2026-11.dev.vios", "chap": "required",
                                    "portRange": {"min": 3260, "max": 3299}}
    assert spec["paths"] == {"probeInterval": "5s", "failureThreshold": 3, "reroute": True,
                             "peerDataProtection": "encrypt"}
    assert spec["reservations"] == {"enabled": True}


STATUS = {
    "viosclusters": {"observedGeneration": 1, "memberCount": 3, "membersUp": 2, "poolCount": 1,
                     "free": "3968Mi",
                     "conditions": [{"type": "Ready", "status": "True", "reason": "MembersUp",
                                     "message": "2 of 3 members up",
                                     "lastTransitionTime": "2026-11-25T12:00:00Z"}],
                     "pools": [{"name": "default", "capacity": "4Gi", "allocated": "128Mi",
                                "free": "3968Mi",
                                "backends": [{"name": "file0", "health": "Healthy",
                                              "membersWithPath": 2}]}]},
    "viosmembers": {"state": "Up", "peerAddress": "127.77.0.2:7443", "version": "0.1.0",
                    "healthyPaths": 1, "lostPaths": 0, "rerouting": False, "virtualPorts": 4,
                    "paths": [{"pool": "default", "backend": "file0", "state": "Healthy"}]},
    "viosvolumes": {"phase": "Attached",
                    "attachments": [{"node": "node-1", "pod": "default/db-0", "agent":
                                     "local-node-1", "transport": "iscsi", "readOnly": False,
                                     "virtualPortIQN":
                                     "iqn.2026-11.dev.vios:pvc-0b1c5d2e:node-1"}],
                    "reservation": {"generation": 2, "holder": "port-a",
                                    "type": "WriteExclusiveRegistrantsOnly",
                                    "registrations": [{"port": "port-a",
                                                       "key": "00000000000000a1"}]}},
}


@pytest.mark.parametrize("resource", sorted(KINDS))
def test_create_get_status_update_delete(control_plane, namespace, resource):
    cp = control_plane
    example, short = KINDS[resource]
    obj = load(example)
    name = obj["metadata"]["name"]
    create(cp, namespace, obj)
    got = get(cp, namespace, short, name)
    assert got["kind"] == obj["kind"] and got["metadata"]["generation"] == 1
    assert "status" not in got

    # The status subresource takes status and ignores spec changes...
    spec_change = {"reservations": {"enabled": False}} if resource == "viosclusters" else {
        "cluster": "elsewhere"}
    out = json.loads(patch(cp, namespace, resource, name,
                           {"status": STATUS[resource], "spec": spec_change}, status=True).stdout)
    for key, value in STATUS[resource].items():
        assert out["status"][key] == value, key
    assert out["spec"] == got["spec"]
    assert out["metadata"]["generation"] == 1
    # ...and the main resource ignores status changes.
    out = json.loads(patch(cp, namespace, resource, name, {"status": {"observedGeneration": 99},
                                                           "metadata": {"labels": {"a": "b"}}})
                     .stdout)
    assert out["status"].get("observedGeneration") != 99
    assert out["metadata"]["labels"] == {"a": "b"}

    cp.kubectl("delete", "-n", namespace, resource, name, "--wait=true")
    res = cp.kubectl("get", "-n", namespace, resource, name, check=False)
    assert res.returncode != 0 and "NotFound" in res.stderr


def test_volume_can_grow_but_not_shrink_or_move(control_plane, namespace):
    cp = control_plane
    create(cp, namespace, load("viosvolume.yaml"))
    out = json.loads(patch(cp, namespace, "viosv", "pvc-0b1c5d2e", {"spec": {"size": "1Gi"}})
                     .stdout)
    assert out["spec"]["size"] == "1Gi" and out["metadata"]["generation"] == 2
    res = patch(cp, namespace, "viosv", "pvc-0b1c5d2e", {"spec": {"size": "512Mi"}}, check=False)
    assert res.returncode != 0
    assert "spec.size" in res.stderr and "may grow, never shrink" in res.stderr
    res = patch(cp, namespace, "viosv", "pvc-0b1c5d2e", {"spec": {"pool": "other"}}, check=False)
    assert res.returncode != 0
    assert "spec.pool" in res.stderr and "pool is immutable" in res.stderr
    # What the CSI controller recorded at CreateVolume never changes either.
    for field, value in [("csiName", "pvc-other"), ("transport", "fuse"), ("fsType", "xfs")]:
        res = patch(cp, namespace, "viosv", "pvc-0b1c5d2e", {"spec": {field: value}},
                    check=False)
        assert res.returncode != 0, field
        assert "spec." + field in res.stderr and field + " is immutable" in res.stderr, res.stderr


def test_volume_transport_defaults_to_fuse(control_plane, namespace):
    vol = load("viosvolume.yaml")
    del vol["spec"]["transport"]
    created = json.loads(create(control_plane, namespace, vol).stdout)
    assert created["spec"]["transport"] == "fuse"


def expected_error(path):
    """The '# Expected: ...' line of an invalid example."""
    with open(path) as f:
        for line in f:
            if line.startswith("# Expected:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError("%s has no '# Expected:' line" % path)


INVALID_EXAMPLES = sorted(f for f in os.listdir(EXAMPLES) if f.startswith("invalid-"))


def test_there_are_invalid_examples():
    assert len(INVALID_EXAMPLES) >= 3


@pytest.mark.parametrize("example", INVALID_EXAMPLES)
def test_invalid_example_is_rejected_naming_the_field(control_plane, namespace, example):
    path = os.path.join(EXAMPLES, example)
    res = control_plane.kubectl("create", "-n", namespace, "-f", path, check=False)
    assert res.returncode != 0, res.stdout
    assert "is invalid" in res.stderr
    field, _, message = expected_error(path).partition(": ")
    assert field + ":" in res.stderr, res.stderr
    assert message in res.stderr, res.stderr


def cluster_with(mutate):
    obj = load("vioscluster-file.yaml")
    obj["metadata"]["name"] = "bad"
    mutate(obj["spec"])
    return obj


def _set(path, value):
    def mutate(spec):
        node = spec
        for key in path[:-1]:
            node = node[key] if not isinstance(key, str) or key in node else node.setdefault(key, {})
        node[path[-1]] = value
    return mutate


INVALID_CLUSTERS = [
    # (mutation, field named in the error, words of the message)
    (_set(["pools", 0, "extentSize"], "1000"), "spec.pools[0].extentSize", "multiple of 4096"),
    (_set(["pools", 0, "extentSize"], "lots"), "spec.pools[0].extentSize", "should match"),
    (_set(["pools", 0, "name"], "Default_Pool"), "spec.pools[0].name", "should match"),
    (_set(["pools", 0, "backends"], []), "spec.pools[0].backends", "should have at least 1"),
    (_set(["pools", 0, "backends", 0], {"name": "none"}), "spec.pools[0].backends[0]",
     "exactly one of iscsi, file or device"),
    (_set(["pools", 0, "backends", 0], {"name": "san", "iscsi": {
        "portal": "10.0.0.5:3260", "iqn": "not-an-iqn"}}),
     "spec.pools[0].backends[0].iscsi.iqn", "should match"),
    (_set(["pools", 0, "backends", 0], {"name": "san", "iscsi": {
        "portal": "10.0.0.5:3260", "iqn": "iqn.2001-04.com.example:disk", "lun": 20000}}),
     "spec.pools[0].backends[0].iscsi.lun", "should be less than or equal to 16383"),
    (_set(["pools", 0, "backends", 0, "file", "path"], "relative.img"),
     "spec.pools[0].backends[0].file.path", "should match"),
    (_set(["pools", 0, "backends", 0, "file"], {"path": "/p.img"}),
     "spec.pools[0].backends[0].file.size", "Required value"),
    (_set(["paths"], {"failureThreshold": 0}), "spec.paths.failureThreshold",
     "should be greater than or equal to 1"),
    (_set(["paths"], {"probeInterval": "soon"}), "spec.paths.probeInterval", "should match"),
    (_set(["paths"], {"peerDataProtection": "none"}), "spec.paths.peerDataProtection",
     "Unsupported value"),
    (_set(["virtualPorts"], {"portRange": {"min": 0, "max": 10}}),
     "spec.virtualPorts.portRange.min", "should be greater than or equal to 1"),
    (_set(["agents"], {"imagePullPolicy": "Sometimes"}), "spec.agents.imagePullPolicy",
     "Unsupported value"),
]


@pytest.mark.parametrize("mutate,field,words", INVALID_CLUSTERS,
                         ids=[c[1] + "-" + str(i) for i, c in enumerate(INVALID_CLUSTERS)])
def test_invalid_cluster_is_rejected_naming_the_field(control_plane, namespace, mutate, field,
                                                      words):
    res = create(control_plane, namespace, cluster_with(mutate), check=False)
    assert res.returncode != 0, res.stdout
    assert field + ":" in res.stderr, res.stderr
    assert words in res.stderr, res.stderr


def test_cluster_requires_pools(control_plane, namespace):
    obj = cluster_with(lambda spec: spec.pop("pools"))
    res = create(control_plane, namespace, obj, check=False)
    assert res.returncode != 0 and "spec.pools: Required value" in res.stderr, res.stderr


def test_invalid_volume_and_member_fields_are_named(control_plane, namespace):
    cp = control_plane
    vol = load("viosvolume.yaml")
    bad = copy.deepcopy(vol)
    bad["spec"]["accessModes"] = ["ReadWriteSometimes"]
    res = create(cp, namespace, bad, check=False)
    assert "spec.accessModes[0]: Unsupported value" in res.stderr, res.stderr
    bad = copy.deepcopy(vol)
    bad["spec"]["extents"][1]["offset"] = 100
    res = create(cp, namespace, bad, check=False)
    assert "spec.extents[1].offset" in res.stderr and "multiple of 512" in res.stderr, res.stderr
    bad = copy.deepcopy(vol)
    bad["spec"]["fsType"] = "ntfs"
    res = create(cp, namespace, bad, check=False)
    assert "spec.fsType: Unsupported value" in res.stderr, res.stderr
    bad = copy.deepcopy(vol)
    bad["spec"]["size"] = "1000"
    res = create(cp, namespace, bad, check=False)
    assert "spec.size" in res.stderr and "512-byte blocks" in res.stderr, res.stderr

    create(cp, namespace, vol)
    res = patch(cp, namespace, "viosv", "pvc-0b1c5d2e",
                {"status": {"reservation": {"type": "ExclusiveAccess"}}}, status=True,
                check=False)
    assert "status.reservation.holder" in res.stderr, res.stderr
    res = patch(cp, namespace, "viosv", "pvc-0b1c5d2e", {"status": {"phase": "Exploded"}},
                status=True, check=False)
    assert "status.phase: Unsupported value" in res.stderr, res.stderr

    create(cp, namespace, load("viosmember.yaml"))
    res = patch(cp, namespace, "viosm", "local-node-1", {"spec": {"nodeName": "node-2"}},
                check=False)
    assert res.returncode != 0 and "cluster and nodeName are immutable" in res.stderr, res.stderr
    res = patch(cp, namespace, "viosm", "local-node-1", {"status": {"state": "Sleeping"}},
                status=True, check=False)
    assert "status.state: Unsupported value" in res.stderr, res.stderr


def table(text):
    """kubectl's table output as a list of whitespace-split rows, header first."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


@pytest.mark.parametrize("resource,header,row", [
    ("viosclusters", ["NAME", "READY", "MEMBERS", "UP", "POOLS", "FREE", "AGE"],
     ["local", "True", "3", "2", "1", "3968Mi"]),
    ("viosmembers", ["NAME", "CLUSTER", "NODE", "STATE", "PATHS", "LOST", "REROUTING", "PORTS",
                     "AGE"],
     ["local-node-1", "local", "node-1", "Up", "1", "0", "false", "4"]),
    ("viosvolumes", ["NAME", "POOL", "SIZE", "PHASE", "NODE", "AGE"],
     ["pvc-0b1c5d2e", "default", "128Mi", "Attached", "node-1"]),
])
def test_printer_columns(control_plane, namespace, resource, header, row):
    cp = control_plane
    example, short = KINDS[resource]
    obj = load(example)
    create(cp, namespace, obj)
    patch(cp, namespace, resource, obj["metadata"]["name"], {"status": STATUS[resource]},
          status=True)
    rows = table(cp.kubectl("get", "-n", namespace, short).stdout)
    assert rows[0] == header
    assert rows[1][:len(row)] == row
    assert len(rows[1]) == len(header)


def test_category_lists_all_kinds(control_plane, namespace):
    cp = control_plane
    for example, _ in KINDS.values():
        create(cp, namespace, load(example))
    names = cp.kubectl("get", "-n", namespace, "vios", "-o", "name").stdout.split()
    assert sorted(names) == ["vioscluster.vios.dev/local", "viosmember.vios.dev/local-node-1",
                             "viosvolume.vios.dev/pvc-0b1c5d2e"]
