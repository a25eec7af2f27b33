"""``manage.py eventstore_rotate_master_key``: re-wrap every data key with the first of the configured master keys."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from django_eventstore.management.base import StoreCommand, plural


class Command(StoreCommand):
    help = (
        "Re-wrap every actor's data key with the first key of EVENTSTORE['ENCRYPTION']['MASTER_KEY'] (a list, newest first); "
        "the events are not touched. Run it after adding a new master key at the head of the list, then remove the old one."
    )

    def run(self, *args: Any, **options: Any) -> None:
        if not self.store.encrypted:
            raise CommandError("EVENTSTORE has no ENCRYPTION setting: there is no master key to rotate")
        count = self.store.rotate_master_key()
        self.stdout.write(f"re-wrapped {plural(count, 'data key')} with the first master key", style_func=self.style.SUCCESS)
