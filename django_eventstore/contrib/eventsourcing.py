"""A persistence module for the eventsourcing library, built on the store's public API.

Select it the library's usual way::

    PERSISTENCE_MODULE=django_eventstore.contrib.eventsourcing

and an eventsourcing ``Application`` keeps its events in JetStream, where the
admin, the REST API and the commands browse them. The mapping (aggregate id ->
actor id, topic -> event type, notification id -> position), the settings and
the limits are described in docs/eventsourcing.md.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import pairwise
from typing import Any, Literal
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DatabaseError,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    Notification,
    OperationalError,
    ProcessRecorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, get_topic, resolve_topic

from ..core.errors import (
    EventStoreError,
    EventStoreUnavailable,
    InvalidActorId,
    InvalidEvent,
    StreamSetupError,
    VersionConflictError,
)
from ..core.events import Event, FeedBatch, ReadResult
from ..core.facade import EventStore
from ..core.limits import MAX_APPEND, MAX_EVENT_TYPE_LENGTH

__all__ = [
    "JetStreamFactory",
    "JetStreamAggregateRecorder",
    "JetStreamApplicationRecorder",
    "JetStreamTrackingRecorder",
    "JetStreamProcessRecorder",
    "JetStreamSubscription",
    "Factory",
]

StoreProvider = Callable[[], EventStore]
IdType = Literal["uuid", "text"]

# The event's metadata keys: the library's version of the event, how its state is kept, and its topic when too long for an event type.
META_VERSION = "originator_version"
META_STATE = "state"
META_TOPIC = "topic"
STATE_JSON = "json"
STATE_BASE64 = "base64"
TRACKING_TOPIC = get_topic(Tracking)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode  # the store's and the library's JSON
READ_PAGE = 1000  # events asked of the store per read
TOPIC_SCAN_PAGE = 256  # at least this many per read when filtering by topic
MAX_INSERT_ATTEMPTS = 5
STATE_CACHE_SIZE = 10_000
SHORT_HISTORY = 64  # events of an actor read whole to find its last one; above, a look back by position
LOOK_BACK = 4  # the first look-back window, in stream positions (a tracking record is a few positions from the end while processing)
SUBSCRIPTION_IDLE = 0.25  # seconds a live subscription waits before it looks at stop() again


@contextmanager
def _translated() -> Iterator[None]:
    """The store's errors as the library's: a version conflict is its IntegrityError, bad input a DataError, no NATS an OperationalError."""
    try:
        yield
    except VersionConflictError as e:
        raise IntegrityError(str(e)) from e
    except (InvalidActorId, InvalidEvent) as e:
        raise DataError(str(e)) from e
    except (EventStoreUnavailable, StreamSetupError) as e:
        raise OperationalError(str(e)) from e
    except EventStoreError as e:
        raise DatabaseError(str(e)) from e


# ----- state bytes <-> event data -----


def state_to_data(state: bytes) -> tuple[dict[str, Any], str]:
    """The event data keeping ``state``: the JSON object itself when the bytes are exactly its JSON, else ``{"base64": ...}``."""
    try:
        doc = json.loads(state)
        if type(doc) is dict and _dumps(doc).encode("utf-8") == state:
            return doc, STATE_JSON
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass  # compressed, encrypted or otherwise not our JSON: kept as base64
    return {"base64": base64.b64encode(state).decode("ascii")}, STATE_BASE64


def data_to_state(data: dict[str, Any], kind: object) -> bytes:
    """Invert state_to_data."""
    if kind == STATE_BASE64:
        try:
            return base64.b64decode(data["base64"], validate=True)
        except (KeyError, TypeError, binascii.Error) as e:
            raise DataError(f"event data marked base64 holds no valid 'base64' field: {e}") from None
    return _dumps(data).encode("utf-8")


def _event_type_for(topic: str) -> tuple[str, str | None]:
    """The event type naming a topic, and the topic to keep in metadata when it cannot be an event type as it is."""
    if not isinstance(topic, str) or not topic:
        raise DataError(f"a stored event's topic must be a non-empty string, got {topic!r}")
    if len(topic) <= MAX_EVENT_TYPE_LENGTH and topic.isprintable() and topic == topic.strip():
        return topic, None
    shown = "".join(c if c.isprintable() else "?" for c in topic).strip()[: MAX_EVENT_TYPE_LENGTH - 1] or "?"
    return shown + "…", topic


# ----- recorders -----


class JetStreamRecorder:
    """What every recorder shares: its store, its actor type, and the originator id <-> actor id mapping.

    An aggregate with id ``U`` is actor ``<actor_type>-U``: its type is the
    application's (so the admin's type filter tells applications apart) and a
    read by originator id alone finds the subject.
    """

    def __init__(self, store: StoreProvider, actor_type: str, originator_id_type: IdType = "uuid", tracking_type: str | None = None):
        self._store_provider = store
        self.actor_type = check_actor_type(actor_type)
        self.originator_id_type: IdType = originator_id_type
        self.tracking_type = check_actor_type(tracking_type or f"{actor_type}_tracking")

    @property
    def store(self) -> EventStore:
        """The store, looked up at each use: in a Django project get_store() follows settings changes."""
        return self._store_provider()

    def actor_id(self, originator_id: UUID | str) -> str:
        """``<actor_type>-<originator id>`` (a UUID in its canonical hyphenated form)."""
        if isinstance(originator_id, UUID):
            return f"{self.actor_type}-{originator_id}"
        if not isinstance(originator_id, str):
            raise DataError(f"originator_id must be a UUID or a str, got {type(originator_id).__name__}")
        if self.originator_id_type == "uuid":
            try:
                return f"{self.actor_type}-{UUID(originator_id)}"
            except ValueError:
                raise DataError(f"originator_id {originator_id!r} is not a UUID (set ORIGINATOR_ID_TYPE=text for other ids)") from None
        return f"{self.actor_type}-{originator_id}"

    def originator_id(self, actor_id: str) -> UUID | str:
        """Invert actor_id (ids read back are UUIDs unless ORIGINATOR_ID_TYPE is text)."""
        raw = actor_id.partition("-")[2]
        return UUID(raw) if self.originator_id_type == "uuid" else raw


def check_actor_type(name: str) -> str:
    """An actor type usable before the first ``-`` of actor ids; DataError naming the problem otherwise."""
    if not isinstance(name, str) or not name or "-" in name or name == "_" or not name.isprintable() or len(name) > 64:
        raise DataError(f"actor type must be 1 to 64 printable characters without '-' (and not '_'), got {name!r}")
    return name


class _Head:
    """What an aggregate's last stored event says: our version and the library's originator version."""

    __slots__ = ("version", "originator_version")

    def __init__(self, version: int, originator_version: int | None):
        self.version = version
        self.originator_version = originator_version


def _originator_version(event: Event) -> int:
    value = event.metadata.get(META_VERSION)
    return value if type(value) is int else event.version  # type: ignore[return-value]  # an event written by something else: its own version


def last_event(store: EventStore, actor_id: str) -> Event | None:
    """The actor's latest event, None when it has none.

    A short history is read whole in one request (the store skips earlier
    versions a batch at a time). A long one, such as a tracking actor's, is
    found by looking back from the stream's end at the actor's subject only,
    in windows growing eightfold: one request when it was written recently.
    """
    with _translated():
        version = store.get_latest_version(actor_id)
        if version == 0:
            return None
        if version <= SHORT_HISTORY:
            events = store.get_events(actor_id, version - 1)
            return events[0] if events else None
    return look_back(store, actor_id=actor_id)


def look_back(store: EventStore, *, actor_id: str | None = None, actor_type: str | None = None) -> Event | None:
    """The last event of an actor (or of an actor type) in the stream: read forward from ever earlier positions until one shows up.

    The windows start a few positions before the end and grow eightfold, and
    the store filters by subject on the server, so a recent event costs one
    request and an old one a few.
    """
    with _translated():
        high, window = store.last_position(), LOOK_BACK
        while high > 0:
            low = max(high - window, 0)
            last = None
            for event in _read_forward(store, low, actor_id=actor_id, actor_type=actor_type):
                last = event
            if last is not None:
                return last
            high, window = low, window * 8
    return None


def _read_forward(store: EventStore, after_position: int, *, actor_id: str | None, actor_type: str | None) -> Iterator[Event]:
    """The events of an actor (or type) after a stream position, to the end, a page at a time."""
    while True:
        result = store.read_all_with_errors(after_position=after_position, limit=READ_PAGE, actor_id=actor_id, actor_type=actor_type)
        yield from result.events
        read = _positions(result)
        if len(read) < READ_PAGE:
            return
        after_position = max(read)


def _positions(result: ReadResult) -> list[int]:
    """The stream positions a read went through: its events' and its malformed messages'."""
    return [e.position for e in result.events if e.position is not None] + [m.position for m in result.errors]


class JetStreamAggregateRecorder(JetStreamRecorder, AggregateRecorder):
    """Stored events of aggregates as actors' events; the events of one aggregate saved at once are one atomic append.

    The store's versions run 1, 2, 3... per actor; the library's
    ``originator_version`` travels in the event's metadata (they are equal for
    aggregates that start at version 1, as the library's do). The store's
    server-checked version is what makes a concurrent save fail with the
    library's IntegrityError.
    """

    def __init__(self, store: StoreProvider, actor_type: str, originator_id_type: IdType = "uuid", tracking_type: str | None = None):
        super().__init__(store, actor_type, originator_id_type, tracking_type)
        self._heads: OrderedDict[str, _Head] = OrderedDict()
        self._heads_lock = threading.Lock()

    # --- writing ---

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        self._insert(stored_events)
        return None

    def _insert(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        """Store the events, one atomic append per aggregate; their positions in the given order.

        Every aggregate's events are checked against what is stored before
        anything is written, so a stale save stores nothing.
        """
        if not stored_events:
            return []
        groups: dict[str, list[int]] = {}
        for index, stored in enumerate(stored_events):
            if not isinstance(stored, StoredEvent):
                raise DataError(f"expected StoredEvent objects, got {type(stored).__name__}")
            groups.setdefault(self.actor_id(stored.originator_id), []).append(index)
        for actor_id, indexes in groups.items():
            versions = [stored_events[i].originator_version for i in indexes]
            if any(type(v) is not int for v in versions):
                raise DataError(f"originator_version must be an int, got {versions!r} for {actor_id!r}")
            if any(b <= a for a, b in pairwise(versions)):
                raise IntegrityError(f"the events of {actor_id!r} do not have increasing versions: {versions}")
            if len(indexes) > MAX_APPEND:
                raise DataError(f"{len(indexes)} events of one aggregate in one save; at most {MAX_APPEND} are stored atomically")
        heads = {actor_id: self._head(actor_id, first_version=stored_events[indexes[0]].originator_version) for actor_id, indexes in groups.items()}
        for actor_id, indexes in groups.items():
            self._check_follows(actor_id, stored_events[indexes[0]].originator_version, heads[actor_id])
        positions: list[int] = [0] * len(stored_events)
        for actor_id, indexes in groups.items():
            group = [stored_events[i] for i in indexes]
            for i, position in zip(indexes, self._append(actor_id, group, heads[actor_id])):
                positions[i] = position
        return positions

    @staticmethod
    def _check_follows(actor_id: str, first_version: int, head: _Head) -> None:
        if head.originator_version is not None and first_version <= head.originator_version:
            raise IntegrityError(
                f"stored event of {actor_id!r} at version {first_version} already recorded (the latest recorded version is {head.originator_version})"
            )

    def _append(self, actor_id: str, group: list[StoredEvent], head: _Head) -> list[int]:
        events = [self._event(stored) for stored in group]
        for _ in range(MAX_INSERT_ATTEMPTS):
            try:
                with _translated():
                    saved = self.store.append(actor_id, events, expected_version=head.version)
            except IntegrityError:
                head = self._head(actor_id, fresh=True)  # another writer came first, or our cache was stale
                self._check_follows(actor_id, group[0].originator_version, head)
                continue
            self._remember(actor_id, _Head(saved[-1].version, group[-1].originator_version))  # type: ignore[arg-type]
            return [e.position for e in saved]  # type: ignore[misc]
        raise IntegrityError(f"gave up saving events of {actor_id!r} after {MAX_INSERT_ATTEMPTS} version conflicts")

    @staticmethod
    def _event(stored: StoredEvent) -> Event:
        data, kind = state_to_data(stored.state)
        event_type, long_topic = _event_type_for(stored.topic)
        metadata: dict[str, Any] = {META_VERSION: stored.originator_version, META_STATE: kind}
        if long_topic is not None:
            metadata[META_TOPIC] = long_topic
        return Event(event_type=event_type, data=data, metadata=metadata)

    def _head(self, actor_id: str, fresh: bool = False, first_version: int | None = None) -> _Head:
        """The aggregate's last stored versions: from this recorder's cache, else from the server.

        A cache miss for an event numbered 0 or 1 (a new aggregate, as a rule)
        is taken as an empty history without asking: when the aggregate exists
        after all, the store refuses the append and a fresh read settles it.
        A stale entry likewise only costs a refused append.
        """
        if not fresh:
            with self._heads_lock:
                head = self._heads.get(actor_id)
            if head is not None:
                return head
            if first_version is not None and first_version <= 1:
                return _Head(0, None)
        last = last_event(self.store, actor_id)
        head = _Head(last.version, _originator_version(last)) if last else _Head(0, None)  # type: ignore[arg-type]
        self._remember(actor_id, head)
        return head

    def _remember(self, actor_id: str, head: _Head) -> None:
        with self._heads_lock:
            self._heads[actor_id] = head
            self._heads.move_to_end(actor_id)
            if len(self._heads) > STATE_CACHE_SIZE:
                self._heads.popitem(last=False)

    # --- reading ---

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        actor_id = self.actor_id(originator_id)
        oid = self.originator_id(actor_id)
        if limit is not None and limit < 1:
            return []
        with _translated():
            if desc and lte is None and limit == 1:  # the last one (a snapshot, the head): no replay
                last = last_event(self.store, actor_id)
                return [self._stored(oid, last)] if last and (gt is None or _originator_version(last) > gt) else []
            found = [self._stored(oid, e) for e in self._scan(actor_id, gt, lte, None if desc else limit)]
        if desc:
            found.reverse()
            if limit is not None:
                found = found[:limit]
        return found

    def _scan(self, actor_id: str, gt: int | None, lte: int | None, limit: int | None) -> Iterator[Event]:
        """The actor's events with gt < originator_version <= lte, in order.

        Originator versions increase by at least 1 per event, so the read can
        start after our version ``gt`` when the event there says nothing above
        gt comes before it (always so for aggregates numbered 0... or 1...);
        otherwise it starts at the first event. A read to the end refreshes
        the cached head, so a save after a load needs no lookup.
        """
        after = 0
        page: list[Event] = []
        if gt is not None and gt > 0:
            page = self.store.get_events(actor_id, gt, limit=READ_PAGE)
            if page and _originator_version(page[0]) <= gt + 1:
                after = gt
            else:
                page = []
        count = 0
        while True:
            if not page:
                page = self.store.get_events(actor_id, after, limit=READ_PAGE)
            for event in page:
                ov = _originator_version(event)
                if lte is not None and ov > lte:
                    return
                if gt is None or ov > gt:
                    yield event
                    count += 1
                    if limit is not None and count >= limit:
                        return
            if len(page) < READ_PAGE:
                if page:
                    self._remember(actor_id, _Head(page[-1].version, _originator_version(page[-1])))  # type: ignore[arg-type]
                return
            after, page = page[-1].version, []  # type: ignore[assignment]

    @staticmethod
    def _stored(originator_id: UUID | str, event: Event) -> StoredEvent:
        return StoredEvent(
            originator_id=originator_id,
            originator_version=_originator_version(event),
            topic=event.metadata.get(META_TOPIC) or event.event_type,
            state=data_to_state(event.data, event.metadata.get(META_STATE)),
        )


class JetStreamApplicationRecorder(JetStreamAggregateRecorder, ApplicationRecorder):
    """Also the application sequence: notification ids are the events' stream positions (increasing, with gaps where other actors' events sit)."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        return self._insert(stored_events)

    def _notification(self, event: Event) -> Notification:
        stored = self._stored(self.originator_id(event.actor_id), event)  # type: ignore[arg-type]
        return Notification(
            id=event.position,  # type: ignore[arg-type]
            originator_id=stored.originator_id,
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=stored.state,
        )

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        after = 0 if start is None else max(start - 1 if inclusive_of_start else start, 0)
        found: list[Notification] = []
        while len(found) < limit:
            want = limit - len(found)
            page = min(max(want, TOPIC_SCAN_PAGE) if topics else want, READ_PAGE)
            with _translated():
                result = self.store.read_all_with_errors(after_position=after, limit=page, actor_type=self.actor_type)
            for event in result.events:
                if stop is not None and event.position > stop:  # type: ignore[operator]
                    return found
                if topics and (event.metadata.get(META_TOPIC) or event.event_type) not in topics:
                    continue
                found.append(self._notification(event))
                if len(found) == limit:
                    return found
            read = _positions(result)
            if len(read) < page:
                break
            after = max(read)
        return found

    def max_notification_id(self) -> int | None:
        """The position of this application's last event (None when it has none): a look back from the stream's end."""
        last = look_back(self.store, actor_type=self.actor_type)
        return last.position if last is not None else None

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription[ApplicationRecorder]:
        return JetStreamSubscription(self, gt=gt, topics=topics)


class JetStreamSubscription(Subscription[JetStreamApplicationRecorder]):
    """The application sequence from a position on, following new events on the store's live feed."""

    def __init__(self, recorder: JetStreamApplicationRecorder, gt: int | None = None, topics: Sequence[str] = ()) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        self._feed = recorder.store.subscribe(after_position=gt or 0, actor_types=[recorder.actor_type], idle_timeout=SUBSCRIPTION_IDLE)
        self._buffer: deque[Notification] = deque()
        self._reading = threading.Lock()  # held while a thread waits on the feed, so stop() from another thread does not close it under it

    def __next__(self) -> Notification:
        while True:
            if self._has_been_stopped:
                self._close_feed()
                raise StopIteration
            if self._buffer:
                return self._buffer.popleft()
            with self._reading, _translated():
                batch: FeedBatch = next(self._feed)
            for event in batch.events:
                notification = self._recorder._notification(event)
                if not self._topics or notification.topic in self._topics:
                    self._buffer.append(notification)

    def stop(self) -> None:
        """Stop the iteration: at once in this thread, within SUBSCRIPTION_IDLE seconds for a thread waiting on the feed."""
        super().stop()
        if self._reading.acquire(blocking=False):
            try:
                self._feed.close()
            finally:
                self._reading.release()

    def _close_feed(self) -> None:
        with self._reading:
            self._feed.close()


class JetStreamTrackingRecorder(JetStreamRecorder, TrackingRecorder):
    """Tracking records of one application, as the events of actor ``<actor_type>_tracking-<upstream application>``.

    Each record is appended with the store's version check, so two processors
    of the same notification cannot both record it.
    """

    def tracking_actor_id(self, application_name: str) -> str:
        if not isinstance(application_name, str) or not application_name:
            raise DataError(f"application_name must be a non-empty string, got {application_name!r}")
        return f"{self.tracking_type}-{application_name}"

    def _tracking_head(self, application_name: str) -> tuple[int, int | None]:
        """(our version, notification id) of the application's last tracking record, from the server; (0, None) when none."""
        actor_id = self.tracking_actor_id(application_name)
        last = last_event(self.store, actor_id)
        if last is None:
            return 0, None
        notification_id = last.data.get("notification_id")
        if type(notification_id) is not int:
            raise DataError(f"tracking record {actor_id!r} v{last.version} has no int notification_id")
        return last.version, notification_id  # type: ignore[return-value]

    @staticmethod
    def _check_tracking(tracking: Tracking, head: tuple[int, int | None]) -> None:
        if head[1] is not None and tracking.notification_id <= head[1]:
            raise IntegrityError(
                f"tracking notification ID {tracking.notification_id} of {tracking.application_name!r} not greater than the recorded {head[1]}"
            )

    def _record_tracking(self, tracking: Tracking, head: tuple[int, int | None]) -> None:
        actor_id = self.tracking_actor_id(tracking.application_name)
        if type(tracking.notification_id) is not int:
            raise DataError(f"tracking notification_id must be an int, got {tracking.notification_id!r}")
        event = Event(
            event_type=TRACKING_TOPIC,
            data={"application_name": tracking.application_name, "notification_id": tracking.notification_id},
        )
        for _ in range(MAX_INSERT_ATTEMPTS):
            self._check_tracking(tracking, head)
            try:
                with _translated():
                    self.store.append(actor_id, [event], expected_version=head[0])
                return
            except IntegrityError:
                head = self._tracking_head(tracking.application_name)  # recorded meanwhile: ours may still be above it
        raise IntegrityError(f"gave up recording tracking {tracking} after {MAX_INSERT_ATTEMPTS} version conflicts")

    def insert_tracking(self, tracking: Tracking) -> None:
        self._record_tracking(tracking, self._tracking_head(tracking.application_name))

    def max_tracking_id(self, application_name: str) -> int | None:
        return self._tracking_head(application_name)[1]


class JetStreamProcessRecorder(JetStreamTrackingRecorder, JetStreamApplicationRecorder, ProcessRecorder):
    """Events with the tracking record of the notification they came from.

    The tracking record is checked before anything is written (a notification
    already processed stores nothing), the events are stored, then the record
    is appended with its version check: see docs/eventsourcing.md, Limits.
    """

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        head = None
        if tracking is not None:
            head = self._tracking_head(tracking.application_name)
            self._check_tracking(tracking, head)
        positions = self._insert(stored_events)
        if tracking is not None and head is not None:
            self._record_tracking(tracking, head)
        return positions


# ----- the factory -----

_env_stores: dict[tuple[Any, ...], EventStore] = {}
_env_stores_lock = threading.Lock()


def _in_django_project() -> bool:
    try:
        from django.conf import settings
    except ImportError:  # pragma: no cover - Django is a dependency of the package
        return False
    return bool(settings.configured)


def env_config(env: Environment) -> dict[str, Any]:
    """The store's configuration from the application's environment (outside a Django project)."""
    servers = [s.strip() for s in (env.get("EVENTSTORE_SERVERS") or "nats://127.0.0.1:4222").split(",") if s.strip()]
    if not servers:
        raise OSError("EVENTSTORE_SERVERS names no server (a comma-separated list of nats:// URLs)")
    timeout_text = env.get("EVENTSTORE_TIMEOUT") or "5"
    try:
        timeout = float(timeout_text)
    except ValueError:
        raise OSError(f"EVENTSTORE_TIMEOUT must be a number of seconds, got {timeout_text!r}") from None
    if not timeout > 0:
        raise OSError(f"EVENTSTORE_TIMEOUT must be above 0, got {timeout_text!r}")
    return {
        "SERVERS": servers,
        "STREAM": env.get("EVENTSTORE_STREAM") or "EVENTSTORE",
        "SUBJECT_PREFIX": env.get("EVENTSTORE_SUBJECT_PREFIX") or "es",
        "TIMEOUT": timeout,
    }


def _env_store(config: dict[str, Any]) -> EventStore:
    """One store per distinct configuration, for the process's life (as get_store())."""
    key = (tuple(config["SERVERS"]), config["STREAM"], config["SUBJECT_PREFIX"], config["TIMEOUT"])
    with _env_stores_lock:
        store = _env_stores.get(key)
        if store is None:
            from ..core.jetstream import JetStreamEventStore

            store = JetStreamEventStore(config["SERVERS"], stream=config["STREAM"], subject_prefix=config["SUBJECT_PREFIX"], timeout=config["TIMEOUT"])
            _env_stores[key] = store
    return store


class JetStreamFactory(InfrastructureFactory[JetStreamTrackingRecorder]):
    """Recorders over the store: ``settings.EVENTSTORE``'s in a Django project, else one configured by EVENTSTORE_* variables."""

    EVENTSTORE_ACTOR_TYPE = "EVENTSTORE_ACTOR_TYPE"
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"

    aggregate_recorder_class = JetStreamAggregateRecorder
    application_recorder_class = JetStreamApplicationRecorder
    tracking_recorder_class = JetStreamTrackingRecorder
    process_recorder_class = JetStreamProcessRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        self.actor_type = self.env.get(self.EVENTSTORE_ACTOR_TYPE) or (self.env.name.lower() or "eventsourcing")
        try:
            check_actor_type(self.actor_type)
        except DataError as e:
            raise OSError(f"{self.EVENTSTORE_ACTOR_TYPE} (or the application's name): {e}") from None
        id_type = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").lower()
        if id_type not in ("uuid", "text"):
            raise OSError(f"Invalid {self.ORIGINATOR_ID_TYPE} {id_type!r}, must be 'uuid' or 'text'")
        self.originator_id_type: IdType = id_type  # type: ignore[assignment]
        self.store_provider: StoreProvider
        if _in_django_project():
            from ..store import get_store

            self.store_provider = get_store
        else:
            store = _env_store(env_config(self.env))
            self.store_provider = lambda: store

    def _recorder_kwargs(self, actor_type: str | None = None) -> dict[str, Any]:
        return {
            "store": self.store_provider,
            "actor_type": actor_type or self.actor_type,
            "originator_id_type": self.originator_id_type,
            "tracking_type": f"{self.actor_type}_tracking",
        }

    def _resolve(self, topic_key: str, default: type[Any], base: type[Any]) -> type[Any]:
        topic = self.env.get(topic_key)
        cls = resolve_topic(topic) if topic else default
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise OSError(f"{topic_key} {topic!r} is not a subclass of {base.__name__}")
        return cls

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """The events' recorder (actor type <type>), or another purpose's, e.g. snapshots (<type>_snapshots)."""
        actor_type = self.actor_type if purpose == "events" else f"{self.actor_type}_{purpose}"
        return self.aggregate_recorder_class(**self._recorder_kwargs(actor_type))

    def application_recorder(self) -> ApplicationRecorder:
        cls = self._resolve(self.APPLICATION_RECORDER_TOPIC, self.application_recorder_class, JetStreamApplicationRecorder)
        recorder: ApplicationRecorder = cls(**self._recorder_kwargs())
        return recorder

    def tracking_recorder(self, tracking_recorder_class: type[JetStreamTrackingRecorder] | None = None) -> JetStreamTrackingRecorder:
        cls = tracking_recorder_class or self._resolve(self.TRACKING_RECORDER_TOPIC, self.tracking_recorder_class, JetStreamTrackingRecorder)
        if not issubclass(cls, JetStreamTrackingRecorder):
            raise OSError(f"{cls!r} is not a subclass of JetStreamTrackingRecorder")
        return cls(**self._recorder_kwargs())

    def process_recorder(self) -> ProcessRecorder:
        cls = self._resolve(self.PROCESS_RECORDER_TOPIC, self.process_recorder_class, JetStreamProcessRecorder)
        recorder: ProcessRecorder = cls(**self._recorder_kwargs())
        return recorder


Factory = JetStreamFactory
