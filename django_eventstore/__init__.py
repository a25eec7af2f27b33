"""django-eventstore: event sourcing for Django on NATS JetStream."""

from .core.errors import (
    EventStoreError,
    EventStoreUnavailable,
    EventTooLarge,
    InvalidActorId,
    InvalidEvent,
    SnapshotNotFound,
    VersionConflictError,
)
from .core.events import ActorPage, ActorSnapshot, ActorSummary, Event, MalformedMessage, ReadResult

__all__ = [
    "get_store",
    "Event",
    "ActorSnapshot",
    "ActorSummary",
    "ActorPage",
    "ReadResult",
    "MalformedMessage",
    "EventStoreError",
    "VersionConflictError",
    "SnapshotNotFound",
    "InvalidActorId",
    "InvalidEvent",
    "EventTooLarge",
    "EventStoreUnavailable",
]


def get_store():  # type: ignore[no-untyped-def]
    """The process-wide store configured from settings.EVENTSTORE (imports Django lazily)."""
    from .store import get_store as _get_store

    return _get_store()
