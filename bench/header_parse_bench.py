"""What nats-py's header parsing costs a subscriber, and a candidate parser that gives the same headers faster.

    python bench/header_parse_bench.py [--messages 20000] [--rounds 5] [--fuzz 3000]

The figures and the proposal are in docs/upstream-nats-py-headers.md. Against a
nats-server this script starts, a raw TCP client (the NATS protocol written by
hand, so any header block can be sent) publishes to a nats-py subscription:

1. Equality: hand-written header blocks (multi-value names, inline status lines
   such as ``NATS/1.0 503``, status with a description, heartbeats with headers,
   whitespace, ``Name:Value`` without a space, non-ASCII names and values,
   lines without a colon) and ``--fuzz`` random ones; each block's
   ``msg.headers`` as nats-py hands it to the callback must equal what the
   candidate (and its uncached variant) parses from the same bytes. The script exits with status 1 if one differs.
2. nats-py's cost, through its public API: ``--messages`` messages with 4
   headers (an event as the store publishes it), with 10 headers (a direct-get
   reply), and with none, each delivered to a subscription callback; rounds
   alternate the three, medians of ``--rounds``. The difference to the
   header-less message is what a subscriber pays for the headers. A cProfile
   of the 4-header run gives the share of nats-py's header functions.
3. The candidate parser on the same blocks, called in a loop; and a variant
   without its cache of checked names.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import random
import re
import statistics
import sys
import time
import timeit
from importlib.metadata import version
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
from nats.aio.msg import Msg
from nats.js.api import Header

from django_eventstore.testing import NatsServer

CRLF = b"\r\n"
_UNCHECKED = object()
_NAMES_MAX = 4096


# ----- the candidate -----

_names: dict[bytes, str | None] = {}


def _header_name(name: bytes) -> str | None:
    """A header name as nats-py 2.16 accepts it: stripped, ASCII, no whitespace inside; None when it is dropped."""
    try:
        key = name.strip().decode("ascii")
    except UnicodeDecodeError:
        return None
    return None if any(c.isspace() for c in key) else key


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """`Name: Value` lines to a dict, last value of a name winning; each distinct raw name is checked once, then looked up."""
    out: dict[str, str] = {}
    names = _names
    for line in raw.split(CRLF):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = names.get(name, _UNCHECKED)
        if key is _UNCHECKED:
            key = _header_name(name)
            if len(names) < _NAMES_MAX:  # bounded: a peer sending endless new names only loses the cache
                names[name] = key
        if key is not None:
            out[key] = value.strip().decode("utf-8", "replace")  # type: ignore[index]
    return out


_NAME_REJECTED = re.compile(rb"[\t\n\x0b-\r\x1c- \x80-\xff]").search  # what str.isspace() or the ASCII decode refuses in a stripped name


def parse_header_lines_uncached(raw: bytes) -> dict[str, str]:
    """The same result without the name cache: one regex search per name instead (the simpler, slower variant)."""
    out: dict[str, str] = {}
    for line in raw.split(CRLF):
        name, sep, value = line.partition(b":")
        if sep:
            key = name.strip()
            if _NAME_REJECTED(key) is None:
                out[key.decode("ascii")] = value.strip().decode("utf-8", "replace")
    return out


def parse_headers(block: bytes, parse_lines: Callable[[bytes], dict[str, str]] = parse_header_lines) -> dict[str, str] | None:
    """The headers nats-py 2.16 gives a message whose raw header block is `block` (``NATS/1.0...\\r\\n\\r\\n``).

    The inline-status handling keeps nats-py's behaviour byte for byte; only the
    line parser differs.
    """
    if not block:
        return None
    hdr: dict[str, str] | None = None
    rest = block[8:]
    if rest[0] == 32:  # "NATS/1.0 503", "NATS/1.0 100 Idle Heartbeat\r\n...": an inline status
        line = block[9:]
        status = line[:3].strip().decode()
        description = line[4 : len(line) - 4]
        hdr = {Header.STATUS.value: status} if status.isdigit() else {}
        rest = rest[rest.find(CRLF) + 2 :]
        if description:
            i = description.find(CRLF)
            if i > 0:
                hdr[Header.DESCRIPTION] = description[:i].decode()
                hdr.update(parse_lines(description[i + 2 :]))
            else:
                hdr[Header.DESCRIPTION] = description.decode()
    if len(rest) <= 2:
        return hdr
    parsed = parse_lines(block[10:])
    if hdr:
        hdr.update(parsed)
    else:
        hdr = parsed
    return hdr or None


# ----- header blocks -----

EVENT = b"NATS/1.0\r\nNats-Msg-Id: 3f2b8c1e-6d0a-4a51-9b7e-1c2d3e4f5a6b\r\nEs-Version: 42\r\nEs-Event-Type: OrderPlaced\r\nEs-Schema: 1\r\n\r\n"
DIRECT_GET = (
    b"NATS/1.0\r\nNats-Stream: EVENTSTORE\r\nNats-Subject: es.events.order.order-42\r\nNats-Sequence: 123456\r\n"
    b"Nats-Time-Stamp: 2026-12-02T10:11:12.123456789Z\r\nNats-Num-Pending: 9876\r\nNats-Last-Sequence: 123455\r\n"
    b"Nats-Msg-Id: 3f2b8c1e-6d0a-4a51-9b7e-1c2d3e4f5a6b\r\nEs-Version: 42\r\nEs-Event-Type: OrderPlaced\r\nEs-Schema: 1\r\n\r\n"
)
CASES = [
    EVENT,
    DIRECT_GET,
    b"NATS/1.0\r\nFoo: bar\r\n\r\n",
    b"NATS/1.0\r\nFoo: a\r\nFoo: b\r\nfoo: c\r\n\r\n",  # multi-value: the last wins; names are case-sensitive
    b"NATS/1.0 503\r\n\r\n",
    b"NATS/1.0 404 No Messages\r\n\r\n",
    b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 1\r\nNats-Pending-Bytes: 0\r\n\r\n",
    b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 1016\r\nNats-Last-Stream: 1024\r\n\r\n",
    b"NATS/1.0 100 FlowControl Request\r\n\r\n",
    b"NATS/1.0 409\r\nFoo: bar\r\n\r\n",  # a status and headers without a description
    b"NATS/1.0 20x\r\n\r\n",  # a status that is not a number
    b"NATS/1.0\r\nName:Value\r\nTabbed:\tvalue\t\r\n  Padded  :  spaced value  \r\n\r\n",
    b"NATS/1.0\r\nEmpty:\r\nSpaces:    \r\nColons: a:b:c\r\n:no name\r\n\r\n",
    b"NATS/1.0\r\nno colon here\r\nGood: yes\r\n\r\n",
    b"NATS/1.0\r\nBad Name: dropped\r\nBad\tName: dropped\r\nBad\x1cName: dropped\r\n\r\n",
    b"NATS/1.0\r\nCurrency: \xc2\xa3 and \xe2\x82\xac\r\nBroken: \xff\xfe\r\nN\xc3\xa4me: non-ASCII name\r\n\r\n",
    b"NATS/1.0\r\nLone: a\rb\nc\r\nNbsp: \xc2\xa0x\xc2\xa0\r\n\r\n",
    b"NATS/1.0\r\nUpper: X\r\nupper: y\r\nX-Long: " + b"v" * 2000 + b"\r\n\r\n",
]


def fuzz_blocks(n: int, seed: int = 13) -> list[bytes]:
    """Random header blocks built from the pieces that trip parsers: separators, whitespace of every kind, non-ASCII bytes."""
    rng = random.Random(seed)
    pieces = [b"Name", b"Es-Version", b"a", b"Z", b"-", b":", b": ", b" ", b"\t", b"\x0b", b"\x1c", b"\x1f", b"\r", b"\n", b"\xc2\xa3", b"\xe2\x80\x83", b"\xff", b"7", b"\x00"]
    starts = [b"NATS/1.0\r\n", b"NATS/1.0 503\r\n", b"NATS/1.0 404 No Messages\r\n", b"NATS/1.0 100 Idle Heartbeat\r\n", b"NATS/1.0 409 Leadership Change\r\n"]
    utf8 = [p for p in pieces if p != b"\xff"]
    blocks = []
    for _ in range(n):
        start = rng.choice(starts)
        lines = [b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) for _ in range(rng.randint(0, 6))]
        if lines and start != starts[0]:
            # after a status, nats-py decodes the next line strictly as the description: invalid UTF-8 there
            # raises inside its read loop, which then delivers nothing more (see the proposal's last section)
            lines[0] = b"".join(rng.choice(utf8) for _ in range(rng.randint(0, 8)))
        blocks.append(start + b"".join(line + CRLF for line in lines) + CRLF)
    return blocks


# ----- the wire -----


class Publisher:
    """A NATS client written on a bare socket: HPUB sends any header block as it is."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int) -> Publisher:
        reader, writer = await asyncio.open_connection(host, port)
        info = await reader.readline()
        if not info.startswith(b"INFO "):
            raise RuntimeError(f"expected the server's INFO, got {info[:80]!r}")
        writer.write(b"CONNECT " + json.dumps({"verbose": False, "pedantic": False, "headers": True, "protocol": 1}).encode() + b"\r\n")
        self = cls(reader, writer)
        await self.sync()
        return self

    async def sync(self) -> None:
        """PING and wait for its PONG: the server has read everything sent before."""
        self.writer.write(b"PING\r\n")
        while True:
            line = await self.reader.readline()
            if line == b"PONG\r\n":
                return
            if line == b"PING\r\n":
                self.writer.write(b"PONG\r\n")
            elif not line.startswith(b"INFO "):  # the server sends INFO again when the cluster or its limits change
                raise RuntimeError(f"the server answered {line[:200]!r}")

    @staticmethod
    def message(subject: str, headers: bytes | None, payload: bytes) -> bytes:
        if headers is None:
            return b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload)
        return b"HPUB %s %d %d\r\n%s%s\r\n" % (subject.encode(), len(headers), len(headers) + len(payload), headers, payload)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


class Collector:
    """A nats-py subscription callback that keeps each message's headers and wakes the waiter at the n-th message."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str] | None] = []
        self.count = self.expected = 0
        self.keep = False
        self.done = asyncio.Event()

    def expect(self, n: int, keep: bool) -> None:
        self.headers, self.count, self.expected, self.keep = [], 0, n, keep
        self.done.clear()

    async def on_message(self, msg: Msg) -> None:
        self.count += 1
        if self.keep:
            self.headers.append(msg.headers)
        if self.count == self.expected:
            self.done.set()


async def deliver(publisher: Publisher, collector: Collector, blob: bytes, n: int, keep: bool = False) -> float:
    """Send a blob of n messages and wait until the callback has had them all; seconds taken."""
    collector.expect(n, keep)
    t0 = time.perf_counter()
    publisher.writer.write(blob)
    await asyncio.wait_for(collector.done.wait(), 120)
    return time.perf_counter() - t0


async def check_equal(publisher: Publisher, collector: Collector, blocks: list[bytes]) -> list[str]:
    """Publish every block; the differences between nats-py's msg.headers and the candidate's parse."""
    blob = b"".join(Publisher.message("hdr.check", block, b"p") for block in blocks)
    await deliver(publisher, collector, blob, len(blocks), keep=True)
    return [
        f"{block!r}: nats-py {got!r}, candidate {parse_headers(block)!r}, uncached {parse_headers(block, parse_header_lines_uncached)!r}"
        for block, got in zip(blocks, collector.headers)
        if not got == parse_headers(block) == parse_headers(block, parse_header_lines_uncached)
    ]


async def run(args: argparse.Namespace, url: str) -> None:
    nc = await nats.connect(url)
    collector = Collector()
    await nc.subscribe("hdr.>", cb=collector.on_message, pending_msgs_limit=args.messages * 2, pending_bytes_limit=1 << 30)
    await nc.flush()
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    publisher = await Publisher.connect(host, int(port))
    try:
        cases = CASES + fuzz_blocks(args.fuzz)
        differences = await check_equal(publisher, collector, cases)
        print(f"equality: {len(cases) - len(differences)} of {len(cases)} header blocks parse alike ({len(CASES)} hand-written, {args.fuzz} random)")
        for line in differences[:10]:
            print("  DIFFERS", line)

        payload = b'{"id":"3f2b8c1e","eventType":"OrderPlaced","actorId":"order-42","version":42,"data":{"total":12}}'
        shapes = {"no headers": None, "4 headers (an event)": EVENT, "10 headers (a direct get)": DIRECT_GET}
        blobs = {name: Publisher.message("hdr.load", block, payload) * args.messages for name, block in shapes.items()}
        for blob in blobs.values():  # warm up
            await deliver(publisher, collector, blob, args.messages)
        times: dict[str, list[float]] = {name: [] for name in shapes}
        for r in range(args.rounds):
            names = list(shapes)[r % 3 :] + list(shapes)[: r % 3]
            for name in names:
                times[name].append(await deliver(publisher, collector, blobs[name], args.messages) / args.messages * 1e6)
        us = {name: statistics.median(values) for name, values in times.items()}

        profiler = cProfile.Profile()
        profiler.enable()
        await deliver(publisher, collector, blobs["4 headers (an event)"], args.messages)
        profiler.disable()
        share, parse_us = header_share(pstats.Stats(profiler), args.messages)
    finally:
        await publisher.close()
        await nc.close()

    candidate = {name: candidate_us(block, args.rounds) for name, block in shapes.items() if block is not None}
    uncached = {name: candidate_us(block, args.rounds, parse_header_lines_uncached) for name, block in shapes.items() if block is not None}
    print(f"\n{args.messages:,} messages per run into a nats-py {version('nats-py')} subscription callback, medians of {args.rounds} alternating rounds")
    print(f"{'message':<28} {'µs a message':>13} {'headers cost':>13} {'candidate parse':>16} {'projected':>10} {'speed-up':>9}")
    for name, value in us.items():
        if shapes[name] is None:
            print(f"{name:<28} {value:>13.1f}")
            continue
        cost = value - us["no headers"]
        projected = us["no headers"] + candidate[name]
        print(f"{name:<28} {value:>13.1f} {cost:>13.1f} {candidate[name]:>16.1f} {projected:>10.1f} {value / projected:>8.2f}x")
    print(f"cProfile, 4 headers: {share:.0%} of the run's time inside nats-py's _process_headers, {parse_us:.1f} µs a message (under the profiler)")
    event = "4 headers (an event)"
    conservative = us[event] * (1 - share) + candidate[event]
    print(f"conservative, 4 headers: the time outside _process_headers (by that share) + candidate parse = {conservative:.1f} µs, {us[event] / conservative:.2f}x")
    print("without the name cache (a regex check per name): " + ", ".join(f"{value:.1f} µs ({name})" for name, value in uncached.items()))
    print("columns: headers cost = this row minus 'no headers'; candidate parse = the candidate on the same block in a loop;")
    print("projected = 'no headers' + candidate parse (the candidate's subscription cost if nats-py used it); speed-up = measured / projected")
    if differences:
        raise SystemExit(f"{len(differences)} header block(s) parse differently")


def header_share(stats: pstats.Stats, n: int) -> tuple[float, float]:
    """The share of the profiled time spent inside nats-py's ``_process_headers`` (cumulative: with the builtins it calls), and its µs a message."""
    functions = stats.get_stats_profile().func_profiles
    total = sum(p.tottime for p in functions.values())
    inside = sum(p.cumtime for name, p in functions.items() if name == "_process_headers" and p.file_name.endswith("client.py"))
    return inside / total, inside / n * 1e6


def candidate_us(block: bytes, rounds: int, parse_lines: Callable[[bytes], dict[str, str]] = parse_header_lines, number: int = 20_000) -> float:
    """µs per call of a candidate on one block: the median of `rounds` timings."""
    return statistics.median(timeit.repeat(lambda: parse_headers(block, parse_lines), number=number, repeat=rounds)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the table shows medians")
    parser.add_argument("--fuzz", type=int, default=3_000, help="random header blocks checked for equality")
    args = parser.parse_args()
    for name in ("messages", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, not {getattr(args, name)}")
    if args.fuzz < 0:
        parser.error(f"--fuzz must not be negative, not {args.fuzz}")
    with NatsServer() as server:
        asyncio.run(run(args, server.url))


if __name__ == "__main__":
    main()
