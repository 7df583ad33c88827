"""A small sequential model of SPC-4 persistent reservations (SPC-4 §5.13) for the cluster suite,
written from the standard, independent of node-agent/reservation: registrations per initiator,
one reservation (type + holder; every registrant holds an all-registrants one) and PRgeneration.

    m = PrModel()
    m.step("i1", "register", 0, 0xa1, 0)  -> "GOOD"
    m.snapshot() == snapshot_of(status.reservation, initiator_of)

`linearize` checks a round of concurrent PR OUT commands: some order of them, applied one at a
time to the model, must give every command the status the initiator saw, end in the state the
store holds, and pass through exactly the states the store recorded (its watch), in that order.
"""

import itertools

ALL_REGISTRANTS = (7, 8)
TYPE_NAMES = {1: "WriteExclusive", 3: "ExclusiveAccess", 5: "WriteExclusiveRegistrantsOnly",
              6: "ExclusiveAccessRegistrantsOnly", 7: "WriteExclusiveAllRegistrants",
              8: "ExclusiveAccessAllRegistrants"}
TYPE_CODES = {v: k for k, v in TYPE_NAMES.items()}

GOOD, CONFLICT, CHECK = "GOOD", "RESERVATION_CONFLICT", "CHECK_CONDITION"


class PrModel:
    def __init__(self):
        self.keys = {}       # initiator -> key (registered only)
        self.type = 0        # 0: no persistent reservation
        self.holder = None   # initiator; None for none or an all-registrants type
        self.generation = 0

    def copy(self):
        m = PrModel()
        m.keys, m.type, m.holder, m.generation = dict(self.keys), self.type, self.holder, \
            self.generation
        return m

    def snapshot(self):
        return (frozenset(self.keys.items()), self.type, self.holder, self.generation)

    def holds(self, who):
        if not self.type:
            return False
        return who in self.keys if self.type in ALL_REGISTRANTS else self.holder == who

    def _unregister(self, who):
        # SPC-4 §5.13.11.3: a holder that unregisters releases its reservation; an
        # all-registrants reservation ends with the last registration.
        del self.keys[who]
        if self.type in ALL_REGISTRANTS:
            if not self.keys:
                self.type = 0
        elif self.holder == who:
            self.type, self.holder = 0, None

    def _take(self, who, rtype):
        self.type = rtype
        self.holder = None if rtype in ALL_REGISTRANTS else who

    def step(self, who, action, key, sa_key, rtype):
        """Applies one PR OUT from initiator `who`; returns the status SPC-4 requires."""
        mine = self.keys.get(who, 0)
        if action in ("register", "register-ignore"):  # §5.13.7, tables 45 and 46
            ignore = action == "register-ignore"
            if not mine:
                if not ignore and key:
                    return CONFLICT
                if sa_key:
                    self.keys[who] = sa_key
                    self.generation += 1
                return GOOD
            if not ignore and key != mine:
                return CONFLICT
            if sa_key:
                self.keys[who] = sa_key
            else:
                self._unregister(who)
            self.generation += 1
            return GOOD
        if not mine or key != mine:  # every other service action needs the nexus's own key
            return CONFLICT
        if action == "reserve":  # §5.13.9
            if self.type:
                return GOOD if self.holds(who) and self.type == rtype else CONFLICT
            self._take(who, rtype)
            return GOOD
        if action == "release":  # §5.13.10.2
            if not self.type or not self.holds(who):
                return GOOD
            if rtype != self.type:
                return CHECK  # INVALID RELEASE OF PERSISTENT RESERVATION
            self.type, self.holder = 0, None
            return GOOD
        if action == "clear":  # §5.13.10.3
            self.keys, self.type, self.holder = {}, 0, None
            self.generation += 1
            return GOOD
        if action in ("preempt", "preempt-abort"):  # §5.13.11.4
            if self.type in ALL_REGISTRANTS and sa_key == 0:
                self.keys = {who: mine}
                self._take(who, rtype)
                self.generation += 1
                return GOOD
            if sa_key == 0:
                return CHECK  # INVALID FIELD IN PARAMETER LIST
            victims = [w for w, k in self.keys.items() if k == sa_key]
            if not victims:
                return CONFLICT
            takes = (self.type and self.type not in ALL_REGISTRANTS and
                     self.keys.get(self.holder) == sa_key)
            for w in victims:
                if w != who:
                    del self.keys[w]
            if takes:
                self._take(who, rtype)
            self.generation += 1
            return GOOD
        raise ValueError(action)


def snapshot_of(reservation, initiator_of):
    """status.reservation as a model snapshot; initiator_of maps a port string to an initiator."""
    keys = frozenset((initiator_of(r["port"]), int(r["key"], 16))
                     for r in reservation.get("registrations", []))
    rtype = TYPE_CODES.get(reservation.get("type"), 0)
    holder = reservation.get("holder") or None
    if rtype in ALL_REGISTRANTS or not rtype:
        holder = None
    elif holder is not None:
        holder = initiator_of(holder)
    return (keys, rtype, holder, int(reservation.get("generation", 0)))


def initiator_of_port(port):
    """'<name>,i,0x<ISID>|<target port>|<rtpi>' -> '<name>'."""
    return port.split("|", 1)[0].split(",i,", 1)[0]


def dedup(states):
    out = []
    for s in states:
        if not out or out[-1] != s:
            out.append(s)
    return out


def linearize(model, commands, observed, final, recorded):
    """commands: [(who, action, key, sa_key, type)], observed: [status], final: the store's
    snapshot, recorded: the store's snapshots since the round began (starting state excluded).
    Returns (order, model after it) or None if no order explains what was seen."""
    for order in itertools.permutations(range(len(commands))):
        m = model.copy()
        states = [m.snapshot()]
        for i in order:
            if m.step(*commands[i]) != observed[i]:
                break
            states.append(m.snapshot())
        else:
            if m.snapshot() == final and dedup(states)[1:] == dedup([states[0]] + recorded)[1:]:
                return order, m
    return None
