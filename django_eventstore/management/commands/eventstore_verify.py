"""``manage.py eventstore_verify [--type T] [--actor ACTOR_ID] [--upcast] [--format table|json]``: scan the events for problems; exit 1 when any."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_eventstore.core.events import Malformed
from django_eventstore.core.limits import MAX_PAGE
from django_eventstore.management.base import Progress, StoreCommand, plural
from django_eventstore.paging import read_pages
from django_eventstore.upcasting import registry


class Command(StoreCommand):
    help = (
        "Check the events: malformed messages, headers disagreeing with bodies, versions out of order or with gaps, "
        "snapshots ahead of their actor or of actors with no events; with --upcast, events an upcaster fails on. "
        "Prints one line per problem (--format json: a JSON list of them); exit status 1 when it found any. "
        "With encryption on, it also says how many events and snapshots are stored encrypted and how many in clear."
    )
    formats = ("table", "json")

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--type", dest="actor_type", help="only actors of this type")
        parser.add_argument("--actor", dest="actor_id", help="only this actor")
        parser.add_argument("--upcast", action="store_true", help="also run every upcaster over the events and report the ones it fails on")

    def run(self, *args: Any, actor_type: str | None, actor_id: str | None, format: str, upcast: bool, **options: Any) -> None:
        self.format = format
        self.upcast = upcast
        self.problems: list[dict[str, Any]] = []
        self.events = 0
        latest = self.check_events(actor_type, actor_id)
        if self.store.encrypted:
            self.report_encryption()
        snapshots = self.check_snapshots(latest, actor_type, actor_id)
        if actor_id is not None and not latest and not self.problems:
            raise CommandError(f"actor {actor_id!r} has no events (list the actors with manage.py eventstore_actors)")
        checked = f"{plural(self.events, 'event')} of {plural(len(latest), 'actor')} and {plural(snapshots, 'snapshot')}"
        if format == "json":
            self.write_json(self.problems)
        if self.problems:
            raise CommandError(f"found {plural(len(self.problems), 'problem')} in {checked}", returncode=1)
        if format == "json":
            self.note(f"no problems in {checked}")
        else:
            self.stdout.write(f"no problems in {checked}", style_func=self.style.SUCCESS)

    def problem(self, kind: str, position: int | None, text: str, *, actor_id: str | None = None, subject: str | None = None) -> None:
        """Record a problem; in table format, print it at once (a long scan shows what it finds as it goes)."""
        self.problems.append({"kind": kind, "position": position, "actor_id": actor_id, "subject": subject, "detail": text})
        if self.format == "table":
            where = f"subject {subject}" if subject is not None else f"actor {actor_id!r}"
            self.stdout.write(f"position {'-' if position is None else position}  {where}: {text}", style_func=self.style.ERROR)

    def check_events(self, actor_type: str | None, actor_id: str | None) -> dict[str, int]:
        """Scan in stream order; report malformed messages and version jumps. Each actor's last version seen."""
        latest: dict[str, int] = {}
        upto = self.store.last_position()
        progress = Progress(self, upto, "verifying")
        for page in read_pages(self.store, actor_type=actor_type, actor_id=actor_id, upto=upto, upcast=False):
            for bad in page.errors:
                self.problem("malformed_message", bad.position, f"malformed message: {bad.reason}", subject=bad.subject)
            self.events += len(page.events)
            for event in page.events:
                if self.upcast:
                    try:
                        registry.upcast(event)
                    except Malformed as e:
                        self.problem("upcast_failed", event.position, str(e), actor_id=event.actor_id)
                actor, version = event.actor_id or "", event.version or 0  # events read back carry both
                previous = latest.get(actor, 0)
                if version != previous + 1:
                    kind = "version_gap" if version > previous + 1 else "version_out_of_order"
                    self.problem(kind, event.position, _jump(previous, version), actor_id=actor)
                latest[actor] = max(previous, version)
            progress.update(page.position, len(latest))
        progress.finish(len(latest))
        return latest

    def report_encryption(self) -> None:
        """How the stored data is kept: sealed with the actors' keys, or in clear (written before encryption was on)."""
        census = self.store.census()
        clear = f", {plural(len(census.plain_actors), 'actor')} with data in clear" if census.plain_actors else ""
        self.note(
            f"encryption: {census.events_sealed:,} events encrypted, {census.events_plain:,} in clear, {census.events_without_data:,} without data"
            f"{clear}; {census.snapshots_sealed:,} snapshots encrypted, {census.snapshots_plain:,} in clear"
        )

    def check_snapshots(self, latest: dict[str, int], actor_type: str | None, actor_id: str | None) -> int:
        """Report snapshots above their actor's latest version, or of actors with no events; how many were checked."""
        ids = [actor_id] if actor_id is not None else self.store.snapshot_actor_ids(actor_type)
        checked = 0
        for start in range(0, len(ids), MAX_PAGE):
            versions = self.store.snapshot_versions(ids[start : start + MAX_PAGE])
            checked += len(versions)
            for snapshot_actor, version in sorted(versions.items()):
                if snapshot_actor not in latest:
                    self.problem("snapshot_without_events", None, f"snapshot at version {version}, but the actor has no events", actor_id=snapshot_actor)
                elif version > latest[snapshot_actor]:
                    text = f"snapshot at version {version} is ahead of the latest event, version {latest[snapshot_actor]}"
                    self.problem("snapshot_ahead", None, text, actor_id=snapshot_actor)
        return checked


def _jump(previous: int, version: int) -> str:
    if version > previous + 1:
        missing = f"version {previous + 1}" if version == previous + 2 else f"versions {previous + 1}..{version - 1}"
        return f"version {version} follows version {previous}: {missing} missing"
    return f"version {version} after version {previous}: out of order or repeated"
