"""Time travel: the state of an actor at a version that needs 10,000 events replayed, through the Python API, the admin and the REST API.

Run from the repository root: ``python bench/time_travel_bench.py [--events N] [--runs N]``.
It starts a throw-away nats-server (or uses ``EVENTSTORE_TEST_NATS_URL``), stores one actor of
N events (no snapshot) with an aggregate registered for its type, and times: ``state_at`` at the
latest version (N events replayed), the admin's actor page at that version (its State section
replays N - 1 events, applies the last one and diffs the two states, besides the page's own reads),
``GET actors/<id>/state/``, and the same three from a snapshot 10 events below the latest.
Each figure is the median of ``--runs`` calls after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402

from django_eventstore import ActorSnapshot, Event, get_store  # noqa: E402
from django_eventstore.aggregates import Aggregate, applies  # noqa: E402
from django_eventstore.testing import NatsServer  # noqa: E402
from django_eventstore.time_travel import state_at  # noqa: E402

ACTOR = "ttbench-1"


class Ledger(Aggregate):
    """A small aggregate: a balance, a count and the last memo."""

    actor_type = "ttbench"

    def __init__(self, actor_id: str, store: Any = None) -> None:
        super().__init__(actor_id, store)
        self.balance = 0
        self.postings = 0
        self.memo = ""

    @applies("Posted")
    def _posted(self, event: Event) -> None:
        self.balance += event.data["amount"]
        self.postings += 1
        self.memo = event.data["memo"]


    def post(self, amount: int) -> None:
        self.record("Posted", {"amount": amount, "memo": f"posting {amount}"})


def fill(events: int) -> None:
    """Post ``events`` amounts through the aggregate, saved 1,000 at a time (no snapshot: none is configured)."""
    get_store().setup()
    started = time.perf_counter()
    ledger = Ledger(ACTOR)
    for amount in range(events):
        ledger.post(amount)
        if len(ledger.pending) == 1000:
            ledger.save()
    ledger.save()
    print(f"filled {events:,} events of {ACTOR} in {time.perf_counter() - started:.1f} s", file=sys.stderr)


def report(calls: dict[str, Callable[[], object]], runs: int) -> None:
    """Print the median, min and max milliseconds of each call over ``runs`` calls, after one uncounted warm-up."""
    for name, call in calls.items():
        call()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
        print(f"{name:52} {statistics.median(times):10.1f} {min(times):8.1f} {max(times):8.1f}")


def get_ok(client: Client, url: str, expect: str) -> Callable[[], object]:
    def call() -> object:
        response = client.get(url)
        assert response.status_code == 200 and expect in response.content.decode(), (url, response.status_code)
        return response

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    n = args.events
    with ExitStack() as stack:
        url = os.environ.get("EVENTSTORE_TEST_NATS_URL") or stack.enter_context(NatsServer()).url
        settings.EVENTSTORE = {"SERVERS": [url], "STREAM": "TTBENCH", "SUBJECT_PREFIX": "ttbench", "TIMEOUT": 10.0}
        setup_test_environment()
        call_command("migrate", verbosity=0)
        fill(n)
        client = Client()
        client.force_login(User.objects.create_superuser("bench", password="bench"))
        page = reverse("admin:django_eventstore_actor_actor", args=[ACTOR])
        api = f"/api/eventstore/actors/{ACTOR}/state/"
        events = f"{n:,} events"
        calls: dict[str, Callable[[], object]] = {
            f"state_at, {events} replayed": lambda: state_at(ACTOR),
            f"admin actor page, state at {n:,} (replay + diff)": get_ok(client, f"{page}?at={n}", f"replayed from version 1: {events}"),
            f"REST state/, {events} replayed": get_ok(client, api, '"events_applied":' + str(n)),
            "(Ledger.load: the same events, no time travel)": lambda: Ledger.load(ACTOR),
        }
        print(f"{'call':52} {'median ms':>10} {'min':>8} {'max':>8}  ({args.runs} runs each, after one warm-up)")
        report(calls, args.runs)
        get_store().save_snapshot(ActorSnapshot(actor_id=ACTOR, version=n - 10, state=state_at(ACTOR, n - 10).state))
        calls = {
            "state_at from a snapshot 10 below": lambda: state_at(ACTOR),
            "admin actor page, from that snapshot": get_ok(client, f"{page}?at={n}", f"snapshot at version {n - 10} + 10 events"),
            "REST state/, from that snapshot": get_ok(client, api, '"events_applied":10'),
        }
        report(calls, args.runs)
        get_store().close()


if __name__ == "__main__":
    main()
