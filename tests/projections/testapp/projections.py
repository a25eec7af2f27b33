"""Projections of the tests: a ledger of ``acct`` actors that can be poisoned (also written once per batch), and a log of notes.

Environment (read on each event, so a test can "fix the code" between runs):
``PROJECTION_TEST_FIXED=1``, or an existing file named by
``PROJECTION_TEST_FIXED_FILE``, makes the ledger apply ``Poison`` events
instead of raising; ``PROJECTION_TEST_DELAY`` (seconds) slows each handler down so a
kill lands inside a batch.
"""

from __future__ import annotations

import os
import time
from collections import Counter

from django.db.models import F

from django_eventstore import Event
from django_eventstore.projections import Projection, handles

from .models import Applied, Balance, BatchBalance


def _digest(event: Event) -> None:
    """A Poison event fails its handler until the code is "fixed" (environment)."""
    fix_file = os.environ.get("PROJECTION_TEST_FIXED_FILE")
    if os.environ.get("PROJECTION_TEST_FIXED") != "1" and not (fix_file and os.path.exists(fix_file)):
        raise ValueError(f"cannot digest {event.data.get('what', 'this')}")


def _slow() -> None:
    delay = float(os.environ.get("PROJECTION_TEST_DELAY") or 0)
    if delay:
        time.sleep(delay)  # simulates a handler's work, so that kill -9 interrupts a batch


class Ledger(Projection):
    name = "tests.ledger"
    actor_types = ["acct"]
    batch_size = int(os.environ.get("PROJECTION_TEST_BATCH") or 50)

    def _apply(self, event: Event, amount: int) -> None:
        _slow()
        Applied.objects.create(projection=self.name, position=event.position, actor_id=event.actor_id, event_type=event.event_type)
        Balance.objects.get_or_create(actor_id=event.actor_id)
        Balance.objects.filter(actor_id=event.actor_id).update(total=F("total") + amount, events=F("events") + 1)

    @handles("Deposited")
    def deposited(self, event: Event) -> None:
        self._apply(event, event.data["amount"])

    @handles("Poison")
    def poison(self, event: Event) -> None:
        _digest(event)
        self._apply(event, 0)

    def reset(self) -> None:
        Applied.objects.filter(projection=self.name).delete()
        Balance.objects.all().delete()


class Notes(Projection):
    name = "tests.notes"

    @handles("Noted", "Deposited")
    def noted(self, event: Event) -> None:
        Applied.objects.create(projection=self.name, position=event.position, actor_id=event.actor_id, event_type=event.event_type)

    def reset(self) -> None:
        Applied.objects.filter(projection=self.name).delete()


class BatchedLedger(Projection):
    """The ledger as a fast projection writes it: the handlers collect, ``flush()`` writes the batch in three queries."""

    name = "tests.ledger-batched"
    actor_types = ["acct"]
    batch_size = Ledger.batch_size

    def begin_batch(self) -> None:
        self.applied: list[Applied] = []
        self.totals: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()

    def _collect(self, event: Event, amount: int) -> None:
        _slow()
        self.applied.append(Applied(projection=self.name, position=event.position, actor_id=event.actor_id, event_type=event.event_type))
        self.totals[event.actor_id] += amount
        self.counts[event.actor_id] += 1

    @handles("Deposited")
    def deposited(self, event: Event) -> None:
        self._collect(event, event.data["amount"])

    @handles("Poison")
    def poison(self, event: Event) -> None:
        _digest(event)
        self._collect(event, 0)

    def flush(self) -> None:
        Applied.objects.bulk_create(self.applied)
        known = BatchBalance.objects.in_bulk(list(self.counts))
        rows = [
            BatchBalance(
                actor_id=actor,
                total=(known[actor].total if actor in known else 0) + self.totals[actor],
                events=(known[actor].events if actor in known else 0) + count,
            )
            for actor, count in self.counts.items()
        ]
        BatchBalance.objects.bulk_create(rows, update_conflicts=True, unique_fields=["actor_id"], update_fields=["total", "events"])

    def reset(self) -> None:
        Applied.objects.filter(projection=self.name).delete()
        BatchBalance.objects.all().delete()
