"""Store vs raw nats-py, side by side in one run, against a nats-server this script starts.

    python bench/store_bench.py [--rounds 5] [--n 2000]

Each figure is the median over rounds; raw and store measurements alternate
within every round so machine noise hits both alike. Ratios > 1 favour the
store for throughput, < 1 for latency.
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

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.nc.close())
        self.loop.close()

    async def publish_with_expectation(self, subject: str, n: int) -> None:
        last = 0
        try:
            last = (await self.js.get_last_msg(STREAM, subject, direct=True)).seq
        except nats.js.errors.NotFoundError:
            pass
        for i in range(n):
            event = Event(actor_id="x", event_type="Raw", version=i + 1, data={"i": i})
            headers, body = encode_event(event)
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
            last = (await self.js.publish(subject, body, headers=headers)).seq

    async def atomic_batches(self, subject: str, batches: int, size: int) -> None:
        """Atomic batches of ``size`` on nats-py's public API: size - 1 publishes, then the commit as a request (the store's floor for append)."""
        last = 0
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

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def direct_gets(self, subject: str, n: int) -> None:
        for _ in range(n):
            msg = self.call(self.js.get_last_msg(STREAM, subject, direct=True))
            int(msg.headers["Es-Version"])

    def close(self) -> None:
        self.call(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


async def awaited_on_store_loop(store: JetStreamEventStore, n: int) -> None:
    """The async twin awaited by code already on the store's loop: the request path without the thread hand-off."""
    for _ in range(n):
        await store.aget_latest_version("one-1")


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000, help="operations per latency measurement")
    args = parser.parse_args()
    n, rounds = args.n, args.rounds

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

        def add(name: str, value: float) -> None:
            rows.setdefault(name, []).append(value)

        for r in range(rounds):
            tag = uuid.uuid4().hex[:8]
            # writes: sequential publishes with the expected-sequence header
            add("raw publish+ack (us/op)", timed(raw.run, raw.publish_with_expectation(subjects.event_subject(f"raw-{tag}"), n)) / n * 1e6)
            actor = f"save-{tag}"
            add("save_event, sync (us/op)", timed(lambda actor=actor: [store.save_event(Event(actor_id=actor, event_type="E", version=i + 1, data={"i": i})) for i in range(n)]) / n * 1e6)
            actor = f"unc-{tag}"
            add(
                "save_event, no version cache (us/op)",
                timed(lambda actor=actor: [uncached.save_event(Event(actor_id=actor, event_type="E", version=i + 1, data={"i": i})) for i in range(n)]) / n * 1e6,
            )
            actor = f"enc-{tag}"
            add("save_event, encrypted (us/op)", timed(lambda actor=actor: [encrypted.save_event(Event(actor_id=actor, event_type="E", version=i + 1, data={"i": i})) for i in range(n)]) / n * 1e6)
            # latest version: interleave the 1-event and the 10,000-event actor
            add("raw direct get (us/op)", timed(raw.run, raw.direct_gets(one_subject, n)) / n * 1e6)
            add("raw direct get from sync code, loop thread (us/op)", timed(raw_sync.direct_gets, one_subject, n) / n * 1e6)
            add("get_latest_version, 1 event (us/op)", timed(lambda: [store.get_latest_version("one-1") for _ in range(n)]) / n * 1e6)
            add("get_latest_version, 10,000 events (us/op)", timed(lambda: [store.get_latest_version("long-1") for _ in range(n)]) / n * 1e6)
            add("aget_latest_version on the store's loop (us/op)", timed(store.portal.call, awaited_on_store_loop(store, n)) / n * 1e6)
            add("DeliverLast consumer + fetch(1) (us/op)", timed(raw.run, raw.deliver_last(long_subject, 50)) / 50 * 1e6)
            # batches
            m = 100 * 20
            add("raw publish+ack, 100 events (events/s)", m / timed(raw.run, raw.publish_with_expectation(subjects.event_subject(f"rawb-{tag}"), m)))
            add("raw atomic batch of 100 (events/s)", m / timed(raw.run, raw.atomic_batches(subjects.event_subject(f"rawatomic-{tag}"), 20, 100)))
            actor = f"batch-{tag}"
            add("append 100 events (events/s)", m / timed(lambda actor=actor: [store.append(actor, [Event(event_type="E", data={"i": i}) for i in range(100)], k * 100) for k in range(20)]))
            many = [Event(actor_id=f"many{tag}-{a}", event_type="E", version=v, data={"v": v}) for v in range(1, 21) for a in range(100)]
            add("save_events, 2,000 events of 100 actors (events/s)", len(many) / timed(store.save_events, many))
            add("raw pull fetch(256), 10,000 events (events/s)", 10_000 / timed(raw.run, raw.fetch_all(long_subject)))
            add("raw batched direct get, 10,000 events (events/s)", 10_000 / timed(raw.run, raw.batched_direct_get(long_subject)))
            add("get_events, 10,000 events (events/s)", 10_000 / timed(store.get_events, "long-1"))
            add("get_events, 10,000 events, encrypted (events/s)", 10_000 / timed(encrypted.get_events, "long-1"))
            print(f"round {r + 1}/{rounds} done", file=sys.stderr)

        med = {k: statistics.median(v) for k, v in rows.items()}
        width = max(map(len, med)) + 2
        print(f"{f'measure (median of {rounds} rounds)':<{width}}{'value':>12}")
        for k, v in med.items():
            print(f"{k:<{width}}{v:>12,.1f}")
        raw_pub, save = med["raw publish+ack (us/op)"], med["save_event, sync (us/op)"]
        dget_sync = med["raw direct get from sync code, loop thread (us/op)"]
        glv1, glv10k = med["get_latest_version, 1 event (us/op)"], med["get_latest_version, 10,000 events (us/op)"]
        append_rate, raw_batch_rate = med["append 100 events (events/s)"], med["raw publish+ack, 100 events (events/s)"]
        get_events_rate, fetch_rate = med["get_events, 10,000 events (events/s)"], med["raw pull fetch(256), 10,000 events (events/s)"]
        floor_rate = med["raw batched direct get, 10,000 events (events/s)"]
        deliver_last = med["DeliverLast consumer + fetch(1) (us/op)"]
        print()
        print("ratio                                                     value   target")
        checks = [
            ("save_event throughput / raw publish throughput", raw_pub / save, ">= 0.65", raw_pub / save >= 0.65),
            ("get_latest_version time / raw sync direct get time", glv1 / dget_sync, "<= 1.1", glv1 / dget_sync <= 1.1),
            ("DeliverLast time / get_latest_version time", deliver_last / glv1, ">= 5", deliver_last / glv1 >= 5),
            ("get_latest_version 10,000 events / 1 event", glv10k / glv1, "<= 1.3", glv10k / glv1 <= 1.3),
            ("append 100 events/s / raw publish events/s", append_rate / raw_batch_rate, ">= 3", append_rate / raw_batch_rate >= 3),
            ("  the raw atomic batch of 100 (the floor) / raw publish", med["raw atomic batch of 100 (events/s)"] / raw_batch_rate, "-", True),
            ("  append 100 events/s / raw atomic batch events/s", append_rate / med["raw atomic batch of 100 (events/s)"], "-", True),
            ("save_events events/s / raw publish events/s", med["save_events, 2,000 events of 100 actors (events/s)"] / raw_batch_rate, "-", True),
            ("get_events events/s / raw batched direct get events/s", get_events_rate / floor_rate, ">= 0.8", get_events_rate / floor_rate >= 0.8),
            ("get_events events/s / raw fetch(256) events/s", get_events_rate / fetch_rate, "-", True),
            ("encrypted save_event throughput / plain save_event", save / med["save_event, encrypted (us/op)"], ">= 0.8", save / med["save_event, encrypted (us/op)"] >= 0.8),
            ("encrypted get_events events/s / plain get_events", med["get_events, 10,000 events, encrypted (events/s)"] / get_events_rate, ">= 0.6",
             med["get_events, 10,000 events, encrypted (events/s)"] / get_events_rate >= 0.6),
        ]
        for name, value, target, ok in checks:
            print(f"{name:<52}{value:>10.2f}   {target:<8} {'ok' if ok else 'MISSED'}")
        store.close()
        uncached.close()
        encrypted.close()
        raw.close()
        raw_sync.close()


if __name__ == "__main__":
    main()
