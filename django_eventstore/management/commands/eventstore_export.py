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
            latest = self.export_events(write, actor_type, actor_id, upcast)
            if actor_id is not None and not latest:
                raise CommandError(f"actor {actor_id!r} has no events (list the actors with manage.py eventstore_actors)")
            saved = self.export_snapshots(write, latest) if snapshots else 0
        seconds = time.monotonic() - started
        with_snapshots = f" and {plural(saved, 'snapshot')}" if snapshots else ""
        self.note(f"exported {plural(self.events, 'event')} of {plural(len(latest), 'actor')}{with_snapshots} in {seconds:.1f}s")

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

    def export_events(self, write: Write, actor_type: str | None, actor_id: str | None, upcast: bool) -> dict[str, int]:
        """Write the events up to the stream's current end; each exported actor's last version."""
        self.events = 0
        latest: dict[str, int] = {}
        upto = self.store.last_position()
        progress = Progress(self, upto, "exporting")
        for page in read_pages(self.store, actor_type=actor_type, actor_id=actor_id, upto=upto, upcast=upcast):
            for bad in page.errors:
                self.stderr.write(f"skipped malformed message at position {bad.position} on {bad.subject}: {bad.reason}")
            if page.events:
                write("".join(event_line(e) + "\n" for e in page.events))
                latest.update((e.actor_id, e.version) for e in page.events)  # type: ignore[misc]
                self.events += len(page.events)
            progress.update(page.position, self.events)
        progress.finish(self.events)
        return latest

    def export_snapshots(self, write: Write, latest: dict[str, int]) -> int:
        """Write the latest snapshot of each exported actor that has one (not ahead of its exported events)."""
        ids = sorted(latest)
        written = 0
        for start in range(0, len(ids), MAX_PAGE):
            for actor_id in sorted(self.store.snapshot_versions(ids[start : start + MAX_PAGE])):
                try:
                    snapshot = self.store.get_latest_snapshot(actor_id)
                except SnapshotNotFound:
                    continue  # malformed: the store logged why
                if snapshot.version > latest[actor_id]:
                    self.stderr.write(f"skipped snapshot of actor {actor_id!r} at version {snapshot.version}: ahead of its exported events")
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
