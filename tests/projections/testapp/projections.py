"""Projections of the tests: a ledger of ``acct`` actors that can be poisoned, and a log of every actor's notes.

Environment (read on each event, so a test can "fix the code" between runs):
``PROJECTION_TEST_FIXED=1``, or an existing file named by
``PROJECTION_TEST_FIXED_FILE``, makes the ledger apply ``Poison`` events
instead of raising; ``PROJECTION_TEST_DELAY`` (seconds) slows each handler down so a
kill lands inside a batch.
"""

from __future__ import annotations

import os
import time

from django.db.models import F

from django_eventstore import Event
from django_eventstore.projections import Projection, handles

from .models import Applied, Balance


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
        fix_file = os.environ.get("PROJECTION_TEST_FIXED_FILE")
        if os.environ.get("PROJECTION_TEST_FIXED") != "1" and not (fix_file and os.path.exists(fix_file)):
            raise ValueError(f"cannot digest {event.data.get('what', 'this')}")
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
