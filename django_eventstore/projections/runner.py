"""Applying the events stream to projections, exactly once: catch-up, rebuild, read-your-writes waits, and the follow loop.

Each batch runs in ``transaction.atomic(using=projection.database)`` and
starts with a compare-and-set of the checkpoint, from the position the batch
starts after to the position it ends at. When it matches no row another
runner (or a rebuild) moved the checkpoint: nothing of the batch is committed
and the runner re-reads the checkpoint. Taking the checkpoint's row first also
makes two runners of one projection queue on that row, before any handler
writes, on every database Django supports.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generator, Iterable, cast

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, DatabaseError, IntegrityError, connections, router, transaction
from django.utils import timezone

from django_eventstore import get_store
from django_eventstore.core.events import Event, FeedBatch, ReadResult

from .base import Projection
from .errors import ProjectionError, ProjectionTimeout, describe
from .registry import get_projections

if TYPE_CHECKING:
    from django_eventstore.core.facade import EventStore
    from django_eventstore.models import ProjectionCheckpoint

log = logging.getLogger("django_eventstore.projections")

#: Backoff of a failing projection in the follow loop: 1 s doubling up to 60 s.
FIRST_RETRY = 1.0
MAX_RETRY = 60.0
#: How long the live feed waits with nothing new before the follow loop looks at its stop flag.
IDLE_TIMEOUT = 0.5


class CheckpointMoved(Exception):
    """The compare-and-set of a checkpoint matched no row: another runner or a rebuild moved it."""


class _Failed(Exception):
    """A handler (``index``: the failing event's in the batch) or ``begin_batch``/``flush`` (``index`` None) raised."""

    def __init__(self, index: int | None, cause: Exception):
        self.index = index
        self.cause = cause


# ----- checkpoints -----


def _checkpoints() -> type[ProjectionCheckpoint]:
    """The checkpoint model, imported on use: this module may be imported before the app registry is ready."""
    from django_eventstore.models import ProjectionCheckpoint

    return ProjectionCheckpoint


def checkpoint(projection: Projection) -> ProjectionCheckpoint:
    """The projection's checkpoint row, created at position 0 on first use."""
    model = _checkpoints()
    objects = model.objects.using(projection.database)
    try:
        return objects.get(name=projection.name)
    except model.DoesNotExist:
        pass
    try:
        with transaction.atomic(using=projection.database):
            return objects.create(name=projection.name, position=0)
    except IntegrityError:  # another runner created it meanwhile
        return objects.get(name=projection.name)


def _commit(projection: Projection, start: int, end: int, events: list[Event], error: tuple[str, int] | None = None) -> None:
    """One transaction: move the checkpoint start -> end (or fail with CheckpointMoved), then apply the events."""
    db = projection.database
    with transaction.atomic(using=db):
        moved = (
            _checkpoints()
            .objects.using(db)
            .filter(name=projection.name, position=start)
            .update(
                position=end,
                updated_at=timezone.now(),
                error=error[0] if error else "",
                error_position=error[1] if error else None,
            )
        )
        if moved != 1:
            raise CheckpointMoved(f"checkpoint of projection {projection.name!r} is no longer at {start}")
        if events:
            _handle(projection, events)


def _handle(projection: Projection, events: list[Event]) -> None:
    """``begin_batch()``, the handlers, ``flush()``: any error fails the batch (it is recorded, not lost)."""
    try:
        projection.begin_batch()
    except Exception as e:
        raise _Failed(None, e) from e
    handle = projection.handle
    for index, event in enumerate(events):
        try:
            handle(event)
        except Exception as e:
            raise _Failed(index, e) from e
    try:
        projection.flush()
    except Exception as e:
        raise _Failed(None, e) from e


def apply_batch(projection: Projection, start: int, events: Iterable[Event], end: int) -> int:
    """Apply the events (all after ``start``) and move the checkpoint to ``end``, exactly once; the new position.

    A handler that raises rolls the batch back; then the events before the
    failing one are applied, the checkpoint stops just before it with the
    error recorded, and ProjectionError is raised. When ``flush()`` raises,
    the failing event is found by applying the batch one event at a time.
    CheckpointMoved when another runner moved the checkpoint (nothing is applied).
    """
    wanted = [event for event in events if projection.wants(event)]
    try:
        _commit(projection, start, end, wanted)
        return end
    except _Failed as e:
        failed = e
    if failed.index is not None:
        bad = wanted[failed.index]
        assert bad.position is not None
        try:
            _commit(projection, start, bad.position - 1, wanted[: failed.index], (describe(failed.cause), bad.position))
        except _Failed:
            pass  # flush() failed on the shorter batch, or an earlier handler did this time: look event by event
        else:
            raise ProjectionError(projection.name, bad.position, failed.cause) from failed.cause
    return _one_at_a_time(projection, start, wanted, end, failed.cause)


def _one_at_a_time(projection: Projection, start: int, events: list[Event], end: int, cause: Exception) -> int:
    """Apply a failed batch one event per transaction, to stop just before the event that fails; ``end`` if none does."""
    position = start
    for event in events:
        assert event.position is not None
        try:
            _commit(projection, position, event.position, [event])
        except _Failed as e:
            _commit(projection, position, event.position - 1, [], (describe(e.cause), event.position))
            raise ProjectionError(projection.name, event.position, e.cause) from e.cause
        position = event.position
    log.warning(
        "projection %r: the batch after position %s failed (%s) but went through one event at a time; its result should not depend on where batches end",
        projection.name,
        start,
        describe(cause),
    )
    if position < end:
        _commit(projection, position, end, [])
    return end


# ----- catch-up and rebuild -----


def _read_batch(store: EventStore, projection: Projection, position: int, target: int) -> tuple[ReadResult, int]:
    """The next events after ``position`` for the projection, and the position the read covers (past skipped messages)."""
    types = projection.actor_types
    page = store.read_all_with_errors(position, projection.batch_size, actor_type=types[0] if types and len(types) == 1 else None)
    seen = [event.position for event in page.events if event.position is not None] + [error.position for error in page.errors]
    end = max(seen, default=position)
    if len(seen) < projection.batch_size:  # the read reached the stream's end, which was at or past target
        end = max(end, target)
    return page, end


class _ReadAhead:
    """Reads the projection's next batch in a worker thread while the current one is applied (the store and the database work at once)."""

    def __init__(self, store: EventStore, projection: Projection, target: int):
        self.store = store
        self.projection = projection
        self.target = target
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"projection {projection.name} read-ahead")
        self.ahead: tuple[int, Future[tuple[ReadResult, int]]] | None = None

    def read(self, position: int) -> tuple[ReadResult, int]:
        """The batch after ``position``: the one read ahead when it starts there, else read now."""
        ahead, self.ahead = self.ahead, None
        if ahead is not None and ahead[0] == position:
            return ahead[1].result()
        return _read_batch(self.store, self.projection, position, self.target)

    def read_ahead(self, position: int) -> None:
        """Start reading the batch after ``position`` (unless the target is reached)."""
        if position < self.target:
            self.ahead = (position, self.pool.submit(_read_batch, self.store, self.projection, position, self.target))

    def close(self) -> None:
        self.ahead = None
        self.pool.shutdown(wait=True, cancel_futures=True)  # a read under way ends within the store's TIMEOUT


def catch_up_projection(projection: Projection, target: int | None = None, stop: threading.Event | None = None, deadline: float | None = None) -> int:
    """Apply to one projection everything up to ``target`` (default: the stream's last position now); its position.

    It stops early, after a whole batch, once ``stop`` is set or the
    ``time.monotonic()`` ``deadline`` has passed. The next batch is read while
    the current one is applied, so the store's reads and the database's writes overlap.
    """
    store = get_store()
    if target is None:
        target = store.last_position()
    position = checkpoint(projection).position
    reads = _ReadAhead(store, projection, target)
    try:
        while position < target and not (stop is not None and stop.is_set()) and not (deadline is not None and time.monotonic() >= deadline):
            page, end = reads.read(position)
            if end <= position:
                break
            reads.read_ahead(end)
            for error in page.errors:
                log.warning("projection %r skips the malformed message at position %s: %s", projection.name, error.position, error.reason)
            try:
                position = apply_batch(projection, position, page.events, end)
            except CheckpointMoved:
                position = checkpoint(projection).position
    finally:
        reads.close()
    return position


def catch_up(names: Iterable[str] | None = None) -> dict[str, int]:
    """Apply, in this process, everything stored at call time to the projections; name -> position.

    Every projection is caught up even when one fails; then the first
    failure is raised as ProjectionError.
    """
    projections = get_projections(names)
    target = get_store().last_position()
    positions: dict[str, int] = {}
    failures: list[ProjectionError] = []
    for name, projection in projections.items():
        try:
            positions[name] = catch_up_projection(projection, target)
        except ProjectionError as e:
            failures.append(e)
    if failures:
        raise failures[0]
    return positions


async def acatch_up(names: Iterable[str] | None = None) -> dict[str, int]:
    """``catch_up`` for async code (it runs in a worker thread: handlers use the sync ORM)."""
    return await sync_to_async(catch_up)(names)


def rebuild(name: str, *, max_seconds: float | None = None) -> int:
    """Empty a projection's read models and set its checkpoint to 0 in one transaction, then catch up; its position.

    With ``max_seconds``, the catch-up stops after the batch that passes that
    time (the position is then below the stream's last): the projection runner
    applies the rest, as it would after any stop.
    """
    projection = get_projections([name])[name]
    target = get_store().last_position()
    checkpoint(projection)
    with transaction.atomic(using=projection.database):
        _checkpoints().objects.using(projection.database).filter(name=name).update(position=0, updated_at=timezone.now(), error="", error_position=None)
        projection.reset()
    log.info("projection %r reset for a rebuild", name)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    return catch_up_projection(projection, target, deadline=deadline)


# ----- read-your-writes -----


@dataclass(frozen=True)
class ProjectionState:
    """Where a projection is: its checkpoint's fields and its lag behind the stream."""

    name: str
    position: int
    lag: int
    updated_at: datetime | None
    error: str
    error_position: int | None
    #: False for a checkpoint no projection in code uses (renamed, removed, or moved to another database): nothing updates it.
    in_code: bool = True
    #: The database alias the checkpoint is in.
    database: str = DEFAULT_DB_ALIAS

    def to_dict(self) -> dict[str, Any]:
        """The keys of ``eventstore_project --list --format json``."""
        return {
            "name": self.name,
            "position": self.position,
            "lag": self.lag,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "error": self.error,
            "error_position": self.error_position,
        }


def _rows(projections: dict[str, Projection]) -> dict[str, ProjectionCheckpoint]:
    by_db: dict[str, list[str]] = {}
    for name, projection in projections.items():
        by_db.setdefault(projection.database, []).append(name)
    rows: dict[str, ProjectionCheckpoint] = {}
    for db, names in by_db.items():
        rows.update((row.name, row) for row in _checkpoints().objects.using(db).filter(name__in=names))
    return rows


def states(names: Iterable[str] | None = None, last_position: int | None = None, *, orphans: bool = False) -> list[ProjectionState]:
    """Position, lag (events in the stream after the checkpoint), updated_at and error of each projection.

    With ``orphans`` (and no ``names``), checkpoints that no projection in code
    uses follow, with ``in_code`` False.
    """
    projections = get_projections(names)
    if last_position is None:
        last_position = get_store().last_position()
    rows = _rows(projections)
    result = []
    for name, projection in projections.items():
        row = rows.get(name)
        position = row.position if row else 0
        result.append(
            ProjectionState(
                name=name,
                position=position,
                lag=max(last_position - position, 0),
                updated_at=row.updated_at if row else None,
                error=row.error if row else "",
                error_position=row.error_position if row else None,
                database=projection.database,
            )
        )
    if orphans and names is None:
        result.extend(
            ProjectionState(row.name, row.position, max(last_position - row.position, 0), row.updated_at, row.error, row.error_position, False, alias)
            for alias, row in _orphan_rows(projections)
        )
    return result


def _orphan_rows(projections: dict[str, Projection]) -> list[tuple[str, ProjectionCheckpoint]]:
    """(alias, row) of each checkpoint no projection in code uses, in every database the checkpoint model may be in."""
    model = _checkpoints()
    used = {projection.database for projection in projections.values()}
    found: list[tuple[str, ProjectionCheckpoint]] = []
    for alias in connections:
        if alias not in used and not router.allow_migrate_model(alias, model):
            continue
        query = model.objects.using(alias).exclude(name__in=[name for name, p in projections.items() if p.database == alias]).order_by("name")
        if alias in used:
            found.extend((alias, row) for row in query)
            continue
        try:
            with transaction.atomic(using=alias):  # a savepoint: a missing table does not break the caller's transaction
                found.extend((alias, row) for row in query)
        except DatabaseError as e:  # no checkpoint table there (never migrated): no checkpoints either
            log.debug("no projection checkpoints in database %r: %s", alias, e)
    return found


def _behind(projections: dict[str, Projection], position: int) -> tuple[dict[str, int], dict[str, str]]:
    rows = _rows(projections)
    behind = {name: (rows[name].position if name in rows else 0) for name in projections}
    behind = {name: at for name, at in behind.items() if at < position}
    return behind, {name: rows[name].error for name in behind if name in rows and rows[name].error}


def wait_for(position: int, names: Iterable[str] | None = None, timeout: float = 5.0) -> None:
    """Block until the projections' checkpoints reach ``position`` (e.g. a saved event's); ProjectionTimeout after ``timeout`` s."""
    projections = get_projections(names)
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        behind, errors = _behind(projections, position)
        if not behind:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProjectionTimeout(position, behind, timeout, errors)
        time.sleep(min(pause, left))  # the checkpoint lives in another process's transactions: there is nothing to await
        pause = min(pause * 2, 0.05)


async def await_for(position: int, names: Iterable[str] | None = None, timeout: float = 5.0) -> None:
    """``wait_for`` for async code: the checkpoints are polled without blocking the event loop."""
    projections = await sync_to_async(get_projections)(names)
    behind_now = sync_to_async(_behind)
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        behind, errors = await behind_now(projections, position)
        if not behind:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProjectionTimeout(position, behind, timeout, errors)
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)


# ----- the follow loop -----


def _close_db_connections() -> None:
    """Close this thread's database connections (a follower thread's are its own)."""
    connections.close_all()


def _drop_broken_connections() -> None:
    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


class Follower:
    """Keeps one projection up to date from the live feed until ``stop`` is set; failures back off 1 s doubling to 60 s."""

    def __init__(self, projection: Projection, stop: threading.Event, idle_timeout: float = IDLE_TIMEOUT):
        self.projection = projection
        self.stop = stop
        self.idle_timeout = idle_timeout
        self.delay = 0.0

    def run(self) -> None:
        """Follow until stopped; the thread's database connections are closed on the way out."""
        try:
            while not self.stop.is_set():
                try:
                    position = catch_up_projection(self.projection, stop=self.stop)  # reads ahead while far behind
                    self._recovered(position)
                    self._follow(position)
                except ProjectionError as e:
                    self._back_off(f"{e}", e.cause)
                except Exception as e:  # noqa: BLE001 - the store or the database is away: try again later
                    self._back_off(f"projection {self.projection.name!r} could not run: {describe(e)}", e)
                    _drop_broken_connections()
        finally:
            _close_db_connections()

    def _back_off(self, message: str, cause: BaseException | str) -> None:
        self.delay = min(self.delay * 2, MAX_RETRY) if self.delay else FIRST_RETRY
        exc_info = cause if isinstance(cause, BaseException) else None
        log.error("%s; retrying in %g s", message, self.delay, exc_info=exc_info)
        self.stop.wait(self.delay)

    def _recovered(self, position: int) -> None:
        if self.delay:
            log.info("projection %r recovered at position %s", self.projection.name, position)
            self.delay = 0.0

    def _follow(self, position: int) -> None:
        """Apply the feed from ``position`` until stopped or the checkpoint moved under us (then the caller re-reads it)."""
        projection = self.projection
        feed = cast(  # a generator: closing it ends the subscription
            Generator[FeedBatch, None, None],
            get_store().subscribe(position, actor_types=projection.actor_types, batch_size=projection.batch_size, idle_timeout=self.idle_timeout),
        )
        try:
            for batch in feed:
                if batch.events or batch.position > position:
                    try:
                        position = apply_batch(projection, position, batch.events, max(batch.position, position))
                    except CheckpointMoved:
                        return
                    self._recovered(position)
                if self.stop.is_set():
                    return
        finally:
            feed.close()


def follow(names: Iterable[str] | None = None, stop: threading.Event | None = None, idle_timeout: float = IDLE_TIMEOUT) -> None:
    """Catch up and then follow new events, one thread per projection, until ``stop`` is set (each finishes its batch)."""
    stop = stop if stop is not None else threading.Event()
    projections = get_projections(names)
    threads = [threading.Thread(target=Follower(projection, stop, idle_timeout).run, name=f"projection {name}", daemon=True) for name, projection in projections.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)  # short joins keep the main thread responsive to signals
