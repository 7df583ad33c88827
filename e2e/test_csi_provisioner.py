"""vios-csi driven by the real kubernetes-csi sidecars against the real kube-apiserver.

external-provisioner, external-attacher and external-resizer (built from the Go module proxy by
e2e/tools/build-tools) talk to one vios-csi controller; kube-controller-manager runs only the PV
binder and the two protection controllers, because there is no kubelet here. The test plays the
kubelet/attach-detach controller's part where one is needed: it writes the Node and CSINode
objects and creates/deletes VolumeAttachments.

What it proves:
- 20 PVCs of a StorageClass with volumeBindingMode Immediate become Bound to PVs that
  external-provisioner created; each has a VIOSVolume whose extents add up to the PV's
  capacity (the request rounded up to whole extents) and no extent is handed out twice.
- A PVC resize goes through external-resizer: the VIOSVolume gets more extents (still no
  overlap), the PV grows and the claim waits for the node (FileSystemResizePending).
- VolumeAttachments are attached by external-attacher (the VIOSVolume records the node) and
  detached when deleted.
- A PVC with another PVC as dataSource is a clone: the source's bytes are in the clone's own
  extents (read from the pool file).
- The controller's vios_pool_capacity_bytes / vios_pool_allocated_bytes gauges follow.
- Deleting the PVCs deletes the PVs and VIOSVolumes, and the data that a tenant had written into
  the pool file at those extents reads back as zeros.
- Bad StorageClass parameters leave the PVC Pending with a ProvisioningFailed event that names
  the problem, and allocate nothing.
"""

import json
import os
import subprocess
import time
import urllib.request
import uuid

import pytest

import lib_csi
from lib import procs
from lib_csi import get_json, wait_for

MiB = 1 << 20
EXTENT = lib_csi.EXTENT
POOL_SIZE = 8 << 30
PVCS = 20


class World:
    """Control plane + vios-csi controller + KCM + sidecars for one namespace (module scope)."""

    def __init__(self, cp, namespace, workdir):
        self.cp = cp
        self.ns = namespace
        self.dir = workdir
        self.pool_file = os.path.join(workdir, "pool0.img")
        with open(self.pool_file, "wb") as f:
            f.truncate(POOL_SIZE)
        self.cluster = lib_csi.create_cluster(cp, namespace, self.pool_file, size="8Gi")
        self.node = "prov-node-" + uuid.uuid4().hex[:6]
        lib_csi.create_node(cp, self.node)
        lib_csi.create_csi_node(cp, self.node)
        self.sc = "vios-" + namespace
        lib_csi.create_storage_class(cp, self.sc, {"cluster": self.cluster, "pool": "pool0",
                                                   "transport": "fuse", "fsType": "ext4"})
        self.metrics_port = procs.free_port()
        self.controller = lib_csi.CsiProcess(
            os.path.join(workdir, "controller"), "controller", cp.kubeconfig, namespace,
            cluster=self.cluster,
            extra_args=["--metrics-address", "127.0.0.1:%d" % self.metrics_port]).start()
        self.kcm = lib_csi.start_controller_manager(workdir, cp.kubeconfig)
        self.sidecars = {}
        self.sidecar("csi-provisioner")
        self.requests = {}  # PVC name -> requested bytes, shared by the stages below
        self.pvs = {}       # PVC name -> its PV

    def sidecar(self, name):
        """Starts a sidecar on first use, so that a stage needing one tool fails alone when that
        tool is missing."""
        if name not in self.sidecars:
            self.sidecars.update(lib_csi.start_sidecars(self.dir, self.cp.kubeconfig,
                                                        self.controller.socket, names=(name,)))
        return self.sidecars[name]

    def stop(self):
        for p in [*self.sidecars.values(), self.kcm, self.controller]:
            p.stop()

    def logs(self):
        out = ""
        for p in [self.controller, self.kcm, *self.sidecars.values()]:
            out += "\n--- %s\n%s" % (p.log_path, p.log()[-2500:])
        return out

    def pool_metrics(self):
        """{metric: value} of the pool0 gauges on the controller's /metrics."""
        url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            for name in ("vios_pool_capacity_bytes", "vios_pool_allocated_bytes"):
                if line.startswith(name + '{pool="pool0"}'):
                    out[name] = float(line.split()[-1])
        return out

    def pvc(self, name):
        return get_json(self.cp, "pvc", "-n", self.ns, name)

    def volumes(self):
        return get_json(self.cp, "viosvolumes", "-n", self.ns)["items"]

    def volume_of(self, pv):
        return get_json(self.cp, "viosvolume", "-n", self.ns, pv["spec"]["csi"]["volumeHandle"])


@pytest.fixture(scope="module")
def world(control_plane, tmp_path_factory):
    ns = "t-prov-" + uuid.uuid4().hex[:6]
    control_plane.kubectl("create", "namespace", ns)
    w = World(control_plane, ns, str(tmp_path_factory.mktemp("prov")))
    yield w
    w.stop()


def quantity(q):
    """Bytes of a Kubernetes quantity as the API server prints sizes ("32Mi", "33554432")."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 10**3, "M": 10**6,
             "G": 10**9, "T": 10**12}
    for suffix, mult in units.items():
        if q.endswith(suffix):
            return int(q[:-len(suffix)]) * mult
    return int(q)


def rounded(n):
    return (n + EXTENT - 1) // EXTENT * EXTENT


def no_shared_extent(volumes):
    """Every (backend, byte) belongs to at most one volume: sort the intervals, check neighbours."""
    spans = sorted((e["backend"], e["offset"], e["offset"] + e["length"], v["metadata"]["name"])
                   for v in volumes for e in v["spec"]["extents"])
    for a, b in zip(spans, spans[1:]):
        assert not (a[0] == b[0] and b[1] < a[2]), "extent overlap: %r and %r" % (a, b)
    return spans


def volume_offsets(vol, pos, length):
    """(file offset, length) runs of the volume's bytes [pos, pos+length) in the pool file."""
    start = 0
    for e in vol["spec"]["extents"]:
        lo, hi = max(pos, start), min(pos + length, start + e["length"])
        if lo < hi:
            yield e["offset"] + (lo - start), hi - lo
        start += e["length"]


def write_volume(pool_file, vol, pos, data):
    with open(pool_file, "r+b") as f:
        done = 0
        for off, n in volume_offsets(vol, pos, len(data)):
            f.seek(off)
            f.write(data[done:done + n])
            done += n
        f.flush()
        os.fsync(f.fileno())


def read_volume(pool_file, vol, pos, length):
    out = b""
    with open(pool_file, "rb") as f:
        for off, n in volume_offsets(vol, pos, length):
            f.seek(off)
            out += f.read(n)
    return out


def events_for(cp, ns, name):
    out = get_json(cp, "events", "-n", ns, "--field-selector", "involvedObject.name=" + name)
    return [(e.get("reason"), e.get("message", "")) for e in out["items"]]


def test_tools_report_their_pinned_versions():
    """The binaries are the versions e2e/tools/versions pins (built with -X main.version)."""
    versions = lib_csi.tool_versions()
    for tool, key in [("csi-provisioner", "CSI_PROVISIONER_VERSION"),
                      ("csi-attacher", "CSI_ATTACHER_VERSION"),
                      ("csi-resizer", "CSI_RESIZER_VERSION"),
                      ("kube-controller-manager", "KUBE_VERSION")]:
        out = subprocess.run([lib_csi.tool_path(tool), "--version"], capture_output=True,
                             text=True, timeout=60).stdout
        assert out.split()[-1] == versions[key], (tool, out)


# The stages run in this order on one set of 20 claims (pytest keeps file order).

def test_20_pvcs_bind_to_distinct_extents(world):
    cp, ns = world.cp, world.ns
    requests = world.requests
    requests.update({"data-%02d" % i: (i % 4 + 1) * 10 * MiB + i for i in range(PVCS)})
    start = time.monotonic()
    items = [lib_csi.pvc_object(name, ns, world.sc, str(size), mode=(
        "Block" if i % 5 == 0 else "Filesystem")) for i, (name, size) in
        enumerate(requests.items())]
    cp.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": items}))

    def all_bound():
        claims = get_json(cp, "pvc", "-n", ns)["items"]
        bound = [c for c in claims if c["status"].get("phase") == "Bound"]
        return claims if len(bound) == PVCS else None
    try:
        claims = wait_for("20 PVCs Bound", all_bound, timeout=240)
    except TimeoutError:
        raise AssertionError(world.logs())
    bind_seconds = time.monotonic() - start
    print("20 PVCs Bound in %.1f s" % bind_seconds)

    pvs = world.pvs
    for c in claims:
        name = c["metadata"]["name"]
        pv = get_json(cp, "pv", c["spec"]["volumeName"])
        pvs[name] = pv
        want = rounded(requests[name])
        assert pv["spec"]["csi"]["driver"] == lib_csi.DRIVER
        assert pv["spec"]["claimRef"]["name"] == name
        assert pv["spec"]["volumeMode"] == c["spec"]["volumeMode"]
        assert quantity(pv["spec"]["capacity"]["storage"]) == want, name
        assert quantity(c["status"]["capacity"]["storage"]) == want, name
        vol = world.volume_of(pv)
        assert vol["spec"]["pool"] == "pool0" and vol["spec"]["cluster"] == world.cluster
        assert int(vol["spec"]["size"]) == want
        assert sum(e["length"] for e in vol["spec"]["extents"]) == want
        assert all(e["length"] % EXTENT == 0 and e["offset"] % EXTENT == 0
                   for e in vol["spec"]["extents"])
        assert vol["spec"]["volumeMode"] == c["spec"]["volumeMode"]
        assert vol["status"]["phase"] == "Available"
        assert pv["spec"]["csi"]["volumeAttributes"]["transport"] == "fuse"
    volumes = world.volumes()
    assert len(volumes) == PVCS
    spans = no_shared_extent(volumes)
    assert all(end <= POOL_SIZE for _, _, end, _ in spans)
    # The controller's pool gauges (names the alerting rules use) agree with the volumes.
    allocated = float(sum(rounded(n) for n in requests.values()))
    wait_for("vios_pool_allocated_bytes == %d" % allocated, lambda: world.pool_metrics().get(
        "vios_pool_allocated_bytes") == allocated, timeout=30)
    assert world.pool_metrics()["vios_pool_capacity_bytes"] == float(POOL_SIZE)


def test_resize_through_external_resizer(world):
    """The volume gets more extents (still never shared), the PV grows, the claim waits for the
    node to grow the filesystem."""
    cp, ns, requests, pvs = world.cp, world.ns, world.requests, world.pvs
    assert pvs, "needs the claims of test_20_pvcs_bind_to_distinct_extents"
    world.sidecar("csi-resizer")
    grow = "data-01"
    new_size = rounded(requests[grow]) + 3 * EXTENT
    cp.kubectl("patch", "pvc", grow, "-n", ns, "--type=merge", "-p",
               json.dumps({"spec": {"resources": {"requests": {"storage": str(new_size)}}}}))
    pv = wait_for("PV %s to grow" % grow, lambda: (lambda p: p if quantity(p["spec"]["capacity"][
        "storage"]) == new_size else None)(get_json(cp, "pv", pvs[grow]["metadata"]["name"])),
        timeout=120)
    vol = world.volume_of(pv)
    assert int(vol["spec"]["size"]) == new_size
    assert sum(e["length"] for e in vol["spec"]["extents"]) == new_size
    # vios-csi asks for node expansion (the filesystem grows on the node): the claim waits for it.
    def node_pending():
        c = world.pvc(grow)
        st = c["status"]
        pending = any(x["type"] == "FileSystemResizePending" for x in st.get("conditions", []))
        pending = pending or st.get("allocatedResourceStatuses", {}).get(
            "storage") == "NodeResizePending"
        return c if pending else None
    claim = wait_for("the claim to wait for node expansion", node_pending, timeout=60)
    assert quantity(claim["status"]["capacity"]["storage"]) == rounded(requests[grow])
    no_shared_extent(world.volumes())


def test_attach_and_detach_through_external_attacher(world):
    """VolumeAttachments as the attach-detach controller would create them."""
    cp, ns, pvs = world.cp, world.ns, world.pvs
    assert pvs, "needs the claims of test_20_pvcs_bind_to_distinct_extents"
    world.sidecar("csi-attacher")
    attach = ["data-02", "data-05", "data-07"]
    for name in attach:
        lib_csi.apply(cp, {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment",
                           "metadata": {"name": "va-%s-%s" % (ns, name)},
                           "spec": {"attacher": lib_csi.DRIVER, "nodeName": world.node,
                                    "source": {"persistentVolumeName":
                                               pvs[name]["metadata"]["name"]}}})
    for name in attach:
        va = wait_for("VolumeAttachment %s attached" % name, lambda n=name: (lambda v: v if v.get(
            "status", {}).get("attached") else None)(get_json(cp, "volumeattachment",
                                                               "va-%s-%s" % (ns, n))), timeout=120)
        assert va["status"]["attachmentMetadata"]["node"] == world.node
        vol = world.volume_of(pvs[name])
        assert [a["node"] for a in vol["status"]["attachments"]] == [world.node]
        assert vol["status"]["phase"] == "Attached"
    for name in attach:
        cp.kubectl("delete", "volumeattachment", "va-%s-%s" % (ns, name), "--wait=false")
    for name in attach:
        wait_for("detach of %s" % name, lambda n=name: not world.volume_of(pvs[n])["status"].get(
            "attachments"), timeout=120)
        wait_for("VolumeAttachment %s gone" % name, lambda n=name: cp.kubectl(
            "get", "volumeattachment", "va-%s-%s" % (ns, n), check=False).returncode != 0)


def test_clone_through_external_provisioner(world):
    """A PVC whose dataSource is another PVC: the source's bytes, copied by the controller, are
    in the clone's own extents."""
    cp, ns, requests, pvs = world.cp, world.ns, world.requests, world.pvs
    assert pvs, "needs the claims of test_20_pvcs_bind_to_distinct_extents"
    src = "data-03"
    src_vol = world.volume_of(pvs[src])
    payload = os.urandom(EXTENT // 2)
    write_volume(world.pool_file, src_vol, 5 * MiB, payload)
    clone = lib_csi.pvc_object("clone-03", ns, world.sc, str(rounded(requests[src])))
    clone["spec"]["dataSource"] = {"kind": "PersistentVolumeClaim", "name": src}
    cp.kubectl("apply", "-f", "-", input=json.dumps(clone))
    try:
        claim = wait_for("clone Bound", lambda: (lambda c: c if c["status"].get(
            "phase") == "Bound" else None)(world.pvc("clone-03")), timeout=120)
    except TimeoutError:
        raise AssertionError(world.logs())
    pvs["clone-03"] = get_json(cp, "pv", claim["spec"]["volumeName"])
    clone_vol = world.volume_of(pvs["clone-03"])
    assert clone_vol["spec"]["contentSource"] == {"volume": src_vol["metadata"]["name"]}
    assert clone_vol["status"]["phase"] == "Available"
    assert read_volume(world.pool_file, clone_vol, 5 * MiB, len(payload)) == payload
    assert read_volume(world.pool_file, clone_vol, 0, MiB) == bytes(MiB)
    no_shared_extent(world.volumes())


def test_deleting_the_claims_zeroes_every_extent(world):
    cp, ns, pvs = world.cp, world.ns, world.pvs
    assert pvs, "needs the claims of test_20_pvcs_bind_to_distinct_extents"
    # A tenant's data in every extent, written straight into the pool file.
    volumes = world.volumes()
    marker = b"tenant-data!" * 341 + b"XXXX"  # 4096 bytes
    assert len(marker) == 4096
    with open(world.pool_file, "r+b") as f:
        for v in volumes:
            for e in v["spec"]["extents"]:
                for off in (e["offset"], e["offset"] + e["length"] - 4096):
                    f.seek(off)
                    f.write(marker)
        f.flush()
        os.fsync(f.fileno())

    # Delete every claim: the PV binder releases the PVs, external-provisioner deletes them.
    cp.kubectl("delete", "pvc", "-n", ns, "--all", "--wait=false")
    pv_names = [p["metadata"]["name"] for p in pvs.values()]  # the clone's too
    try:
        wait_for("PVs deleted", lambda: not any(
            p["metadata"]["name"] in pv_names for p in get_json(cp, "pv")["items"]), timeout=240)
    except TimeoutError:
        raise AssertionError(world.logs())
    assert world.volumes() == []
    wait_for("vios_pool_allocated_bytes == 0", lambda: world.pool_metrics().get(
        "vios_pool_allocated_bytes") == 0.0, timeout=30)
    with open(world.pool_file, "rb") as f:
        for v in volumes:
            for e in v["spec"]["extents"]:
                for off in (e["offset"], e["offset"] + e["length"] - 4096):
                    f.seek(off)
                    assert f.read(4096) == bytes(4096), "old data left at %d" % off
        # One whole volume, read back byte for byte.
        for e in volumes[0]["spec"]["extents"]:
            f.seek(e["offset"])
            assert f.read(e["length"]).count(0) == e["length"]


@pytest.mark.parametrize("params,needle", [
    ({"pool": "nosuchpool"}, "nosuchpool"),
    ({"pool": "pool0", "transport": "nvme"}, "transport='nvme'"),
    ({"pool": "pool0", "colour": "blue"}, "unknown parameter 'colour'"),
    ({"pool": "pool0", "cluster": "nosuchcluster"}, "VIOSCluster 'nosuchcluster' not found"),
])
def test_bad_storage_class_parameters_are_pvc_events(world, params, needle):
    cp, ns = world.cp, world.ns
    sc = "bad-%s-%s" % (ns, uuid.uuid4().hex[:6])
    lib_csi.create_storage_class(cp, sc, dict(params))
    name = "bad-" + uuid.uuid4().hex[:6]
    before = len(world.volumes())
    cp.kubectl("apply", "-f", "-", input=json.dumps(
        lib_csi.pvc_object(name, ns, sc, "10Mi")))
    try:
        failed = wait_for("ProvisioningFailed on %s" % name, lambda: [
            m for r, m in events_for(cp, ns, name) if r == "ProvisioningFailed"], timeout=60)
    except TimeoutError:
        raise AssertionError(world.logs())
    assert any(needle in m and "InvalidArgument" in m for m in failed), failed
    assert world.pvc(name)["status"]["phase"] == "Pending"
    assert len(world.volumes()) == before
    cp.kubectl("delete", "pvc", "-n", ns, name, "--wait=false")
    cp.kubectl("delete", "storageclass", sc)
