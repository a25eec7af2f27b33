"""Server time of the admin pages at scale: the Actors changelist with 100,000 actors, and an
actor with 100,000 events (first page oldest-first, first page newest-first, a deep jump).

Run from the repository root: ``python bench/admin_bench.py [--actors N] [--events N] [--runs N]``.
It starts a throw-away nats-server (or uses ``EVENTSTORE_TEST_NATS_URL``), fills it, then times
requests through Django's test client (the whole view: store reads and template rendering) and
prints the median and spread of each page.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

import nats  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402

from django_eventstore import Event, get_store  # noqa: E402
from django_eventstore.actor_urls import actor_segment  # noqa: E402
from django_eventstore.core.events import encode_event  # noqa: E402
from django_eventstore.testing import NatsServer  # noqa: E402

LONG_ACTOR = "ledger-long"


async def publish_actors(url: str, count: int) -> None:
    """One event for each of ``count`` actors, published raw with acks collected on one inbox."""
    subjects = get_store().engine.subjects
    nc = await nats.connect(url)
    inbox = nc.new_inbox()
    done = asyncio.get_running_loop().create_future()
    acks = 0

    async def on_ack(msg: nats.aio.msg.Msg) -> None:
        nonlocal acks
        acks += 1
        if acks == count and not done.done():
            done.set_result(None)

    await nc.subscribe(inbox, cb=on_ack, pending_msgs_limit=-1)
    types = ("order", "user", "invoice", "cart")
    for i in range(count):
        actor = f"{types[i % len(types)]}-{i:06d}"
        headers, body = encode_event(Event(actor_id=actor, event_type="Created", version=1, data={"i": i}))
        await nc.publish(subjects.event_subject(actor), body, reply=inbox, headers=headers)
    await asyncio.wait_for(done, 300)
    await nc.close()


def fill(url: str, actors: int, events: int) -> None:
    store = get_store()
    store.setup()
    started = time.perf_counter()
    asyncio.run(publish_actors(url, actors))
    print(f"filled {actors:,} actors in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    started = time.perf_counter()
    for version in range(0, events, 1000):
        batch = [Event(event_type="Posted", data={"amount": version + i, "memo": "x" * 40}) for i in range(min(1000, events - version))]
        store.append(LONG_ACTOR, batch, version)
    print(f"filled {events:,} events of {LONG_ACTOR} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def timed(call: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds per call; the first (warm-up) call is not counted."""
    call()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


def get_ok(client: Client, url: str) -> Callable[[], object]:
    def call() -> object:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        return response

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with ExitStack() as stack:
        url = os.environ.get("EVENTSTORE_TEST_NATS_URL") or stack.enter_context(NatsServer()).url
        settings.EVENTSTORE = {"SERVERS": [url], "STREAM": "ADMINBENCH", "SUBJECT_PREFIX": "adminbench", "TIMEOUT": 10.0}
        setup_test_environment()
        call_command("migrate", verbosity=0)
        fill(url, args.actors, args.events)
        client = Client()
        client.force_login(User.objects.create_superuser("bench", password="bench"))
        changelist = reverse("admin:django_eventstore_actor_changelist")
        actor = reverse("admin:django_eventstore_actor_actor", args=[actor_segment(LONG_ACTOR)])
        store = get_store()
        calls = {
            f"changelist, {args.actors + 1:,} actors, page 1": get_ok(client, changelist),
            "changelist, last page": get_ok(client, f"{changelist}?p={(args.actors + 1 + 99) // 100}"),
            "changelist, type filter + search": get_ok(client, f"{changelist}?type=order&q=order-05"),
            "(store.list_actors alone, page 1)": lambda: store.list_actors(limit=100),
            f"actor with {args.events:,} events, first page": get_ok(client, actor),
            "same actor, newest first": get_ok(client, f"{actor}?order=desc"),
            "same actor, from version 50,000": get_ok(client, f"{actor}?from=50000"),
            "stream overview": get_ok(client, reverse("admin:django_eventstore_actor_overview")),
        }
        print(f"{'page':45} {'median ms':>10} {'min':>8} {'max':>8}  ({args.runs} requests each, after one warm-up)")
        for name, call in calls.items():
            times = timed(call, args.runs)
            print(f"{name:45} {statistics.median(times):10.1f} {min(times):8.1f} {max(times):8.1f}")
        store.close()


if __name__ == "__main__":
    main()
