"""The actor index (core/actor_index.py) against a real nats-server: the same pages as the subject listing, kept fresh."""

from __future__ import annotations

from typing import Any, Coroutine, TypeVar

import pytest

from django_eventstore import Event
from django_eventstore.core.actor_index import ActorIndex
from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.core.memory import MemoryEventStore, run_now
from django_eventstore.core.subjects import Subjects

from .conftest import publish_raw

T = TypeVar("T")

# typed, untyped (no "-", leading "-", "_-"), ids that need encoding, and ids that sort next to type boundaries
IDS = [
    "order-1", "order-10", "order-2", "order-a.b", "order-a_b", "order-é", "order-", "orderx-1", "order.x",
    "user-1", "user-2", "plain", "-lead", "_-x", "a.b", "a-b-c", "a-", "ü-1", "café", "Z-1", "zz",
]  # fmt: skip
CASES: list[dict[str, Any]] = [
    {},
    {"limit": 3},
    {"limit": 3, "after": "order-2"},
    {"limit": 2, "offset": 5},
    {"limit": 2, "after": "a", "offset": 1},
    {"after": "zzz"},
    {"actor_type": "order"},
    {"actor_type": "order", "limit": 2, "after": "order-10"},
    {"actor_type": "_"},
    {"actor_type": "_", "prefix": "-"},
    {"actor_type": "_", "limit": 2, "after": "a.b"},
    {"actor_type": "ü"},
    {"actor_type": "a"},
    {"actor_type": "a-b"},
    {"actor_type": "nosuch"},
    {"prefix": "order"},
    {"prefix": "order-"},
    {"prefix": "order-a"},
    {"actor_type": "order", "prefix": "order-1"},
    {"actor_type": "order", "prefix": "ord"},
    {"actor_type": "order", "prefix": "user-"},
    {"prefix": "caf"},
    {"prefix": "x"},
]


def on_loop(store: JetStreamEventStore, coro: Coroutine[Any, Any, T]) -> T:
    return store.portal.call(coro)


def save_actors(store: Any, ids: list[str], version: int = 1) -> None:
    store.save_events([Event(actor_id=i, event_type="Created", version=version, data={}) for i in ids])


@pytest.fixture
def index(js_store: JetStreamEventStore) -> ActorIndex:
    return ActorIndex(js_store.backend, js_store.engine.subjects)


def test_pages_are_the_subject_listings(js_store: JetStreamEventStore, index: ActorIndex) -> None:
    save_actors(js_store, IDS)
    assert on_loop(js_store, index.ids()) == sorted(IDS)
    for case in CASES:
        expected = js_store.list_actors(**case)
        page = on_loop(js_store, index.page(**case))
        assert page.ids == [a.actor_id for a in expected.actors], case
        assert page.total == expected.total, case
        assert (expected.next_after is not None) == page.more, case
    assert on_loop(js_store, index.types()) == js_store.actor_types()
    assert index.builds == 1  # every call after the first was answered from the index


def test_new_actors_are_read_from_the_new_messages_not_listed_again(js_store: JetStreamEventStore, index: ActorIndex) -> None:
    save_actors(js_store, ["order-1", "user-1"])
    assert on_loop(js_store, index.ids()) == ["order-1", "user-1"]
    save_actors(js_store, ["order-0", "cart-9", "plain"])
    save_actors(js_store, ["order-1"], version=2)  # an actor already indexed
    assert on_loop(js_store, index.ids()) == ["cart-9", "order-0", "order-1", "plain", "user-1"]
    assert on_loop(js_store, index.page(actor_type="order")).ids == ["order-0", "order-1"]
    assert on_loop(js_store, index.types()) == ["_", "cart", "order", "user"]
    assert index.builds == 1


def test_more_new_messages_than_the_catch_up_limit_list_again(js_store: JetStreamEventStore) -> None:
    index = ActorIndex(js_store.backend, js_store.engine.subjects, catch_up_limit=5)
    save_actors(js_store, ["a-1"])
    on_loop(js_store, index.ids())
    save_actors(js_store, [f"b-{n}" for n in range(5)])
    assert len(on_loop(js_store, index.ids())) == 6 and index.builds == 1
    save_actors(js_store, [f"c-{n}" for n in range(6)])
    assert len(on_loop(js_store, index.ids())) == 12 and index.builds == 2


def test_foreign_subjects_are_ignored(js_store: JetStreamEventStore, index: ActorIndex, nats_url: str, subject_prefix: str) -> None:
    save_actors(js_store, ["order-1"])
    publish_raw(nats_url, f"{subject_prefix}.events.x.y.z", b"{}")  # not an actor subject
    assert on_loop(js_store, index.ids()) == ["order-1"]
    publish_raw(nats_url, f"{subject_prefix}.events.order.bad~", b"{}")  # read by the catch-up this time
    save_actors(js_store, ["order-2"])
    assert on_loop(js_store, index.ids()) == ["order-1", "order-2"]
    assert index.builds == 1


def test_a_forgotten_index_lists_again(js_store: JetStreamEventStore, index: ActorIndex) -> None:
    save_actors(js_store, ["order-1"])
    on_loop(js_store, index.ids())
    index.forget()
    assert on_loop(js_store, index.ids()) == ["order-1"]
    assert index.builds == 2


def test_an_empty_stream_and_pages_past_the_end(js_store: JetStreamEventStore, index: ActorIndex) -> None:
    assert on_loop(js_store, index.page()).ids == []
    assert on_loop(js_store, index.types()) == []
    save_actors(js_store, ["order-1"])
    page = on_loop(js_store, index.page(offset=5))
    assert (page.ids, page.total, page.more) == ([], 1, False)


@pytest.mark.without_nats
def test_the_memory_backend_is_indexed_alike() -> None:
    store = MemoryEventStore()
    index = ActorIndex(store.backend, Subjects("es"))
    save_actors(store, IDS)
    for case in CASES:
        expected = store.list_actors(**case)
        assert run_now(index.page(**case)).ids == [a.actor_id for a in expected.actors], case
    save_actors(store, ["new-1"])
    assert "new-1" in run_now(index.ids()) and index.builds == 1


def test_a_follower_reads_new_actors_before_the_next_listing(js_store: JetStreamEventStore) -> None:
    index = ActorIndex(js_store.backend, js_store.engine.subjects, follow=30.0)
    save_actors(js_store, ["order-1"])
    assert on_loop(js_store, index.ids()) == ["order-1"]
    position = js_store.save_event(Event(actor_id="order-2", event_type="Created", version=1, data={})).position or 0
    assert index.position < position
    assert on_loop(js_store, index.wait_for(position, 10))  # the follower read it; nobody listed
    assert on_loop(js_store, index.ids()) == ["order-1", "order-2"]
    on_loop(js_store, index.close())
    assert index.builds == 1


def test_without_a_follower_the_index_waits_for_the_next_listing(js_store: JetStreamEventStore, index: ActorIndex) -> None:
    save_actors(js_store, ["order-1"])
    on_loop(js_store, index.ids())
    position = js_store.save_event(Event(actor_id="order-2", event_type="Created", version=1, data={})).position or 0
    assert not on_loop(js_store, index.wait_for(position, 0.2))
    assert on_loop(js_store, index.ids()) == ["order-1", "order-2"] and index.position == position
