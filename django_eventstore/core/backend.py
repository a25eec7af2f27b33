"""The stream operations the store logic needs, implemented by JetStream and by memory.

The store logic (engine.py) is written once against this interface, so the
JetStream store and the in-memory store share every rule of the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from .errors import EventStoreError

EVENTS = "events"
SNAPSHOTS = "snapshots"
KEYS = "keys"  # the data keys' key-value bucket, when encryption is on


@dataclass(slots=True)
class RawMsg:
    """One stored message as the stream returns it."""

    subject: str
    seq: int
    headers: dict[str, str] | None
    data: bytes


class WrongLastSequence(EventStoreError):
    """The subject's last sequence (or the stream's last message) was not the expected one: another write came first."""

    def __init__(self, last_seq: int | None):
        self.last_seq = last_seq
        super().__init__(f"wrong last sequence: {last_seq}")


class DuplicateBatch(EventStoreError):
    """An atomic batch carried a message id that is already stored (server error 10201)."""


class Publish(NamedTuple):
    """One publish of a pipelined write: the message and its subject's expected last sequence."""

    subject: str
    headers: dict[str, str]
    body: bytes
    expected_last_subject_seq: int


@dataclass(slots=True)
class PubAck:
    seq: int
    duplicate: bool = False


@dataclass
class StreamSummary:
    """What the admin overview and ``eventstore_status`` show of one stream."""

    name: str
    subjects: list[str]
    messages: int
    bytes: int
    first_seq: int
    last_seq: int
    subject_count: int
    replicas: int
    storage: str
    cluster: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServerSummary:
    url: str
    version: str
    streams: list[StreamSummary]
    account: dict[str, Any] = field(default_factory=dict)


@dataclass
class StreamChange:
    """What setup did (or would do, with dry_run) to one stream."""

    stream: str
    action: str  # "created", "updated", "unchanged"
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


class Backend(Protocol):
    """Stream primitives; ``stream`` is ``"events"``, ``"snapshots"`` or (with encryption) ``"keys"``."""

    max_payload: int

    async def last_msg(self, stream: str, subject: str) -> RawMsg | None:
        """The last message on a subject, or on any subject a filter (with * or >) matches; None when there is none."""
        ...

    async def msg_at(self, stream: str, seq: int) -> RawMsg | None: ...

    async def next_msgs(self, stream: str, subject_filter: str, start_seq: int, batch: int) -> tuple[list[RawMsg], int]:
        """Messages matching the filter from start_seq on, at most batch; and how many more match after them."""
        ...

    async def last_msgs(self, stream: str, subjects: list[str]) -> dict[str, RawMsg]: ...

    async def subjects(self, stream: str, subject_filter: str) -> dict[str, int]: ...

    async def publish(self, stream: str, subject: str, headers: dict[str, str], body: bytes, expected_last_seq: int | None) -> PubAck: ...

    async def publish_batch(self, subject: str, messages: list[tuple[dict[str, str], bytes]], expected_last_seq: int) -> int:
        """Atomically store all messages on subject (events stream); the last one's sequence."""
        ...

    async def erase_msg(self, stream: str, seq: int) -> bool:
        """Delete one message, overwriting its bytes on disk; False when it is not there."""
        ...

    async def purge_subject(self, stream: str, subject: str) -> int:
        """Delete every message of one subject; how many there were."""
        ...

    async def last_seq(self, stream: str) -> int:
        """The stream's last sequence (0 when empty)."""
        ...

    async def publish_pipelined(self, stream: str, messages: list[Publish], expected_last_seq: int) -> list[PubAck | EventStoreError]:
        """Publish (subject, headers, body, subject's expected last sequence) in order without waiting for each ack.

        Message i also expects the stream's last sequence to be expected_last_seq + i
        and, after the first, the stream's last message to be message i - 1 (its
        Nats-Msg-Id): once one is refused, none after it is stored. Each message's ack or error.
        """
        ...

    async def wait_for_messages(self, stream: str, subject_filter: str, after_seq: int, timeout: float) -> bool:
        """Wait until a message after after_seq may be stored on the filter (True) or timeout passed (False)."""
        ...

    async def setup(self, dry_run: bool = False) -> list[StreamChange]: ...

    async def server_summary(self) -> ServerSummary: ...

    async def close(self) -> None: ...

    def forget(self) -> None:
        """Drop connections without closing them (after fork)."""
        ...
