"""An iSCSI relay that sends each initiator to its own agent, so that a tool taking ONE target URL
(iscsi-test-cu) reaches the same volume through virtual ports on different agents.

    python3 pr_relay.py 127.0.0.1:3260 iqn.i1=127.77.1.10:3260 iqn.i2=127.77.1.11:3260

For every accepted connection it reads the first PDU (a Login Request, RFC 7143 §11.12), finds
InitiatorName= in its text data segment, connects to that initiator's portal, forwards the PDU
and then relays bytes both ways until either side closes. Run it inside the namespace that
reaches the agents; it prints "listening" once it accepts connections.
"""

import os
import socket
import sys
import threading

# Run as a script inside a namespace: lib/ is found from the e2e folder above this file.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from lib.cluster import pump  # noqa: E402

BHS = 48
LOGIN_REQUEST = 0x03


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def first_pdu(sock):
    """The first PDU's bytes and its initiator name (None if it is not a Login Request)."""
    bhs = read_exact(sock, BHS)
    ahs_len = bhs[4] * 4
    data_len = int.from_bytes(bhs[5:8], "big")
    rest = read_exact(sock, ahs_len + ((data_len + 3) & ~3))
    if bhs[0] & 0x3F != LOGIN_REQUEST:
        return bhs + rest, None
    text = rest[ahs_len:ahs_len + data_len]
    for pair in text.split(b"\0"):
        if pair.startswith(b"InitiatorName="):
            return bhs + rest, pair[len(b"InitiatorName="):].decode(errors="replace")
    return bhs + rest, None


def serve(client, routes):
    try:
        pdu, initiator = first_pdu(client)
        portal = routes.get(initiator)
        if portal is None:
            print("no route for initiator %r" % initiator, flush=True)
            client.close()
            return
        upstream = socket.create_connection(portal, timeout=10)
        upstream.settimeout(None)
        upstream.sendall(pdu)
    except (OSError, ConnectionError) as e:
        print("relay: %s" % e, flush=True)
        client.close()
        return
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=pump, args=(a, b), daemon=True).start()


def parse_portal(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv):
    listen = parse_portal(argv[1])
    routes = {}
    for arg in argv[2:]:
        initiator, _, portal = arg.rpartition("=")
        routes[initiator] = parse_portal(portal)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(listen)
    listener.listen(64)
    print("listening", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, routes), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv)
