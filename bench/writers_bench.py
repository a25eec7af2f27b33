"""Many writers at once: the store's async and threaded writes next to raw nats-py's pipelined limit,
against a nats-server this script starts.

    python bench/writers_bench.py [--rounds 3] [--events 4000]

Raw: many publishes in flight on one connection (``js.publish`` awaited in
``asyncio.gather``), each expecting its subject's last sequence, acks
gathered. Store: 64 asyncio tasks each saving to its own actor
(``asave_event``), one ``asave_events`` of the same events, and sync
``save_event`` from 1 and from 8 threads. Figures are medians of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats

from django_eventstore import Event
from django_eventstore.core.events import encode_event
from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.testing import NatsServer

TASKS = 64


async def raw_pipelined(url: str, n: int, tag: str) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    per = n // TASKS

    async def actor(k: int) -> None:
        last = 0
        subject = f"bench.events.raw.r{k}-{tag}"
        for v in range(1, per + 1):
            headers, body = encode_event(Event(actor_id=f"r{k}-{tag}", event_type="E", version=v, data={"v": v}))
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
            last = (await js.publish(subject, body, headers=headers)).seq

    start = time.perf_counter()
    await asyncio.gather(*(actor(k) for k in range(TASKS)))
    elapsed = time.perf_counter() - start
    await nc.close()
    return per * TASKS / elapsed


async def store_tasks(store: JetStreamEventStore, n: int, tag: str) -> float:
    per = n // TASKS

    async def actor(k: int) -> None:
        for v in range(1, per + 1):
            await store.asave_event(Event(actor_id=f"t{k}-{tag}", event_type="E", version=v, data={"v": v}))

    start = time.perf_counter()
    await asyncio.gather(*(actor(k) for k in range(TASKS)))
    return per * TASKS / (time.perf_counter() - start)


async def store_save_events(store: JetStreamEventStore, n: int, tag: str) -> float:
    per = n // TASKS
    events = [Event(actor_id=f"m{k}-{tag}", event_type="E", version=v, data={"v": v}) for v in range(1, per + 1) for k in range(TASKS)]
    start = time.perf_counter()
    await store.asave_events(events)
    return len(events) / (time.perf_counter() - start)


def store_threads(store: JetStreamEventStore, n: int, threads: int, tag: str) -> float:
    per = n // threads

    def write(k: int) -> None:
        for v in range(1, per + 1):
            store.save_event(Event(actor_id=f"s{threads}x{k}-{tag}", event_type="E", version=v, data={"v": v}))

    workers = [threading.Thread(target=write, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=4000, help="events per measurement")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    with NatsServer() as server:
        store = JetStreamEventStore(server.url, stream="WRITERS", subject_prefix="bench")
        store.setup()
        for r in range(args.rounds):
            tag = uuid.uuid4().hex[:8]
            rows.setdefault("raw nats-py, 64 publishes in flight", []).append(asyncio.run(raw_pipelined(server.url, args.events, tag)))
            rows.setdefault("store, 64 tasks of asave_event", []).append(asyncio.run(store_tasks(store, args.events, tag)))
            rows.setdefault("store, asave_events (64 actors)", []).append(asyncio.run(store_save_events(store, args.events, tag)))
            rows.setdefault("store, save_event from 1 thread", []).append(store_threads(store, args.events // 4, 1, tag))
            rows.setdefault("store, save_event from 8 threads", []).append(store_threads(store, args.events, 8, tag))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        store.close()
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"{'events/s (median of ' + str(args.rounds) + ')':<42}{'value':>10}")
    for k, v in med.items():
        print(f"{k:<42}{v:>10,.0f}")
    raw = med["raw nats-py, 64 publishes in flight"]
    print()
    print(f"{'ratio':<52}{'value':>7}   goal")
    print(f"{'64 tasks of asave_event / raw pipelined':<52}{med['store, 64 tasks of asave_event'] / raw:>7.2f}   >= 0.5")
    print(f"{'asave_events / raw pipelined':<52}{med['store, asave_events (64 actors)'] / raw:>7.2f}   >= 0.5")
    one, eight = med["store, save_event from 1 thread"], med["store, save_event from 8 threads"]
    print(f"{'8 threads / 1 thread':<52}{eight / one:>7.2f}   >= 2")


if __name__ == "__main__":
    main()
