"""The exception hierarchy of the store: callers never see a nats-py exception."""

from __future__ import annotations

from typing import Any


class EventStoreError(Exception):
    """Base class of every error the store raises.

    ``save_events`` sets ``index`` (the failing event's place in its input) and
    ``saved`` (the events stored before it) on the errors it raises; elsewhere
    they are None.
    """

    index: int | None = None
    saved: list[Any] | None = None


class VersionConflictError(EventStoreError):
    """Another writer got there first, or the version leaves a gap."""

    def __init__(self, actor_id: str, attempted_version: int, current_version: int, detail: str | None = None):
        self.actor_id = actor_id
        self.attempted_version = attempted_version
        self.current_version = current_version
        super().__init__(
            detail
            or f"version conflict on actor {actor_id!r}: tried version {attempted_version}, "
            f"the latest stored version is {current_version} (expected {current_version + 1})"
        )


class SnapshotNotFound(EventStoreError, LookupError):
    """The actor has no snapshot."""

    def __init__(self, actor_id: str):
        self.actor_id = actor_id
        super().__init__(f"actor {actor_id!r} has no snapshot")


class InvalidActorId(EventStoreError, ValueError):
    """The actor id is empty, too long or not a string."""


class InvalidEvent(EventStoreError, ValueError):
    """An event (or snapshot) cannot be stored as given: bad version, not JSON, ..."""


class EventTooLarge(InvalidEvent):
    """The encoded message is larger than the server's max_payload."""

    def __init__(self, size: int, limit: int, what: str = "event"):
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size} bytes encoded, above the server's max_payload of {limit} bytes")


class EventStoreUnavailable(EventStoreError):
    """NATS could not be reached, or did not answer, within TIMEOUT."""


class StreamSetupError(EventStoreError):
    """The streams are missing or configured so that the store cannot use them (``eventstore_setup`` fixes it)."""

    def __init__(self, stream: str, problem: str):
        self.stream = stream
        self.problem = problem
        super().__init__(problem)


class EncryptionError(EventStoreError):
    """Encrypted data cannot be written or read: a bad or wrong master key, a missing data key, an altered message,
    or forgetting asked of a store without encryption."""
