"""The Aggregate base class against the real JetStream store (get_store() points at this test's stream)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from django_eventstore import ActorSnapshot, Event, SnapshotNotFound, VersionConflictError, get_store
from django_eventstore.aggregates import Aggregate, UnhandledEvent, applies


class Refused(Exception):
    pass


class Counter(Aggregate):
    snapshot_every = 5

    def __init__(self, actor_id: str, store=None) -> None:
        super().__init__(actor_id, store)
        self.total = 0
        self.history: list[int] = []

    def add(self, n: int) -> None:
        if n <= 0:
            raise Refused("n must be positive")
        self.record("Added", {"n": n})

    @applies("Added")
    def _added(self, event: Event) -> None:
        self.total += event.data["n"]
        self.history.append(event.data["n"])


class LabelledCounter(Counter):
    """A subclass inherits its parent's handlers and adds its own."""

    def __init__(self, actor_id: str, store=None) -> None:
        super().__init__(actor_id, store)
        self.label = ""

    def rename(self, label: str) -> None:
        self.record("Renamed", {"label": label})

    @applies("Renamed")
    def _renamed(self, event: Event) -> None:
        self.label = event.data["label"]


def add_all(actor_id: str, amounts: list[int]) -> Counter:
    counter = Counter.load(actor_id)
    for n in amounts:
        counter.add(n)
    counter.save()
    return counter


def snapshot_version(actor_id: str) -> int | None:
    try:
        return get_store().get_latest_snapshot(actor_id).version
    except SnapshotNotFound:
        return None


def test_commands_record_apply_and_save_atomically():
    counter = Counter("counter-1")
    counter.add(2)
    counter.add(3)
    assert (counter.total, counter.version, len(counter.pending)) == (5, 0, 2)

    stored = counter.save()

    assert [e.version for e in stored] == [1, 2]
    assert all(e.actor_id == "counter-1" and e.position for e in stored)
    assert (counter.version, counter.pending) == (2, [])
    assert [e.data["n"] for e in get_store().get_events("counter-1")] == [2, 3]
    loaded = Counter.load("counter-1")
    assert (loaded.total, loaded.version, loaded.history) == (5, 2, [2, 3])


def test_save_without_pending_events_writes_nothing():
    assert Counter("counter-1").save() == []
    assert get_store().get_latest_version("counter-1") == 0
    assert Counter.load("counter-1").version == 0


def test_load_from_snapshot_plus_events_equals_load_from_all_events():
    for batch in ([1, 2, 3], [4], [5, 6, 7, 8], [9, 10, 11], [12]):
        add_all("counter-1", batch)
    assert snapshot_version("counter-1") == 11

    from_snapshot = Counter.load("counter-1")
    from_events = Counter.load("counter-1", use_snapshot=False)

    assert from_snapshot.get_state() == from_events.get_state() == {"total": 78, "history": list(range(1, 13))}
    assert from_snapshot.version == from_events.version == 12


def test_load_starts_from_the_snapshot_and_applies_only_later_events():
    add_all("counter-1", [1, 1, 1])
    get_store().save_snapshot(ActorSnapshot(actor_id="counter-1", version=2, state={"total": 1000, "history": ["from snapshot"]}))
    add_all("counter-1", [10])

    counter = Counter.load("counter-1")

    assert (counter.total, counter.history, counter.version) == (1011, ["from snapshot", 1, 10], 4)


def test_snapshot_policy_takes_a_snapshot_when_a_save_reaches_a_multiple():
    add_all("counter-1", [1, 1, 1, 1])
    assert snapshot_version("counter-1") is None
    add_all("counter-1", [1])
    assert snapshot_version("counter-1") == 5
    add_all("counter-1", [1, 1, 1, 1])
    assert snapshot_version("counter-1") == 5
    add_all("counter-1", [1] * 8)  # 9 -> 17 passes 10 and 15: one snapshot, at the saved version
    assert snapshot_version("counter-1") == 17
    assert get_store().get_latest_snapshot("counter-1").state == {"total": 17, "history": [1] * 17}


def test_no_snapshot_policy_means_no_snapshot():
    class Plain(Counter):
        snapshot_every = None

    plain = Plain("counter-1")
    for _ in range(12):
        plain.add(1)
    plain.save()
    assert snapshot_version("counter-1") is None


def test_a_snapshot_that_cannot_be_saved_is_logged_and_the_events_stay(caplog):
    class Unserialisable(Counter):
        def get_state(self) -> dict:
            return {"not json": {1, 2}}

    counter = Unserialisable("counter-1")
    for _ in range(5):
        counter.add(1)
    with caplog.at_level(logging.WARNING, logger="django_eventstore"):
        stored = counter.save()

    assert len(stored) == 5 and counter.version == 5
    assert get_store().get_latest_version("counter-1") == 5
    assert snapshot_version("counter-1") is None
    assert "could not save the snapshot of 'counter-1' at version 5" in caplog.text


def test_a_stale_aggregate_gets_a_version_conflict_and_stores_nothing():
    add_all("counter-1", [1])
    first, second = Counter.load("counter-1"), Counter.load("counter-1")
    first.add(10)
    second.add(20)
    first.save()

    with pytest.raises(VersionConflictError) as info:
        second.save()

    assert (info.value.actor_id, info.value.attempted_version, info.value.current_version) == ("counter-1", 2, 2)
    assert len(second.pending) == 1 and second.version == 1
    assert Counter.load("counter-1").total == 11


def test_retry_reloads_and_reruns_the_command_after_a_conflict():
    add_all("counter-1", [1])
    calls = []

    def add_five(counter: Counter) -> int:
        calls.append(counter.version)
        if len(calls) == 1:
            add_all("counter-1", [100])  # another writer gets in between load and save
        counter.add(5)
        return counter.total

    saved = Counter.retry("counter-1", add_five)

    assert calls == [1, 2]
    assert isinstance(saved, Counter) and (saved.total, saved.version, saved.pending) == (106, 3, [])
    assert [e.data["n"] for e in get_store().get_events("counter-1")] == [1, 100, 5]


def test_retry_gives_up_after_the_attempts_with_the_last_conflict():
    add_all("counter-1", [1])

    def always_overtaken(counter: Counter) -> None:
        add_all("counter-1", [100])
        counter.add(5)

    with pytest.raises(VersionConflictError):
        Counter.retry("counter-1", always_overtaken, attempts=2)
    assert [e.data["n"] for e in get_store().get_events("counter-1")] == [1, 100, 100]


def test_retry_lets_a_refused_command_through_without_saving():
    with pytest.raises(Refused):
        Counter.retry("counter-1", lambda c: c.add(-1))
    assert get_store().get_latest_version("counter-1") == 0


@pytest.mark.parametrize("attempts", [0, -1, 1.5])
def test_retry_needs_at_least_one_attempt(attempts):
    with pytest.raises(ValueError):
        Counter.retry("counter-1", lambda c: c.add(1), attempts=attempts)


def test_an_event_without_a_handler_is_an_error():
    with pytest.raises(UnhandledEvent):
        Counter("counter-1").record("Renamed", {"label": "x"})
    get_store().save_event(Event(actor_id="counter-1", version=1, event_type="Surprise"))
    with pytest.raises(UnhandledEvent, match="'Surprise'"):
        Counter.load("counter-1")


def test_subclasses_inherit_handlers():
    counter = LabelledCounter("counter-1")
    counter.add(3)
    counter.rename("mine")
    counter.save()
    loaded = LabelledCounter.load("counter-1")
    assert (loaded.total, loaded.label) == (3, "mine")
    with pytest.raises(UnhandledEvent):
        Counter.load("counter-1")


def test_an_explicit_store_is_used_instead_of_get_store(js_store):
    counter = Counter("counter-1", js_store)
    counter.add(7)
    counter.save()
    assert Counter.load("counter-1", js_store).total == 7


def test_async_load_save_and_snapshot_agree_with_sync():
    async def scenario() -> tuple[Counter, Counter]:
        counter = await Counter.aload("counter-1")
        for n in range(1, 8):
            counter.add(n)
        await counter.asave()
        return await Counter.aload("counter-1"), await Counter.aload("counter-1", use_snapshot=False)

    from_snapshot, from_events = asyncio.run(scenario())

    assert snapshot_version("counter-1") == 7
    assert from_snapshot.get_state() == from_events.get_state() == Counter.load("counter-1").get_state()
    assert from_snapshot.total == 28 and from_snapshot.version == 7


def test_async_retry_makes_concurrent_commands_all_count():
    async def add_one(counter: Counter) -> None:  # a coroutine command is awaited
        counter.add(1)

    async def scenario() -> None:
        await asyncio.gather(*(Counter.aretry("counter-1", add_one, attempts=20) for _ in range(8)))

    asyncio.run(scenario())

    counter = Counter.load("counter-1", use_snapshot=False)
    assert (counter.total, counter.version) == (8, 8)


def test_async_stale_save_is_a_conflict():
    async def scenario() -> None:
        first, second = await Counter.aload("counter-1"), await Counter.aload("counter-1")
        first.add(1)
        second.add(2)
        await first.asave()
        await second.asave()

    with pytest.raises(VersionConflictError):
        asyncio.run(scenario())
    assert Counter.load("counter-1").total == 1


def test_a_snapshot_cannot_redirect_the_aggregate_to_another_actor():
    add_all("counter-1", [1, 2])
    get_store().save_snapshot(
        ActorSnapshot(actor_id="counter-1", version=2, state={"total": 3, "actor_id": "victim-1", "version": 99, "_pending": []})
    )
    counter = Counter.load("counter-1")
    assert (counter.actor_id, counter.version, counter.total) == ("counter-1", 2, 3)
    counter.add(4)
    counter.save()
    assert get_store().get_latest_version("victim-1") == 0
    assert get_store().get_latest_version("counter-1") == 3
