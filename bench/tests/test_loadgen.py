"""vios-loadgen against a real tgtd: verify mode passes on good data and fails on corrupt data."""
import json
import os
import subprocess

BLOCK = 512  # tgtd's LUN block size for a file backing store.
IQN = "iqn.2026-11.dev.vios:bench-loadgen"


def run_loadgen(loadgen, url, *args):
    p = subprocess.run([loadgen, "--json", "--timeout", "20", *args, url],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, json.loads(p.stdout), p.stderr


def make_disk(tmp_path, size=64 << 20):
    disk = tmp_path / "disk.img"
    with open(disk, "wb") as f:
        f.truncate(size)
    return disk


def test_verify_write_then_read_reports_no_failures(tgtd, loadgen, tmp_path):
    url = tgtd.add_target(IQN, make_disk(tmp_path))
    # Random writes with a read-back pass over everything written.
    rc, r, err = run_loadgen(loadgen, url, "--rw", "randwrite", "--verify", "--bs", "8k", "--qd",
                             "16", "--ios", "4000", "--size-limit", "16m")
    assert rc == 0, err
    assert r["io_errors"] == 0 and r["error"] == ""
    assert r["write"]["ios"] == 4000
    assert r["verify"]["failures"] == 0
    assert r["verify"]["readback_blocks"] > 0
    # Mixed: reads during the run see either unwritten blocks or the latest generation.
    rc, r, err = run_loadgen(loadgen, url, "--rw", "randrw", "--verify", "--qd", "32",
                             "--duration", "2", "--size-limit", "16m")
    assert rc == 0, err
    assert r["read"]["ios"] > 0 and r["write"]["ios"] > 0
    assert r["verify"]["failures"] == 0
    lat = r["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]


def test_verify_detects_corruption_of_the_backing_file(tgtd, loadgen, tmp_path):
    disk = make_disk(tmp_path)
    url = tgtd.add_target(IQN, disk)
    rc, r, err = run_loadgen(loadgen, url, "--rw", "write", "--verify", "--bs", "4k", "--ios",
                             "4096", "--size-limit", "16m")
    assert rc == 0 and r["verify"]["failures"] == 0, err
    # A clean read pass first: the file as tgtd wrote it verifies.
    rc, r, err = run_loadgen(loadgen, url, "--rw", "read", "--verify", "--bs", "4k", "--ios",
                             "4096", "--size-limit", "16m")
    assert rc == 0 and r["verify"]["failures"] == 0, err

    # Damage three blocks behind tgtd's back: payload bytes, a zeroed block, a copied block.
    with open(disk, "r+b") as f:
        f.seek(100 * BLOCK + 300)
        f.write(b"CORRUPTED")
        f.seek(2000 * BLOCK)
        f.write(bytes(BLOCK))
        f.seek(10 * BLOCK)
        stale = f.read(BLOCK)
        f.seek(5000 * BLOCK)
        f.write(stale)  # A misdirected write: intact block, wrong LBA.
    rc, r, err = run_loadgen(loadgen, url, "--rw", "read", "--verify", "--bs", "4k", "--ios",
                             "4096", "--size-limit", "16m")
    assert rc == 1, "corruption must make the run fail"
    assert r["verify"]["failures"] == 3, r["verify"]
    assert r["verify"]["failures_by_kind"] == {"bad_checksum": 1, "unwritten": 1,
                                               "wrong_lba": 1}
    assert "lba 100" in err


def test_io_errors_make_the_run_fail(tgtd, loadgen, tmp_path):
    url = tgtd.add_target(IQN, make_disk(tmp_path))
    # An unknown LUN fails at login/capacity time with exit 2, not a crash.
    bad = url.rsplit("/", 1)[0] + "/7"
    p = subprocess.run([loadgen, "--ios", "1", bad], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    # A region beyond the LUN is refused before any I/O.
    p = subprocess.run([loadgen, "--ios", "1", "--offset", "1g", url], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "beyond the end" in p.stderr


def test_chap_credentials_from_flags_or_environment(tgtd, loadgen, tmp_path):
    url = tgtd.add_target(IQN, make_disk(tmp_path))
    tgtd.adm("--mode", "account", "--op", "new", "--user", "benchuser", "--password",
             "benchsecret12")
    tgtd.adm("--mode", "account", "--op", "bind", "--tid", "1", "--user", "benchuser")
    base = [loadgen, "--rw", "randread", "--ios", "100", "--timeout", "10"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIOS_CHAP_")}

    p = subprocess.run(base + [url], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 2, "login without CHAP must be refused"
    p = subprocess.run(base + ["--chap-user", "benchuser", "--chap-password", "wrongsecret12",
                               url], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 2, "a wrong secret must be refused"
    p = subprocess.run(base + ["--chap-user", "benchuser", "--chap-password", "benchsecret12",
                               url], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(base + [url], capture_output=True, text=True, timeout=60,
                       env=dict(env, VIOS_CHAP_USER="benchuser",
                                VIOS_CHAP_PASSWORD="benchsecret12"))
    assert p.returncode == 0, p.stderr
