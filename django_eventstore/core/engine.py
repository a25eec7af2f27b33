"""The store's rules, written once over a Backend: versions, conflicts, retries, reads, listing.

Every method is a coroutine. The JetStream store runs them on its portal loop;
the memory store drives them directly (its backend never suspends).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Awaitable, Callable, Iterable

from . import forgetting
from .actor_index import ActorIndex
from .backend import EVENTS, SNAPSHOTS, Backend, DuplicateBatch, PubAck, Publish, RawMsg, WrongLastSequence
from .crypto import DataKey, Keyring, event_aad, snapshot_aad
from .errors import EncryptionError, EventStoreError, EventTooLarge, InvalidEvent, SnapshotNotFound, VersionConflictError
from .events import (
    ActorPage,
    ActorSnapshot,
    Event,
    FeedBatch,
    Malformed,
    MalformedMessage,
    ReadResult,
    Sealed,
    check_event,
    check_snapshot,
    data_json,
    decode_event,
    decode_snapshot,
    encode_event,
    encode_snapshot,
    evolve,
    header_version,
    summary,
)
from .forgetting import Census, ForgetResult
from .limits import DEFAULT_PAGE, MAX_APPEND, MAX_PAGE, READ_BATCH
from .subjects import Subjects, validate_actor_id
from .subjects import actor_type as actor_type_of
from .upcasting import Upcasters, registry

log = logging.getLogger("django_eventstore")

SEEK_FROM = 1024  # skip-ahead by binary search pays from about this many events on
MAX_PUBLISH_ATTEMPTS = 5
PIPELINE = 256  # save_events: publishes in flight at once
PIPELINE_BYTES = 4 * 1024 * 1024  # and their bodies' bytes at most (beyond the first)


@dataclass(frozen=True, slots=True)
class _State:
    """What the server says of an actor: latest good version, its event, and the subject's last sequence."""

    version: int
    last_seq: int  # sequence of the subject's last message (well-formed or not): the expectation
    event_id: str | None = None
    event_seq: int = 0  # sequence of the latest well-formed event


_EMPTY = _State(0, 0)


# Headers the backend adds on the way (expected sequence, batch id, sequence and commit) fit in this.
PUBLISH_HEADROOM = 256


def _header_size(headers: dict[str, str]) -> int:
    return 12 + sum(len(k) + len(v.encode()) + 4 for k, v in headers.items())


class Engine:
    """The event store over a Backend (see module docstring)."""

    def __init__(
        self,
        backend: Backend,
        subjects: Subjects,
        cache_size: int = 10_000,
        *,
        keyring: Keyring | None = None,
        upcasters: Upcasters = registry,
        index_follow: float = 0.0,
    ):
        self.backend = backend
        self.subjects = subjects
        self.keyring = keyring  # None: data stored in clear
        self.upcasters = upcasters
        self._cache: OrderedDict[str, _State] = OrderedDict()
        self._cache_lock = threading.Lock()  # sync callers run the engine in their own threads, next to the loop
        self._cache_size = cache_size
        self.actor_index = ActorIndex(backend, subjects, follow=index_follow)  # list_actors' sorted ids

    # ----- the version cache (a hint: the server has the last word) -----

    def _cached(self, actor_id: str) -> _State | None:
        with self._cache_lock:
            state = self._cache.get(actor_id)
            if state is not None:
                self._cache.move_to_end(actor_id)
            return state

    def _remember(self, actor_id: str, state: _State) -> None:
        if self._cache_size <= 0:
            return
        with self._cache_lock:
            self._cache[actor_id] = state
            self._cache.move_to_end(actor_id)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _forget(self, actor_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(actor_id, None)

    def forget_cache(self) -> None:
        """Start an empty cache (in a forked child too, where another thread may have held the lock)."""
        self._cache, self._cache_lock = OrderedDict(), threading.Lock()
        if self.keyring is not None:
            self.keyring.forget_cache()
        self.actor_index.forget()

    # ----- reading an actor's state -----

    def _decode(self, actor_id: str, msg: RawMsg) -> Event:
        return decode_event(actor_id, msg.headers, msg.data, msg.seq)

    async def _read_state(self, actor_id: str, subject: str) -> _State:
        return await self._state_from(actor_id, subject, await self.backend.last_msg(EVENTS, subject))

    async def _state_from(self, actor_id: str, subject: str, msg: RawMsg | None) -> _State:
        """The actor's state from its subject's last message (remembered in the cache)."""
        if msg is None:
            state = _EMPTY
        else:
            try:
                event = self._decode(actor_id, msg)
                state = _State(event.version, msg.seq, event.id, msg.seq)  # type: ignore[arg-type]
            except Malformed:
                good = await self._last_good_event(actor_id, subject)
                state = _State(good.version, msg.seq, good.id, good.position) if good else _State(0, msg.seq)  # type: ignore[arg-type]
        self._remember(actor_id, state)
        return state

    async def _last_good_event(self, actor_id: str, subject: str) -> Event | None:
        """The latest well-formed event when the subject's last message is malformed (a scan: rare)."""
        result = await self._read_subject(actor_id, subject, 1, 0, None)
        return result.events[-1] if result.events else None

    async def get_latest_version(self, actor_id: str) -> int:
        subject = self.subjects.event_subject(actor_id)
        return (await self._read_state(actor_id, subject)).version

    # ----- writing -----

    def check_content(self, item: Event | ActorSnapshot) -> None:
        """What saving the event or snapshot would raise for its content (InvalidEvent, EventTooLarge); no I/O.

        A snapshot is sized with the largest position it could carry.
        """
        if isinstance(item, Event):
            self._encoded(self._stated(item), None)
        else:
            check_snapshot(item)
            headers, body = encode_snapshot(item, 2**64 - 1, self._sealed_state(item, None))
            self._check_size(headers, body, f"snapshot of actor {item.actor_id!r}")

    def _stated(self, event: Event, **changes: object) -> Event:
        """The event (with changes) checked, its schema stated: the newest the upcaster registry knows for its type when it gave none."""
        if not isinstance(event, Event):
            check_event(event)  # says what it is instead
        if event.schema is None and isinstance(event.event_type, str):  # any other type: check_event says what is wrong
            changes["schema"] = self.upcasters.newest(event.event_type)
        if changes:
            event = evolve(event, **changes)
        check_event(event)
        return event

    async def _keys(self, events: list[Event]) -> dict[str, DataKey]:
        """The data keys the events' data is sealed with (none without encryption, or for events without data)."""
        if self.keyring is None:
            return {}
        ids: list[str] = list(dict.fromkeys(e.actor_id for e in events if e.data))  # type: ignore[misc]
        return await self.keyring.keys_for_write(ids) if ids else {}

    def _encoded(self, event: Event, keys: dict[str, DataKey] | None) -> tuple[dict[str, str], bytes]:
        """The stated event's message headers and body, checked to fit; its data sealed when encryption is on.

        Without keys (``check``: no I/O) a box of the sealed size stands in for the sealed data.
        """
        what = f"event {event.event_type!r} of actor {event.actor_id!r}"
        sealed = None
        if self.keyring is not None and event.data:
            key = keys.get(event.actor_id) if keys is not None else None  # type: ignore[arg-type]
            sealed = Keyring.seal(key, data_json(event.data, what), event_aad(event.actor_id, event.id))  # type: ignore[arg-type]
        headers, body = encode_event(event, sealed)
        self._check_size(headers, body, what)
        return headers, body

    def _sealed_state(self, snapshot: ActorSnapshot, key: DataKey | None) -> Sealed | None:
        """A snapshot's state sealed when encryption is on (a box of the sealed size without a key)."""
        if self.keyring is None or not snapshot.state:
            return None
        plain = data_json(snapshot.state, f"snapshot state of actor {snapshot.actor_id!r}")
        return Keyring.seal(key, plain, snapshot_aad(snapshot.actor_id, snapshot.version))

    def _check_size(self, headers: dict[str, str], body: bytes, what: str) -> None:
        size = len(body) + _header_size(headers) + PUBLISH_HEADROOM
        if size > self.backend.max_payload:
            raise EventTooLarge(size, self.backend.max_payload, what)

    async def save_event(self, event: Event) -> Event:
        event = self._stated(event)
        headers, body = self._encoded(event, await self._keys([event]))
        actor_id: str = event.actor_id  # type: ignore[assignment]
        version: int = event.version  # type: ignore[assignment]
        subject = self.subjects.event_subject(actor_id)

        async def publish(state: _State) -> list[Event]:
            ack = await self.backend.publish(EVENTS, subject, headers, body, state.last_seq)
            if ack.duplicate:
                return [await self._settle_duplicate(actor_id, event, ack.seq)]
            self._remember(actor_id, _State(version, ack.seq, event.id, ack.seq))
            return [evolve(event, position=ack.seq)]

        return (await self._write(actor_id, subject, [event], publish))[0]

    async def _write(self, actor_id: str, subject: str, events: list[Event], publish: Callable[[_State], Awaitable[list[Event]]]) -> list[Event]:
        """publish(state) once the actor's state says the events follow on; the one retry rule of every write.

        The state comes from the cache when it has it; a refusal by the server
        (another writer came first, or the cache was stale) re-reads it. When
        the stored version is not the one before the events, they are our own
        earlier write (returned as stored) or a VersionConflictError.
        """
        expected: int = events[0].version - 1  # type: ignore[operator]
        state = self._cached(actor_id)
        fresh = state is None
        if state is None:
            state = await self._read_state(actor_id, subject)
        for _ in range(MAX_PUBLISH_ATTEMPTS):
            if state.version != expected and not fresh:
                state, fresh = await self._read_state(actor_id, subject), True
            if state.version != expected:
                return await self._settle_retry(actor_id, events, state)
            try:
                return await publish(state)
            except WrongLastSequence:
                state, fresh = await self._read_state(actor_id, subject), True
        raise VersionConflictError(actor_id, expected + 1, (await self._read_state(actor_id, subject)).version)

    async def _settle_retry(self, actor_id: str, events: list[Event], state: _State) -> list[Event]:
        """The versions do not follow the stored one: our own earlier write of these events, or a real conflict."""
        last = events[-1]
        if state.version == last.version and state.event_id == last.id:
            stored = await self._stored(actor_id, events, state)
            if stored is not None:
                return stored
        raise VersionConflictError(actor_id, events[0].version, state.version)  # type: ignore[arg-type]

    async def _stored(self, actor_id: str, events: list[Event], state: _State) -> list[Event] | None:
        """The stored copies of events that end at the actor's latest event, None if the ids differ."""
        if len(events) == 1:
            msg = await self.backend.msg_at(EVENTS, state.event_seq)
            return (await self._readable([self._decode(actor_id, msg)], upcast=False))[0] if msg is not None else None
        subject = self.subjects.event_subject(actor_id)
        first: int = events[0].version  # type: ignore[assignment]
        start = await self._seek(actor_id, subject, first, state.last_seq)
        stored = (await self._read_subject(actor_id, subject, start, first - 1, len(events))).events
        return (await self._readable(stored, upcast=False))[0] if [e.id for e in stored] == [e.id for e in events] else None

    async def _settle_duplicate(self, actor_id: str, event: Event, seq: int) -> Event:
        msg = await self.backend.msg_at(EVENTS, seq)
        if msg is not None and msg.subject == self.subjects.event_subject(actor_id):
            stored = self._decode(actor_id, msg)
            if stored.version == event.version:
                return (await self._readable([stored], upcast=False))[0][0]
        raise InvalidEvent(f"event id {event.id!r} is already used by another stored event (position {seq})")

    async def save_events(self, events: Iterable[Event]) -> list[Event]:
        """Store events of any actors in the given order, many publishes in flight at once.

        Every publish carries its actor's last sequence, the stream's, and the
        id of the publish before it, so the server checks every version and,
        once it refuses one, stores none after it. The refused event (another
        writer came in between, a retried event...) goes alone through
        save_event, which re-reads, settles or raises. On an error, the events
        before the failing one are stored and none after it: the error's
        ``index`` is the failing event's place in ``events`` and its ``saved``
        the events stored (nothing is stored when an event is invalid).
        """
        stated: list[Event] = []
        for event in events:
            try:
                stated.append(self._stated(event))
            except EventStoreError as e:
                e.index, e.saved = len(stated), []
                raise
        try:
            keys = await self._keys(stated)
        except EventStoreError as e:
            e.index, e.saved = 0, []  # nothing stored
            raise
        prepared = []
        for index, event in enumerate(stated):
            try:
                headers, body = self._encoded(event, keys)
            except EventStoreError as e:
                e.index, e.saved = index, []
                raise
            prepared.append((event, self.subjects.event_subject(event.actor_id), headers, body))  # type: ignore[arg-type]
        saved: list[Event] = []
        base: int | None = None  # the stream's last sequence, as far as we know
        try:
            while len(saved) < len(prepared):
                todo = prepared[len(saved) : len(saved) + PIPELINE]
                if base is None:
                    base = await self.backend.last_seq(EVENTS)
                window = self._pipeline(todo, await self._states(todo), base)
                acks = await self.backend.publish_pipelined(EVENTS, window, base) if window else []
                stored = 0
                for (event, _, _, _), ack in zip(todo, acks):
                    if not isinstance(ack, PubAck) or ack.duplicate:
                        break
                    self._remember(event.actor_id, _State(event.version, ack.seq, event.id, ack.seq))  # type: ignore[arg-type]
                    saved.append(evolve(event, position=ack.seq))
                    base, stored = ack.seq, stored + 1
                if stored == len(todo):
                    continue
                for event, _, _, _ in todo:  # refused, or not following what the cache says: read afresh
                    self._forget(event.actor_id)  # type: ignore[arg-type]
                saved.append(await self.save_event(prepared[len(saved)][0]))
                base = None
        except EventStoreError as e:
            e.index, e.saved = len(saved), saved
            raise
        return saved

    async def _states(self, prepared: list[tuple[Event, str, dict[str, str], bytes]]) -> dict[str, _State]:
        """The state of each actor of the events: from the cache, else one multi_last direct get for all the others."""
        states: dict[str, _State] = {}
        missing: dict[str, str] = {}
        for event, subject, _, _ in prepared:
            actor_id: str = event.actor_id  # type: ignore[assignment]
            if actor_id not in states and subject not in missing:
                state = self._cached(actor_id)
                if state is None:
                    missing[subject] = actor_id
                else:
                    states[actor_id] = state
        msgs = await self.backend.last_msgs(EVENTS, list(missing)) if missing else {}
        for subject, actor_id in missing.items():
            states[actor_id] = await self._state_from(actor_id, subject, msgs.get(subject))
        return states

    @staticmethod
    def _pipeline(prepared: list[tuple[Event, str, dict[str, str], bytes]], states: dict[str, _State], base: int) -> list[Publish]:
        """The publishes of the leading events whose versions follow on, each with its subject's expected last sequence.

        An actor's second event in the window expects the position its first
        gets: base + its index + 1, as the stream's expected sequence holds
        the window together.
        """
        window: list[Publish] = []
        ahead: dict[str, tuple[int, int]] = {}  # actor -> (version, last sequence) once the window before it is stored
        size = 0
        for i, (event, subject, headers, body) in enumerate(prepared):
            actor_id: str = event.actor_id  # type: ignore[assignment]
            state = states[actor_id]
            version, last_seq = ahead.get(actor_id, (state.version, state.last_seq))
            size += len(body)
            if event.version != version + 1 or (window and size > PIPELINE_BYTES):
                break
            window.append(Publish(subject, headers, body, last_seq))
            ahead[actor_id] = (event.version, base + i + 1)
        return window

    async def append(self, actor_id: str, events: Iterable[Event], expected_version: int) -> list[Event]:
        validate_actor_id(actor_id)
        if type(expected_version) is not int or expected_version < 0:
            raise InvalidEvent(f"expected_version must be an int >= 0, got {expected_version!r}")
        prepared = self._prepare_batch(actor_id, list(events), expected_version)
        if not prepared:
            return []
        if len(prepared) == 1:
            return [await self.save_event(prepared[0])]
        subject = self.subjects.event_subject(actor_id)
        keys = await self._keys(prepared)
        encoded = [self._encoded(event, keys) for event in prepared]

        async def publish(state: _State) -> list[Event]:
            try:
                last_seq = await self.backend.publish_batch(subject, encoded, state.last_seq)
            except DuplicateBatch:
                if (await self._read_state(actor_id, subject)).version == expected_version:
                    raise InvalidEvent(f"an event id of the batch is already used by another stored event (actor {actor_id!r})") from None
                raise WrongLastSequence(None) from None  # stored meanwhile, perhaps by our own earlier try: settle it
            last = prepared[-1]
            self._remember(actor_id, _State(last.version, last_seq, last.id, last_seq))  # type: ignore[arg-type]
            first_seq = last_seq - len(prepared) + 1
            for i, event in enumerate(prepared):  # copies _prepare_batch made: nobody else holds them yet
                object.__setattr__(event, "position", first_seq + i)
            return prepared

        return await self._write(actor_id, subject, prepared, publish)

    def _prepare_batch(self, actor_id: str, events: list[Event], expected_version: int) -> list[Event]:
        if len(events) > MAX_APPEND:
            raise InvalidEvent(f"append takes at most {MAX_APPEND} events at once, got {len(events)}")
        prepared = []
        ids = set()
        for i, event in enumerate(events, start=1):
            if not isinstance(event, Event):
                raise InvalidEvent(f"event {i} of the batch is a {type(event).__name__}, not an Event")
            want = expected_version + i
            if event.actor_id not in (None, actor_id):
                raise InvalidEvent(f"event {i} of the batch names actor {event.actor_id!r}, not {actor_id!r}")
            if event.version is not None and event.version != want:
                raise InvalidEvent(f"event {i} of the batch has version {event.version!r}; after expected_version {expected_version} it must be {want}")
            event = self._stated(event, actor_id=actor_id, version=want)
            if event.id in ids:
                raise InvalidEvent(f"event id {event.id!r} appears twice in the batch")
            ids.add(event.id)
            prepared.append(event)
        return prepared

    # ----- reading events -----

    async def _read_subject(
        self, actor_id: str, subject: str, start_seq: int, from_version: int, limit: int | None
    ) -> ReadResult:
        events: list[Event] = []
        errors: list[MalformedMessage] = []
        seq = start_seq
        seen = 0  # the highest version read so far: the versions still to skip ask for a bigger batch
        while limit is None or len(events) < limit:
            batch = READ_BATCH if limit is None else min(READ_BATCH, limit - len(events) + max(0, from_version - seen))
            msgs, pending = await self.backend.next_msgs(EVENTS, subject, seq, batch)
            for msg in msgs:
                try:
                    event = self._decode(actor_id, msg)
                except Malformed as e:
                    errors.append(MalformedMessage(msg.seq, str(e), msg.data, msg.subject, msg.headers))
                    continue
                version: int = event.version  # type: ignore[assignment]
                if version > seen:
                    seen = version
                if version > from_version:
                    events.append(event)
                    if limit is not None and len(events) >= limit:
                        break
            if not msgs or pending == 0:
                break
            seq = msgs[-1].seq + 1
        return ReadResult(events, errors)

    async def _seek(self, actor_id: str, subject: str, version: int, hi: int) -> int:
        """A stream sequence at or before the event with ``version`` (binary search; 1 when unsure)."""
        lo, best = 1, 1
        while lo <= hi:
            mid = (lo + hi) // 2
            msgs, _ = await self.backend.next_msgs(EVENTS, subject, mid, 1)
            if not msgs or msgs[0].seq > hi:
                hi = mid - 1
                continue
            try:
                found: int = self._decode(actor_id, msgs[0]).version  # type: ignore[assignment]
            except Malformed:
                return best  # a malformed message: scan from the last known good point
            if found <= version:
                best = msgs[0].seq
                if found == version:
                    return best
                lo = msgs[0].seq + 1
            else:
                hi = mid - 1
        return best

    async def get_events_with_errors(
        self, actor_id: str, from_version: int = 0, *, limit: int | None = None, after_position: int = 0, upcast: bool = True
    ) -> ReadResult:
        """Well-formed events with versions above from_version, and the malformed messages met on the way."""
        subject = self.subjects.event_subject(actor_id)
        if type(from_version) is not int or from_version < 0:
            raise InvalidEvent(f"from_version must be an int >= 0, got {from_version!r}")
        if type(after_position) is not int or after_position < 0:
            raise InvalidEvent(f"after_position must be an int >= 0, got {after_position!r}")
        if limit is not None and (type(limit) is not int or limit < 1):
            raise InvalidEvent(f"limit must be an int >= 1 or None, got {limit!r}")
        start = after_position + 1
        if from_version >= SEEK_FROM and after_position == 0:
            state = await self._read_state(actor_id, subject)
            if from_version >= state.version:
                return ReadResult([], [])
            start = await self._seek(actor_id, subject, from_version + 1, state.last_seq)
        return await self._finish(await self._read_subject(actor_id, subject, start, from_version, limit), upcast)

    async def get_events(
        self, actor_id: str, from_version: int = 0, *, limit: int | None = None, after_position: int = 0, upcast: bool = True
    ) -> list[Event]:
        result = await self.get_events_with_errors(actor_id, from_version, limit=limit, after_position=after_position, upcast=upcast)
        for err in result.errors:
            log.warning("skipping malformed message at position %s on actor %r: %s", err.position, actor_id, err.reason)
        return result.events

    async def read_all_with_errors(
        self,
        after_position: int = 0,
        limit: int = DEFAULT_PAGE,
        *,
        actor_type: str | None = None,
        actor_id: str | None = None,
        upcast: bool = True,
    ) -> ReadResult:
        """Events of all actors (or of one type, or one actor) in stream order, with malformed messages."""
        if type(after_position) is not int or after_position < 0:
            raise InvalidEvent(f"after_position must be an int >= 0, got {after_position!r}")
        if type(limit) is not int or limit < 1:
            raise InvalidEvent(f"limit must be an int >= 1, got {limit!r}")
        if actor_type is not None and not isinstance(actor_type, str):
            raise InvalidEvent(f"actor_type must be a string or None, got {actor_type!r}")
        if actor_id is not None:
            subject = self.subjects.event_subject(actor_id)
        else:
            subject = self.subjects.events_filter(actor_type)
        events: list[Event] = []
        errors: list[MalformedMessage] = []
        seq = after_position + 1
        while len(events) + len(errors) < limit:
            msgs, pending = await self.backend.next_msgs(EVENTS, subject, seq, min(READ_BATCH, limit - len(events) - len(errors)))
            for msg in msgs:
                try:
                    events.append(self._decode(self.subjects.actor_id_of(msg.subject), msg))
                except (Malformed, ValueError) as e:
                    errors.append(MalformedMessage(msg.seq, str(e), msg.data, msg.subject, msg.headers))
            if not msgs or pending == 0:
                break
            seq = msgs[-1].seq + 1
        return await self._finish(ReadResult(events, errors), upcast)

    async def read_all(self, after_position: int = 0, limit: int = DEFAULT_PAGE, *, actor_type: str | None = None, upcast: bool = True) -> list[Event]:
        result = await self.read_all_with_errors(after_position, limit, actor_type=actor_type, upcast=upcast)
        for err in result.errors:
            log.warning("skipping malformed message at position %s on %s: %s", err.position, err.subject, err.reason)
        return result.events

    # ----- the live feed -----

    def feed_filter(self, actor_types: list[str] | None, actor_id: str | None = None) -> tuple[str, frozenset[str] | None]:
        """The subject filter a feed reads, and the actor types to keep client-side (None: all it reads)."""
        if actor_id is not None:
            if actor_types is not None:
                raise InvalidEvent("give actor_types or actor_id, not both")
            return self.subjects.event_subject(actor_id), None  # validates the id
        if actor_types is None:
            return self.subjects.events_filter(), None
        if isinstance(actor_types, str) or not all(isinstance(t, str) and t for t in actor_types) or not actor_types:
            raise InvalidEvent(f"actor_types must be a non-empty list of actor type names or None, got {actor_types!r}")
        types = frozenset(actor_types)
        if len(types) == 1:
            return self.subjects.events_filter(next(iter(types))), None
        return self.subjects.events_filter(), types

    async def feed_step(self, position: int, subject_filter: str, types: frozenset[str] | None, batch_size: int) -> FeedBatch | None:
        """The events after position (at most batch_size messages read), or None when nothing new is stored."""
        msgs, _ = await self.backend.next_msgs(EVENTS, subject_filter, position + 1, batch_size)
        if not msgs:
            return None
        events = []
        for msg in msgs:
            try:
                actor_id = self.subjects.actor_id_of(msg.subject)
                if types is not None and actor_type_of(actor_id) not in types:
                    continue
                events.append(self._decode(actor_id, msg))
            except (Malformed, ValueError) as e:
                log.warning("skipping malformed message at position %s on %s: %s", msg.seq, msg.subject, e)
        events, failed = await self._readable(events)
        for event, reason in failed:
            log.warning("skipping event at position %s of actor %r: %s", event.position, event.actor_id, reason)
        return FeedBatch(events, msgs[-1].seq)

    # ----- what readers see: opened and upcast -----

    async def _finish(self, result: ReadResult, upcast: bool) -> ReadResult:
        """A read's events as callers see them; an event an upcaster fails on joins the malformed messages."""
        events, failed = await self._readable(result.events, upcast)
        if not failed:
            return ReadResult(events, result.errors)
        errors = list(result.errors)
        for event, reason in failed:
            msg = await self.backend.msg_at(EVENTS, event.position)  # type: ignore[arg-type]
            errors.append(MalformedMessage(event.position, reason, msg.data, msg.subject, msg.headers) if msg else MalformedMessage(event.position, reason, b""))  # type: ignore[arg-type]
        errors.sort(key=lambda m: m.position)
        return ReadResult(events, errors)

    async def _readable(self, events: list[Event], upcast: bool = True) -> tuple[list[Event], list[tuple[Event, str]]]:
        """Sealed data opened (None and ``forgotten`` for forgotten actors), then, with upcast, upcast to the newest schema.

        The events an upcaster fails on come back apart, with the reason.
        """
        events = await self._opened(events)
        if not upcast or not self.upcasters:
            return events, []
        out: list[Event] = []
        failed: list[tuple[Event, str]] = []
        for event in events:
            try:
                out.append(self.upcasters.upcast(event))
            except Malformed as e:
                failed.append((event, str(e)))
        return out, failed

    async def _opened(self, events: list[Event]) -> list[Event]:
        wanted: dict[str, str] = {e.actor_id: e.data.key_id for e in events if isinstance(e.data, Sealed)}  # type: ignore[misc, attr-defined]
        if not wanted:
            return events
        keyring = self._keyring_to_open(f"the data of actor {next(iter(wanted))!r}")
        entries = await keyring.entries_for(wanted)
        out = []
        for event in events:
            sealed = event.data
            if type(sealed) is not Sealed:
                out.append(event)
                continue
            entry = entries[event.actor_id]  # type: ignore[index]
            if entry.key is not None and entry.key.id == sealed.key_id:
                what = f"event {event.version} of actor {event.actor_id!r}"
                out.append(evolve(event, data=keyring.open(entry.key, sealed, event_aad(event.actor_id, event.id), what)))  # type: ignore[arg-type]
            elif entry.key is not None or entry.forgotten:
                out.append(evolve(event, data=None, forgotten=True))
            else:
                raise EncryptionError(f"the data of actor {event.actor_id!r} is encrypted, but bucket {keyring.bucket} has no key for it: is KEY_BUCKET right?")
        return out

    def _keyring_to_open(self, what: str) -> Keyring:
        """The keyring that opens sealed data; EncryptionError naming ``what`` when encryption is off."""
        if self.keyring is None:
            raise EncryptionError(f"{what} is encrypted, and EVENTSTORE has no ENCRYPTION setting to open it")
        return self.keyring

    async def wait_for_new(self, subject_filter: str, position: int, timeout: float) -> bool:
        """Wait until a message after position may be stored on the filter (True), or timeout passed (False)."""
        return await self.backend.wait_for_messages(EVENTS, subject_filter, position, timeout)

    async def last_position(self, actor_type: str | None = None) -> int:
        """The position of the last message (of one actor type), 0 when none: one direct get."""
        if actor_type is not None and (not isinstance(actor_type, str) or not actor_type):
            raise InvalidEvent(f"actor_type must be a non-empty string or None, got {actor_type!r}")
        msg = await self.backend.last_msg(EVENTS, self.subjects.events_filter(actor_type))
        return msg.seq if msg is not None else 0

    # ----- snapshots -----

    async def save_snapshot(self, snapshot: ActorSnapshot) -> ActorSnapshot:
        check_snapshot(snapshot)
        actor_id = snapshot.actor_id
        subject = self.subjects.event_subject(actor_id)
        state = await self._read_state(actor_id, subject)
        if snapshot.version > state.version:
            raise VersionConflictError(
                actor_id,
                snapshot.version,
                state.version,
                f"snapshot of actor {actor_id!r} at version {snapshot.version} is ahead of its latest version {state.version}",
            )
        position = state.event_seq
        if snapshot.version != state.version:
            start = await self._seek(actor_id, subject, snapshot.version, state.last_seq)
            found = await self._read_subject(actor_id, subject, start, snapshot.version - 1, 1)
            position = found.events[0].position if found.events else 0  # type: ignore[assignment]
        key = None
        if self.keyring is not None and snapshot.state:
            key = (await self.keyring.keys_for_write([actor_id]))[actor_id]
        headers, body = encode_snapshot(snapshot, position, self._sealed_state(snapshot, key))
        self._check_size(headers, body, f"snapshot of actor {actor_id!r}")
        await self.backend.publish(SNAPSHOTS, self.subjects.snapshot_subject(actor_id), headers, body, None)
        return replace(snapshot, position=position)

    async def get_latest_snapshot(self, actor_id: str) -> ActorSnapshot:
        msg = await self.backend.last_msg(SNAPSHOTS, self.subjects.snapshot_subject(actor_id))
        if msg is None:
            raise SnapshotNotFound(actor_id)
        try:
            snapshot = decode_snapshot(actor_id, msg.data)
        except Malformed as e:
            log.warning("snapshot of actor %r at position %s is malformed: %s", actor_id, msg.seq, e)
            raise SnapshotNotFound(actor_id) from None
        if type(snapshot.state) is not Sealed:
            return snapshot
        return await self._opened_snapshot(snapshot)

    async def _opened_snapshot(self, snapshot: ActorSnapshot) -> ActorSnapshot:
        """A sealed snapshot opened; SnapshotNotFound when its actor was forgotten (or encryption is off)."""
        sealed: Sealed = snapshot.state  # type: ignore[assignment]
        keyring = self._keyring_to_open(f"the snapshot of actor {snapshot.actor_id!r}")
        entry = (await keyring.entries_for({snapshot.actor_id: sealed.key_id}))[snapshot.actor_id]
        if entry.key is None or entry.key.id != sealed.key_id:
            raise SnapshotNotFound(snapshot.actor_id)  # its key was destroyed: the actor was forgotten
        state = keyring.open(entry.key, sealed, snapshot_aad(snapshot.actor_id, snapshot.version), f"the snapshot of actor {snapshot.actor_id!r}")
        return replace(snapshot, state=state)

    # ----- listing actors -----

    async def _ids_in(self, stream: str, subject_filter: str) -> list[str]:
        ids = []
        for subject in await self.backend.subjects(stream, subject_filter):
            try:
                ids.append(self.subjects.actor_id_of(subject))
            except ValueError:
                log.warning("ignoring subject %r: not an encoded actor subject", subject)
        return ids

    async def actor_ids(self, actor_type: str | None = None, prefix: str | None = None) -> list[str]:
        """Every actor id with at least one message, sorted, optionally of one type and id prefix."""
        return await self.actor_index.ids(actor_type, prefix)

    async def actor_types(self) -> list[str]:
        """The actor types present, sorted (from the actor index: no listing of its own)."""
        return await self.actor_index.types()

    async def list_actors(
        self,
        actor_type: str | None = None,
        prefix: str | None = None,
        limit: int = DEFAULT_PAGE,
        after: str | None = None,
        offset: int = 0,
    ) -> ActorPage:
        if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
            raise InvalidEvent(f"limit must be an int from 1 to {MAX_PAGE}, got {limit!r}")
        if type(offset) is not int or offset < 0:
            raise InvalidEvent(f"offset must be an int >= 0, got {offset!r}")
        for name, value in (("actor_type", actor_type), ("prefix", prefix), ("after", after)):
            if value is not None and not isinstance(value, str):
                raise InvalidEvent(f"{name} must be a string or None, got {value!r}")
        page = await self.actor_index.page(actor_type, prefix, limit, after, offset)
        latest = await self._latest_events(page.ids)
        snapshots = await self._snapshot_versions(page.ids)
        actors = [summary(i, latest[i][0], snapshots.get(i), latest[i][1]) for i in page.ids]
        return ActorPage(actors, page.ids[-1] if page.more and page.ids else None, page.total)

    async def _latest_events(self, actor_ids: list[str]) -> dict[str, tuple[int, datetime | None]]:
        """Each actor's latest version and its event's timestamp, from one batched read of their last messages.

        A malformed last message costs a scan for the latest well-formed event.
        """
        if not actor_ids:
            return {}
        by_subject = {self.subjects.event_subject(i): i for i in actor_ids}
        msgs = await self.backend.last_msgs(EVENTS, list(by_subject))
        latest: dict[str, tuple[int, datetime | None]] = {}
        for subject, actor_id in by_subject.items():
            msg = msgs.get(subject)
            try:
                if msg is None:
                    raise Malformed("no message")
                event = self._decode(actor_id, msg)
                latest[actor_id] = (event.version, event.timestamp)  # type: ignore[assignment]
            except Malformed:
                good = await self._last_good_event(actor_id, subject)
                latest[actor_id] = (good.version, good.timestamp) if good else (0, None)  # type: ignore[assignment]
        return latest

    async def _snapshot_versions(self, actor_ids: list[str]) -> dict[str, int]:
        if not actor_ids:
            return {}
        by_subject = {self.subjects.snapshot_subject(i): i for i in actor_ids}
        msgs = await self.backend.last_msgs(SNAPSHOTS, list(by_subject))
        out = {}
        for subject, msg in msgs.items():
            version = header_version(msg.headers)
            if subject in by_subject and version is not None:
                out[by_subject[subject]] = version
        return out

    async def snapshot_actor_ids(self, actor_type: str | None = None) -> list[str]:
        """Every actor id with a snapshot, sorted, optionally of one type (events or not)."""
        return sorted(await self._ids_in(SNAPSHOTS, self.subjects.snapshots_filter(actor_type)))

    async def snapshot_versions(self, actor_ids: list[str]) -> dict[str, int]:
        """Snapshot version of each actor that has one (one batched lookup)."""
        for actor_id in actor_ids:
            validate_actor_id(actor_id)
        return await self._snapshot_versions(list(actor_ids))

    # ----- forgetting -----

    async def forget(self, actor_id: str) -> ForgetResult:
        """Erase the actor's data key, delete its snapshots, leave an ActorForgotten event (see forgetting.py)."""
        return await forgetting.forget(self, actor_id)

    async def rotate_master_key(self) -> int:
        """Re-wrap every data key with the first master key; how many."""
        if self.keyring is None:
            raise EncryptionError("there is no master key to rotate: EVENTSTORE has no ENCRYPTION setting")
        return await self.keyring.rotate()

    async def census(self) -> Census:
        return await forgetting.census(self)

    async def close(self) -> None:
        await self.actor_index.close()
        await self.backend.close()

