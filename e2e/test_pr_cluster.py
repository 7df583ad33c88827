"""SCSI reservations across agents (issue #8 acceptance, DESIGN.md §7).

Three vios-agents in their own network namespaces (lib.cluster), one vios-operator and the real
API server; one VIOSVolume in a file pool, served by a virtual port with the same target name on
every agent (lib.pr_cluster). Initiators are vios-prtool sessions (one I_T nexus each) in the
namespace of the agent they log in to. The tests run in file order on one cluster and each
leaves the reservation cleared for the next.
"""

import os
import random
import subprocess
import threading
import time

import pytest

from lib import cunit, netns
from lib.cluster import cut_api, get_json, restore_api, wait_until
from lib.pr_cluster import PrCluster
from lib.pr_model import (CHECK, CONFLICT, GOOD, PrModel, initiator_of_port, linearize,
                          snapshot_of)

pytestmark = pytest.mark.skipif(not netns.available(), reason="needs root for netns")

NAMES = ("agent-a", "agent-b", "agent-c")
I = {n: "iqn.2026-11.dev.vios:pr-%s" % n for n in ("a1", "a2", "b1", "b2", "c1", "c2", "reader")}
LEASE = 10  # reservation.ClusterOptions.lease default (seconds)
REGISTRATIONS_PREEMPTED = {"asc": 0x2a, "ascq": 0x05}


@pytest.fixture(scope="module")
def pr(control_plane, tmp_path_factory):
    c = PrCluster(control_plane, str(tmp_path_factory.mktemp("pr-cluster")), NAMES,
                  list(I.values()))
    try:
        c.start()
        c.s = {}
        for who, agent in (("a1", "agent-a"), ("a2", "agent-a"), ("b1", "agent-b"),
                           ("b2", "agent-b"), ("c1", "agent-c"), ("c2", "agent-c")):
            c.s[who] = c.session(agent, I[who])
        c.readers = {name: c.session(name, I["reader"]) for name in NAMES}
        yield c
    finally:
        c.close()


def ok(answer, status=GOOD):
    assert answer["status"] == status, answer
    return answer


def store_snapshot(pr):
    return snapshot_of(pr.reservation(), initiator_of_port)


def agent_snapshot(answer):
    """READ FULL STATUS as a model snapshot (initiator names without the ISID)."""
    keys, rtype, holder = set(), 0, None
    for r in answer["registrations"]:
        who = r["initiator"].split(",i,", 1)[0]
        keys.add((who, int(r["key"], 16)))
        if r["holder"]:
            rtype = r["type"]
            holder = who if rtype not in (7, 8) else None
    return (frozenset(keys), rtype, holder, answer["generation"])


def assert_agents_agree(pr):
    """Every agent's PR IN READ FULL STATUS equals VIOSVolume.status.reservation."""
    want = store_snapshot(pr)
    for name, reader in pr.readers.items():
        got = agent_snapshot(ok(reader("read-full-status")))
        assert got == want, "%s: READ FULL STATUS %r, VIOSVolume %r" % (name, got, want)
    return want


def clear_all(pr):
    s = pr.s["b1"]
    ok(s("register-ignore ff"))
    ok(s("clear ff"))
    assert not pr.reservation().get("registrations"), pr.reservation()


def test_register_on_a_reserve_on_b_conflicts_an_unregistered_writer_on_a(pr):
    a1, a2, b1 = pr.s["a1"], pr.s["a2"], pr.s["b1"]
    ok(a1("register 0 a1"))
    ok(b1("register 0 b1"))
    ok(b1("reserve b1 we-ro"))
    res = pr.reservation()
    assert res["type"] == "WriteExclusiveRegistrantsOnly", res
    assert initiator_of_port(res["holder"]) == I["b1"], res
    assert {initiator_of_port(r["port"]) for r in res["registrations"]} == {I["a1"], I["b1"]}
    # Write Exclusive - Registrants Only: the unregistered initiator on A may read, not write;
    # the initiator registered through A writes.
    ok(a2("write 1"), CONFLICT)
    ok(a2("read 1"))
    ok(a1("write 1 17"))
    assert ok(a2("read 1"))["byte"] == 17
    assert_agents_agree(pr)
    # Exclusive Access held through B: even A's registrant is shut out, reads included.
    ok(b1("release b1 we-ro"))
    ok(b1("reserve b1 ea"))
    ok(a1("write 1"), CONFLICT)
    ok(a1("read 1"), CONFLICT)
    ok(pr.s["c1"]("write 1"), CONFLICT)
    ok(b1("write 1 18"))
    assert_agents_agree(pr)
    clear_all(pr)
    ok(a1("write 1"))


def test_preempt_through_b_fences_a_before_it_completes(pr):
    a1, b1 = pr.s["a1"], pr.s["b1"]
    ok(a1("register 0 a1"))
    ok(b1("register 0 b1"))
    ok(b1("reserve b1 we-ro"))
    writes, stop = [], threading.Event()

    def writer():  # A's registrant writes back to back while B preempts it
        while not stop.is_set():
            started = time.monotonic()
            answer = a1("write 3")
            writes.append((started, time.monotonic(), answer))

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(1.0)
    sent = time.monotonic()
    preempt = b1("preempt b1 a1 we-ro")
    done = time.monotonic()
    time.sleep(1.0)
    stop.set()
    t.join()
    ok(preempt)
    before = [w for w in writes if w[1] < sent]
    after = [w for w in writes if w[0] > done]
    assert before and all(w[2]["status"] == GOOD for w in before), before[-3:]
    assert after, "no write was issued after the PREEMPT completed"
    bad = [w[2] for w in after if w[2]["status"] != CONFLICT]
    assert not bad, "writes started after the PREEMPT completed: %r" % bad[:3]
    uas = [ua for w in writes for ua in w[2].get("unit_attentions", [])]
    assert REGISTRATIONS_PREEMPTED in uas, uas
    print("PREEMPT through B: %.1f ms; %d writes before, %d after (all conflicts)"
          % ((done - sent) * 1000, len(before), len(after)))
    assert {initiator_of_port(r["port"]) for r in pr.reservation()["registrations"]} == {I["b1"]}
    assert_agents_agree(pr)
    clear_all(pr)
    # Events on the VIOSVolume, each posted once by the agent that executed the command.
    def volume_events():
        items = get_json(pr.cp, "-n", pr.ns, "events.events.k8s.io")["items"]
        return [e for e in items if e.get("regarding", {}).get("kind") == "VIOSVolume"]

    def preempted():
        found = [e for e in volume_events() if e.get("reason") == "ReservationPreempted"]
        return found if found and any(e.get("reason") == "RegistrationsCleared"
                                      for e in volume_events()) else None

    found = wait_until(preempted, 20, "ReservationPreempted and RegistrationsCleared Events")
    assert len(found) == 1 and found[0]["type"] == "Warning", found
    assert I["a1"] in found[0]["note"] and I["b1"] in found[0]["note"], found[0]["note"]
    assert found[0]["reportingController"] == "vios.dev/agent", found[0]


def test_preempt_and_abort_through_c_fences_b(pr):
    b2, c1 = pr.s["b2"], pr.s["c1"]
    ok(b2("register 0 b2"))
    ok(b2("reserve b2 ea"))
    ok(c1("register 0 c1"))
    ok(c1("write 6"), CONFLICT)
    ok(c1("preempt-abort c1 b2 we-ro"))
    fenced = ok(b2("write 6"), CONFLICT)
    assert REGISTRATIONS_PREEMPTED in fenced.get("unit_attentions", []), fenced
    ok(c1("write 6"))
    ok(pr.s["a1"]("write 6"), CONFLICT)  # not registered: Write Exclusive - Registrants Only
    res = pr.reservation()
    assert res["type"] == "WriteExclusiveRegistrantsOnly", res
    assert initiator_of_port(res["holder"]) == I["c1"], res
    assert_agents_agree(pr)
    clear_all(pr)


def test_preempt_fences_a_cut_from_the_api_server(pr):
    a1, a2, b1 = pr.s["a1"], pr.s["a2"], pr.s["b1"]
    ok(a1("register 0 a3"))
    ok(a2("register 0 a4"))
    ok(b1("register 0 b1"))
    ok(b1("reserve b1 we-ro"))
    host = pr.hosts["agent-a"]
    cut_api(host, pr.bridge.port)
    cut = time.monotonic()
    try:
        early = a2("write 4")
        early_at = time.monotonic() - cut
        # B's PREEMPT reaches A over the peer channel only: A's watch and refresher are cut.
        ok(b1("preempt b1 a3 we-ro"))
        preempted_at = time.monotonic() - cut
        fenced = ok(a1("write 4"), CONFLICT)
        assert REGISTRATIONS_PREEMPTED in fenced.get("unit_attentions", []), fenced
        if preempted_at < LEASE - 2:
            # Still within A's lease: A serves its other registrant (not a blanket fence).
            assert early["status"] == GOOD or early_at > LEASE - 2, early
        print("A cut: PREEMPT through B done %.1f s after the cut; A's preempted initiator "
              "fenced" % preempted_at)
        # PR commands on A need the store: a retryable ABORTED COMMAND, never stale data.
        answer = a2("read-keys", timeout=120)
        assert answer["status"] == CHECK and answer["sense_key"] == 0x0b or \
            answer["status"] == GOOD, answer
        # Past the lease A's copy is confirmed by nothing but its peers (QueryReservation on
        # the peer channel, answered by B and C from their confirmed copies): the preempted
        # initiator stays fenced, the other registrant is served — an API server outage alone
        # does not stop I/O — and keeps being served lease after lease.
        for deadline in (LEASE + 3, 2 * LEASE + 1):
            time.sleep(max(0.0, deadline - (time.monotonic() - cut)))
            ok(a1("write 4"), CONFLICT)
            ok(a2("write 4"))
        print("A cut for %.0f s: its registrant still served (copy confirmed by its peers)"
              % (time.monotonic() - cut))
    finally:
        restore_api(host)
    wait_until(lambda: a2("write 4")["status"] == GOOD, 60, "A serving its registrant again")
    ok(a1("write 4"), CONFLICT)  # still preempted
    assert_agents_agree(pr)
    clear_all(pr)


ACTIONS = ("register", "register", "register-ignore", "reserve", "reserve", "release", "clear",
           "preempt", "preempt")
TYPES = (1, 3, 5, 6, 7, 8)
KEYS = (0, 0xa, 0xb, 0xc)


def test_three_agents_concurrent_prouts_match_a_sequential_model(pr):
    clear_all(pr)
    who = ["a1", "a2", "b1", "b2", "c1", "c2"]
    model = PrModel()
    model.generation = store_snapshot(pr)[3]
    seed = int(time.time())
    rng = random.Random(seed)
    print("seed %d" % seed)
    outcomes = {}
    for round_no in range(10):
        commands = []
        for w in who:
            own = model.keys.get(I[w], 0)
            key = own if rng.random() < 0.75 else rng.choice(KEYS)
            commands.append((I[w], rng.choice(ACTIONS), key, rng.choice(KEYS), rng.choice(TYPES)))
        watch = pr.watch()
        answers = [None] * len(who)
        barrier = threading.Barrier(len(who))

        def run(i):
            _, action, key, sa, rtype = commands[i]
            if action == "register":
                line = "register %x %x" % (key, sa)
            elif action == "register-ignore":
                line = "register-ignore %x" % sa
            elif action == "clear":
                line = "clear %x" % key
            elif action == "preempt":
                line = "preempt %x %x %d" % (key, sa, rtype)
            else:
                line = "%s %x %d" % (action, key, rtype)
            barrier.wait()
            answers[i] = pr.s[who[i]](line)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(who))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # ABORTED COMMAND (the store raced too often or was unreachable) changed nothing.
        kept = [i for i, a in enumerate(answers)
                if not (a["status"] == CHECK and a.get("sense_key") == 0x0b)]
        for a in answers:
            assert a["status"] in (GOOD, CONFLICT, CHECK), a
            outcomes[a["status"]] = outcomes.get(a["status"], 0) + 1
        final_res = pr.reservation()
        recorded = [snapshot_of(r, initiator_of_port) for r in watch.reservations(final_res)]
        watch.close()
        final = snapshot_of(final_res, initiator_of_port)
        found = linearize(model, [commands[i] for i in kept], [answers[i]["status"] for i in kept],
                          final, recorded)
        assert found, ("round %d (seed %d): no sequential order explains it\ncommands %r\n"
                       "answers %r\nstore %r\nrecorded %r" % (round_no, seed, commands, answers,
                                                               final, recorded))
        model = found[1]
        assert assert_agents_agree(pr) == model.snapshot()
    print("10 rounds x 6 concurrent PR OUTs: %r" % outcomes)
    assert outcomes.get(GOOD, 0) >= 10, outcomes
    clear_all(pr)


def test_spc2_reserve_through_a_conflicts_writes_through_b(pr):
    a1, b1 = pr.s["a1"], pr.s["b1"]
    clear_all(pr)
    ok(a1("reserve6"))
    res = pr.reservation()
    assert initiator_of_port(res.get("spc2Holder", "")) == I["a1"], res
    ok(b1("write 5"), CONFLICT)
    ok(b1("read 5"), CONFLICT)
    ok(pr.s["c1"]("write 5"), CONFLICT)
    ok(b1("reserve6"), CONFLICT)
    ok(a1("write 5 9"))
    ok(a1("release6"))
    assert "spc2Holder" not in pr.reservation(), pr.reservation()
    ok(b1("write 5"))
    ok(b1("reserve6"))
    ok(a1("write 5"), CONFLICT)
    ok(b1("release6"))
    ok(a1("write 5"))


# iscsi-test-cu's reservation suites with its two initiators on two different agents.
CU_PORT = "pr-cu"
CU_INITIATOR_1 = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test"
CU_INITIATOR_2 = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2"
CU_SUITES = ["PrinReadKeys", "PrinServiceactionRange", "PrinReportCapabilities", "ProutRegister",
             "ProutReserve", "ProutClear", "ProutPreempt", "Reserve6"]


@pytest.fixture(scope="module")
def relay(pr):
    """A client host running pr_relay: initiator 1 goes to agent-a, initiator 2 to agent-b,
    each to a port with the same target name ACL'd to that initiator only."""
    pr.create_port("agent-a", CU_PORT, [CU_INITIATOR_1])
    pr.create_port("agent-b", CU_PORT, [CU_INITIATOR_2])
    client = pr.fabric.host("client", "127.77.1.30")
    proc = client.popen(["python3", os.path.join(os.path.dirname(__file__), "lib", "pr_relay.py"),
                         "127.0.0.1:3260",
                         "%s=%s:3260" % (CU_INITIATOR_1, pr.agents["agent-a"].address),
                         "%s=%s:3260" % (CU_INITIATOR_2, pr.agents["agent-b"].address)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().strip() == "listening"
    yield client
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("suite", CU_SUITES)
def test_iscsi_test_cu_with_initiators_on_two_agents(pr, relay, suite, tmp_path):
    clear_all(pr)
    cmd = ["iscsi-test-cu", "-d", "-i", CU_INITIATOR_1, "-I", CU_INITIATOR_2,
           "-t", "SCSI.%s" % suite, "iscsi://127.0.0.1:3260/%s/0" % pr.targets[CU_PORT]]
    out = relay.run(cmd, cwd=tmp_path, timeout=900)
    text = out.stdout
    r = cunit.parse(text)
    assert r, "no CUnit summary from %s:\n%s" % (" ".join(cmd), text[-4000:])
    total, ran, passed, failed, skipped = r.total, r.ran, r.passed, r.failed, r.skipped
    assert ran == total and failed == 0, "SCSI.%s across agents: %d of %d failed\n%s" % (
        suite, failed, total, text[-6000:])
    assert not skipped, "SCSI.%s skipped tests (counted as passed): %s" % (suite, sorted(skipped))
    print("SCSI.%s across two agents: %d tests, %d passed" % (suite, total, passed))
    for agent in pr.agents.values():
        assert agent.proc.poll() is None, "%s died during SCSI.%s" % (agent.name, suite)
