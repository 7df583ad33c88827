#!/usr/bin/env python3
"""The local demo behind scripts/run-local: vios for real on this one machine.

A local control plane (etcd + kube-apiserver), three vios-agents as hosts in their own network
namespaces (127.77.1.10-12 on a bridge), optionally a SAN (tgtd) in a fourth (--san), two
vios-operator replicas and the vios-csi controller here. It creates a VIOSCluster, provisions a
volume through CSI, attaches it to agent-a with the fuse transport, makes a filesystem, writes
files, shows what an operator of vios looks at, and stays up until Ctrl-C; then it removes
everything it started.

    scripts/demo.py --build DIR --dir DIR [--san] [--no-wait]
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "e2e"))


def say(text):
    print("\n\033[1m==> %s\033[0m" % text, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="build directory with the binaries")
    parser.add_argument("--dir", required=True, help="state, logs and kubeconfig go here")
    parser.add_argument("--san", action="store_true",
                        help="back the pool with a SAN LUN (tgtd in its own namespace)")
    parser.add_argument("--no-wait", action="store_true", help="show the demo, then stop")
    args = parser.parse_args()
    os.environ["VIOS_BUILD_DIR"] = os.path.abspath(args.build)

    from controlplane import ControlPlane  # noqa: E402 (needs sys.path above)
    from lib.cluster import (ApiBridge, ClusterAgentProc, Fabric, OperatorProc,  # noqa: E402
                             get_json, wait_until)
    import lib_csi  # noqa: E402

    workdir = os.path.abspath(args.dir)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    started = time.monotonic()
    cleanup = []

    def stop_all(*_):
        say("stopping")
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - keep cleaning up
                print("  cleanup step failed: %s" % e)
        shutil.rmtree(workdir, ignore_errors=True)
        print("removed %s; nothing of vios is left running" % workdir)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        say("starting a local Kubernetes control plane (etcd + kube-apiserver on 127.0.0.1)")
        cp = ControlPlane(os.path.join(workdir, "controlplane"), install_crds=True)
        cp.start()
        cleanup.append(cp.stop)
        ns = "vios-system"
        cp.kubectl("create", "namespace", ns)

        say("three hosts in their own network namespaces (127.77.1.10-12 on one bridge)")
        fabric = Fabric()
        cleanup.append(fabric.destroy)
        bridge = ApiBridge(cp.state()["apiserver_port"])
        cleanup.append(bridge.close)
        names = ("agent-a", "agent-b", "agent-c")
        hosts = {}
        for i, name in enumerate(names):
            hosts[name] = fabric.host(name, "127.77.1.%d" % (10 + i))
            bridge.expose(hosts[name])

        pool = {"name": "pool0", "extentSize": "64Mi"}
        if args.san:
            from lib import san as san_lib  # noqa: E402
            say("a SAN: tgtd with one 4 GiB LUN in its own namespace at 127.77.1.2")
            san_host = fabric.host("san", "127.77.1.2")
            san_dir = os.path.join(workdir, "san")
            os.makedirs(san_dir)
            san = san_lib.Tgtd(san_dir, address="127.77.1.2", host=san_host).start()
            cleanup.append(san.stop)
            san_iqn = "iqn.2026-11.dev.vios:demo-san"
            san.add_lun(san_iqn, os.path.join(san_dir, "lun1.img"), 4 << 30)
            pool["backends"] = [{"name": "san0", "iscsi": {
                "portal": "127.77.1.2:3260", "iqn": san_iqn, "lun": 1}}]
        else:
            os.makedirs(os.path.join(workdir, "pool"))
            pool["backends"] = [{"name": "file0", "file": {
                "path": os.path.join(workdir, "pool", "pool0.img"), "size": "8Gi"}}]
        cluster = {"apiVersion": "vios.dev/v1alpha1", "kind": "VIOSCluster",
                   "metadata": {"name": "local", "namespace": ns}, "spec": {"pools": [pool]}}
        cp.kubectl("apply", "-f", "-", input=json.dumps(cluster))

        say("two vios-operator replicas (leader-elected) and three vios-agents")
        operators = [OperatorProc(workdir, "operator-%d" % i, cp, ns) for i in range(2)]
        for op in operators:
            op.start()
            cleanup.append(op.stop)
        agents = {}
        for name in names:
            agent = ClusterAgentProc(os.path.join(workdir, name), name, hosts[name],
                                     hosts[name].address, cp, ns, cluster="local")
            agent.start()
            cleanup.append(agent.stop)
            agents[name] = agent
        def healthy():
            members = get_json(cp, "-n", ns, "viosmembers")["items"]
            return len(members) == 3 and all(
                m.get("status", {}).get("state") == "Up" and m["status"].get("paths") and all(
                    p.get("state") == "Healthy" for p in m["status"]["paths"])
                for m in members)
        wait_until(healthy, 120, "three members Up with their pool open")

        say("the vios-csi controller, and agent-a's CSI node plugin")
        cp.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "agent-a"}}))
        controller = lib_csi.CsiProcess(os.path.join(workdir, "csi-controller"), "controller",
                                        cp.kubeconfig, ns, cluster="local")
        controller.start()
        cleanup.append(controller.stop)
        node = lib_csi.CsiProcess(os.path.join(workdir, "csi-node-a"), "node", cp.kubeconfig,
                                  ns, cluster="local", node_id="agent-a",
                                  agent_socket=agents["agent-a"].socket)
        node.start()
        cleanup.append(node.stop)

        say("a 1 GiB volume through CSI (what a PVC does), attached to agent-a over fuse")
        cap = lib_csi.mount_cap("ext4")
        vol = lib_csi.call(controller, "CreateVolume", {
            "name": "pvc-demo", "capacityRange": {"requiredBytes": 1 << 30},
            "volumeCapabilities": [cap],
            "parameters": {"pool": "pool0", "transport": "fuse"}})["volume"]
        vid = vol["volumeId"]
        staging = os.path.join(workdir, "staging")
        target = os.path.join(workdir, "pods", "demo", "volume")
        os.makedirs(staging)
        os.makedirs(os.path.dirname(target))
        lib_csi.call(controller, "ControllerPublishVolume",
                     {"volumeId": vid, "nodeId": "agent-a", "volumeCapability": cap})
        lib_csi.call(node, "NodeStageVolume", {
            "volumeId": vid, "stagingTargetPath": staging, "volumeCapability": cap,
            "volumeContext": vol.get("volumeContext", {})})
        lib_csi.call(node, "NodePublishVolume", {
            "volumeId": vid, "stagingTargetPath": staging, "targetPath": target,
            "volumeCapability": cap})

        def unpublish():
            lib_csi.call(node, "NodeUnpublishVolume", {"volumeId": vid, "targetPath": target})
            lib_csi.call(node, "NodeUnstageVolume",
                         {"volumeId": vid, "stagingTargetPath": staging})
        cleanup.append(unpublish)

        say("a filesystem on it: writing files")
        with open(os.path.join(target, "hello.txt"), "w") as f:
            f.write("hello from vios\n")
        with open(os.path.join(target, "data.bin"), "wb") as f:
            f.write(os.urandom(8 << 20))
            f.flush()
            os.fsync(f.fileno())
        print(subprocess.run(["df", "-h", target], capture_output=True, text=True).stdout)
        print(subprocess.run(["ls", "-l", target], capture_output=True, text=True).stdout)

        say("what an operator of vios looks at")
        print(cp.kubectl("get", "viosclusters,viosmembers,viosvolumes", "-n", ns).stdout)
        a = agents["agent-a"]
        metrics = a.metrics().splitlines()
        say("a metrics excerpt (agent-a, http://%s:%d/metrics)" % (a.address, a.metrics_port))
        shown = [l for l in metrics
                 if l.startswith(("vios_io_operations_total{", "vios_io_bytes_total{"))
                 and 'scope="backend"' in l]
        # One line per path: the state it is in (the gauge is 1 for the current state).
        shown += [l for l in metrics if l.startswith("vios_path_health{") and l.endswith(" 1")]
        print("\n".join(shown[:12]))

        kubectl = lib_csi.tool_path("kubectl")
        print("""
vios is running ({:.0f} s to get here).
  kubeconfig:  export KUBECONFIG={kc}
  resources:   {kubectl} -n {ns} get viosclusters,viosmembers,viosvolumes
  the volume:  {target}   (ext4 on a loop device on agent-a's FUSE export)
  an agent:    {ctl} --socket {sock} list
  metrics:     ip netns exec {netns} curl -s http://{addr}:9470/metrics | grep ^vios_
  logs:        {dir}/agent-*/agent.log, {dir}/operator-*.log, {dir}/csi-*/
  try:         kill agent-c and watch the operator mark it Down (lease 15 s):
               kill {pid_c}; {kubectl} -n {ns} get viosmembers -w
""".format(time.monotonic() - started, kc=cp.kubeconfig, kubectl=kubectl, ns=ns,
           target=target, ctl=os.path.join(args.build, "node-agent", "app", "vios-agentctl"),
           sock=a.socket, netns=a.host.name, addr=a.address, dir=workdir,
           pid_c=agents["agent-c"].proc.pid), flush=True)
        if not args.no_wait:
            print("Press Ctrl-C to stop and clean up.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()


if __name__ == "__main__":
    main()
