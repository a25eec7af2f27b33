"""``manage.py eventstore_export FILE|- [--type T] [--actor ACTOR_ID] [--snapshots]``: JSON Lines in stream order."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from typing import Any, Callable, Iterator

from django.core.management.base import CommandError, CommandParser

from django_eventstore import SnapshotNotFound
from django_eventstore.core.limits import MAX_PAGE
from django_eventstore.management.base import Progress, StoreCommand, plural
from django_eventstore.management.exchange import event_line, snapshot_line
from django_eventstore.paging import read_pages

Write = Callable[[str], Any]


class Command(StoreCommand):
    help = (
        "Export events as JSON Lines in stream order, one event per line with the REST API's field names "
        "(and, with --snapshots, each actor's latest snapshot as a line marked \"kind\": \"snapshot\")."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("file", metavar="FILE", help="where to write, or - for stdout")
        parser.add_argument("--type", dest="actor_type", help="only actors of this type")
        parser.add_argument("--actor", dest="actor_id", help="only this actor")
        parser.add_argument("--snapshots", action="store_true", help="also export each actor's latest snapshot")
        parser.add_argument(
            "--upcast", action="store_true", help="write events upcast to their newest schema (by default as stored, so an import reproduces them)"
        )

    def run(self, file: str, *, actor_type: str | None, actor_id: str | None, snapshots: bool, upcast: bool, **options: Any) -> None:
        started = time.monotonic()
        with self.open_target(file) as write:
            upto = self.export_events(write, actor_type, actor_id, upcast)
            if actor_id is not None and not self.events:
                raise CommandError(f"actor {actor_id!r} has no events (list the actors with manage.py eventstore_actors)")
            saved = self.export_snapshots(write, upto, actor_type, actor_id) if snapshots else 0
        seconds = time.monotonic() - started
        with_snapshots = f" and {plural(saved, 'snapshot')}" if snapshots else ""
        self.note(f"exported {plural(self.events, 'event')} of {plural(self.actors, 'actor')}{with_snapshots} in {seconds:.1f}s")

    @contextlib.contextmanager
    def open_target(self, file: str) -> Iterator[Write]:
        """A writer to stdout, or to a temporary file renamed to FILE once the export is complete."""
        if file == "-":
            yield lambda text: self.stdout.write(text, ending="")
            return
        directory = os.path.dirname(os.path.abspath(file))
        try:
            fd, partial = tempfile.mkstemp(prefix=".eventstore-export-", dir=directory)
        except OSError as e:
            raise CommandError(f"cannot write {file}: {e.strerror}") from e
        try:
            os.chmod(fd, _mode_for(file))  # mkstemp makes it 0600; the file gets the mode a plain open() would
            with open(fd, "w", encoding="utf-8", newline="\n") as out:
                yield out.write
            os.replace(partial, file)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            if isinstance(e, OSError):
                raise CommandError(f"cannot write {file}: {e}") from e
            raise

    def export_events(self, write: Write, actor_type: str | None, actor_id: str | None, upcast: bool) -> int:
        """Write the events up to the stream's current end, which it returns; count events and actors (their version 1s).

        Nothing is kept per actor, so the export's memory does not grow with the store.
        """
        self.events = self.actors = 0
        upto = self.store.last_position()
        progress = Progress(self, upto, "exporting")
        for page in read_pages(self.store, actor_type=actor_type, actor_id=actor_id, upto=upto, upcast=upcast):
            for bad in page.errors:
                self.stderr.write(f"skipped malformed message at position {bad.position} on {bad.subject}: {bad.reason}")
            if page.events:
                write("".join(event_line(e) + "\n" for e in page.events))
                self.events += len(page.events)
                self.actors += sum(1 for e in page.events if e.version == 1)
            progress.update(page.position, self.events)
        progress.finish(self.events)
        return upto

    def export_snapshots(self, write: Write, upto: int, actor_type: str | None, actor_id: str | None) -> int:
        """Write the latest snapshot of each exported actor that has one, unless its event is past the exported ones."""
        ids = [actor_id] if actor_id is not None else self.store.snapshot_actor_ids(actor_type)
        written = 0
        for start in range(0, len(ids), MAX_PAGE):
            for snapshot_actor in sorted(self.store.snapshot_versions(ids[start : start + MAX_PAGE])):
                try:
                    snapshot = self.store.get_latest_snapshot(snapshot_actor)
                except SnapshotNotFound:
                    continue  # malformed, or its actor forgotten: the store logged why
                if not snapshot.position or snapshot.position > upto:
                    self.stderr.write(f"skipped snapshot of actor {snapshot_actor!r} at version {snapshot.version}: ahead of its exported events")
                    continue
                write(snapshot_line(snapshot) + "\n")
                written += 1
        return written


def _mode_for(file: str) -> int:
    """The mode of the file being replaced, else 0666 less the user's umask (as open() and shell redirections do)."""
    try:
        return stat.S_IMODE(os.stat(file).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (setting it briefly would affect other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o22)
    os.umask(mask)
    return mask
