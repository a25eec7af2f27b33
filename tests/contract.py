"""The store contract, one abstract test class run against every store (JetStream and memory).

A subclass provides the ``store`` fixture and ``publish_raw`` (write any bytes
onto a subject, as another NATS client could).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from django_eventstore import (
    ActorSnapshot,
    Event,
    EventStoreError,
    EventTooLarge,
    InvalidActorId,
    InvalidEvent,
    SnapshotNotFound,
    VersionConflictError,
)
from django_eventstore.core.events import encode_event
from django_eventstore.core.facade import EventStore

GOOD_BODY = '{{"id":"{id}","eventType":"A","actorId":"{actor}","version":{version},"data":{{}},"metadata":{{}},"timestamp":"2026-01-01T00:00:00Z"}}'
ODD_IDS = ["a.b", "a_b", "a*", "*", ">", "a b", "ü-1", "x" * 256, "order-1", "order.1", "-lead", "a/b", "a~41"]


def ev(actor_id: str, version: int, event_type: str = "Happened", **data) -> Event:
    return Event(actor_id=actor_id, event_type=event_type, version=version, data=data)


class StoreContract:
    store: EventStore

    def publish_raw_subject(self, store: EventStore, subject: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        """Write any message onto any subject of the store's streams, as another NATS client could."""
        raise NotImplementedError

    def publish_raw(self, store: EventStore, actor_id: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        return self.publish_raw_subject(store, store.engine.subjects.event_subject(actor_id), body, headers)

    # ----- versions and conflicts -----

    def test_versions_start_at_one_and_read_back_in_order(self, store):
        assert store.get_latest_version("order-1") == 0
        stored = [store.save_event(ev("order-1", v, n=v)) for v in range(1, 6)]
        assert [e.version for e in stored] == [1, 2, 3, 4, 5]
        assert all(e.position for e in stored)
        events = store.get_events("order-1")
        assert [e.version for e in events] == [1, 2, 3, 4, 5]
        assert [e.data["n"] for e in events] == [1, 2, 3, 4, 5]
        assert [e.id for e in events] == [e.id for e in stored]
        assert store.get_latest_version("order-1") == 5
        assert [e.version for e in store.get_events("order-1", from_version=3)] == [4, 5]
        assert [e.version for e in store.get_events("order-1", from_version=1, limit=2)] == [2, 3]

    def test_gap_and_stale_versions_are_conflicts_and_store_nothing(self, store):
        store.save_event(ev("order-1", 1))
        with pytest.raises(VersionConflictError) as gap:
            store.save_event(ev("order-1", 3))
        assert (gap.value.actor_id, gap.value.attempted_version, gap.value.current_version) == ("order-1", 3, 1)
        store.save_event(ev("order-1", 2))
        with pytest.raises(VersionConflictError) as stale:
            store.save_event(ev("order-1", 1))
        assert stale.value.current_version == 2
        assert [e.version for e in store.get_events("order-1")] == [1, 2]

    @pytest.mark.parametrize("version", [0, -1, "1", 1.0, None, True])
    def test_bad_version_is_invalid_event(self, store, version):
        with pytest.raises(InvalidEvent, match="version"):
            store.save_event(Event(actor_id="order-1", event_type="X", version=version))
        assert store.get_latest_version("order-1") == 0

    def test_fifty_threads_saving_the_same_version_one_wins(self, store):
        store.save_event(ev("race-1", 1))
        barrier = threading.Barrier(50)

        def attempt(i: int):
            barrier.wait()
            try:
                return store.save_event(ev("race-1", 2, writer=i))
            except VersionConflictError as e:
                return e

        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(attempt, range(50)))
        wins = [r for r in results if isinstance(r, Event)]
        conflicts = [r for r in results if isinstance(r, VersionConflictError)]
        assert len(wins) == 1 and len(conflicts) == 49
        assert {c.current_version for c in conflicts} == {2}
        assert {c.attempted_version for c in conflicts} == {2}
        events = store.get_events("race-1")
        assert [e.version for e in events] == [1, 2]
        assert events[1].data == {"writer": wins[0].data["writer"]}

    def test_retried_save_returns_the_stored_event_and_stores_nothing_twice(self, store):
        first = store.save_event(ev("order-1", 1, a=1))
        again = store.save_event(Event(actor_id="order-1", event_type="Happened", version=1, data={"a": 1}, id=first.id, timestamp=first.timestamp))
        assert again == first
        assert len(store.get_events("order-1")) == 1
        store.save_event(ev("order-1", 2))
        with pytest.raises(VersionConflictError):
            store.save_event(first)  # other events followed: a conflict, not a silent success
        assert [e.version for e in store.get_events("order-1")] == [1, 2]

    def test_event_id_used_by_another_actor_is_refused(self, store):
        first = store.save_event(ev("order-1", 1))
        with pytest.raises(InvalidEvent, match="already used"):
            store.save_event(Event(actor_id="order-2", event_type="X", version=1, id=first.id))
        assert store.get_latest_version("order-2") == 0

    # ----- actor ids -----

    def test_odd_actor_ids_are_each_their_own_actor(self, store):
        for n, actor_id in enumerate(ODD_IDS, start=1):
            for v in range(1, n % 3 + 2):
                store.save_event(ev(actor_id, v, who=actor_id))
        for n, actor_id in enumerate(ODD_IDS, start=1):
            events = store.get_events(actor_id)
            assert [e.version for e in events] == list(range(1, n % 3 + 2)), actor_id
            assert {e.data["who"] for e in events} == {actor_id}
            assert {e.actor_id for e in events} == {actor_id}
            assert store.get_latest_version(actor_id) == n % 3 + 1
        listed = store.list_actors(limit=1000)
        assert sorted(a.actor_id for a in listed.actors) == sorted(ODD_IDS)
        assert listed.total == len(ODD_IDS)

    @pytest.mark.parametrize("actor_id", ["", "x" * 257, "ü" * 129, None, 42])
    def test_bad_actor_ids_are_refused(self, store, actor_id):
        with pytest.raises(InvalidActorId):
            store.save_event(Event(actor_id=actor_id, event_type="X", version=1))
        with pytest.raises(InvalidActorId):
            store.get_latest_version(actor_id)
        with pytest.raises(InvalidActorId):
            store.get_events(actor_id)

    # ----- bad events -----

    def test_invalid_events_are_refused_with_a_clear_error(self, store):
        with pytest.raises(InvalidEvent, match="JSON"):
            store.save_event(Event(actor_id="o-1", event_type="X", version=1, data={"when": object()}))
        with pytest.raises(InvalidEvent, match="event_type"):
            store.save_event(Event(actor_id="o-1", event_type="", version=1))
        with pytest.raises(InvalidEvent, match="data"):
            store.save_event(Event(actor_id="o-1", event_type="X", version=1, data=[1]))  # type: ignore[arg-type]
        assert store.get_latest_version("o-1") == 0

    @pytest.mark.parametrize(
        "data, metadata",
        [({1: "a"}, {}), ({"nested": [{"ok": 1}, {True: "b"}]}, {}), ({"fine": 1}, {"by": {None: "c"}})],
        ids=["data", "nested data", "metadata"],
    )
    def test_keys_json_would_turn_into_strings_are_refused(self, store, data, metadata):
        with pytest.raises(InvalidEvent, match="not a string"):
            store.save_event(Event(actor_id="keys-1", event_type="X", version=1, data=data, metadata=metadata))
        with pytest.raises(InvalidEvent, match="not a string"):
            store.append("keys-1", [Event(event_type="A"), Event(event_type="B", data=data, metadata=metadata)], expected_version=0)
        assert store.get_latest_version("keys-1") == 0

    def test_snapshot_state_keys_json_would_turn_into_strings_are_refused(self, store):
        store.save_event(ev("keys-2", 1))
        with pytest.raises(InvalidEvent, match="not a string"):
            store.save_snapshot(ActorSnapshot(actor_id="keys-2", version=1, state={"totals": {2026: 10}}))
        with pytest.raises(SnapshotNotFound):
            store.get_latest_snapshot("keys-2")

    def test_too_large_event_raises_event_too_large(self, store):
        with pytest.raises(EventTooLarge):
            store.save_event(ev("big-1", 1, blob="x" * (2 * 1024 * 1024)))
        assert store.get_latest_version("big-1") == 0

    # ----- append -----

    def test_append_fills_in_versions_and_is_atomic(self, store):
        stored = store.append("cart-1", [Event(event_type="A"), Event(event_type="B"), Event(event_type="C")], expected_version=0)
        assert [(e.actor_id, e.version) for e in stored] == [("cart-1", 1), ("cart-1", 2), ("cart-1", 3)]
        assert [e.position for e in stored] == [e.position for e in store.get_events("cart-1")]
        with pytest.raises(VersionConflictError) as conflict:
            store.append("cart-1", [Event(event_type="D"), Event(event_type="E")], expected_version=1)
        assert conflict.value.current_version == 3
        assert store.get_latest_version("cart-1") == 3

    def test_append_with_a_bad_later_event_stores_nothing(self, store):
        with pytest.raises(InvalidEvent):
            store.append("cart-1", [Event(event_type="A"), Event(event_type="B", data={"x": {1, 2}})], expected_version=0)
        with pytest.raises(EventTooLarge):
            store.append("cart-1", [Event(event_type="A"), Event(event_type="B", data={"x": "y" * (2 * 1024 * 1024)})], expected_version=0)
        with pytest.raises(InvalidEvent, match="version"):
            store.append("cart-1", [Event(event_type="A", version=1), Event(event_type="B", version=3)], expected_version=0)
        with pytest.raises(InvalidEvent, match="actor"):
            store.append("cart-1", [Event(event_type="A", actor_id="cart-2")], expected_version=0)
        assert store.get_latest_version("cart-1") == 0
        assert store.get_events("cart-1") == []

    def test_append_retry_returns_the_stored_events(self, store):
        batch = [Event(event_type="A"), Event(event_type="B")]
        first = store.append("cart-1", batch, expected_version=0)
        again = store.append("cart-1", batch, expected_version=0)
        assert again == first
        assert len(store.get_events("cart-1")) == 2

    def test_append_nothing_returns_nothing(self, store):
        assert store.append("cart-1", [], expected_version=0) == []

    # ----- malformed messages -----

    def test_malformed_message_is_reported_and_skipped_and_costs_no_version(self, store):
        store.save_event(ev("order-1", 1))
        position = self.publish_raw(store, "order-1", b"not json at all")
        assert store.get_latest_version("order-1") == 1
        result = store.get_events_with_errors("order-1")
        assert [e.version for e in result.events] == [1]
        assert [(m.position, m.raw) for m in result.errors] == [(position, b"not json at all")]
        assert "JSON" in result.errors[0].reason
        assert [e.version for e in store.get_events("order-1")] == [1]
        stored = store.save_event(ev("order-1", 2))
        assert stored.version == 2
        assert [e.version for e in store.get_events("order-1")] == [1, 2]

    def test_header_body_mismatch_is_malformed(self, store):
        store.save_event(ev("order-1", 1))
        body = b'{"id":"x","eventType":"A","actorId":"order-1","version":2,"data":{},"metadata":{},"timestamp":"2026-01-01T00:00:00Z"}'
        self.publish_raw(store, "order-1", body, {"Es-Version": "3", "Es-Event-Type": "A"})
        result = store.get_events_with_errors("order-1")
        assert len(result.errors) == 1 and "disagrees" in result.errors[0].reason
        assert store.get_latest_version("order-1") == 1
        store.save_event(ev("order-1", 2))
        assert store.get_latest_version("order-1") == 2

    def test_malformed_first_message_on_a_new_actor(self, store):
        self.publish_raw(store, "fresh-1", b"{}")
        assert store.get_latest_version("fresh-1") == 0
        store.save_event(ev("fresh-1", 1))
        assert [e.version for e in store.get_events("fresh-1")] == [1]

    # ----- save_events: many actors, pipelined -----

    def test_save_events_stores_many_actors_in_the_given_order(self, store):
        store.save_event(ev("a-1", 1))
        events = [ev(f"{kind}-{n}", v) for v in range(1, 4) for n in range(1, 60) for kind in ("b", "c")]
        events.insert(7, ev("a-1", 2))
        saved = store.save_events(events)
        assert [(e.actor_id, e.version, e.id) for e in saved] == [(e.actor_id, e.version, e.id) for e in events]
        positions = [e.position for e in saved]
        assert positions == list(range(positions[0], positions[0] + len(events)))  # nothing landed between them
        assert [(e.actor_id, e.version) for e in store.read_all(after_position=positions[0] - 1, limit=len(events))] == [
            (e.actor_id, e.version) for e in events
        ]
        assert store.get_latest_version("a-1") == 2 and store.get_latest_version("c-59") == 3
        assert store.save_events([]) == []

    def test_save_events_stops_at_the_first_conflict(self, store):
        store.save_event(ev("a-1", 1))
        with pytest.raises(VersionConflictError) as conflict:
            store.save_events([ev("b-1", 1), ev("a-1", 1), ev("c-1", 1)])
        assert (conflict.value.actor_id, conflict.value.current_version) == ("a-1", 1)
        assert conflict.value.index == 1 and [e.actor_id for e in conflict.value.saved] == ["b-1"]
        assert store.get_latest_version("b-1") == 1  # before it: stored
        assert store.get_latest_version("c-1") == 0  # after it: not

    def test_save_events_stores_nothing_after_a_refused_event_whatever_lands_meanwhile(self, store):
        """Another writer's event lands right after the stream position was read: it takes our first event's place."""
        first = store.save_event(ev("x-1", 1))
        foreign = ev("x-1", 2, "Foreign")
        headers, body = encode_event(foreign)
        read_base = store.backend.last_seq

        async def base_then_a_foreign_write(stream):
            base = await read_base(stream)
            store.backend.last_seq = read_base
            self.publish_raw_subject(store, store.engine.subjects.event_subject("x-1"), body, headers)
            return base

        store.backend.last_seq = base_then_a_foreign_write
        with pytest.raises(VersionConflictError) as conflict:
            store.save_events([ev("x-1", 2), ev("x-1", 3), ev("y-1", 1)])
        assert (conflict.value.index, conflict.value.saved) == (0, [])
        assert [e.id for e in store.get_events("x-1")] == [first.id, foreign.id]  # our version 3 is not stacked on it
        assert store.get_latest_version("y-1") == 0

    def test_save_events_refuses_an_invalid_event_before_storing_anything(self, store):
        with pytest.raises(InvalidEvent) as invalid:
            store.save_events([ev("a-1", 1), Event(actor_id="b-1", event_type=" padded", version=1)])
        assert (invalid.value.index, invalid.value.saved) == (1, [])
        assert store.get_latest_version("a-1") == 0

    def test_save_events_behind_a_stale_cache_is_checked_by_the_server(self, store):
        store.save_event(ev("a-1", 1))  # cached as version 1
        foreign = ev("a-1", 2)
        headers, body = encode_event(foreign)
        self.publish_raw_subject(store, store.engine.subjects.event_subject("a-1"), body, headers)
        with pytest.raises(VersionConflictError):
            store.save_events([ev("b-1", 1), ev("a-1", 2), ev("c-1", 1)])
        assert [e.id for e in store.get_events("a-1")][-1] == foreign.id
        assert store.get_latest_version("c-1") == 0

    def test_save_events_again_after_they_were_stored_returns_the_stored_ones(self, store):
        first = store.save_events([ev("a-1", 1)])
        assert store.save_events([first[0]]) == first  # a retry of the last write, as save_event settles it

    def test_save_events_from_several_threads_store_everything_once(self, store):
        """Writers in threads keep moving the stream under each other: every event still lands once, in order."""

        def writer(k):
            for start in range(0, 40, 10):
                store.save_events([ev(f"w{k}-{n}", v) for v in range(start + 1, start + 11) for n in range(3)])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(writer, range(4)))
        for k in range(4):
            for n in range(3):
                assert [e.version for e in store.get_events(f"w{k}-{n}")] == list(range(1, 41))

    # ----- snapshots -----

    def test_snapshots(self, store):
        with pytest.raises(SnapshotNotFound):
            store.get_latest_snapshot("order-1")
        with pytest.raises(LookupError):
            store.get_latest_snapshot("order-1")
        stored = [store.save_event(ev("order-1", v)) for v in range(1, 5)]
        snap = store.save_snapshot(ActorSnapshot(actor_id="order-1", version=2, state={"total": 2}))
        assert snap.position == stored[1].position
        latest = store.get_latest_snapshot("order-1")
        assert (latest.version, latest.state, latest.position) == (2, {"total": 2}, stored[1].position)
        later = store.get_events("order-1", from_version=latest.version, after_position=latest.position)
        assert [e.version for e in later] == [3, 4]
        store.save_snapshot(ActorSnapshot(actor_id="order-1", version=4, state={"total": 4}))
        assert store.get_latest_snapshot("order-1").version == 4
        with pytest.raises(VersionConflictError) as ahead:
            store.save_snapshot(ActorSnapshot(actor_id="order-1", version=5, state={}))
        assert ahead.value.current_version == 4
        with pytest.raises(InvalidEvent):
            store.save_snapshot(ActorSnapshot(actor_id="order-1", version=0, state={}))

    # ----- listing and global reads -----

    def test_list_actors_filters_pages_and_counts(self, store):
        for i in range(7):
            store.save_event(ev(f"order-{i}", 1))
        for i in range(3):
            store.save_event(ev(f"user-{i}", 1))
            store.save_event(ev(f"user-{i}", 2))
        store.save_snapshot(ActorSnapshot(actor_id="user-1", version=2, state={}))
        page = store.list_actors(limit=4)
        assert [a.actor_id for a in page.actors] == ["order-0", "order-1", "order-2", "order-3"]
        assert page.total == 10 and page.next_after == "order-3"
        page2 = store.list_actors(limit=4, after=page.next_after)
        assert [a.actor_id for a in page2.actors] == ["order-4", "order-5", "order-6", "user-0"]
        last = store.list_actors(limit=4, after=page2.next_after)
        assert [a.actor_id for a in last.actors] == ["user-1", "user-2"] and last.next_after is None
        users = store.list_actors(actor_type="user")
        assert [(a.actor_id, a.actor_type, a.latest_version, a.snapshot_version) for a in users.actors] == [
            ("user-0", "user", 2, None),
            ("user-1", "user", 2, 2),
            ("user-2", "user", 2, None),
        ]
        assert store.list_actors(prefix="order-1").total == 1
        assert store.list_actors(limit=3, offset=8).actors[0].actor_id == "user-1"
        assert store.actor_types() == ["order", "user"]
        assert store.snapshot_versions(["user-1", "user-2"]) == {"user-1": 2}
        store.save_snapshot(ActorSnapshot(actor_id="order-5", version=1, state={}))
        assert store.snapshot_actor_ids() == ["order-5", "user-1"]
        assert store.snapshot_actor_ids("user") == ["user-1"]
        assert store.snapshot_actor_ids("cart") == []

    def test_read_all_is_in_global_order(self, store):
        written = []
        for v in range(1, 4):
            for actor in ("a-1", "b-1"):
                written.append(store.save_event(ev(actor, v)))
        events = store.read_all()
        assert [(e.actor_id, e.version) for e in events] == [(e.actor_id, e.version) for e in written]
        assert [e.position for e in events] == sorted(e.position for e in events)
        after = store.read_all(after_position=events[1].position, limit=2)
        assert [e.position for e in after] == [events[2].position, events[3].position]
        assert [e.actor_id for e in store.read_all(actor_type="b")] == ["b-1"] * 3

    # ----- sync and async -----

    def test_async_twins_work_from_another_event_loop(self, store):
        async def go():
            stored = await store.asave_event(ev("async-1", 1))
            more = await store.aappend("async-1", [Event(event_type="B"), Event(event_type="C")], expected_version=1)
            return stored, more, await store.aget_latest_version("async-1"), await store.aget_events("async-1")

        stored, more, latest, events = asyncio.run(go())
        assert stored.version == 1 and [e.version for e in more] == [2, 3]
        assert latest == 3 and len(events) == 3

    def test_sync_facade_inside_a_running_event_loop_does_not_deadlock(self, store):
        async def async_view():
            store.save_event(ev("view-1", 1))
            return store.get_latest_version("view-1")

        assert asyncio.run(asyncio.wait_for(async_view(), 10)) == 1

    def test_errors_are_our_own(self, store):
        for call in (lambda: store.save_event("nope"), lambda: store.append("a-1", ["nope"], 0)):  # type: ignore[arg-type]
            with pytest.raises(EventStoreError):
                call()

    # ----- found in review -----

    def test_append_retry_after_other_actors_wrote_returns_the_stored_events(self, store):
        store.save_event(ev("order-1", 1))
        store.save_event(ev("other-1", 1))
        store.save_event(ev("order-1", 2))
        store.save_event(ev("other-1", 2))
        batch = [Event(event_type="B"), Event(event_type="C")]
        first = store.append("order-1", batch, expected_version=2)
        store.save_event(ev("other-1", 3))
        assert store.append("order-1", batch, expected_version=2) == first
        assert [e.version for e in store.get_events("order-1")] == [1, 2, 3, 4]

    @pytest.mark.parametrize("event_type", [" Placed", "Placed ", "Placed\xa0", "\u3000Placed", "Pla\x85ced", "Placed\n"])
    def test_event_types_that_would_not_read_back_are_refused(self, store, event_type):
        with pytest.raises(InvalidEvent, match="event_type"):
            store.save_event(Event(actor_id="o-1", event_type=event_type, version=1))
        with pytest.raises(InvalidEvent, match="event_type"):
            store.append("o-1", [Event(event_type="A"), Event(event_type=event_type)], expected_version=0)
        assert store.get_latest_version("o-1") == 0

    def test_seek_is_not_misled_by_a_malformed_message_claiming_a_low_version(self, store):
        store.append("long-1", [Event(event_type="E") for _ in range(1000)], expected_version=0)
        store.append("long-1", [Event(event_type="E") for _ in range(107)], expected_version=1000)
        self.publish_raw(store, "long-1", b"garbage", {"Es-Version": "1", "Es-Event-Type": "E"})
        store.append("long-1", [Event(event_type="E") for _ in range(193)], expected_version=1107)
        assert [e.version for e in store.get_events("long-1", from_version=1100, limit=10)] == list(range(1101, 1111))
        snap = store.save_snapshot(ActorSnapshot(actor_id="long-1", version=1105, state={}))
        later = store.get_events("long-1", from_version=1105, after_position=snap.position)
        assert [e.version for e in later] == list(range(1106, 1301))

    def test_batch_with_an_id_used_by_another_actor_is_invalid_not_a_conflict(self, store):
        used = store.save_event(ev("other-1", 1))
        with pytest.raises(InvalidEvent, match="already used"):
            store.append("cart-1", [Event(event_type="A"), Event(event_type="B", id=used.id)], expected_version=0)
        assert store.get_latest_version("cart-1") == 0

    def test_odd_headers_on_foreign_messages_never_break_listing(self, store):
        store.save_event(ev("order-1", 1))
        store.save_snapshot(ActorSnapshot(actor_id="order-1", version=1, state={}))
        subjects = store.engine.subjects
        self.publish_raw_subject(store, subjects.snapshot_subject("order-1"), b"{}", {"Es-Version": "\u00b2"})
        self.publish_raw_subject(store, subjects.events_root + "._." + "x" * 300, b"junk")
        self.publish_raw_subject(store, subjects.events_root + ".nope.order-2", b"junk")
        page = store.list_actors()
        assert [(a.actor_id, a.latest_version, a.snapshot_version) for a in page.actors] == [("order-1", 1, None)]
        assert store.actor_types() == ["order"]

    @pytest.mark.parametrize(
        "call",
        [
            lambda s: s.get_events("o-1", after_position="x"),
            lambda s: s.get_events("o-1", from_version=-1),
            lambda s: s.list_actors(after=5),
            lambda s: s.list_actors(prefix=["o"]),
            lambda s: s.list_actors(limit=0),
            lambda s: s.read_all(after_position=-1),
            lambda s: s.read_all(actor_type=3),
        ],
    )
    def test_bad_arguments_are_invalid_event_errors(self, store, call):
        with pytest.raises(InvalidEvent):
            call(store)

    # ----- the live feed -----

    def test_subscribe_catches_up_then_waits_for_new_events(self, store):
        first = store.save_event(ev("order-1", 1))
        feed = store.subscribe(0, idle_timeout=5)
        try:
            batch = next(feed)
            assert [e.id for e in batch.events] == [first.id] and batch.position == first.position
            saver = threading.Timer(0.2, lambda: store.save_event(ev("order-2", 1)))
            saver.start()
            batch = next(feed)  # woken by the save, well before idle_timeout
            saver.join()
            assert [e.actor_id for e in batch.events] == ["order-2"]
            assert batch.position == store.last_position()
        finally:
            feed.close()

    def test_subscribe_gives_an_empty_batch_when_idle(self, store):
        store.save_event(ev("order-1", 1))
        feed = store.subscribe(store.last_position(), idle_timeout=0.2)
        try:
            batch = next(feed)
            assert batch.events == [] and batch.position == store.last_position()
        finally:
            feed.close()

    def test_subscribe_filters_actor_types_and_moves_past_the_others(self, store):
        store.save_event(ev("order-1", 1))
        store.save_event(ev("user-1", 1))
        store.save_event(ev("invoice-1", 1))
        store.save_event(ev("order-2", 1))
        feed = store.subscribe(0, actor_types=["order", "invoice"], batch_size=10, idle_timeout=0.2)
        try:
            batch = next(feed)
            assert [e.actor_id for e in batch.events] == ["order-1", "invoice-1", "order-2"]
            assert batch.position == store.last_position()
        finally:
            feed.close()
        only = store.subscribe(0, actor_types=["user"], idle_timeout=0.2)
        try:
            assert [e.actor_id for e in next(only).events] == ["user-1"]
        finally:
            only.close()

    def test_subscribe_to_one_actor(self, store):
        store.save_event(ev("order-1", 1))
        store.save_event(ev("order-10", 1))
        store.save_event(ev("order-1", 2))
        feed = store.subscribe(0, actor_id="order-1", idle_timeout=0.2)
        try:
            batch = next(feed)
            assert [(e.actor_id, e.version) for e in batch.events] == [("order-1", 1), ("order-1", 2)]
        finally:
            feed.close()
        with pytest.raises(InvalidEvent, match="not both"):
            next(store.subscribe(actor_types=["order"], actor_id="order-1"))
        with pytest.raises(InvalidActorId):
            next(store.subscribe(actor_id=""))

    def test_subscribe_pages_by_batch_size_and_skips_malformed(self, store):
        for v in range(1, 6):
            store.save_event(ev("order-1", v))
        bad = self.publish_raw(store, "order-1", b"not json")
        store.save_event(ev("order-1", 6))
        feed = store.subscribe(0, batch_size=2, idle_timeout=0.2)
        try:
            seen, position = [], 0
            while position < store.last_position():
                batch = next(feed)
                seen += [e.version for e in batch.events]
                position = batch.position
            assert seen == [1, 2, 3, 4, 5, 6] and position > bad
        finally:
            feed.close()

    def test_async_subscribe(self, store):
        async def go():
            feed = store.asubscribe(0, idle_timeout=5)
            try:
                waiting = asyncio.ensure_future(feed.__anext__())
                await asyncio.sleep(0.05)
                await store.asave_event(ev("order-1", 1))
                batch = await asyncio.wait_for(waiting, 4)
                return [e.actor_id for e in batch.events]
            finally:
                await feed.aclose()

        assert asyncio.run(go()) == ["order-1"]

    @pytest.mark.parametrize(
        "kwargs",
        [{"after_position": -1}, {"batch_size": 0}, {"batch_size": 10**6}, {"idle_timeout": 0}, {"actor_types": "order"}, {"actor_types": []}],
    )
    def test_subscribe_bad_arguments(self, store, kwargs):
        with pytest.raises(InvalidEvent):
            next(store.subscribe(**kwargs))

    def test_last_position_of_the_stream_and_of_one_actor_type(self, store):
        assert store.last_position() == 0 and store.last_position("order") == 0
        order = store.save_event(ev("order-1", 1))
        user = store.save_event(ev("user-1", 1))
        assert store.last_position() == user.position
        assert store.last_position("order") == order.position
        assert store.last_position("invoice") == 0
        with pytest.raises(InvalidEvent):
            store.last_position("")

    def test_a_few_events_from_a_version_are_read_in_few_requests(self, store):
        for start in range(0, 900, 100):
            store.append("order-1", [Event(event_type="E") for _ in range(100)], start)
        reads = []
        next_msgs = store.backend.next_msgs

        async def counting(*args):
            reads.append(args)
            return await next_msgs(*args)

        store.backend.next_msgs = counting
        try:
            assert [e.version for e in store.get_events("order-1", from_version=899, limit=1)] == [900]
        finally:
            store.backend.next_msgs = next_msgs
        assert len(reads) <= 2, f"{len(reads)} requests to skip 899 versions"
