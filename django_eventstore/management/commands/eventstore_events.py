"""``manage.py eventstore_events ACTOR_ID [--from-version N] [--limit N] [--format table|json|jsonl] [--follow]``."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from django.core.management.base import CommandError, CommandParser

from django_eventstore import Event, MalformedMessage
from django_eventstore.core.subjects import actor_type
from django_eventstore.management.base import StoreCommand, int_at_least, plural, to_json


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


class Command(StoreCommand):
    help = "Show an actor's events in version order; --follow keeps printing new ones until Ctrl-C."
    formats = ("table", "json", "jsonl")
    COLUMNS = (("VERSION", 7), ("TIMESTAMP", 27), ("EVENT_TYPE", 24), ("DATA", 0))

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.stop = threading.Event()  # set from another thread to end --follow, as Ctrl-C does

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("actor_id", help="the actor whose events to show, e.g. order-42")
        parser.add_argument("--from-version", type=int_at_least(0), default=0, help="only events after this version")
        parser.add_argument("--limit", type=int_at_least(1), help="at most this many events (before following)")
        parser.add_argument("--follow", action="store_true", help="keep printing events as they are stored, until Ctrl-C")
        parser.add_argument(
            "--poll-interval", type=positive_seconds, default=1.0,
            help="with --follow, at most this many seconds between checks for Ctrl-C while no event comes (default: %(default)s); new events show at once",
        )

    def run(
        self, actor_id: str, *, from_version: int, limit: int | None, format: str, follow: bool, poll_interval: float, **options: Any
    ) -> None:
        if follow and format == "json":
            raise CommandError("--follow writes events as they come: use --format jsonl or table, not json")
        result = self.store.get_events_with_errors(actor_id, from_version, limit=limit)
        if not result.events and not result.errors and not follow and self.store.get_latest_version(actor_id) == 0:
            raise CommandError(f"actor {actor_id!r} has no events (list the actors with manage.py eventstore_actors)")
        if format == "json":
            self.report_malformed(result.errors)
            self.write_json([e.to_dict() for e in result.events])
        else:
            if format == "table":
                self.write_row([name for name, _ in self.COLUMNS], self.style.MIGRATE_HEADING)
            version, position = self.show(result.events, result.errors, format, from_version, 0)
        if not follow:
            self.say_what_is_left(actor_id, from_version, result.events, limit)
            return
        self.note(f"waiting for new events of actor {actor_id!r} after version {version} (Ctrl-C to stop)")
        feed = self.store.subscribe(position, actor_types=[actor_type(actor_id)], idle_timeout=poll_interval)
        try:
            for batch in feed:  # the store's live feed: a batch as soon as events are stored, an empty one when idle
                if self.stop.is_set():
                    break
                version, _ = self.show([e for e in batch.events if e.actor_id == actor_id], [], format, version, batch.position)
        except KeyboardInterrupt:
            self.note("stopped")
        finally:
            feed.close()

    def say_what_is_left(self, actor_id: str, from_version: int, shown: list[Event], limit: int | None) -> None:
        """On stderr: how many events --limit left out, or that --from-version is past the actor's last event."""
        if shown and (limit is None or len(shown) < limit):
            return
        latest = self.store.get_latest_version(actor_id)
        if not shown:
            if latest:
                self.note(f"no events after version {from_version}: actor {actor_id!r} is at version {latest}")
            return
        last = shown[-1].version or 0
        if latest > last:
            more = plural(latest - last, "more event")
            self.note(f"{plural(len(shown), 'event')} shown, {more} up to version {latest}; use --from-version {last} to see them")

    def show(self, events: list[Event], errors: list[MalformedMessage], format: str, version: int, position: int) -> tuple[int, int]:
        """Write the events above ``version`` (and warn of malformed messages); the last version and position seen."""
        self.report_malformed(errors)
        for event in events:
            if event.version <= version:  # type: ignore[operator]
                continue
            if format == "jsonl":
                self.stdout.write(to_json(event.to_dict()))
            else:
                self.write_row(self.cells(event))
            version = event.version  # type: ignore[assignment]
        self.stdout.flush()
        return version, max([position] + [e.position or 0 for e in events] + [m.position for m in errors])

    def report_malformed(self, errors: list[MalformedMessage]) -> None:
        for bad in errors:
            self.stderr.write(f"malformed message at position {bad.position} skipped: {bad.reason} (see manage.py eventstore_verify)")

    @staticmethod
    def cells(event: Event) -> list[str]:
        return [str(event.version), event.to_dict()["timestamp"], event.event_type, to_json(event.data)]

    def write_row(self, cells: list[str], style_func: Any = None) -> None:
        self.stdout.write("  ".join(c.ljust(w) for c, (_, w) in zip(cells, self.COLUMNS)).rstrip(), style_func=style_func)
