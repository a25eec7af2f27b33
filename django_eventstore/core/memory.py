"""An in-memory store with the JetStream store's contract, for a project's own unit tests.

It models the few stream operations the store needs (per-subject last
sequence, expected-last-sequence publishes, message-id dedupe, atomic
batches), so the same engine, and the same contract suite, runs over it.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from typing import Any, Coroutine, TypeVar

from .backend import EVENTS, KEYS, SNAPSHOTS, DuplicateBatch, PubAck, Publish, RawMsg, ServerSummary, StreamChange, StreamSummary, WrongLastSequence
from .crypto import encryption_options, keyring_for
from .engine import Engine
from .errors import EventStoreError
from .facade import EventStore
from .subjects import Subjects, subject_matches

T = TypeVar("T")


class _MemoryStream:
    def __init__(self, name: str, subjects: list[str], changed: threading.Condition, max_msgs_per_subject: int = -1):
        self.name = name
        self.changed = changed  # notified on every stored message (the live feed waits on it)
        self.subject_filters = subjects
        self.max_per_subject = max_msgs_per_subject
        self.msgs: dict[int, RawMsg] = {}
        self.by_subject: dict[str, list[int]] = {}
        self.msg_ids: dict[str, int] = {}
        self.last_seq = 0

    def store(self, subject: str, headers: dict[str, str], body: bytes) -> int:
        self.last_seq += 1
        seq = self.last_seq
        self.msgs[seq] = RawMsg(subject, seq, dict(headers), bytes(body))
        seqs = self.by_subject.setdefault(subject, [])
        seqs.append(seq)
        if self.max_per_subject > 0 and len(seqs) > self.max_per_subject:
            for old in seqs[: -self.max_per_subject]:
                del self.msgs[old]
            del seqs[: -self.max_per_subject]
        msg_id = headers.get("Nats-Msg-Id")
        if msg_id:
            self.msg_ids[msg_id] = seq
        self.changed.notify_all()
        return seq

    def last_for(self, subject: str) -> int:
        seqs = self.by_subject.get(subject)
        return seqs[-1] if seqs else 0


class MemoryBackend:
    """The stream primitives over dicts, under one lock."""

    max_payload = 1024 * 1024
    never_suspends = True  # its coroutines finish without yielding: callers may drive them with run_now

    def __init__(self, subjects: Subjects, stream: str = "EVENTSTORE", snapshots_keep: int = 1, key_bucket: str | None = None):
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.streams = {
            EVENTS: _MemoryStream(stream, [subjects.events_filter()], self._changed),
            SNAPSHOTS: _MemoryStream(f"{stream}_SNAPSHOTS", [subjects.snapshots_filter()], self._changed, snapshots_keep),
        }
        if key_bucket is not None:
            self.streams[KEYS] = _MemoryStream(f"KV_{key_bucket}", [f"$KV.{key_bucket}.>"], self._changed, 1)

    async def last_msg(self, stream: str, subject: str) -> RawMsg | None:
        with self._lock:
            s = self.streams[stream]
            if "*" in subject or ">" in subject:  # a filter: the last message of any subject it matches
                return next((m for m in reversed(s.msgs.values()) if subject_matches(subject, m.subject)), None)
            seq = s.last_for(subject)
            return s.msgs[seq] if seq else None

    async def msg_at(self, stream: str, seq: int) -> RawMsg | None:
        with self._lock:
            return self.streams[stream].msgs.get(seq)

    async def next_msgs(self, stream: str, subject_filter: str, start_seq: int, batch: int) -> tuple[list[RawMsg], int]:
        with self._lock:
            s = self.streams[stream]
            if "*" in subject_filter or ">" in subject_filter:
                seqs = [q for q, m in s.msgs.items() if q >= start_seq and subject_matches(subject_filter, m.subject)]  # dict order is seq order
            else:
                all_seqs = s.by_subject.get(subject_filter, [])
                seqs = all_seqs[bisect.bisect_left(all_seqs, start_seq) :]
            return [s.msgs[q] for q in seqs[:batch]], max(0, len(seqs) - batch)

    async def last_msgs(self, stream: str, subjects: list[str]) -> dict[str, RawMsg]:
        with self._lock:
            s = self.streams[stream]
            return {subj: s.msgs[s.last_for(subj)] for subj in subjects if s.last_for(subj)}

    async def subjects(self, stream: str, subject_filter: str) -> dict[str, int]:
        with self._lock:
            s = self.streams[stream]
            return {subj: len(seqs) for subj, seqs in s.by_subject.items() if seqs and subject_matches(subject_filter, subj)}

    async def publish(self, stream: str, subject: str, headers: dict[str, str], body: bytes, expected_last_seq: int | None) -> PubAck:
        with self._lock:
            s = self.streams[stream]
            if expected_last_seq is not None and s.last_for(subject) != expected_last_seq:
                raise WrongLastSequence(s.last_for(subject))
            msg_id = headers.get("Nats-Msg-Id")
            if msg_id and msg_id in s.msg_ids:
                return PubAck(s.msg_ids[msg_id], duplicate=True)
            return PubAck(s.store(subject, headers, body))

    async def publish_batch(self, subject: str, messages: list[tuple[dict[str, str], bytes]], expected_last_seq: int) -> int:
        with self._lock:
            s = self.streams[EVENTS]
            if s.last_for(subject) != expected_last_seq:
                raise WrongLastSequence(s.last_for(subject))
            if any(h.get("Nats-Msg-Id") in s.msg_ids for h, _ in messages):
                raise DuplicateBatch("a message id of the batch is already stored")
            seq = 0
            for headers, body in messages:
                seq = s.store(subject, headers, body)
            return seq

    async def erase_msg(self, stream: str, seq: int) -> bool:
        with self._lock:
            s = self.streams[stream]
            msg = s.msgs.pop(seq, None)
            if msg is not None:
                s.by_subject[msg.subject].remove(seq)
            return msg is not None

    async def purge_subject(self, stream: str, subject: str) -> int:
        with self._lock:
            s = self.streams[stream]
            seqs = s.by_subject.pop(subject, [])
            for seq in seqs:
                del s.msgs[seq]
            return len(seqs)

    async def last_seq(self, stream: str) -> int:
        with self._lock:
            return self.streams[stream].last_seq

    async def publish_pipelined(self, stream: str, messages: list[Publish], expected_last_seq: int) -> list[PubAck | EventStoreError]:
        results: list[PubAck | EventStoreError] = []
        with self._lock:
            s = self.streams[stream]
            for i, (subject, headers, body, subject_seq) in enumerate(messages):
                last = s.msgs.get(s.last_seq)
                last_id = last.headers.get("Nats-Msg-Id") if last is not None and last.headers else None
                if s.last_seq != expected_last_seq + i or (i and last_id != messages[i - 1][1].get("Nats-Msg-Id")):
                    results.append(WrongLastSequence(s.last_seq))
                    continue
                try:
                    results.append(run_now(self.publish(stream, subject, headers, body, subject_seq)))
                except WrongLastSequence as e:
                    results.append(e)
        return results

    async def wait_for_messages(self, stream: str, subject_filter: str, after_seq: int, timeout: float) -> bool:
        """Blocks the calling thread (the memory store runs its waits off the event loop)."""
        s = self.streams[stream]

        def stored() -> bool:
            return any(subject_matches(subject_filter, s.msgs[q].subject) for q in range(s.last_seq, after_seq, -1) if q in s.msgs)

        with self._changed:
            return self._changed.wait_for(stored, timeout)

    async def setup(self, dry_run: bool = False) -> list[StreamChange]:
        return [StreamChange(s.name, "unchanged") for s in self.streams.values()]

    async def server_summary(self) -> ServerSummary:
        with self._lock:
            streams = [
                StreamSummary(
                    name=s.name,
                    subjects=s.subject_filters,
                    messages=len(s.msgs),
                    bytes=sum(len(m.data) for m in s.msgs.values()),
                    first_seq=min(s.msgs, default=0),
                    last_seq=s.last_seq,
                    subject_count=sum(1 for seqs in s.by_subject.values() if seqs),
                    replicas=1,
                    storage="memory",
                )
                for s in self.streams.values()
            ]
        return ServerSummary(url="memory://", version="in-memory", streams=streams)

    def publish_raw(self, subject: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        """Store any message on a subject of either stream, as another NATS client could (tests of malformed data)."""
        with self._lock:
            for stream in self.streams.values():
                if any(subject_matches(f, subject) for f in stream.subject_filters):
                    return stream.store(subject, headers or {}, body)
        raise ValueError(f"no stream takes subject {subject!r}")

    async def close(self) -> None:
        return None

    def forget(self) -> None:
        return None


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the memory backend's) to its end, in the calling thread."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the memory store's coroutine suspended; it must not")


class MemoryEventStore(EventStore):
    """The store over MemoryBackend: same API and contract, no NATS. Not shared between processes."""

    def __init__(
        self, prefix: str = "es", stream: str = "EVENTSTORE", snapshots_keep: int = 1, cache_size: int = 10_000, encryption: dict[str, Any] | None = None
    ):
        subjects = Subjects(prefix)
        options = encryption_options(encryption, stream)
        self.backend = MemoryBackend(subjects, stream, snapshots_keep, key_bucket=options["KEY_BUCKET"] if options else None)
        super().__init__(Engine(self.backend, subjects, cache_size, keyring=keyring_for(self.backend, options)))
        self._lock = threading.RLock()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            return run_now(coro)

    async def _acall(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._call(coro)

    def _call_waiting(self, coro: Coroutine[Any, Any, T]) -> T:
        return run_now(coro)  # without the store's lock: writers must get in while this waits

    async def _acall_waiting(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.to_thread(run_now, coro)  # the wait blocks a thread, not the caller's loop
