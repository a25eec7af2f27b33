"""Forgetting an actor (crypto-shredding) and counting what is stored encrypted.

Forgetting erases the actor's data key, deletes its snapshots and appends an
``ActorForgotten`` event without data: the events stay (versions, types,
metadata, positions) and read back with ``data`` None. Run again, it does
only what is left undone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator

from .backend import EVENTS, SNAPSHOTS, RawMsg
from .errors import EncryptionError, VersionConflictError
from .events import Event, Malformed, Sealed, decode_snapshot
from .subjects import validate_actor_id

if TYPE_CHECKING:
    from .engine import Engine

FORGOTTEN_EVENT = "ActorForgotten"
MAX_AUDIT_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class ForgetResult:
    """What ``store.forget`` did; all false and zero when the actor was forgotten already."""

    actor_id: str
    key_destroyed: bool
    snapshots_deleted: int
    audit_event: Event | None
    plaintext_events: int  # events stored before encryption was on: their data is still readable

    @property
    def already_forgotten(self) -> bool:
        return not self.key_destroyed and not self.snapshots_deleted and self.audit_event is None


@dataclass(slots=True)
class Census:
    """How the data of the stored events and snapshots is kept: sealed, in clear, or none (no data, or forgotten)."""

    events_sealed: int = 0
    events_plain: int = 0
    events_without_data: int = 0
    snapshots_sealed: int = 0
    snapshots_plain: int = 0
    plain_actors: set[str] = field(default_factory=set)


async def forget(engine: Engine, actor_id: str) -> ForgetResult:
    validate_actor_id(actor_id)
    if engine.keyring is None:
        raise EncryptionError(
            f"cannot forget actor {actor_id!r}: forgetting needs encryption at rest (EVENTSTORE['ENCRYPTION']), "
            "without it the data cannot be made unreadable"
        )
    destroyed = await engine.keyring.destroy(actor_id)
    snapshots = await engine.backend.purge_subject(SNAPSHOTS, engine.subjects.snapshot_subject(actor_id))
    audit = await _leave_audit_event(engine, actor_id)
    stored = await engine.get_events(actor_id, upcast=False)
    plaintext = sum(1 for e in stored if e.data)
    return ForgetResult(actor_id, destroyed, snapshots, audit, plaintext)


async def _leave_audit_event(engine: Engine, actor_id: str) -> Event | None:
    """An ActorForgotten event after the actor's last one, unless that is one already (or the actor has no events)."""
    subject = engine.subjects.event_subject(actor_id)
    for _ in range(MAX_AUDIT_ATTEMPTS):
        state = await engine._read_state(actor_id, subject)
        if state.version == 0:
            return None
        last = await engine.backend.msg_at(EVENTS, state.event_seq)
        if last is not None and engine._decode(actor_id, last).event_type == FORGOTTEN_EVENT:
            return None
        try:
            return await engine.save_event(Event(event_type=FORGOTTEN_EVENT, actor_id=actor_id, version=state.version + 1, data={}))
        except VersionConflictError:
            continue  # another write came first: look again
    raise VersionConflictError(actor_id, 0, 0, f"could not append {FORGOTTEN_EVENT} to actor {actor_id!r}: other writes kept coming first")


async def _every_message(engine: Engine, stream: str, subject_filter: str) -> AsyncIterator[RawMsg]:
    """The stream's messages on the filter, in order, 1,000 a read."""
    position = 0
    while True:
        msgs, _ = await engine.backend.next_msgs(stream, subject_filter, position + 1, 1000)
        if not msgs:
            return
        for msg in msgs:
            yield msg
        position = msgs[-1].seq


async def census(engine: Engine) -> Census:
    """Count the events and snapshots stored sealed and in clear (a full scan of both streams)."""
    out = Census()
    async for msg in _every_message(engine, EVENTS, engine.subjects.events_filter()):
        try:
            actor_id = engine.subjects.actor_id_of(msg.subject)
            event = engine._decode(actor_id, msg)
        except (Malformed, ValueError):
            continue  # malformed: eventstore_verify reports those
        if type(event.data) is Sealed:
            out.events_sealed += 1
        elif event.data:
            out.events_plain += 1
            out.plain_actors.add(actor_id)
        else:
            out.events_without_data += 1
    async for msg in _every_message(engine, SNAPSHOTS, engine.subjects.snapshots_filter()):
        try:
            snapshot = decode_snapshot(engine.subjects.actor_id_of(msg.subject), msg.data)
        except (Malformed, ValueError):
            continue
        if type(snapshot.state) is Sealed:
            out.snapshots_sealed += 1
        elif snapshot.state:
            out.snapshots_plain += 1
    return out
