#!/usr/bin/env python3
"""Where an event's time goes: the hops of scenario 3, from a loopback packet capture.

Every hop carries the generator's send time (`"s":<unix µs>` in the event's data: the producer's
request, the task message, the ledger record, the delivery), so each captured packet can be
matched to its request. docs/benchmarks.md ("Reproduce") says how to capture; then

    scripts/bench-hops.py CAPTURE.pcap DISPATCHER_BROKER_PORT [PUBLISHER_PORT] [BROKER_PORT]

DISPATCHER_BROKER_PORT is the local port of the dispatcher's consuming connection to RabbitMQ
(`ss -tnp | grep hookwire-dispat`: the one the task messages arrive on). Prints, per phase
(each phase posts for a tenant of its own; named by its events per second and per request, in the
order the phases ran), p10/p50/p90/p99 of each hop in milliseconds. Standard library only; reads classic pcap files (tcpdump -w).
"""

import collections
import re
import struct
import sys

SENT = re.compile(rb'\\?"s\\?":(\d{16})')
TENANT = re.compile(rb'"tenant_id":"([0-9a-f-]{36})"')
POSTGRES = 5432


def packets(path):
    """(time in µs, source port, destination port, payload) of every TCP packet in a pcap."""
    with open(path, "rb") as f:
        header = f.read(24)
        magic, = struct.unpack("<I", header[:4])
        scale = 1e-3 if magic == 0xA1B23C4D else 1.0  # nanosecond or microsecond timestamps
        link, = struct.unpack("<I", header[20:24])
        skip = 14 if link == 1 else 16  # Ethernet (lo) or Linux cooked capture
        while record := f.read(16):
            seconds, fraction, length, _ = struct.unpack("<IIII", record)
            frame = f.read(length)
            ip = frame[skip:]
            tcp = ip[(ip[0] & 15) * 4:]
            source, destination = struct.unpack(">HH", tcp[:4])
            yield seconds * 1e6 + fraction * scale, source, destination, tcp[(tcp[12] >> 4) * 4:]


def quantile(values, q):
    values = sorted(values)
    return values[int(q * (len(values) - 1))]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, dispatcher = sys.argv[1], int(sys.argv[2])
    publisher = int(sys.argv[3]) if len(sys.argv) > 3 else 8081
    broker = int(sys.argv[4]) if len(sys.argv) > 4 else 5672
    seen = collections.defaultdict(list)
    # Each phase posts for a tenant of its own: the phases, in the order they began, and the
    # events per request of each (every event of a request carries the same send time).
    phases = collections.defaultdict(list)
    batch = {}
    for at, source, destination, payload in packets(path):
        matches = SENT.findall(payload)
        sents = {int(m) for m in matches}
        for sent in sents:
            seen[sent].append((at, source, destination))
        if destination == publisher and sents:
            tenant = TENANT.search(payload)
            if tenant:
                phases[tenant.group(1)].extend(sents)
                batch[tenant.group(1)] = len(matches)

    def first(hops, wanted):
        return next((at for at, s, d in hops if wanted(s, d)), None)

    for tenant, phase in sorted(((t, sorted(set(p))) for t, p in phases.items()), key=lambda tp: tp[1][0]):
        seconds = max(phase[-1] - phase[0], 1) / 1e6
        name = f"{len(phase) * batch[tenant] / seconds:,.0f} events/s, {batch[tenant]} per request"
        rows = []
        for sent in phase:
            hops = sorted(seen[sent])
            arrived = first(hops, lambda s, d: d == publisher)
            published = first(hops, lambda s, d: d == broker)
            consumed = first(hops, lambda s, d: s == broker and d == dispatcher)
            requests = [at for at, s, d in hops if s != broker and d not in (publisher, broker, POSTGRES)]
            if None in (arrived, published, consumed) or not requests:
                continue
            rows.append((arrived - sent, published - arrived, consumed - published,
                         min(requests) - consumed, max(requests) - min(requests), max(requests) - sent))
        print(f"{name}: {len(rows)} of {len(phase)} requests matched")
        labels = ("send → at the publisher", "publisher: in → task out", "RabbitMQ: task in → out",
                  "dispatcher: in → first request", "first → last request", "send → last request")
        for i, label in enumerate(labels):
            column = [row[i] / 1000 for row in rows]
            if column:
                print(f"  {label:32s}" + "".join(f" p{int(q * 100)} {quantile(column, q):6.3f}" for q in (.1, .5, .9, .99)))


if __name__ == "__main__":
    main()
