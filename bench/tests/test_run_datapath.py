"""bench/run-datapath end to end, tgtd against tgtd (two targets on one backing file)."""
import json
import subprocess
from pathlib import Path

RUN = Path(__file__).resolve().parents[1] / "run-datapath"


def test_run_datapath_compares_two_targets(tgtd, loadgen, tmp_path):
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(128 << 20)
    a = tgtd.add_target("iqn.2026-11.dev.vios:bench-a", disk)
    b = tgtd.add_target("iqn.2026-11.dev.vios:bench-b", disk)
    out = tmp_path / "result.json"
    p = subprocess.run([str(RUN), "--ours", a, "--tgtd", b, "--duration", "1", "--repeat", "1",
                        "--loadgen", loadgen, "--size-limit", "64m", "--json-out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "| 4k-randread-qd32 | iscsi-perf |" in p.stdout
    doc = json.loads(out.read_text())
    names = [w["workload"] for w in doc["workloads"]]
    assert names == ["4k-randread-qd32", "128k-seqread-qd8", "4k-randwrite-qd32",
                     "128k-seqwrite-qd8"]
    for w in doc["workloads"]:
        for target in ("ours", "tgtd"):
            assert w[target]["iops"] > 0, w
        assert w["iops_ratio"] > 0
        if w["tool"] == "vios-loadgen":
            assert w["p99_us_ratio"] > 0
