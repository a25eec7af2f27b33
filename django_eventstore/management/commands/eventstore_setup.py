"""``manage.py eventstore_setup [--dry-run]``: create or update the streams from settings, then show where their replicas are."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from django_eventstore.admin_views import placement_text
from django_eventstore.management.base import StoreCommand, to_json
from django_eventstore.management.commands.eventstore_status import NAME_WIDTH

_WOULD = {"created": "would create", "updated": "would update", "unchanged": "unchanged"}


class Command(StoreCommand):
    help = "Create or update the event and snapshot streams from settings.EVENTSTORE (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="show what would change without changing anything")

    def run(self, *args: Any, dry_run: bool, **options: Any) -> None:
        changes = self.store.setup(dry_run=dry_run)
        # where the replicas are once the streams exist (a dry run may have none to show)
        placements = {} if dry_run else {s.name: placement_text(s, NAME_WIDTH) for s in self.store.server_summary().streams}
        for change in changes:
            action = _WOULD[change.action] if dry_run else change.action
            style = self.style.SUCCESS if change.action == "unchanged" else self.style.WARNING
            self.stdout.write(f"stream {change.stream}: {action}", style_func=style)
            if self.verbosity >= 1:
                for key, (old, new) in sorted(change.changes.items()):
                    self.stdout.write(f"  {key}: {to_json(old)} -> {to_json(new)}")
            if change.stream in placements:
                self.stdout.write(f"  placement: {placements[change.stream]}")
