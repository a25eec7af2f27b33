"""django-eventstore: event sourcing for Django on NATS JetStream."""

from typing import TYPE_CHECKING

from .core.errors import (
    EncryptionError,
    EventStoreError,
    EventStoreUnavailable,
    EventTooLarge,
    InvalidActorId,
    InvalidEvent,
    SnapshotNotFound,
    StreamSetupError,
    VersionConflictError,
)

if TYPE_CHECKING:
    from .core.facade import EventStore

from .core.events import ActorPage, ActorSnapshot, ActorSummary, Event, FeedBatch, MalformedMessage, ReadResult
from .core.forgetting import ForgetResult

__all__ = [
    "get_store",
    "Event",
    "ActorSnapshot",
    "ActorSummary",
    "ActorPage",
    "ReadResult",
    "FeedBatch",
    "MalformedMessage",
    "EventStoreError",
    "VersionConflictError",
    "SnapshotNotFound",
    "InvalidActorId",
    "InvalidEvent",
    "EventTooLarge",
    "EventStoreUnavailable",
    "StreamSetupError",
    "EncryptionError",
    "ForgetResult",
]


def get_store() -> "EventStore":
    """The process-wide store configured from settings.EVENTSTORE (imports Django lazily)."""
    from .store import get_store as _get_store

    return _get_store()
