"""A one-shot mDNS query (RFC 6762 §5.1, §6.7), run by the boot test inside the guest, in
a network namespace joined to the box by a veth pair: asks for NAME's A or AAAA records
(or a service type's PTR records) on IFACE and prints each answer's data, one per line.
Exits 1 when nothing answered within the time given.

    python3 mdns_query.py NAME A|AAAA|PTR IFACE [SECONDS]

The query is sent from an ephemeral port, so the responder answers by unicast to it
(a "legacy unicast" answer, RFC 6762 §6.7), with the query's ID.
"""
import ipaddress
import random
import socket
import struct
import sys
import time

TYPES = {"A": 1, "PTR": 12, "AAAA": 28}


def encode(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"


def read_name(msg, at):
    """The name at offset `at` (following compression pointers) and the offset after it."""
    labels, end, hops = [], None, 0
    while True:
        n = msg[at]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = at + 2
            at = ((n & 0x3F) << 8) | msg[at + 1]
            hops += 1
            if hops > 32:
                raise ValueError("a compression loop")
            continue
        if n == 0:
            return ".".join(labels), (end if end is not None else at + 1)
        labels.append(msg[at + 1:at + 1 + n].decode("utf-8", "replace"))
        at += 1 + n


def answers(msg, qid, qtype):
    ident, _flags, qd, an = struct.unpack(">HHHH", msg[:8])
    if ident != qid:
        return []
    at = 12
    for _ in range(qd):
        _, at = read_name(msg, at)
        at += 4
    out = []
    for _ in range(an):
        _, at = read_name(msg, at)
        rtype, _cls, _ttl, size = struct.unpack(">HHIH", msg[at:at + 10])
        at += 10
        data = msg[at:at + size]
        if rtype == qtype == 1:
            out.append(str(ipaddress.IPv4Address(data)))
        elif rtype == qtype == 28:
            out.append(str(ipaddress.IPv6Address(data)))
        elif rtype == qtype == 12:
            out.append(read_name(msg, at)[0])
        at += size
    return out


def main():
    name, kind, iface = sys.argv[1], sys.argv[2], sys.argv[3]
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    qtype = TYPES[kind]
    index = socket.if_nametoindex(iface)
    if kind == "AAAA":
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        dest = ("ff02::fb", 5353, 0, index)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        dest = ("224.0.0.251", 5353)
    qid = random.randrange(1, 0xFFFF)
    query = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + encode(name) + struct.pack(">HH", qtype, 1)
    deadline = time.monotonic() + seconds
    found = []
    while time.monotonic() < deadline and not found:
        s.sendto(query, dest)
        s.settimeout(1.0)
        try:
            while not found:
                msg, _ = s.recvfrom(9000)
                found = answers(msg, qid, qtype)
        except socket.timeout:
            pass
    for a in found:
        print(a)
    sys.exit(0 if found else 1)


if __name__ == "__main__":
    main()
