"""Store vs raw nats-py, side by side in one run, against a nats-server this script starts.

    python bench/store_bench.py [--rounds 5] [--n 2000] [--slices 4]

Each figure is the median over rounds. Within a round, raw and store
measurements alternate --slices times (each slice does n / slices operations of
every kind), so that the machine's noise, which drifts over seconds here, hits
both alike. Ratios > 1 favour the store for throughput, < 1 for latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
from cryptography.fernet import Fernet
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from django_eventstore import Event
from django_eventstore.core.events import encode_event
from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.testing import NatsServer

STREAM = "BENCH"


class Raw:
    """The same operations written directly on nats-py, run on a loop in this thread."""

    def __init__(self, url: str):
        self.loop = asyncio.new_event_loop()
        self.nc = self.run(nats.connect(url))
        self.js = self.nc.jetstream()
        self.last: dict[str, int] = {}  # subject -> its last sequence, as this script wrote it

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.nc.close())
        self.loop.close()

    async def _last_seq(self, subject: str) -> int:
        """The subject's last sequence: read from the server the first time, then as this script left it."""
        if subject not in self.last:
            try:
                self.last[subject] = (await self.js.get_last_msg(STREAM, subject, direct=True)).seq
            except nats.js.errors.NotFoundError:
                self.last[subject] = 0
        return self.last[subject]

    async def publish_with_expectation(self, subject: str, n: int) -> None:
        """n publishes, each expecting the subject's last sequence."""
        last = await self._last_seq(subject)
        for i in range(n):
            event = Event(actor_id="x", event_type="Raw", version=i + 1, data={"i": i})
            headers, body = encode_event(event)
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
            last = (await self.js.publish(subject, body, headers=headers)).seq
        self.last[subject] = last

    async def atomic_batches(self, subject: str, batches: int, size: int) -> None:
        """Atomic batches of ``size`` on nats-py's public API: size - 1 publishes, then the commit as a request (the store's floor for append)."""
        last = await self._last_seq(subject)
        for k in range(batches):
            batch_id = uuid.uuid4().hex
            for n in range(1, size + 1):
                headers, body = encode_event(Event(actor_id="x", event_type="Raw", version=k * size + n, data={"i": n}))
                headers |= {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(n)}
                if n == 1:
                    headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
                if n < size:
                    await self.nc.publish(subject, body, headers=headers)
                    if n == 1:
                        await asyncio.sleep(0)  # as the store does: the first message goes out at once, the server starts the batch
                else:
                    headers["Nats-Batch-Commit"] = "1"
                    last = json.loads((await self.nc.request(subject, body, headers=headers, timeout=10)).data)["seq"]
        self.last[subject] = last

    async def direct_gets(self, subject: str, n: int) -> None:
        for _ in range(n):
            msg = await self.js.get_last_msg(STREAM, subject, direct=True)
            int(msg.headers["Es-Version"])

    async def deliver_last(self, subject: str, n: int) -> None:
        for _ in range(n):
            sub = await self.js.pull_subscribe(subject, config=ConsumerConfig(deliver_policy=DeliverPolicy.LAST, ack_policy=AckPolicy.NONE, inactive_threshold=5))
            msgs = await sub.fetch(1)
            int(msgs[0].headers["Es-Version"])
            await self.js.delete_consumer(STREAM, (await sub.consumer_info()).name)
            await sub.unsubscribe()

    async def fetch_all(self, subject: str) -> int:
        sub = await self.js.pull_subscribe(subject, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=5))
        count = 0
        info = await self.js.stream_info(STREAM, subjects_filter=subject)
        total = info.state.subjects[subject]
        while count < total:
            for msg in await sub.fetch(256):
                msg.data  # noqa: B018 - what a reader touches
                count += 1
        await self.js.delete_consumer(STREAM, (await sub.consumer_info()).name)
        await sub.unsubscribe()
        return count

    async def batched_direct_get(self, subject: str) -> int:
        """Replay through nats-py's public API at its cheapest: batch direct gets of 1,000 answered on an inbox
        subscription with a callback, no decoding: the floor a store's replay can reach."""
        inbox = self.nc.new_inbox()
        msgs: list = []
        end: asyncio.Future = self.loop.create_future()

        async def collect(msg) -> None:
            if msg.headers and "Status" in msg.headers:
                if not end.done():
                    end.set_result(msg)
            else:
                msgs.append(msg)

        sub = await self.nc.subscribe(inbox, cb=collect, pending_msgs_limit=0, pending_bytes_limit=0)
        seq, count = 1, 0
        while True:
            end = self.loop.create_future()
            msgs.clear()
            request = json.dumps({"seq": seq, "next_by_subj": subject, "batch": 1000}).encode()
            await self.nc.publish(f"$JS.API.DIRECT.GET.{STREAM}", request, reply=inbox)
            status = await end
            count += len(msgs)
            if not msgs or status.headers.get("Nats-Num-Pending") == "0":
                break
            seq = int(msgs[-1].headers["Nats-Sequence"]) + 1
        await sub.unsubscribe()
        return count


class RawFromSync:
    """Public nats-py driven from sync code as a Django view would: a loop thread, run_coroutine_threadsafe per call."""

    def __init__(self, url: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc = self.call(nats.connect(url))
        self.js = self.nc.jetstream()
        self.last: dict[str, int] = {}  # subject -> its last sequence, as this script wrote it

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def direct_gets(self, subject: str, n: int) -> None:
        for _ in range(n):
            msg = self.call(self.js.get_last_msg(STREAM, subject, direct=True))
            int(msg.headers["Es-Version"])

    def publish_with_expectation(self, subject: str, n: int) -> None:
        """n publishes, each expecting the subject's last sequence, encoded in this thread, one hand-over each."""
        last = self.last.get(subject, 0)  # the subjects are fresh: nothing before this script's publishes
        for i in range(n):
            headers, body = encode_event(Event(actor_id="x", event_type="Raw", version=i + 1, data={"i": i}))
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
            last = self.call(self.js.publish(subject, body, headers=headers)).seq
        self.last[subject] = last

    def close(self) -> None:
        self.call(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


async def awaited_on_store_loop(store: JetStreamEventStore, n: int) -> None:
    """The async twin awaited by code already on the store's loop: the request path without the thread hand-off."""
    for _ in range(n):
        await store.aget_latest_version("one-1")


def saves(store: JetStreamEventStore, actor: str, first: int, count: int) -> None:
    """count sequential save_event calls on one actor, from version first + 1."""
    for i in range(first, first + count):
        store.save_event(Event(actor_id=actor, event_type="E", version=i + 1, data={"i": i}))


def latest_versions(store: JetStreamEventStore, actor: str, count: int) -> None:
    for _ in range(count):
        store.get_latest_version(actor)


def appends(store: JetStreamEventStore, actor: str, first_batch: int, batches: int) -> None:
    """Appends of 100 events to one actor, the first after version first_batch * 100."""
    for b in range(first_batch, first_batch + batches):
        store.append(actor, [Event(event_type="E", data={"i": i}) for i in range(100)], b * 100)


class Round:
    """Seconds and operations of each row, summed over a round's slices."""

    def __init__(self) -> None:
        self.spent: dict[str, list[float]] = {}

    def measure(self, name: str, operations: int, fn, *args) -> None:
        total = self.spent.setdefault(name, [0.0, 0])
        total[0] += timed(fn, *args)
        total[1] += operations

    def figures(self) -> dict[str, float]:
        """Each row's figure: µs per operation for latency rows, operations per second otherwise."""
        return {name: seconds / ops * 1e6 if "(us/op)" in name else ops / seconds for name, (seconds, ops) in self.spent.items()}


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000, help="operations per latency measurement in a round")
    parser.add_argument("--slices", type=int, default=4, help="alternations of raw and store within a round (each does n / slices operations)")
    args = parser.parse_args()
    n, rounds, slices = args.n, args.rounds, args.slices
    if n < slices or slices < 1 or rounds < 1:
        parser.error("--rounds and --slices must be >= 1 and --n at least --slices")
    k = n // slices  # latency operations per slice
    batches = max(1, 20 // slices)  # appends of 100 per slice

    with NatsServer() as server:
        store = JetStreamEventStore(server.url, stream=STREAM)
        uncached = JetStreamEventStore(server.url, stream=STREAM, cache_size=0)
        encrypted = JetStreamEventStore(server.url, stream="ENCRYPTED", subject_prefix="enc", encryption={"MASTER_KEY": Fernet.generate_key().decode()})
        raw = Raw(server.url)
        raw_sync = RawFromSync(server.url)
        subjects = store.engine.subjects
        store.save_event(Event(actor_id="one-1", event_type="E", version=1))
        for start in range(0, 10_000, 1000):
            store.append("long-1", [Event(event_type="E", data={"i": i}) for i in range(start, start + 1000)], start)
        for start in range(0, 10_000, 1000):
            encrypted.append("long-1", [Event(event_type="E", data={"i": i}) for i in range(start, start + 1000)], start)
        long_subject = subjects.event_subject("long-1")
        one_subject = subjects.event_subject("one-1")

        rows: dict[str, list[float]] = {}

        for r in range(rounds):
            tag = uuid.uuid4().hex[:8]
            now = Round()
            measure = now.measure
            for sl in range(slices):
                first, first_batch = sl * k, sl * batches  # where this slice's versions start
                # writes: sequential publishes with the expected-sequence header
                measure("raw publish+ack (us/op)", k, raw.run, raw.publish_with_expectation(subjects.event_subject(f"raw-{tag}"), k))
                measure("raw publish+ack from sync code, loop thread (us/op)", k, raw_sync.publish_with_expectation, subjects.event_subject(f"rawsync-{tag}"), k)
                measure("save_event, sync (us/op)", k, saves, store, f"save-{tag}", first, k)
                measure("save_event, encrypted (us/op)", k, saves, encrypted, f"enc-{tag}", first, k)
                measure("save_event, no version cache (us/op)", k, saves, uncached, f"unc-{tag}", first, k)
                # latest version: interleave the 1-event and the 10,000-event actor
                measure("raw direct get (us/op)", k, raw.run, raw.direct_gets(one_subject, k))
                measure("raw direct get from sync code, loop thread (us/op)", k, raw_sync.direct_gets, one_subject, k)
                measure("get_latest_version, 1 event (us/op)", k, latest_versions, store, "one-1", k)
                measure("get_latest_version, 10,000 events (us/op)", k, latest_versions, store, "long-1", k)
                measure("aget_latest_version on the store's loop (us/op)", k, store.portal.call, awaited_on_store_loop(store, k))
                measure("DeliverLast consumer + fetch(1) (us/op)", 10, raw.run, raw.deliver_last(long_subject, 10))
                # batches of 100
                m = 100 * batches
                measure("raw publish+ack, 100 events (events/s)", m, raw.run, raw.publish_with_expectation(subjects.event_subject(f"rawb-{tag}"), m))
                measure("raw atomic batch of 100 (events/s)", m, raw.run, raw.atomic_batches(subjects.event_subject(f"rawatomic-{tag}"), batches, 100))
                measure("append 100 events (events/s)", m, appends, store, f"batch-{tag}", first_batch, batches)
                many = [Event(actor_id=f"many{tag}-{a}", event_type="E", version=v, data={"v": v}) for v in range(first_batch + 1, first_batch + batches + 1) for a in range(100)]
                measure("save_events, 100 actors (events/s)", len(many), store.save_events, many)
                # replays of the 10,000-event actor
                measure("raw pull fetch(256), 10,000 events (events/s)", 10_000, raw.run, raw.fetch_all(long_subject))
                measure("raw batched direct get, 10,000 events (events/s)", 10_000, raw.run, raw.batched_direct_get(long_subject))
                measure("get_events, 10,000 events (events/s)", 10_000, store.get_events, "long-1")
                measure("get_events, 10,000 events, encrypted (events/s)", 10_000, encrypted.get_events, "long-1")
            for name, figure in now.figures().items():
                rows.setdefault(name, []).append(figure)
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)

        med = {k: statistics.median(v) for k, v in rows.items()}
        width = max(map(len, med)) + 2
        print(f"{f'measure (median of {rounds} rounds)':<{width}}{'value':>12}")
        for k, v in med.items():
            print(f"{k:<{width}}{v:>12,.1f}")
        # Each ratio is taken in every round (its raw and store figures measured side by side), then the median
        # over rounds: steadier on a noisy machine than a ratio of medians taken at different moments.
        checks = [  # name, numerator row, denominator row, target
            ("save_event throughput / raw publish throughput", "raw publish+ack (us/op)", "save_event, sync (us/op)", ">= 0.65"),
            ("  save_event / raw publish from sync code, loop thread", "raw publish+ack from sync code, loop thread (us/op)", "save_event, sync (us/op)", "-"),
            ("  raw publish from sync code / raw publish", "raw publish+ack (us/op)", "raw publish+ack from sync code, loop thread (us/op)", "-"),
            ("get_latest_version time / raw sync direct get time", "get_latest_version, 1 event (us/op)", "raw direct get from sync code, loop thread (us/op)", "<= 1.1"),
            ("DeliverLast time / get_latest_version time", "DeliverLast consumer + fetch(1) (us/op)", "get_latest_version, 1 event (us/op)", ">= 5"),
            ("get_latest_version 10,000 events / 1 event", "get_latest_version, 10,000 events (us/op)", "get_latest_version, 1 event (us/op)", "<= 1.3"),
            ("append 100 events/s / raw publish events/s", "append 100 events (events/s)", "raw publish+ack, 100 events (events/s)", ">= 3"),
            ("  the raw atomic batch of 100 (the floor) / raw publish", "raw atomic batch of 100 (events/s)", "raw publish+ack, 100 events (events/s)", "-"),
            ("  append 100 events/s / raw atomic batch events/s", "append 100 events (events/s)", "raw atomic batch of 100 (events/s)", "-"),
            ("save_events events/s / raw publish events/s", "save_events, 100 actors (events/s)", "raw publish+ack, 100 events (events/s)", "-"),
            ("get_events events/s / raw batched direct get events/s", "get_events, 10,000 events (events/s)", "raw batched direct get, 10,000 events (events/s)", ">= 0.8"),
            ("get_events events/s / raw fetch(256) events/s", "get_events, 10,000 events (events/s)", "raw pull fetch(256), 10,000 events (events/s)", "-"),
            ("encrypted save_event throughput / plain save_event", "save_event, sync (us/op)", "save_event, encrypted (us/op)", ">= 0.8"),
            ("encrypted get_events events/s / plain get_events", "get_events, 10,000 events, encrypted (events/s)", "get_events, 10,000 events (events/s)", ">= 0.6"),
        ]
        print()
        print(f"{'ratio (median of the rounds)':<56}{'value':>6}   {'target':<8} {'':<7}per round")
        for name, top, bottom, target in checks:
            per_round = [a / b for a, b in zip(rows[top], rows[bottom])]
            value = statistics.median(per_round)
            ok = target == "-" or (value >= float(target[3:]) if target.startswith(">=") else value <= float(target[3:]))
            print(f"{name:<56}{value:>6.3f}   {target:<8} {'ok' if ok else 'MISSED':<7}{', '.join(f'{x:.2f}' for x in per_round)}")
        store.close()
        uncached.close()
        encrypted.close()
        raw.close()
        raw_sync.close()


if __name__ == "__main__":
    main()
