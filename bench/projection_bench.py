"""Projections: events/s applied to a counter read model on SQLite and PostgreSQL, beside the store's raw replay rate; live lag.

    python bench/projection_bench.py [--events 20000] [--rounds 3] [--rate 200] [--seconds 20] [--no-postgres]

It starts a nats-server and (from Debian's ``postgresql`` binaries) a
PostgreSQL in temporary directories, stores ``--events`` events of 1,000
actors, then in the same run measures:

- replay: ``store.read_all`` pages of 500 over the whole stream (events/s);
- catch-up into a counter read model (one row per actor, +1 per event; batch
  500) on a SQLite file (WAL) and on PostgreSQL, as ratios of the replay;
- live lag: events saved at ``--rate`` per second for ``--seconds`` while
  ``follow()`` runs for one database (then the other), from just before each
  save to the commit of the batch holding it (p50, p99, max).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings

ACTORS = 1000


def configure(sqlite_path: Path, nats_url: str, postgres: dict | None) -> None:
    databases = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(sqlite_path),
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 30},
        }
    }
    if postgres:
        databases["postgres"] = postgres
    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_eventstore"],
        DATABASES=databases,
        USE_TZ=True,
        EVENTSTORE={"SERVERS": [nats_url], "STREAM": "BENCH", "SUBJECT_PREFIX": "bench", "TIMEOUT": 10.0},
    )
    django.setup()


def define(aliases: list[str]):  # type: ignore[no-untyped-def]
    """The counter model and one counter projection per database alias (defined after django.setup())."""
    from django.db import models
    from django.db.models import F

    from django_eventstore.projections import Projection, handles

    class Counter(models.Model):
        actor_id = models.CharField(max_length=64, primary_key=True)
        n = models.IntegerField(default=0)

        class Meta:
            app_label = "bench"

        def __str__(self) -> str:
            return f"{self.actor_id}: {self.n}"

    class Counting(Projection):
        """Counts events per actor as a fast projection does: the handler counts, flush() writes the batch's counts in 2-3 queries."""

        batch_size = 500

        def begin_batch(self) -> None:
            self.pending: collections.Counter[str] = collections.Counter()

        @handles("Counted")
        def counted(self, event):  # type: ignore[no-untyped-def]
            self.pending[event.actor_id] += 1

        def flush(self) -> None:
            rows = Counter.objects.using(self.database)
            known = set(rows.filter(actor_id__in=list(self.pending)).values_list("actor_id", flat=True))
            rows.bulk_create([Counter(actor_id=actor, n=n) for actor, n in self.pending.items() if actor not in known])
            by_increment = collections.defaultdict(list)  # one UPDATE per distinct increment (most batches: one)
            for actor in known:
                by_increment[self.pending[actor]].append(actor)
            for n, actors in by_increment.items():
                rows.filter(actor_id__in=actors).update(n=F("n") + n)

        def reset(self) -> None:
            Counter.objects.using(self.database).all().delete()

    projections = {alias: type(f"Count_{alias}", (Counting,), {"name": f"bench.{alias}", "database": alias}) for alias in aliases}
    return Counter, projections


def migrate(aliases: list[str], counter) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import call_command
    from django.db import connections

    for alias in aliases:
        call_command("migrate", database=alias, verbosity=0)
        with connections[alias].schema_editor() as editor:
            editor.create_model(counter)


def write(count: int, start: int = 0) -> None:
    from django_eventstore import Event, get_store

    store = get_store()
    versions: dict[str, int] = {}
    batch = []
    for i in range(start, start + count):
        actor = f"item-{i % ACTORS}"
        versions[actor] = versions.get(actor, store.get_latest_version(actor) if start else 0) + 1
        batch.append(Event(actor_id=actor, event_type="Counted", version=versions[actor], data={"i": i}))
        if len(batch) == 1000:
            store.save_events(batch)
            batch = []
    if batch:
        store.save_events(batch)


def replay_rate() -> float:
    from django_eventstore import get_store

    store = get_store()
    started, position, seen = time.perf_counter(), 0, 0
    while True:
        page = store.read_all(position, 500)
        if not page:
            break
        seen += len(page)
        last = page[-1].position
        assert last is not None  # read events carry their position
        position = last
    return seen / (time.perf_counter() - started)


def projection_rate(alias: str, events: int, counter) -> float:  # type: ignore[no-untyped-def]
    """Catch-up of the alias's counter projection from position 0 (read model emptied first, not timed); events/s."""
    from django.db import transaction
    from django.db.models import Sum

    from django_eventstore.models import ProjectionCheckpoint
    from django_eventstore.projections import get_projections
    from django_eventstore.projections.runner import catch_up_projection

    name = f"bench.{alias}"
    projection = get_projections([name])[name]
    with transaction.atomic(using=alias):
        projection.reset()
        ProjectionCheckpoint.objects.using(alias).filter(name=name).update(position=0)
    started = time.perf_counter()
    catch_up_projection(projection)
    rate = events / (time.perf_counter() - started)
    total = counter.objects.using(alias).aggregate(total=Sum("n"))["total"]
    if total != events:
        sys.exit(f"{name}: the counters add up to {total}, not {events}")
    return rate


def live_lag(aliases: list[str], rate: float, seconds: float) -> dict[str, list[float]]:
    """Save events at ``rate``/s while the runner follows; per alias, seconds from before each save to its checkpoint."""
    from django_eventstore import Event, get_store
    from django_eventstore.models import ProjectionCheckpoint
    from django_eventstore.projections import catch_up, follow

    store = get_store()
    catch_up([f"bench.{a}" for a in aliases])  # lag from the first save on, not the time to catch up with earlier events
    stop = threading.Event()
    runner = threading.Thread(target=follow, args=([f"bench.{a}" for a in aliases], stop), daemon=True)
    runner.start()
    sent: list[tuple[int, float]] = []  # (position, time before the save)
    seen: dict[str, list[tuple[int, float]]] = {alias: [] for alias in aliases}
    writing = threading.Event()
    writing.set()

    def watch(alias: str) -> None:
        from django.db import connections

        last = -1
        while writing.is_set() or (sent and last < sent[-1][0]):
            position = ProjectionCheckpoint.objects.using(alias).get(name=f"bench.{alias}").position
            if position != last:
                seen[alias].append((position, time.perf_counter()))
                last = position
            time.sleep(0.002)  # polling another thread's commits: the resolution (faster polling takes the runner's CPU)
        connections.close_all()

    watchers = [threading.Thread(target=watch, args=(alias,)) for alias in aliases]
    for watcher in watchers:
        watcher.start()
    interval, next_at, i = 1.0 / rate, time.perf_counter(), 0
    end = next_at + seconds
    while next_at < end:
        time.sleep(max(0.0, next_at - time.perf_counter()))
        actor = f"live_{'_'.join(aliases)}-{i % 50}"
        before = time.perf_counter()
        event = store.save_event(Event(actor_id=actor, event_type="Counted", version=i // 50 + 1))
        assert event.position is not None  # a saved event carries its position
        sent.append((event.position, before))
        next_at += interval
        i += 1
    writing.clear()
    for watcher in watchers:
        watcher.join(60)
    stop.set()
    runner.join(30)
    lags: dict[str, list[float]] = {}
    for alias in aliases:
        marks = seen[alias]
        lags[alias] = []
        j = 0
        for position, before in sent:
            while j < len(marks) and marks[j][0] < position:
                j += 1
            if j < len(marks):
                lags[alias].append(marks[j][1] - before)
    return lags


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s saved during the live measurement")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the live measurement")
    parser.add_argument("--rounds", type=int, default=3, help="replay and catch-ups alternated this many times (medians printed)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()

    from django_eventstore.testing import NatsServer

    pg_server = None
    if not args.no_postgres:
        from tests.projections.pg import PostgresServer, find_bin_dir

        if find_bin_dir() is None:
            sys.exit("PostgreSQL binaries not found: apt-get install postgresql, or pass --no-postgres")
        pg_server = PostgresServer().start()
    with NatsServer() as nats_server, tempfile.TemporaryDirectory() as tmp:
        try:
            if pg_server:
                pg_server.create_database("bench")
            configure(Path(tmp) / "bench.sqlite3", nats_server.url, pg_server.settings("bench") if pg_server else None)
            aliases = ["default"] + (["postgres"] if pg_server else [])
            counter, _ = define(aliases)
            migrate(aliases, counter)
            write(args.events)
            print(f"{args.events:,} events of {ACTORS:,} actors; counter read model, batch 500; {args.rounds} rounds")
            label = {"default": "SQLite", "postgres": "PostgreSQL"}
            replays: list[float] = []
            rates: dict[str, list[float]] = {alias: [] for alias in aliases}
            for round_ in range(1, args.rounds + 1):
                replays.append(replay_rate())
                for alias in aliases:
                    rates[alias].append(projection_rate(alias, args.events, counter))
                shares = "  ".join(f"{label[a]} {rates[a][-1]:,.0f} ({rates[a][-1] / replays[-1]:.0%})" for a in aliases)
                print(f"  round {round_}: replay {replays[-1]:,.0f}  {shares}  events/s")
            replay = statistics.median(replays)
            print(f"medians:\n  replay (store.read_all, pages of 500)  {replay:>10,.0f} events/s")
            for alias in aliases:
                rate = statistics.median(rates[alias])
                per_round = ", ".join(f"{r / p:.0%}" for r, p in zip(rates[alias], replays))
                print(f"  projected into {label[alias]:<10}             {rate:>10,.0f} events/s  ({rate / replay:.0%} of replay; rounds: {per_round})")
            print(f"live: {args.rate:g} events/s for {args.seconds:g} s per database, save -> read model committed")
            for alias in aliases:  # one database at a time, as a runner in its own process would follow it
                lags = live_lag([alias], args.rate, args.seconds)[alias]
                ms = [lag * 1000 for lag in lags]
                print(f"  {label[alias]:<10} p50 {statistics.median(ms):6.1f} ms  p99 {percentile(ms, 0.99):6.1f} ms  max {max(ms):6.1f} ms  ({len(ms):,} events)")
        finally:
            from django_eventstore.store import reset_store

            reset_store()
            if pg_server:
                from django.db import connections

                connections.close_all()
                pg_server.stop()


if __name__ == "__main__":
    main()
