"""``manage.py eventstore_project [NAME ...] [--once] [--rebuild NAME] [--list [--format table|json]]``: run projections."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from django_eventstore.management.base import StoreCommand, plural
from django_eventstore.projections import ProjectionError, get_projections, rebuild, states
from django_eventstore.projections.runner import catch_up_projection, follow

NO_PROJECTIONS = "no projections: define Projection subclasses in an installed app's projections.py"


class Command(StoreCommand):
    help = (
        "Apply the events stream to the projections (all, or the NAMEs given), exactly once: catch up, then follow new events "
        "until SIGINT/SIGTERM (each finishes its current batch). --once stops when caught up with what was stored at start."
    )
    formats = ("table", "json")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="projections to run (default: all)")
        parser.add_argument("--once", action="store_true", help="catch up with the events stored now, then exit")
        parser.add_argument("--rebuild", action="append", default=[], metavar="NAME", help="empty this projection's read models and replay it from the start first")
        parser.add_argument("--list", action="store_true", dest="show_list", help="show each projection's position, lag, last update and error, then exit")
        super().add_arguments(parser)

    def run(self, *args: Any, names: list[str], once: bool, rebuild: list[str], show_list: bool, format: str, **options: Any) -> None:
        try:
            projections = get_projections(names or None)
            get_projections(rebuild)
        except LookupError as e:
            raise CommandError(str(e.args[0])) from None
        if show_list:
            self._list(names or None, format)
            return
        if not projections:
            raise CommandError(NO_PROJECTIONS)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, self._stopper(stop)) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for name in dict.fromkeys(rebuild):
                self._rebuild(name)
            if once:
                self._once(projections, stop)
            else:
                self.note(f"Following {plural(len(projections), 'projection')}: {', '.join(projections)}. Stop with Ctrl-C.")
                follow([*projections], stop)
                self.note("Stopped.")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @staticmethod
    def _stopper(stop: threading.Event) -> Any:
        def handler(signum: int, frame: FrameType | None) -> None:
            stop.set()

        return handler

    def _rebuild(self, name: str) -> None:
        try:
            position = rebuild(name)
        except ProjectionError as e:
            raise CommandError(f"rebuild of {e}") from None
        except NotImplementedError as e:
            raise CommandError(str(e)) from None
        self.note(f"Rebuilt {name!r} up to position {position}.")

    def _once(self, projections: dict[str, Any], stop: threading.Event) -> None:
        target = self.store.last_position()
        failures: list[str] = []
        for name, projection in projections.items():
            try:
                position = catch_up_projection(projection, target, stop)
            except ProjectionError as e:
                failures.append(str(e))
                continue
            self.note(f"{name}: at position {position}", level=2)
        if failures:
            raise CommandError("; ".join(failures))

    def _list(self, names: list[str] | None, format: str) -> None:
        """The projections' states; the table also shows checkpoints no projection in code uses (JSON keeps to projections in code)."""
        if format == "json":
            self.write_json([state.to_dict() for state in states(names)])
            return
        found = states(names, orphans=True)
        if not found:
            raise CommandError(NO_PROJECTIONS)
        rows = [
            (
                s.name if s.in_code else f"{s.name} (not in code{'' if s.database == DEFAULT_DB_ALIAS else f', database {s.database!r}'})",
                s.position,
                s.lag if s.in_code else None,
                s.updated_at.strftime("%Y-%m-%d %H:%M:%S") if s.updated_at else None,
                f"at {s.error_position}: {s.error}" if s.error else "",
            )
            for s in found
        ]
        self.write_table(("NAME", "POSITION", "LAG", "UPDATED", "ERROR"), rows)
