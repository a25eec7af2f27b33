"""``manage.py eventstore_actors [--type T] [--prefix P] [--limit N] [--format table|json]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from django_eventstore import ActorSummary
from django_eventstore.core.limits import DEFAULT_PAGE, MAX_PAGE
from django_eventstore.management.base import StoreCommand, int_at_least, plural


class Command(StoreCommand):
    help = "List actors (ordered by id) with their latest version and snapshot version."
    formats = ("table", "json")

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--type", dest="actor_type", help="only actors of this type (the id's part before its first '-')")
        parser.add_argument("--prefix", help="only actors whose id starts with this")
        parser.add_argument("--limit", type=int_at_least(0), default=DEFAULT_PAGE, help="at most this many actors; 0 for all (default: %(default)s)")

    def run(self, *args: Any, actor_type: str | None, prefix: str | None, limit: int, format: str, **options: Any) -> None:
        actors, total = self.fetch(actor_type, prefix, limit)
        if format == "json":
            self.write_json([a.to_dict() for a in actors])
        else:
            self.write_table(
                ("ACTOR", "TYPE", "LATEST", "SNAPSHOT"),
                [(a.actor_id, a.actor_type, a.latest_version, a.snapshot_version) for a in actors],
            )
        more = f"; use --limit {total} (or 0) to see all" if len(actors) < total else ""
        self.note(f"{len(actors):,} of {plural(total, 'actor')}{more}")

    def fetch(self, actor_type: str | None, prefix: str | None, limit: int) -> tuple[list[ActorSummary], int]:
        """Up to ``limit`` actors (all when 0), paging through the store, and how many match."""
        actors: list[ActorSummary] = []
        after = None
        while True:
            want = MAX_PAGE if limit == 0 else min(MAX_PAGE, limit - len(actors))
            page = self.store.list_actors(actor_type=actor_type, prefix=prefix, limit=want, after=after)
            actors.extend(page.actors)
            after = page.next_after
            if after is None or len(actors) == limit:
                return actors, page.total
