"""The public store API: every operation as a sync method and an ``a``-prefixed async twin.

Subclasses say how a coroutine of the engine is run: on the portal loop
(JetStream) or directly in the caller's thread (memory).
"""

from __future__ import annotations

from typing import Any, AsyncGenerator, Coroutine, Generator, Iterable, TypeVar

from .backend import ServerSummary, StreamChange
from .engine import Engine
from .errors import InvalidEvent
from .events import ActorPage, ActorSnapshot, Event, FeedBatch, ReadResult
from .forgetting import Census, ForgetResult
from .limits import DEFAULT_PAGE
from .limits import READ_BATCH as MAX_FEED_BATCH

T = TypeVar("T")


class EventStore:
    """Event sourcing over a stream backend; see docs/python-api.md for the contract."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        raise NotImplementedError

    async def _acall(self, coro: Coroutine[Any, Any, T]) -> T:
        raise NotImplementedError

    def _call_waiting(self, coro: Coroutine[Any, Any, T]) -> T:
        """Like _call, for a coroutine that may wait long (the live feed's wait for new events)."""
        return self._call(coro)

    async def _acall_waiting(self, coro: Coroutine[Any, Any, T]) -> T:
        """Like _acall, for a coroutine that may wait long (the live feed's wait for new events)."""
        return await self._acall(coro)

    # --- writes ---
    def save_event(self, event: Event) -> Event:
        """Store one event at its version; returns it with its position. VersionConflictError if taken."""
        return self._call(self.engine.save_event(event))

    async def asave_event(self, event: Event) -> Event:
        return await self._acall(self.engine.save_event(event))

    def save_events(self, events: Iterable[Event]) -> list[Event]:
        """Store events of any actors in order, many in flight at once (bulk loads); the events before an error are stored."""
        return self._call(self.engine.save_events(events))

    async def asave_events(self, events: Iterable[Event]) -> list[Event]:
        return await self._acall(self.engine.save_events(events))

    def append(self, actor_id: str, events: Iterable[Event], expected_version: int) -> list[Event]:
        """Store events atomically as versions expected_version+1...; returns them with positions."""
        return self._call(self.engine.append(actor_id, list(events), expected_version))

    async def aappend(self, actor_id: str, events: Iterable[Event], expected_version: int) -> list[Event]:
        return await self._acall(self.engine.append(actor_id, list(events), expected_version))

    def save_snapshot(self, snapshot: ActorSnapshot) -> ActorSnapshot:
        """Store a snapshot at or below the actor's latest version; returns it with its event's position."""
        return self._call(self.engine.save_snapshot(snapshot))

    async def asave_snapshot(self, snapshot: ActorSnapshot) -> ActorSnapshot:
        return await self._acall(self.engine.save_snapshot(snapshot))

    def check(self, item: Event | ActorSnapshot) -> None:
        """Raise what saving this event or snapshot would raise for its content (InvalidEvent, EventTooLarge), writing nothing.

        No I/O: sizes are checked against the server's max_payload as last seen
        (1 MiB until the store has connected). Versions are not checked.
        """
        self.engine.check_content(item)

    # --- reads of one actor ---
    def get_latest_version(self, actor_id: str) -> int:
        """The actor's latest version from the server (0 when it has none): one direct get."""
        return self._call(self.engine.get_latest_version(actor_id))

    async def aget_latest_version(self, actor_id: str) -> int:
        return await self._acall(self.engine.get_latest_version(actor_id))

    def get_events(self, actor_id: str, from_version: int = 0, *, limit: int | None = None, after_position: int = 0, upcast: bool = True) -> list[Event]:
        """Events with versions above from_version, in order; malformed messages skipped with a warning.

        ``after_position`` (e.g. a snapshot's position) starts the read after that stream sequence.
        Events come upcast to their type's newest schema; ``upcast=False`` gives them as stored.
        """
        return self._call(self.engine.get_events(actor_id, from_version, limit=limit, after_position=after_position, upcast=upcast))

    async def aget_events(self, actor_id: str, from_version: int = 0, *, limit: int | None = None, after_position: int = 0, upcast: bool = True) -> list[Event]:
        return await self._acall(self.engine.get_events(actor_id, from_version, limit=limit, after_position=after_position, upcast=upcast))

    def get_events_with_errors(self, actor_id: str, from_version: int = 0, *, limit: int | None = None, after_position: int = 0, upcast: bool = True) -> ReadResult:
        """Like get_events, with the malformed messages reported (position, reason, raw bytes)."""
        return self._call(self.engine.get_events_with_errors(actor_id, from_version, limit=limit, after_position=after_position, upcast=upcast))

    async def aget_events_with_errors(self, actor_id: str, from_version: int = 0, *, limit: int | None = None, after_position: int = 0, upcast: bool = True) -> ReadResult:
        return await self._acall(self.engine.get_events_with_errors(actor_id, from_version, limit=limit, after_position=after_position, upcast=upcast))

    def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot:
        """The actor's latest snapshot; SnapshotNotFound when it has none."""
        return self._call(self.engine.get_latest_snapshot(actor_id))

    async def aget_latest_snapshot(self, actor_id: str) -> ActorSnapshot:
        return await self._acall(self.engine.get_latest_snapshot(actor_id))

    # --- reads across actors ---
    def list_actors(self, actor_type: str | None = None, prefix: str | None = None, limit: int = DEFAULT_PAGE, after: str | None = None, offset: int = 0) -> ActorPage:
        """A page of actors ordered by id, with latest and snapshot versions, and the total matching."""
        return self._call(self.engine.list_actors(actor_type, prefix, limit, after, offset))

    async def alist_actors(self, actor_type: str | None = None, prefix: str | None = None, limit: int = DEFAULT_PAGE, after: str | None = None, offset: int = 0) -> ActorPage:
        return await self._acall(self.engine.list_actors(actor_type, prefix, limit, after, offset))

    def actor_types(self) -> list[str]:
        """The actor types present in the store, sorted."""
        return self._call(self.engine.actor_types())

    async def aactor_types(self) -> list[str]:
        return await self._acall(self.engine.actor_types())

    def snapshot_actor_ids(self, actor_type: str | None = None) -> list[str]:
        """Ids of the actors that have a snapshot, sorted (an actor may have one without events)."""
        return self._call(self.engine.snapshot_actor_ids(actor_type))

    async def asnapshot_actor_ids(self, actor_type: str | None = None) -> list[str]:
        return await self._acall(self.engine.snapshot_actor_ids(actor_type))

    def snapshot_versions(self, actor_ids: list[str]) -> dict[str, int]:
        """Snapshot version of each given actor that has one, in one batched lookup."""
        return self._call(self.engine.snapshot_versions(actor_ids))

    async def asnapshot_versions(self, actor_ids: list[str]) -> dict[str, int]:
        return await self._acall(self.engine.snapshot_versions(actor_ids))

    def read_all(self, after_position: int = 0, limit: int = DEFAULT_PAGE, *, actor_type: str | None = None, upcast: bool = True) -> list[Event]:
        """Events of all actors in global (stream) order, after a position."""
        return self._call(self.engine.read_all(after_position, limit, actor_type=actor_type, upcast=upcast))

    async def aread_all(self, after_position: int = 0, limit: int = DEFAULT_PAGE, *, actor_type: str | None = None, upcast: bool = True) -> list[Event]:
        return await self._acall(self.engine.read_all(after_position, limit, actor_type=actor_type, upcast=upcast))

    def read_all_with_errors(self, after_position: int = 0, limit: int = DEFAULT_PAGE, *, actor_type: str | None = None, actor_id: str | None = None, upcast: bool = True) -> ReadResult:
        """Like read_all (optionally for one actor), with malformed messages reported."""
        return self._call(self.engine.read_all_with_errors(after_position, limit, actor_type=actor_type, actor_id=actor_id, upcast=upcast))

    async def aread_all_with_errors(self, after_position: int = 0, limit: int = DEFAULT_PAGE, *, actor_type: str | None = None, actor_id: str | None = None, upcast: bool = True) -> ReadResult:
        return await self._acall(self.engine.read_all_with_errors(after_position, limit, actor_type=actor_type, actor_id=actor_id, upcast=upcast))

    # --- the live feed ---
    def subscribe(
        self, after_position: int = 0, *, actor_types: list[str] | None = None, actor_id: str | None = None, batch_size: int = 500, idle_timeout: float = 1.0
    ) -> Generator[FeedBatch, None, None]:
        """Events after a position in stream order, waiting for new ones; never ends by itself (close() it).

        Each step is a FeedBatch: the events (only of ``actor_types``, or of one ``actor_id``, when given)
        and the position read up to. An empty batch comes after ``idle_timeout``
        seconds with nothing new, so a loop can check whether to stop.
        """
        subject_filter, types, position = self._feed_args(after_position, actor_types, actor_id, batch_size, idle_timeout)
        while True:
            batch = self._call(self.engine.feed_step(position, subject_filter, types, batch_size))
            if batch is None:
                if self._call_waiting(self.engine.wait_for_new(subject_filter, position, idle_timeout)):
                    continue
                batch = FeedBatch([], position)
            position = batch.position
            yield batch

    async def asubscribe(
        self, after_position: int = 0, *, actor_types: list[str] | None = None, actor_id: str | None = None, batch_size: int = 500, idle_timeout: float = 1.0
    ) -> AsyncGenerator[FeedBatch, None]:
        """The async twin of subscribe."""
        subject_filter, types, position = self._feed_args(after_position, actor_types, actor_id, batch_size, idle_timeout)
        while True:
            batch = await self._acall(self.engine.feed_step(position, subject_filter, types, batch_size))
            if batch is None:
                if await self._acall_waiting(self.engine.wait_for_new(subject_filter, position, idle_timeout)):
                    continue
                batch = FeedBatch([], position)
            position = batch.position
            yield batch

    def _feed_args(
        self, after_position: int, actor_types: list[str] | None, actor_id: str | None, batch_size: int, idle_timeout: float
    ) -> tuple[str, frozenset[str] | None, int]:
        if type(after_position) is not int or after_position < 0:
            raise InvalidEvent(f"after_position must be an int >= 0, got {after_position!r}")
        if type(batch_size) is not int or not 1 <= batch_size <= MAX_FEED_BATCH:
            raise InvalidEvent(f"batch_size must be an int from 1 to {MAX_FEED_BATCH}, got {batch_size!r}")
        if not isinstance(idle_timeout, (int, float)) or isinstance(idle_timeout, bool) or not 0 < idle_timeout <= 3600:
            raise InvalidEvent(f"idle_timeout must be a number of seconds above 0 (at most 3600), got {idle_timeout!r}")
        subject_filter, types = self.engine.feed_filter(actor_types, actor_id)
        return subject_filter, types, after_position

    def last_position(self, actor_type: str | None = None) -> int:
        """The position (stream sequence) of the last stored event (of one actor type), 0 when none."""
        return self._call(self.engine.last_position(actor_type))

    async def alast_position(self, actor_type: str | None = None) -> int:
        return await self._acall(self.engine.last_position(actor_type))

    # --- forgetting (needs EVENTSTORE["ENCRYPTION"]) ---
    @property
    def encrypted(self) -> bool:
        """Whether this store encrypts data at rest (EVENTSTORE["ENCRYPTION"] is set)."""
        return self.engine.keyring is not None

    def forget(self, actor_id: str) -> ForgetResult:
        """Make the actor's data unreadable for good: its data key erased, its snapshots deleted, an ActorForgotten event appended.

        Its events stay and read back with ``data`` None and ``forgotten`` True. Idempotent.
        """
        return self._call(self.engine.forget(actor_id))

    async def aforget(self, actor_id: str) -> ForgetResult:
        return await self._acall(self.engine.forget(actor_id))

    def rotate_master_key(self) -> int:
        """Re-wrap every data key with the first of the configured master keys (the events are not touched); how many."""
        return self._call(self.engine.rotate_master_key())

    async def arotate_master_key(self) -> int:
        return await self._acall(self.engine.rotate_master_key())

    def census(self) -> Census:
        """How many events and snapshots are stored encrypted and how many in clear (a full scan)."""
        return self._call(self.engine.census())

    # --- administration ---
    def setup(self, dry_run: bool = False) -> list[StreamChange]:
        """Create or update the two streams from the configuration (idempotent)."""
        return self._call(self.engine.backend.setup(dry_run))

    async def asetup(self, dry_run: bool = False) -> list[StreamChange]:
        return await self._acall(self.engine.backend.setup(dry_run))

    def server_summary(self) -> ServerSummary:
        """Server version and URL, account usage, and both streams' state."""
        return self._call(self.engine.backend.server_summary())

    async def aserver_summary(self) -> ServerSummary:
        return await self._acall(self.engine.backend.server_summary())

    def close(self) -> None:
        """Close the connection; the store reconnects if used again."""
        self._call(self.engine.close())

    async def aclose(self) -> None:
        await self._acall(self.engine.close())
