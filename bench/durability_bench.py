"""What durability costs: writes/s on one server and on an R3 cluster, with JetStream's default fsync
interval and with ``sync_interval: always``, and what a kill -9 keeps, against servers this script starts.

    python bench/durability_bench.py [--events 1000] [--rounds 3]

A kill -9 of a process loses nothing that was acknowledged in any setup (the
operating system still holds the written pages); only ``sync_interval: always``
(or replicas on machines that do not lose power together) covers a power loss,
which a script cannot simulate: this prints what each setup pays for it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_eventstore import Event, EventStoreError
from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.testing import NatsCluster, NatsServer


def writes_per_second(store: JetStreamEventStore, n: int) -> float:
    actor = f"w-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    for v in range(1, n + 1):
        store.save_event(Event(actor_id=actor, event_type="E", version=v, data={"v": v}))
    return n / (time.perf_counter() - start)


def single(sync_interval: str | None, n: int, rounds: int) -> tuple[float, str]:
    """Writes/s on one server, then what survives a kill -9 and restart."""
    with NatsServer(sync_interval=sync_interval) as server:
        store = JetStreamEventStore(server.url, stream="DUR", timeout=10)
        rates = [writes_per_second(store, n) for _ in range(rounds)]
        acked = [store.save_event(Event(actor_id="kill-1", event_type="E", version=v)).id for v in range(1, 201)]
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        server.keep_data = True
        server.start()
        kept = _kept(store, acked)
        server.keep_data = False
        store.close()
    return statistics.median(rates), kept


def cluster(sync_interval: str | None, n: int, rounds: int) -> tuple[float, str]:
    """Writes/s on an R3 stream, then what survives a kill -9 of the stream leader."""
    with NatsCluster(3, sync_interval=sync_interval) as c:
        store = JetStreamEventStore(c.urls, stream="DUR", replicas=3, timeout=20)
        store.setup()
        rates = [writes_per_second(store, n) for _ in range(rounds)]
        acked = [store.save_event(Event(actor_id="kill-1", event_type="E", version=v)).id for v in range(1, 201)]
        c.kill(c.stream_leader("DUR"))
        c.stream_leader("DUR")  # a new one is elected
        kept = _kept(store, acked)
        store.close()
    return statistics.median(rates), kept


def _kept(store: JetStreamEventStore, acked: list[str]) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            stored = {e.id for e in store.get_events("kill-1")}
            break
        except EventStoreError:  # the server is coming back: ask again
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return f"{sum(i in stored for i in acked)}/{len(acked)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="sequential save_event calls per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for label, run, sync in [
        ("R1, default fsync interval (2 min)", single, None),
        ("R1, sync_interval: always", single, "always"),
        ("R3 cluster, default fsync interval", cluster, None),
        ("R3 cluster, sync_interval: always", cluster, "always"),
    ]:
        rate, kept = run(sync, args.events, args.rounds)
        rows.append((label, rate, kept))
        print(f"{label} done", file=sys.stderr)
    base = rows[0][1]
    print(f"{'setup (median of ' + str(args.rounds) + ' rounds)':<40}{'writes/s':>10}{'vs R1':>8}   acknowledged kept after kill -9")
    for label, rate, kept in rows:
        print(f"{label:<40}{rate:>10,.0f}{rate / base:>8.2f}   {kept}")


if __name__ == "__main__":
    main()
