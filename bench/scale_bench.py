"""A million actors: write them, then time listing, the admin changelist, status, export and verify.

    python bench/scale_bench.py [--actors 1000000] [--events 1] [--size 0] [--runs 3] [--quick] [--keep DIR] [--parts list,admin,commands,index]

Starts a throw-away nats-server (file storage) and writes ``--actors`` actors of
``--events`` events each with ``store.save_events`` (in chunks of ``--chunk``,
events of ``--size`` bytes of padding), then prints: write rate, the server's
memory (RSS from /proc) and disk (its store directory), ``list_actors`` pages
(first, middle via ``after``, last, by type, by prefix), where a listing's time
goes (the server's subject listing, JSON decoding, decoding ids, sorting), the
admin changelist (Django's test client, a staff user with the view permission),
``eventstore_status``, and ``eventstore_export`` / ``eventstore_verify`` run as
subprocesses (events/s and their peak RSS), and the same pages through the
actor index (core/actor_index.py). ``--quick`` is 20,000 actors, one run: a
smoke test. ``--keep DIR`` keeps (or reuses) the server's data in DIR;
``--parts`` picks what to measure.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

TYPES = ("order", "user", "invoice", "cart")
STREAM = "SCALE"
PREFIX = "scale"
PAGE = 100  # the admin's page size, and the listing's page in this bench
GOAL_PAGE_S = 1.0
GOAL_EXPORT_MB = 150.0
PARTS = ("list", "admin", "commands", "index")


def actor_id(i: int) -> str:
    return f"{TYPES[i % len(TYPES)]}-{i:07d}"


def eventstore_settings(url: str) -> dict[str, Any]:
    return {"SERVERS": [url], "STREAM": STREAM, "SUBJECT_PREFIX": PREFIX, "TIMEOUT": 60.0}


# ----- a management command in a child process, for its peak memory -----


def run_command_child(url: str, peak_file: str, args: list[str]) -> None:
    """Child mode: run one management command against the bench's stream (its output to /dev/null), then write
    the process's peak RSS to peak_file. Read from /proc: a child's ru_maxrss starts at its parent's size at fork."""
    from django.conf import settings
    from django.core.management import CommandError, call_command

    settings.EVENTSTORE = eventstore_settings(url)
    django.setup()
    try:
        with open(os.devnull, "w") as null:
            call_command(*args, stdout=null, stderr=null)
    except CommandError as e:
        print(f"{args[0]}: {e}", file=sys.stderr)
        raise SystemExit(e.returncode) from None
    finally:
        Path(peak_file).write_text(str(memory_mb(os.getpid())[1]))


def timed_child(url: str, args: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit status) of a management command run in a child process."""
    with tempfile.NamedTemporaryFile() as peak:
        started = time.perf_counter()
        status = subprocess.run([sys.executable, __file__, "--child", url, peak.name, *args]).returncode
        seconds = time.perf_counter() - started
        return seconds, float(Path(peak.name).read_text() or "nan"), status


# ----- writing -----


def event_chunks(actors: int, events: int, size: int, chunk: int) -> Iterator[list[Any]]:
    """The events in save order: version 1 of every actor, then version 2..., in chunks."""
    from django_eventstore import Event

    pad = "x" * size
    batch: list[Event] = []
    for version in range(1, events + 1):
        for i in range(actors):
            data = {"i": i, "pad": pad} if size else {"i": i}
            batch.append(Event(actor_id=actor_id(i), event_type="Created" if version == 1 else "Changed", version=version, data=data))
            if len(batch) >= chunk:
                yield batch
                batch = []
    if batch:
        yield batch


def write(store: Any, actors: int, events: int, size: int, chunk: int) -> float:
    """Write every event with save_events; events/s."""
    total = actors * events
    done = 0
    started = time.perf_counter()
    next_report = started + 10
    for batch in event_chunks(actors, events, size, chunk):
        store.save_events(batch)
        done += len(batch)
        if time.perf_counter() > next_report:
            rate = done / (time.perf_counter() - started)
            print(f"  wrote {done:,}/{total:,} events, {rate:,.0f} events/s", file=sys.stderr, flush=True)
            next_report = time.perf_counter() + 10
    return total / (time.perf_counter() - started)


# ----- measuring -----


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of a process in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024**2


def timed(call: Callable[[], object], runs: int) -> tuple[float, object]:
    """Median seconds of ``runs`` calls after a warm-up call, and the last result.

    A first call over a second is the figure itself: it warms nothing a second
    call would not pay again (a full subject listing at a million actors takes minutes).
    """
    started = time.perf_counter()
    result = call()
    first = time.perf_counter() - started
    if first > 1.0:
        return first, result
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


class Table:
    """Rows of (measure, value, goal and verdict), printed as they come and again at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, name: str, value: str, goal: str = "") -> None:
        self.rows.append((name, value, goal))
        print(f"  {name}: {value} {goal}", file=sys.stderr, flush=True)

    def seconds(self, name: str, seconds: float, goal: float | None = None) -> None:
        verdict = "" if goal is None else f"< {goal:g} s {'ok' if seconds < goal else 'MISSED'}"
        self.add(name, f"{seconds * 1000:,.0f} ms", verdict)

    def print(self) -> None:
        width = max(len(r[0]) for r in self.rows)
        print(f"{'measure':{width}}  {'value':>14}  goal")
        for name, value, goal in self.rows:
            print(f"{name:{width}}  {value:>14}  {goal}")


def listing_breakdown(store: Any, url: str, table: Table) -> None:
    """Where a full listing's time goes: the server's paged subject listing, JSON decoding, decoding ids, sorting."""
    import nats

    subjects = store.engine.subjects
    events_filter = subjects.events_filter()

    async def raw_pages() -> tuple[list[float], float, list[str]]:
        nc = await nats.connect(url)
        decode = 0.0
        rounds: list[float] = []
        names: list[str] = []
        while True:
            request = json.dumps({"subjects_filter": events_filter, "offset": len(names)}).encode()
            started = time.perf_counter()
            msg = await nc.request(f"$JS.API.STREAM.INFO.{STREAM}", request, timeout=600)
            rounds.append(time.perf_counter() - started)
            started = time.perf_counter()
            reply = json.loads(msg.data)
            decode += time.perf_counter() - started
            page = (reply.get("state") or {}).get("subjects") or {}
            names.extend(page)
            if not page or len(names) >= int(reply.get("total", 0)):
                break
        await nc.close()
        return rounds, decode, names

    rounds, decode, names = asyncio.run(raw_pages())
    table.seconds(f"  subject listing: server round trips ({len(rounds)} pages of up to 100,000)", sum(rounds))
    table.add("  the same, each page", " ".join(f"{r:.1f}" for r in rounds) + " s")
    table.seconds("  subject listing: JSON decoding", decode)
    started = time.perf_counter()
    ids = [subjects.actor_id_of(s) for s in names]
    table.seconds("  decoding subjects into ids", time.perf_counter() - started)
    started = time.perf_counter()
    sorted(ids)
    table.seconds("  sorting the ids", time.perf_counter() - started)


def list_actor_pages(store: Any, actors: int, runs: int, table: Table) -> None:
    ids = sorted(actor_id(i) for i in range(actors))
    middle, last = ids[len(ids) // 2], ids[max(0, len(ids) - PAGE - 1)]
    prefix = actor_id(2)[: len(actor_id(2)) - 3]  # about one actor in 4,000 (1,000 ids, every 4th of this type)
    cases = {
        "list_actors, first page": lambda: store.list_actors(limit=PAGE),
        "list_actors, middle page (after=)": lambda: store.list_actors(limit=PAGE, after=middle),
        "list_actors, last page (after=)": lambda: store.list_actors(limit=PAGE, after=last),
        f"list_actors, type {TYPES[2]!r}": lambda: store.list_actors(actor_type=TYPES[2], limit=PAGE),
        f"list_actors, prefix {prefix!r}": lambda: store.list_actors(prefix=prefix, limit=PAGE),
    }
    for name, call in cases.items():
        seconds, page = timed(call, runs)
        assert page.actors, name  # type: ignore[attr-defined]
        table.seconds(name, seconds, GOAL_PAGE_S)


def indexed_pages(store: Any, actors: int, runs: int, table: Table) -> None:
    """The same pages through core/actor_index.py, as list_actors would answer them with the index wired in:
    the index's page, then the page's last messages and snapshot versions (one multi_last direct get each)."""
    from django_eventstore import Event
    from django_eventstore.core.actor_index import ActorIndex
    from django_eventstore.core.backend import EVENTS

    engine = store.engine
    index = ActorIndex(engine.backend, engine.subjects)

    async def listed(**query: Any) -> list[Any]:
        page = await index.page(limit=PAGE, **query)
        last = await engine.backend.last_msgs(EVENTS, [engine.subjects.event_subject(i) for i in page.ids])
        snapshots = await engine.snapshot_versions(page.ids)
        return [(i, last[engine.subjects.event_subject(i)].seq, snapshots.get(i)) for i in page.ids]

    started = time.perf_counter()
    indexed = store.portal.call(index.ids())  # a copy of the index's list, holding the same strings
    table.seconds("actor index: first use (lists the subjects)", time.perf_counter() - started)
    held = sys.getsizeof(indexed) + sum(sys.getsizeof(i) for i in indexed)
    del indexed
    table.add("actor index: memory held (ids and list)", f"{held / 1024**2:,.0f} MB")
    ids = sorted(actor_id(i) for i in range(actors))
    prefix = actor_id(2)[:-3]
    for name, query in {
        "first page": {},
        "middle page (after=)": {"after": ids[len(ids) // 2]},
        "last page (after=)": {"after": ids[max(0, len(ids) - PAGE - 1)]},
        f"type {TYPES[2]!r}": {"actor_type": TYPES[2]},
        f"prefix {prefix!r}": {"prefix": prefix},
        "types (the admin's type filter)": None,
    }.items():

        def call(query: dict[str, Any] | None = query) -> object:
            return store.portal.call(index.types() if query is None else listed(**query))

        table.seconds(f"actor index: {name}", timed(call, runs)[0], GOAL_PAGE_S)
    tag = uuid.uuid4().hex[:8]  # new actors of their own on every run (a kept store is reused)
    for new in (1_000, 10_000):
        store.save_events(Event(actor_id=f"new{tag}-{new}-{n:06d}", event_type="Created", version=1, data={}) for n in range(new))
        started = time.perf_counter()
        store.portal.call(listed())
        table.seconds(f"actor index: first page after {new:,} new actors (catch-up)", time.perf_counter() - started, GOAL_PAGE_S)
    assert index.builds == 1


def admin_pages(actors: int, runs: int, table: Table) -> None:
    from django.contrib.auth.models import Permission, User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    setup_test_environment()
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("staff", password="staff", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_actor", content_type__app_label="django_eventstore"))
    client = Client()
    client.force_login(user)
    changelist = reverse("admin:django_eventstore_actor_changelist")
    prefix = actor_id(2)[:-3]
    for name, url in {
        "admin changelist, page 1": changelist,
        "admin changelist, last page": f"{changelist}?p={(actors + PAGE - 1) // PAGE}",
        "admin changelist, type + id search": f"{changelist}?type={TYPES[2]}&q={prefix}",
    }.items():

        def get(url: str = url) -> object:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            return response

        table.seconds(name, timed(get, runs)[0], GOAL_PAGE_S)


def commands(url: str, total: int, runs: int, workdir: Path, table: Table) -> None:
    from django.core.management import call_command

    seconds, _ = timed(lambda: call_command("eventstore_status", stdout=io.StringIO()), runs)
    table.seconds("eventstore_status", seconds)
    export = workdir / "export.jsonl"
    seconds, peak, status = timed_child(url, ["eventstore_export", str(export)])
    size = f", file {export.stat().st_size / 1024**2:,.0f} MB" if export.exists() else ""
    table.add("eventstore_export", f"{total / seconds:,.0f} ev/s", f"{seconds:.1f} s, exit {status}{size}")
    table.add("eventstore_export, peak RSS", f"{peak:,.0f} MB", f"< {GOAL_EXPORT_MB:g} MB {'ok' if peak < GOAL_EXPORT_MB else 'MISSED'}")
    export.unlink(missing_ok=True)
    seconds, peak, status = timed_child(url, ["eventstore_verify"])
    table.add("eventstore_verify", f"{total / seconds:,.0f} ev/s", f"{seconds:.1f} s, exit {status}")
    table.add("eventstore_verify, peak RSS", f"{peak:,.0f} MB")
    seconds, peak, status = timed_child(url, ["check"])
    table.add("(a child running manage.py check, peak RSS)", f"{peak:,.0f} MB", "the baseline of a command's process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=1, help="events per actor")
    parser.add_argument("--size", type=int, default=0, help="bytes of padding in each event's data")
    parser.add_argument("--chunk", type=int, default=10_000, help="events per save_events call")
    parser.add_argument("--runs", type=int, default=3, help="timed calls per measure (after a warm-up)")
    parser.add_argument("--quick", action="store_true", help="20,000 actors, one run: a smoke test")
    parser.add_argument("--keep", type=Path, help="the server's data directory, kept after the run; reused if it holds the actors")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"what to measure after writing, of {','.join(PARTS)}")
    args = parser.parse_args()
    if args.quick:
        args.actors, args.runs = min(args.actors, 20_000), 1
    django.setup()
    from django.conf import settings

    from django_eventstore import get_store
    from django_eventstore.testing import NatsServer

    table = Table()
    total = args.actors * args.events
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-bench-")))
        server = stack.enter_context(NatsServer(store_dir=args.keep))
        settings.EVENTSTORE = eventstore_settings(server.url)
        store = get_store()
        stack.callback(store.close)
        store.setup()
        stored = store.server_summary().streams[0].messages
        label = f"{args.actors:,} actors x {args.events:,} events, {args.size} B padding"
        if stored == 0:
            print(f"writing {label}", file=sys.stderr, flush=True)
            table.add("save_events", f"{write(store, args.actors, args.events, args.size, args.chunk):,.0f} ev/s", label)
            stored = total
        elif stored < total:
            raise SystemExit(f"{args.keep} holds {stored:,} events, fewer than {total:,}: use another directory")
        assert server.process is not None
        rss, peak = memory_mb(server.process.pid)
        table.add("nats-server RSS (peak)", f"{rss:,.0f} MB", f"peak {peak:,.0f} MB")
        table.add("nats-server store directory", f"{disk_mb(server.store_dir):,.0f} MB")
        parts = set(args.parts.split(","))
        if "list" in parts:
            list_actor_pages(store, args.actors, args.runs, table)
            table.add("where a full listing's time goes:", "")
            listing_breakdown(store, server.url, table)
        if "admin" in parts:
            admin_pages(args.actors, args.runs, table)
        if "commands" in parts:
            commands(server.url, stored, args.runs, workdir, table)
        if "index" in parts:
            indexed_pages(store, args.actors, args.runs, table)  # last: it adds 11,000 actors
    print(f"\n{label}, medians of {args.runs} runs after a warm-up")
    table.print()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        run_command_child(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        main()
