"""Event-sourced actors (aggregates) on top of the store.

An aggregate is an actor whose state is rebuilt from its events. Subclasses
write *command* methods that check the current state and ``record`` new
events, and *handlers*, marked with ``@applies("EventType")``, that change
the state for one event type. ``save`` stores the recorded events with one
atomic ``append`` at the version the aggregate was loaded at, so a concurrent
writer makes it fail with ``VersionConflictError`` instead of losing an
update; ``retry`` reloads and re-runs a command when that happens.

    class Counter(Aggregate):
        snapshot_every = 100

        def __init__(self, actor_id: str, store: EventStore | None = None) -> None:
            super().__init__(actor_id, store)
            self.total = 0

        def add(self, n: int) -> None:
            self.record("Added", {"n": n})

        @applies("Added")
        def _added(self, event: Event) -> None:
            self.total += event.data["n"]

    Counter.retry("counter-1", lambda c: c.add(5))

A subclass that names its ``actor_type`` (``actor_type = "counter"``) is
registered for that type: ``aggregate_for_type("counter")`` finds it, and the
admin and the REST API use it to show the state of ``counter-...`` actors at
any version.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Awaitable, Callable, ClassVar, TypeVar

from .core.errors import EventStoreError, SnapshotNotFound, VersionConflictError
from .core.events import ActorSnapshot, Event
from .core.facade import EventStore
from .core.subjects import actor_type as actor_type_of
from .store import get_store

log = logging.getLogger("django_eventstore")

A = TypeVar("A", bound="Aggregate")
R = TypeVar("R")
Handler = Callable[[Any, Event], None]

_HANDLES = "_eventstore_applies"
_INTERNAL = frozenset({"actor_id", "version"})


class UnhandledEvent(EventStoreError):
    """An aggregate met an event type it has no handler for."""


class ActorTypeTaken(ValueError):
    """A second aggregate class names an actor type another one has: one class per type."""


_REGISTRY: dict[str, type[Aggregate]] = {}


def aggregate_for_type(actor_type: str) -> type[Aggregate] | None:
    """The aggregate class registered for an actor type (``"account"``), None when there is none."""
    return _REGISTRY.get(actor_type)


def aggregate_for(actor_id: str) -> type[Aggregate] | None:
    """The aggregate class registered for the type of an actor id (``account-7`` -> ``"account"``), None when there is none."""
    return _REGISTRY.get(actor_type_of(actor_id))


def registered_aggregates() -> dict[str, type[Aggregate]]:
    """Every registered actor type and its aggregate class (a copy)."""
    return dict(_REGISTRY)


def _register(cls: type[Aggregate]) -> None:
    """Register ``cls`` for the ``actor_type`` it declares itself; abstract intermediates declare none."""
    name = vars(cls).get("actor_type")
    if name is None:
        return
    if not isinstance(name, str) or not name or "-" in name:
        raise ValueError(
            f"{cls.__module__}.{cls.__qualname__}.actor_type must be an actor id's part before its first '-' "
            f"(a non-empty string without '-', e.g. \"account\"), got {name!r}"
        )
    taken = _REGISTRY.get(name)
    # the same class made again (a module reloaded) replaces itself; another class is an error
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ActorTypeTaken(
            f"{cls.__module__}.{cls.__qualname__} declares actor_type {name!r}, which "
            f"{taken.__module__}.{taken.__qualname__} already has: one aggregate class per actor type"
        )
    _REGISTRY[name] = cls


def applies(event_type: str) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of ``event_type``: ``handler(self, event)`` updates the state."""

    def mark(method: Handler) -> Handler:
        setattr(method, _HANDLES, event_type)
        return method

    return mark


class Aggregate:
    """Base class of an event-sourced actor; see the module docstring for an example.

    ``version`` is the actor's version the state reflects as stored (0 for a
    new actor); events recorded since then are in ``pending`` until ``save``.
    The state saved in snapshots is ``get_state()``: by default every public
    instance attribute except ``actor_id`` and ``version``, so keep it JSON
    serialisable or override ``get_state``/``set_state``.
    """

    #: Save a snapshot whenever a save reaches a multiple of this many events (None: never).
    snapshot_every: ClassVar[int | None] = None
    #: The actor type this class rebuilds (``"account"`` for ``account-...`` ids), registered for time travel; None: none.
    actor_type: ClassVar[str | None] = None
    _handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = dict(cls._handlers)
        for name, member in vars(cls).items():
            event_type = getattr(member, _HANDLES, None)
            if event_type is not None:
                handlers[event_type] = name
        cls._handlers = handlers
        _register(cls)

    def __init__(self, actor_id: str, store: EventStore | None = None) -> None:
        self.actor_id = actor_id
        self.version = 0
        self._store = store
        self._pending: list[Event] = []

    @property
    def store(self) -> EventStore:
        """The store given to the constructor, else the project's ``get_store()``."""
        return self._store or get_store()

    @property
    def pending(self) -> list[Event]:
        """Events recorded by commands and not saved yet (a copy)."""
        return list(self._pending)

    # --- state ---

    def get_state(self) -> dict[str, Any]:
        """The state stored in a snapshot."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in _INTERNAL}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore the state from a snapshot's ``get_state()`` (never the id, version or private attributes)."""
        for key, value in state.items():
            if not key.startswith("_") and key not in _INTERNAL:
                setattr(self, key, value)

    def record(self, event_type: str, data: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> Event:
        """Apply a new event to the state and keep it for the next ``save``; for command methods."""
        event = Event(event_type=event_type, data=data or {}, metadata=metadata or {})
        self._dispatch(event)
        self._pending.append(event)
        return event

    def _dispatch(self, event: Event) -> None:
        name = self._handlers.get(event.event_type)
        if name is None:
            raise UnhandledEvent(f"{type(self).__name__} has no handler for event type {event.event_type!r} (actor {self.actor_id!r})")
        getattr(self, name)(event)

    def restore_snapshot(self, snapshot: ActorSnapshot) -> None:
        """Take a snapshot's state and version: where ``load`` starts when the actor has one."""
        self.set_state(snapshot.state)
        self.version = snapshot.version

    def replay_event(self, event: Event) -> None:
        """Apply one stored event, the next version, and advance ``version``: what ``load`` does for each event."""
        self._dispatch(event)
        self.version = event.version  # type: ignore[assignment]

    def _replay(self, snapshot: ActorSnapshot | None, events: list[Event]) -> None:
        if snapshot is not None:
            self.restore_snapshot(snapshot)
        for event in events:
            self.replay_event(event)

    @staticmethod
    def _read_from(snapshot: ActorSnapshot | None) -> dict[str, Any]:
        """``get_events`` arguments that read only the events after the snapshot."""
        if snapshot is None:
            return {"from_version": 0}
        return {"from_version": snapshot.version, "after_position": snapshot.position or 0}

    # --- loading ---

    @classmethod
    def load(cls: type[A], actor_id: str, store: EventStore | None = None, *, use_snapshot: bool = True) -> A:
        """The actor as stored: its latest snapshot (if any) plus the events after it.

        ``use_snapshot=False`` replays every event instead (to check snapshots, or after changing handlers).
        An actor without events loads at version 0, in its initial state.
        """
        aggregate = cls(actor_id, store)
        snapshot: ActorSnapshot | None = None
        if use_snapshot:
            try:
                snapshot = aggregate.store.get_latest_snapshot(actor_id)
            except SnapshotNotFound:
                pass
        aggregate._replay(snapshot, aggregate.store.get_events(actor_id, **cls._read_from(snapshot)))
        return aggregate

    @classmethod
    async def aload(cls: type[A], actor_id: str, store: EventStore | None = None, *, use_snapshot: bool = True) -> A:
        """Async ``load``."""
        aggregate = cls(actor_id, store)
        snapshot: ActorSnapshot | None = None
        if use_snapshot:
            try:
                snapshot = await aggregate.store.aget_latest_snapshot(actor_id)
            except SnapshotNotFound:
                pass
        aggregate._replay(snapshot, await aggregate.store.aget_events(actor_id, **cls._read_from(snapshot)))
        return aggregate

    # --- saving ---

    def save(self) -> list[Event]:
        """Store the pending events atomically after ``version``; returns them as stored.

        Raises ``VersionConflictError`` when another writer saved first; the
        aggregate is then stale: load it again (or use ``retry``).
        """
        if not self._pending:
            return []
        stored = self.store.append(self.actor_id, self._pending, expected_version=self.version)
        snapshot = self._saved(stored)
        if snapshot is not None:
            try:
                self.store.save_snapshot(snapshot)
            except EventStoreError as e:
                self._snapshot_failed(snapshot, e)
        return stored

    async def asave(self) -> list[Event]:
        """Async ``save``."""
        if not self._pending:
            return []
        stored = await self.store.aappend(self.actor_id, self._pending, expected_version=self.version)
        snapshot = self._saved(stored)
        if snapshot is not None:
            try:
                await self.store.asave_snapshot(snapshot)
            except EventStoreError as e:
                self._snapshot_failed(snapshot, e)
        return stored

    def _saved(self, stored: list[Event]) -> ActorSnapshot | None:
        """Advance past the stored events; the snapshot the policy asks for, if any."""
        before, self.version = self.version, stored[-1].version  # type: ignore[assignment]
        self._pending.clear()
        every = self.snapshot_every
        if every and self.version // every > before // every:
            return ActorSnapshot(actor_id=self.actor_id, version=self.version, state=self.get_state())
        return None

    def _snapshot_failed(self, snapshot: ActorSnapshot, error: EventStoreError) -> None:
        """Only log it: the events are stored, and a later save past a multiple tries again."""
        log.warning("could not save the snapshot of %r at version %s", self.actor_id, snapshot.version, exc_info=error)

    # --- optimistic concurrency ---

    @classmethod
    def retry(cls: type[A], actor_id: str, command: Callable[[A], object], *, attempts: int = 3, store: EventStore | None = None) -> A:
        """Load the actor, run ``command(aggregate)``, save; on a version conflict reload and run it again.

        Returns the saved aggregate (its state and ``version`` after the save;
        the command's own return value is ignored). Errors raised by the
        command (a refused command) propagate at once; the last
        ``VersionConflictError`` after ``attempts`` tries propagates too.
        """
        _check_attempts(attempts)
        while True:
            attempts -= 1
            aggregate = cls.load(actor_id, store)
            command(aggregate)
            try:
                aggregate.save()
            except VersionConflictError:
                if not attempts:
                    raise
                continue
            return aggregate

    @classmethod
    async def aretry(
        cls: type[A], actor_id: str, command: Callable[[A], R | Awaitable[R]], *, attempts: int = 3, store: EventStore | None = None
    ) -> R:
        """Async ``retry``; ``command`` may be a plain function or a coroutine function.

        Unlike ``retry`` it returns the command's result (kept for existing callers).
        """
        _check_attempts(attempts)
        while True:
            attempts -= 1
            aggregate = await cls.aload(actor_id, store)
            result = command(aggregate)
            if inspect.isawaitable(result):
                result = await result
            try:
                await aggregate.asave()
            except VersionConflictError:
                if not attempts:
                    raise
                continue
            return result  # type: ignore[return-value]


def _check_attempts(attempts: int) -> None:
    if type(attempts) is not int or attempts < 1:
        raise ValueError(f"attempts must be an int >= 1, got {attempts!r}")
