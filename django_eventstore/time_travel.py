"""An actor's state at any version, and what one event changed (time travel).

For actors whose type has a registered aggregate (``actor_type`` on an
``Aggregate`` subclass). The state at version N starts from the actor's stored
snapshot when its version is at most N (never from one above N: it would hold
later events), else from the aggregate's initial state, and applies the events
up to N with the aggregate's own handlers. The admin's actor page and the REST
API's ``actors/<id>/state/`` show it.

A replay applies at most ``EVENTSTORE["TIME_TRAVEL_MAX_EVENTS"]`` events
(default 10,000, replayed in well under a second): beyond it ``ReplayTooLong``
says so instead of keeping a request busy. An event the aggregate cannot
apply (its handler raises) is a ``ReplayStopped`` naming the version and the
error.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .aggregates import Aggregate, aggregate_for
from .conf import get_config
from .core.errors import SnapshotNotFound
from .core.events import ActorSnapshot, Event
from .core.facade import EventStore
from .core.subjects import actor_type
from .store import get_store

SETTING = "TIME_TRAVEL_MAX_EVENTS"
DEFAULT_MAX_EVENTS = 10_000


def max_events() -> int:
    """``EVENTSTORE["TIME_TRAVEL_MAX_EVENTS"]``: the most events one replay applies."""
    value = get_config().get(SETTING, DEFAULT_MAX_EVENTS)
    if type(value) is not int or value < 1:
        raise ImproperlyConfigured(f'EVENTSTORE["{SETTING}"] must be an int >= 1, got {value!r}')
    return value


# ----- errors -----


class TimeTravelError(Exception):
    """Why a state cannot be shown; the message is meant for people."""


class NoAggregate(TimeTravelError, LookupError):
    """No aggregate class is registered for the actor's type."""

    def __init__(self, actor_id: str) -> None:
        self.actor_id = actor_id
        self.actor_type = actor_type(actor_id)
        super().__init__(
            f"No aggregate is registered for actor type {self.actor_type!r} (of {actor_id!r}): "
            f'an Aggregate subclass with actor_type = "{self.actor_type}" shows its states.'
        )


class NoSuchVersion(TimeTravelError, LookupError):
    """The version asked for is above the actor's latest (or the actor has no events)."""

    def __init__(self, actor_id: str, version: int, latest_version: int) -> None:
        self.actor_id, self.version, self.latest_version = actor_id, version, latest_version
        if latest_version == 0:
            message = f"Actor {actor_id!r} has no events."
        else:
            message = f"Actor {actor_id!r} has no version {version}: its latest version is {latest_version}."
        super().__init__(message)


class ReplayTooLong(TimeTravelError):
    """Reaching the version needs more events than ``TIME_TRAVEL_MAX_EVENTS``."""

    def __init__(self, actor_id: str, version: int, start: int, limit: int) -> None:
        self.actor_id, self.version, self.events, self.limit = actor_id, version, version - start, limit
        origin = f"the snapshot at version {start}" if start else "version 1 (no snapshot at or below it)"
        super().__init__(
            f"The state at version {version} needs {self.events:,} events replayed from {origin}, "
            f'more than EVENTSTORE["{SETTING}"] ({limit:,}) allows.'
        )


class ReplayStopped(TimeTravelError):
    """The aggregate could not apply the event at ``version`` (its handler raised)."""

    def __init__(self, actor_id: str, version: int, reason: str) -> None:
        self.actor_id, self.version, self.reason = actor_id, version, reason
        super().__init__(f"Replay stopped at version {version}: {reason}")


# ----- results -----


@dataclass(frozen=True)
class ComputedFrom:
    """How a state was made: the snapshot started from (None: the initial state) and the events applied after it."""

    snapshot_version: int | None
    events_applied: int

    def __str__(self) -> str:
        events = f"{self.events_applied:,} event{'' if self.events_applied == 1 else 's'}"
        if self.snapshot_version is None:
            return f"replayed from version 1: {events}"
        return f"snapshot at version {self.snapshot_version} + {events}"


@dataclass(frozen=True)
class StateAt:
    """An actor's state as of ``version``, and how it was computed."""

    actor_id: str
    version: int
    latest_version: int
    state: dict[str, Any]
    computed_from: ComputedFrom
    #: Why the stored snapshot was not used although its version is at most ``version`` ("" when it was, or none was).
    snapshot_skipped: str = ""


@dataclass(frozen=True)
class Change:
    """One difference between two states: ``path`` is the keys (and list indexes) from the top."""

    path: tuple[str | int, ...]
    kind: str  # "added", "removed" or "changed"
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class Step:
    """What the event at ``at.version`` did: the state before it (at version - 1), the event, the changes."""

    at: StateAt
    before: StateAt
    event: Event
    changes: list[Change] = field(default_factory=list)


# ----- computing states -----


@dataclass
class _Run:
    state: dict[str, Any]
    computed_from: ComputedFrom
    before: dict[str, Any] | None = None  # with keep_before: the state right before the last event applied
    event: Event | None = None  # the last event applied


def state_at(actor_id: str, version: int | None = None, *, store: EventStore | None = None, limit: int | None = None) -> StateAt:
    """The actor's state at ``version`` (default: the latest), from the nearest snapshot at or below it, else from version 1.

    Raises ``NoAggregate``, ``NoSuchVersion``, ``ReplayTooLong`` or ``ReplayStopped`` (all ``TimeTravelError``).
    """
    cls, store, version, latest, snapshot, limit = _prepare(actor_id, version, store, limit)
    run, skipped = _from_best(cls, store, actor_id, version, snapshot, limit)
    return StateAt(actor_id, version, latest, run.state, run.computed_from, skipped)


def step_at(actor_id: str, version: int | None = None, *, store: EventStore | None = None, limit: int | None = None) -> Step:
    """The state at ``version`` (as ``state_at``), the state before that version's event, the event and what it changed.

    The state before version 1 is the aggregate's initial state. When the
    snapshot is at exactly ``version``, the state comes from it and the state
    before it from a replay from version 1.
    """
    cls, store, version, latest, snapshot, limit = _prepare(actor_id, version, store, limit)
    after, skipped = _from_best(cls, store, actor_id, version, snapshot, limit, keep_before=True)
    before_run = after
    if after.before is None:  # the state came from a snapshot at this very version
        before_run = _run(cls, store, actor_id, version, None, limit, keep_before=True)
    if before_run.before is None or before_run.event is None:  # cannot happen: the replay reached the version
        raise ReplayStopped(actor_id, version, MISSING_EVENT)
    origin = before_run.computed_from
    return Step(
        at=StateAt(actor_id, version, latest, after.state, after.computed_from, skipped),
        before=StateAt(actor_id, version - 1, latest, before_run.before, ComputedFrom(origin.snapshot_version, origin.events_applied - 1)),
        event=before_run.event,
        changes=diff_states(before_run.before, after.state),
    )


def _prepare(
    actor_id: str, version: int | None, store: EventStore | None, limit: int | None
) -> tuple[type[Aggregate], EventStore, int, int, ActorSnapshot | None, int]:
    """Check the request; the aggregate class, the store, the version, the latest version, a usable snapshot, the limit."""
    cls = aggregate_for(actor_id)
    if cls is None:
        raise NoAggregate(actor_id)
    if version is not None and (type(version) is not int or version < 1):
        raise ValueError(f"version must be an int >= 1, got {version!r}")
    limit = max_events() if limit is None else limit
    store = store or get_store()
    latest = store.get_latest_version(actor_id)
    if latest == 0 or (version is not None and version > latest):
        raise NoSuchVersion(actor_id, version or 1, latest)
    version = latest if version is None else version
    try:
        snapshot: ActorSnapshot | None = store.get_latest_snapshot(actor_id)
    except SnapshotNotFound:
        snapshot = None
    return cls, store, version, latest, snapshot, limit


def _from_best(
    cls: type[Aggregate], store: EventStore, actor_id: str, version: int, snapshot: ActorSnapshot | None, limit: int, *, keep_before: bool = False
) -> tuple[_Run, str]:
    """The state at ``version`` from ``snapshot`` when it is at or below it, else from version 1; and why the snapshot was skipped."""
    if snapshot is not None and snapshot.version <= version:
        try:
            return _run(cls, store, actor_id, version, snapshot, limit, keep_before), ""
        except _BadSnapshot as e:
            skipped = f"the snapshot at version {snapshot.version} could not be restored ({e}), so the state was replayed from version 1"
            return _run(cls, store, actor_id, version, None, limit, keep_before), skipped
    return _run(cls, store, actor_id, version, None, limit, keep_before), ""


class _BadSnapshot(Exception):
    """The aggregate's set_state refused the stored snapshot."""


MISSING_EVENT = "the event is missing from the stream (a malformed message?)"


def _run(cls: type[Aggregate], store: EventStore, actor_id: str, version: int, snapshot: ActorSnapshot | None, limit: int, keep_before: bool) -> _Run:
    """Restore ``snapshot`` (or start fresh) and apply the events up to ``version``; ``keep_before`` keeps the state before the last one."""
    start = snapshot.version if snapshot is not None else 0
    if version - start > limit:
        raise ReplayTooLong(actor_id, version, start, limit)
    aggregate = cls(actor_id, store)
    if snapshot is not None:
        try:
            aggregate.restore_snapshot(snapshot)
        except Exception as e:  # the project's set_state may raise anything
            raise _BadSnapshot(f"{type(e).__name__}: {e}") from e
    events = store.get_events(actor_id, **Aggregate._read_from(snapshot), limit=version - start) if version > start else []
    run = _Run({}, ComputedFrom(snapshot.version if snapshot is not None else None, version - start))
    for event in events:
        if event.version != aggregate.version + 1:
            break
        if keep_before and event.version == version:
            run.before = _copy(aggregate, version - 1)
        _apply(aggregate, event)
        run.event = event
    if aggregate.version != version:
        raise ReplayStopped(actor_id, aggregate.version + 1, MISSING_EVENT)
    run.state = _copy(aggregate, version)
    return run


def _apply(aggregate: Aggregate, event: Event) -> None:
    """Apply one event; whatever its handler raises becomes ReplayStopped at its version."""
    try:
        aggregate.replay_event(event)
    except Exception as e:  # a handler is the project's code: any error stops the replay, never the page
        reason = f"{type(e).__name__}: {e}"
        if event.data is None or getattr(event, "forgotten", False):
            reason = f"its data was forgotten ({reason})"
        raise ReplayStopped(aggregate.actor_id, event.version or 0, reason) from e


def _copy(aggregate: Aggregate, version: int) -> dict[str, Any]:
    """A deep copy of the aggregate's state: handlers may change lists and dicts in place later."""
    try:
        return copy.deepcopy(aggregate.get_state())
    except Exception as e:  # get_state is the project's code; deepcopy of a too deep state raises RecursionError
        raise ReplayStopped(aggregate.actor_id, version, f"its state could not be read: {type(e).__name__}: {e}") from e


# ----- differences -----


def diff_states(before: Any, after: Any) -> list[Change]:
    """The added, removed and changed keys between two states, nested dicts and lists walked to their leaves.

    Lists are compared index by index (an appended item is "added" at its
    index). Walked with a stack rather than recursion, so any depth works.
    ``1`` and ``True`` (or ``1.0``) count as different, as they are in JSON.
    """
    changes: list[Change] = []
    todo: list[tuple[tuple[str | int, ...], Any, Any]] = [((), before, after)]
    while todo:
        path, old, new = todo.pop()
        if old is _MISSING:
            changes.append(Change(path, "added", None, new))
        elif new is _MISSING:
            changes.append(Change(path, "removed", old, None))
        elif isinstance(old, dict) and isinstance(new, dict):
            keys = sorted(old.keys() | new.keys(), key=str)
            todo += reversed([((*path, k), old.get(k, _MISSING), new.get(k, _MISSING)) for k in keys])
        elif isinstance(old, list) and isinstance(new, list):
            items = range(max(len(old), len(new)))
            todo += reversed([((*path, i), old[i] if i < len(old) else _MISSING, new[i] if i < len(new) else _MISSING) for i in items])
        elif type(old) is not type(new) or old != new:
            changes.append(Change(path, "changed", old, new))
    return changes


_MISSING = object()  # a key or index that one of the two states lacks
