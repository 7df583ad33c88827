"""The fuse attach transport end to end: a volume is staged, formatted and mounted on node a
(agent a), files are written, it is unstaged, then staged on node b (another agent process over
the same pool file) and the files are there. Deleting the volume zeroes its extents in the pool
file. Also: bad input gets the CSI spec's codes and allocates nothing."""

import hashlib
import os

import pytest

import lib_csi
from lib_csi import CsiError, call, mount_cap, block_cap

MiB = 1 << 20


@pytest.fixture
def env(control_plane, namespace):
    e = lib_csi.CsiEnv(control_plane, namespace, nodes=("a", "b")).start()
    yield e
    e.stop()


def stage_and_publish(env, n, vol, cap, read_only=False):
    vid = vol["volumeId"]
    staging = os.path.join(env.dir, "%s-staging" % n)
    target = os.path.join(env.dir, "%s-pods" % n, "target")
    os.makedirs(staging, exist_ok=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    call(env.controller, "ControllerPublishVolume",
         {"volumeId": vid, "nodeId": env.node_ids[n], "volumeCapability": cap,
          "readonly": read_only})
    call(env.nodes[n], "NodeStageVolume",
         {"volumeId": vid, "stagingTargetPath": staging, "volumeCapability": cap,
          "volumeContext": vol.get("volumeContext", {})})
    # Repeated stage is idempotent.
    call(env.nodes[n], "NodeStageVolume",
         {"volumeId": vid, "stagingTargetPath": staging, "volumeCapability": cap,
          "volumeContext": vol.get("volumeContext", {})})
    call(env.nodes[n], "NodePublishVolume",
         {"volumeId": vid, "stagingTargetPath": staging, "targetPath": target,
          "volumeCapability": cap, "readonly": read_only})
    return staging, target


def unpublish_and_unstage(env, n, vid, staging, target):
    for _ in range(2):  # twice: both are idempotent
        call(env.nodes[n], "NodeUnpublishVolume", {"volumeId": vid, "targetPath": target})
        call(env.nodes[n], "NodeUnstageVolume", {"volumeId": vid, "stagingTargetPath": staging})
    call(env.controller, "ControllerUnpublishVolume",
         {"volumeId": vid, "nodeId": env.node_ids[n]})
    assert not os.path.ismount(staging)
    assert not os.path.exists(target)


def test_fuse_volume_moves_between_nodes_and_is_zeroed_on_delete(env):
    cap = mount_cap("ext4")
    vol = call(env.controller, "CreateVolume",
               {"name": "pvc-fuse-e2e", "capacityRange": {"requiredBytes": 64 * MiB},
                "volumeCapabilities": [cap], "parameters": {"pool": "pool0", "transport": "fuse"}})
    vol = vol["volume"]
    vid = vol["volumeId"]
    assert int(vol["capacityBytes"]) == 64 * MiB

    staging, target = stage_and_publish(env, "a", vol, cap)
    assert os.path.ismount(staging) and os.path.ismount(target)
    payload = os.urandom(3 * MiB)
    with open(os.path.join(target, "data.bin"), "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    # FUSE I/O shows in the volume's metrics as iSCSI I/O does (what the dashboards plot).
    written = lib_csi.agent_metric(env.agents["a"], "vios_io_bytes_total", scope="volume",
                                   name=vid, op="write")
    assert written is not None and written >= 3 * MiB, written
    os.makedirs(os.path.join(target, "dir"))
    with open(os.path.join(target, "dir", "hello.txt"), "w") as f:
        f.write("hello from node a\n")
    stats = call(env.nodes["a"], "NodeGetVolumeStats", {"volumeId": vid, "volumePath": target})
    units = {u["unit"]: u for u in stats["usage"]}
    assert int(units["BYTES"]["used"]) >= 3 * MiB
    assert int(units["INODES"]["used"]) > 0
    assert stats["volumeCondition"]["abnormal"] is False

    # A single-node volume published to a is not published to b.
    with pytest.raises(CsiError) as err:
        call(env.controller, "ControllerPublishVolume",
             {"volumeId": vid, "nodeId": env.node_ids["b"], "volumeCapability": cap})
    assert err.value.code == "FAILED_PRECONDITION"

    unpublish_and_unstage(env, "a", vid, staging, target)

    staging_b, target_b = stage_and_publish(env, "b", vol, cap)
    with open(os.path.join(target_b, "data.bin"), "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(payload).digest()
    with open(os.path.join(target_b, "dir", "hello.txt")) as f:
        assert f.read() == "hello from node a\n"
    unpublish_and_unstage(env, "b", vid, staging_b, target_b)

    extents = [v for v in env.volumes() if v["metadata"]["name"] == vid][0]["spec"]["extents"]
    call(env.controller, "DeleteVolume", {"volumeId": vid})
    assert env.volumes() == []
    with open(env.pool_file, "rb") as f:
        for e in extents:
            f.seek(e["offset"])
            left = e["length"]
            while left:
                chunk = f.read(min(left, 4 * MiB))
                assert chunk.count(0) == len(chunk), "old data left at %s" % e
                left -= len(chunk)


def test_block_volume_is_published_as_a_device_file(env):
    cap = block_cap()
    vol = call(env.controller, "CreateVolume",
               {"name": "pvc-block-e2e", "capacityRange": {"requiredBytes": 32 * MiB},
                "volumeCapabilities": [cap], "parameters": {"pool": "pool0"}})["volume"]
    staging, target = stage_and_publish(env, "a", vol, cap)
    import stat
    assert stat.S_ISBLK(os.stat(target).st_mode)
    with open(target, "r+b") as f:
        f.seek(5 * MiB)
        f.write(b"B" * 4096)
        f.flush()
        os.fsync(f.fileno())
    unpublish_and_unstage(env, "a", vol["volumeId"], staging, target)
    staging, target = stage_and_publish(env, "b", vol, cap)
    with open(target, "rb") as f:
        f.seek(5 * MiB)
        assert f.read(4096) == b"B" * 4096
    unpublish_and_unstage(env, "b", vol["volumeId"], staging, target)
    call(env.controller, "DeleteVolume", {"volumeId": vol["volumeId"]})


def expect_code(code, fn, *args):
    with pytest.raises(CsiError) as err:
        fn(*args)
    assert err.value.code == code, err.value
    return err.value.message


def test_bad_input_gets_the_spec_codes_and_allocates_nothing(env):
    ctl, node = env.controller, env.nodes["a"]
    cap = mount_cap()
    before = call(ctl, "GetCapacity", {"parameters": {"pool": "pool0"}})["availableCapacity"]
    msg = expect_code("INVALID_ARGUMENT", call, ctl, "CreateVolume",
                      {"name": "bad-pool", "volumeCapabilities": [cap],
                       "parameters": {"pool": "nope"}})
    assert "nope" in msg
    expect_code("INVALID_ARGUMENT", call, ctl, "CreateVolume",
                {"name": "bad-size", "volumeCapabilities": [cap],
                 "capacityRange": {"requiredBytes": -5}})
    expect_code("RESOURCE_EXHAUSTED", call, ctl, "CreateVolume",
                {"name": "too-big", "volumeCapabilities": [cap],
                 "capacityRange": {"requiredBytes": 64 << 30}})
    expect_code("INVALID_ARGUMENT", call, ctl, "CreateVolume",
                {"name": "bad-cap", "volumeCapabilities": [mount_cap(mode="MULTI_NODE_MULTI_WRITER")]})
    expect_code("INVALID_ARGUMENT", call, ctl, "CreateVolume",
                {"name": "bad-fs", "volumeCapabilities": [mount_cap("btrfs")]})
    expect_code("NOT_FOUND", call, ctl, "ControllerPublishVolume",
                {"volumeId": "no-such-volume", "nodeId": env.node_ids["a"],
                 "volumeCapability": cap})
    expect_code("NOT_FOUND", call, node, "NodeStageVolume",
                {"volumeId": "no-such-volume", "stagingTargetPath": os.path.join(env.dir, "s"),
                 "volumeCapability": cap})
    assert env.volumes() == []
    assert call(ctl, "GetCapacity", {"parameters": {"pool": "pool0"}})["availableCapacity"] == before

    # An iscsi volume without CHAP secrets is refused before anything is attached.
    vol = call(ctl, "CreateVolume",
               {"name": "iscsi-no-secrets", "volumeCapabilities": [cap],
                "capacityRange": {"requiredBytes": 16 * MiB},
                "parameters": {"pool": "pool0", "transport": "iscsi"}})["volume"]
    expect_code("NOT_FOUND", call, ctl, "ControllerPublishVolume",
                {"volumeId": vol["volumeId"], "nodeId": "no-such-node", "volumeCapability": cap})
    msg = expect_code("INVALID_ARGUMENT", call, node, "NodeStageVolume",
                      {"volumeId": vol["volumeId"], "stagingTargetPath": os.path.join(env.dir, "s"),
                       "volumeCapability": cap, "volumeContext": vol["volumeContext"]})
    assert "password" in msg or "username" in msg
    call(ctl, "DeleteVolume", {"volumeId": vol["volumeId"]})
    assert env.volumes() == []
    assert call(ctl, "GetCapacity", {"parameters": {"pool": "pool0"}})["availableCapacity"] == before
