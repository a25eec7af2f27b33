"""The backend contract: the stream primitives the engine is written against, one abstract test class
run against every backend (JetStream and memory), so the two cannot drift.

A subclass provides the ``backend`` fixture: a ``BackendUnderTest``.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Coroutine

import pytest

from django_eventstore.core.backend import EVENTS, SNAPSHOTS, Backend, DuplicateBatch, PubAck, Publish, WrongLastSequence
from django_eventstore.core.subjects import Subjects


@dataclass
class BackendUnderTest:
    backend: Backend
    subjects: Subjects
    run: Callable[[Coroutine[Any, Any, Any]], Any]  # runs a backend coroutine to its end from this thread


def msg(n: int | str, **extra: str) -> tuple[dict[str, str], bytes]:
    return {"Nats-Msg-Id": f"{n}-{uuid.uuid4().hex}", **extra}, f"body {n}".encode()


class BackendContract:
    def subject(self, b: BackendUnderTest, actor_id: str) -> str:
        return b.subjects.event_subject(actor_id)

    def publish(self, b: BackendUnderTest, actor_id: str, n: int | str, expected: int | None = None) -> PubAck:
        headers, body = msg(n)
        return b.run(b.backend.publish(EVENTS, self.subject(b, actor_id), headers, body, expected))

    def test_publish_with_an_expected_sequence_is_checked(self, backend):
        first = self.publish(backend, "a-1", 1, expected=0)
        second = self.publish(backend, "a-1", 2, expected=first.seq)
        assert second.seq > first.seq and not second.duplicate
        with pytest.raises(WrongLastSequence) as wrong:
            self.publish(backend, "a-1", 3, expected=first.seq)
        assert wrong.value.last_seq == second.seq
        with pytest.raises(WrongLastSequence):
            self.publish(backend, "b-1", 1, expected=second.seq)  # a new subject expects 0
        assert backend.run(backend.backend.last_seq(EVENTS)) == second.seq

    def test_a_repeated_message_id_is_acknowledged_as_a_duplicate(self, backend):
        headers, body = msg(1)
        subject = self.subject(backend, "a-1")
        first = backend.run(backend.backend.publish(EVENTS, subject, headers, body, None))
        again = backend.run(backend.backend.publish(EVENTS, subject, headers, body, None))
        assert again == PubAck(first.seq, duplicate=True)
        assert backend.run(backend.backend.last_seq(EVENTS)) == first.seq

    def test_reads_by_subject_and_sequence(self, backend):
        be, subject = backend.backend, self.subject(backend, "a-1")
        assert backend.run(be.last_msg(EVENTS, subject)) is None
        one = self.publish(backend, "a-1", 1)
        self.publish(backend, "b-1", 1)
        two = self.publish(backend, "a-1", 2)
        last = backend.run(be.last_msg(EVENTS, subject))
        assert (last.subject, last.seq, last.data) == (subject, two.seq, b"body 2")
        assert last.headers["Nats-Msg-Id"].startswith("2-")
        at = backend.run(be.msg_at(EVENTS, one.seq))
        assert (at.subject, at.seq, at.data) == (subject, one.seq, b"body 1")
        assert backend.run(be.msg_at(EVENTS, two.seq + 100)) is None

    def test_next_msgs_pages_a_subject_or_a_filter_and_counts_what_is_left(self, backend):
        be = backend.backend
        seqs = [self.publish(backend, actor, n).seq for n, actor in enumerate(["a-1", "b-1", "a-1", "a-2", "a-1"])]
        msgs, pending = backend.run(be.next_msgs(EVENTS, self.subject(backend, "a-1"), 1, 2))
        assert [m.seq for m in msgs] == [seqs[0], seqs[2]] and pending == 1
        msgs, pending = backend.run(be.next_msgs(EVENTS, self.subject(backend, "a-1"), seqs[2] + 1, 10))
        assert [m.seq for m in msgs] == [seqs[4]] and pending == 0
        msgs, pending = backend.run(be.next_msgs(EVENTS, backend.subjects.events_filter("a"), 1, 10))
        assert [m.seq for m in msgs] == [seqs[0], seqs[2], seqs[3], seqs[4]] and pending == 0
        msgs, pending = backend.run(be.next_msgs(EVENTS, backend.subjects.events_filter(), seqs[4] + 1, 10))
        assert msgs == [] and pending == 0

    def test_last_msgs_and_subjects(self, backend):
        be = backend.backend
        self.publish(backend, "a-1", 1)
        last_a = self.publish(backend, "a-1", 2)
        last_b = self.publish(backend, "b-1", 1)
        subjects = [self.subject(backend, i) for i in ("a-1", "b-1", "c-1")]
        found = backend.run(be.last_msgs(EVENTS, subjects))
        assert {s: m.seq for s, m in found.items()} == {subjects[0]: last_a.seq, subjects[1]: last_b.seq}
        assert backend.run(be.subjects(EVENTS, backend.subjects.events_filter())) == {subjects[0]: 2, subjects[1]: 1}
        assert backend.run(be.subjects(EVENTS, backend.subjects.events_filter("b"))) == {subjects[1]: 1}

    def test_an_atomic_batch_stores_all_or_nothing(self, backend):
        be, subject = backend.backend, self.subject(backend, "a-1")
        last = backend.run(be.publish_batch(subject, [msg(1), msg(2), msg(3)], 0))
        msgs, _ = backend.run(be.next_msgs(EVENTS, subject, 1, 10))
        assert [m.data for m in msgs] == [b"body 1", b"body 2", b"body 3"] and msgs[-1].seq == last
        with pytest.raises(WrongLastSequence):
            backend.run(be.publish_batch(subject, [msg(4), msg(5)], 0))
        reused = msgs[0].headers["Nats-Msg-Id"]
        with pytest.raises(DuplicateBatch):
            backend.run(be.publish_batch(subject, [msg(4), ({"Nats-Msg-Id": reused}, b"again")], last))
        assert backend.run(be.last_seq(EVENTS)) == last

    def test_pipelined_publishes_are_chained(self, backend):
        be = backend.backend
        base = backend.run(be.last_seq(EVENTS))
        a, b = self.subject(backend, "a-1"), self.subject(backend, "b-1")
        acks = backend.run(be.publish_pipelined(EVENTS, [Publish(a, *msg(1), 0), Publish(b, *msg(2), 0), Publish(a, *msg(3), base + 1)], base))
        assert [ack.seq for ack in acks] == [base + 1, base + 2, base + 3]
        base += 3
        # the first is refused (a's last sequence is not 0): every one after it is refused too
        results = backend.run(be.publish_pipelined(EVENTS, [Publish(a, *msg(4), 0), Publish(b, *msg(5), base - 1), Publish(self.subject(backend, "c-1"), *msg(6), 0)], base))
        assert all(isinstance(r, WrongLastSequence) for r in results), results
        # a stale stream position is refused
        results = backend.run(be.publish_pipelined(EVENTS, [Publish(self.subject(backend, "c-1"), *msg(7), 0)], base - 1))
        assert isinstance(results[0], WrongLastSequence)
        assert backend.run(be.last_seq(EVENTS)) == base

    def test_snapshots_stream_keeps_the_latest(self, backend):
        be, subject = backend.backend, backend.subjects.snapshot_subject("a-1")
        for n in (1, 2):
            headers, body = msg(n)
            backend.run(be.publish(SNAPSHOTS, subject, headers, body, None))
        assert backend.run(be.last_msg(SNAPSHOTS, subject)).data == b"body 2"
        assert backend.run(be.subjects(SNAPSHOTS, backend.subjects.snapshots_filter())) == {subject: 1}

    def test_wait_for_messages(self, backend):
        be, subject_filter = backend.backend, backend.subjects.events_filter()
        first = self.publish(backend, "a-1", 1)
        assert backend.run(be.wait_for_messages(EVENTS, subject_filter, 0, 5)) is True  # already there
        assert backend.run(be.wait_for_messages(EVENTS, subject_filter, first.seq, 0.2)) is False
        later = threading.Timer(0.2, lambda: self.publish(backend, "b-1", 1))
        later.start()
        try:
            assert backend.run(be.wait_for_messages(EVENTS, subject_filter, first.seq, 10)) is True
        finally:
            later.join()
        # a message on another actor type does not ring a filter on one type
        assert backend.run(be.wait_for_messages(EVENTS, backend.subjects.events_filter("a"), first.seq, 0.2)) is False
