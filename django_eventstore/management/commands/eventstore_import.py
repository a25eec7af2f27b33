"""``manage.py eventstore_import FILE|- [--dry-run]``: load an export, keeping ids, versions and timestamps.

Two passes: the first checks every line against the file and the store
(JSON the store can write back as read, fields, versions, ids, snapshots,
sizes against the server's max_payload) and refuses the input, naming the
line, before anything is written; the second stores what is not stored yet,
in file order, with save_events (many publishes in flight, each checked by
the server). If the store fails during the second pass (unreachable, or
another writer came in between), the error says how much was stored and the
last line stored.
Events already stored (same id at the same version) are skipped, so importing
a file twice stores nothing the second time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any, Iterator

from django.core.management.base import CommandError, CommandParser

from django_eventstore import ActorSnapshot, Event, EventStoreError, SnapshotNotFound
from django_eventstore.management.base import Progress, StoreCommand, plural
from django_eventstore.management.exchange import FormatError, parse_line
from django_eventstore.store import explain

CHUNK = 1000  # events handed to one save_events call


@dataclass
class _Actor:
    """What the first pass learnt of one actor."""

    stored: int  # its latest version in the store
    last: int = 0  # its last version in the file so far
    last_line: int = 0
    present: list[tuple[int, Event]] = field(default_factory=list)  # (line, event) at or below ``stored``


@dataclass
class _Plan:
    actors: dict[str, _Actor] = field(default_factory=dict)
    new_events: int = 0
    snapshots: int = 0


@dataclass
class _Written:
    """What the second pass has stored so far: what an error while writing reports."""

    events: int = 0
    snapshots: int = 0
    last_line: int = 0

    def __str__(self) -> str:
        if not (self.events or self.snapshots):
            return "Nothing of this file was stored."
        return (
            f"Stored before the failure: {plural(self.events, 'event')} and {plural(self.snapshots, 'snapshot')}, the last from line {self.last_line}; "
            "importing the file again skips what is stored and stores the rest."
        )


class Command(StoreCommand):
    help = (
        "Import an eventstore_export file (JSON Lines) into the configured streams, keeping actor ids, versions, "
        "event ids and timestamps. Events already stored are skipped; input that is not a valid export, or that "
        "conflicts with the store, is refused with its line number before anything is written."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("file", metavar="FILE", help="an export file, or - for stdin")
        parser.add_argument("--dry-run", action="store_true", help="check the input and say what would be imported, without writing")

    def run(self, file: str, *, dry_run: bool, **options: Any) -> None:
        with self.open_source(file, options.get("stdin")) as source:
            plan = self.plan(source)
            present = sum(len(a.present) for a in plan.actors.values())
            if dry_run:
                self.stdout.write(
                    f"would import {plural(plan.new_events, 'event')} of {plural(len(plan.actors), 'actor')} "
                    f"({present:,} already stored) and up to {plural(plan.snapshots, 'snapshot')}"
                )
                return
            source.seek(0)
            written = _Written()
            try:
                self.write(source, plan, written)
            except _LineError as e:
                raise CommandError(f"line {e.line}: {_sentence(e.error)} {written}") from e.error
            except EventStoreError as e:
                raise CommandError(f"{_sentence(e)} {written}") from e
            events, snapshots = written.events, written.snapshots
        self.stdout.write(
            f"imported {plural(events, 'event')} of {plural(len(plan.actors), 'actor')} and {plural(snapshots, 'snapshot')} "
            f"({plural(present, 'event')} and {plural(plan.snapshots - snapshots, 'snapshot')} were already stored)",
            style_func=self.style.SUCCESS,
        )

    @contextlib.contextmanager
    def open_source(self, file: str, stdin: IO[Any] | None) -> Iterator[IO[bytes]]:
        """The input as a seekable binary file; stdin is copied to a temporary file first."""
        if file != "-":
            try:
                with open(file, "rb") as source:
                    yield source
            except OSError as e:
                raise CommandError(f"cannot read {file}: {e.strerror or e}") from e
            return
        stream = stdin or sys.stdin
        with tempfile.TemporaryFile() as spool:
            if hasattr(stream, "buffer"):
                shutil.copyfileobj(stream.buffer, spool)
            else:
                for text in stream:
                    spool.write(text.encode("utf-8") if isinstance(text, str) else text)
            spool.seek(0)
            yield spool

    def lines(self, source: IO[bytes], label: str) -> Iterator[tuple[int, Event | ActorSnapshot]]:
        """(line number, parsed item) of each non-blank line, with a progress bar; CommandError names a bad line."""
        progress = Progress(self, os.fstat(source.fileno()).st_size, label)
        done = items = 0
        for number, raw in enumerate(source, start=1):
            done += len(raw)
            if not raw.strip():
                continue
            try:
                item = parse_line(raw)
            except (FormatError, EventStoreError) as e:
                raise CommandError(f"line {number}: {e}") from e
            yield number, item
            items += 1
            progress.update(done, items)
        progress.finish(items)

    # ----- first pass -----

    def plan(self, source: IO[bytes]) -> _Plan:
        """Check every line against the file and the store; what the second pass must write."""
        plan = _Plan()
        seen_ids: dict[str, int] = {}
        for number, item in self.lines(source, "checking"):
            actor = self.actor(plan, item.actor_id)  # type: ignore[arg-type]
            try:
                self.store.check(item)  # after actor(): connected, the server's max_payload is known
            except EventStoreError as e:
                raise CommandError(f"line {number}: {e}") from e
            if isinstance(item, ActorSnapshot):
                latest = max(actor.stored, actor.last)
                if item.version > latest:
                    raise CommandError(f"line {number}: snapshot of actor {item.actor_id!r} at version {item.version} is ahead of its events (latest version {latest})")
                plan.snapshots += 1
                continue
            self.check_event(number, item, actor, seen_ids)
            if item.version <= actor.stored:  # type: ignore[operator]
                actor.present.append((number, item))
            else:
                plan.new_events += 1
            actor.last, actor.last_line = item.version, number  # type: ignore[assignment]
        for actor_id, actor in plan.actors.items():
            self.compare_stored(actor_id, actor.present)
        return plan

    def actor(self, plan: _Plan, actor_id: str) -> _Actor:
        actor = plan.actors.get(actor_id)
        if actor is None:
            actor = plan.actors[actor_id] = _Actor(stored=self.store.get_latest_version(actor_id))
        return actor

    @staticmethod
    def check_event(number: int, event: Event, actor: _Actor, seen_ids: dict[str, int]) -> None:
        """Versions of an actor follow each other; an event id appears once."""
        where = f"line {number}: actor {event.actor_id!r} version {event.version}"
        if actor.last and event.version != actor.last + 1:
            raise CommandError(f"{where} follows version {actor.last} (line {actor.last_line}): an actor's versions must be consecutive")
        if not actor.last and event.version > actor.stored + 1:  # type: ignore[operator]
            raise CommandError(f"{where} would leave a gap: the store has versions up to {actor.stored} and the file starts at {event.version}")
        if event.id in seen_ids:
            raise CommandError(f"line {number}: event id {event.id!r} is also used on line {seen_ids[event.id]}")
        seen_ids[event.id] = number

    def compare_stored(self, actor_id: str, present: list[tuple[int, Event]]) -> None:
        """The file's events at versions the store already has must be the stored ones (same id)."""
        if not present:
            return
        first = present[0][1].version
        stored = self.store.get_events(actor_id, first - 1, limit=len(present), upcast=False)  # type: ignore[operator]
        stored_ids = {e.version: e.id for e in stored}
        for number, event in present:
            if stored_ids.get(event.version) != event.id:
                raise CommandError(
                    f"line {number}: actor {actor_id!r} version {event.version} conflicts with the store: "
                    f"stored event id {stored_ids.get(event.version)!r}, the file has {event.id!r}"
                )

    # ----- second pass -----

    def write(self, source: IO[bytes], plan: _Plan, written: _Written) -> None:
        """Store the events not stored yet, in file order, many at a time, and the snapshots where they stand."""
        pending: list[tuple[int, Event]] = []
        for number, item in self.lines(source, "importing"):
            if isinstance(item, Event):
                if item.version > plan.actors[item.actor_id].stored:  # type: ignore[index, operator]
                    pending.append((number, item))
                if len(pending) == CHUNK:
                    self.store_events(pending, written)
                    pending = []
            else:
                self.store_events(pending, written)
                pending = []
                self.save_snapshot(item, number, written)
        self.store_events(pending, written)

    def store_events(self, pending: list[tuple[int, Event]], written: _Written) -> None:
        """Store events (line, event) in order with save_events; an error names the line of the first one not stored."""
        if not pending:
            return
        try:
            self.store.save_events([event for _, event in pending])
        except EventStoreError as e:  # save_events says which event failed and what it stored before it
            saved = len(e.saved or [])
            written.events += saved
            if saved:
                written.last_line = pending[saved - 1][0]
            if e.index is None:
                raise
            raise _LineError(pending[e.index][0], e) from e
        written.events += len(pending)
        written.last_line = pending[-1][0]

    def save_snapshot(self, snapshot: ActorSnapshot, line: int, written: _Written) -> None:
        """Save the snapshot unless the store has it, or a newer one."""
        try:
            try:
                if self.store.get_latest_snapshot(snapshot.actor_id).version >= snapshot.version:
                    return
            except SnapshotNotFound:
                pass
            self.store.save_snapshot(snapshot)
        except EventStoreError as e:
            raise _LineError(line, e) from e
        written.snapshots += 1
        written.last_line = line


class _LineError(Exception):
    """A store error while writing a line (the command says what was stored before it)."""

    def __init__(self, line: int, error: EventStoreError):
        super().__init__(line, error)
        self.line = line
        self.error = error


def _sentence(error: EventStoreError) -> str:
    """The store error for people (with the hint that helps), as a sentence."""
    return explain(error).rstrip(". ") + "."
