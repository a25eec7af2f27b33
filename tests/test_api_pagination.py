"""Cursor pagination across 1,000 actors and 1,000 events, following the absolute ``next`` links."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from django_eventstore import Event, get_store

pytestmark = pytest.mark.django_db
API = "/api/eventstore/"


def follow(client: Client, first: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every page from ``first`` on, checking each ``next`` is absolute."""
    pages = [client.get(first, params or {}).json()]
    while pages[-1]["next"]:
        assert pages[-1]["next"].startswith("http://testserver/")
        pages.append(client.get(pages[-1]["next"]).json())
    return pages


@pytest.fixture
def thousand_actors() -> list[str]:
    store = get_store()
    ids = [f"{'order' if i % 2 else 'user'}-{i:04d}" for i in range(1000)]
    for actor_id in ids:
        store.save_event(Event(actor_id=actor_id, event_type="Created", version=1))
    return sorted(ids)


@pytest.fixture
def thousand_events() -> list[Event]:
    return get_store().append("order-1", [Event(event_type="Step", data={"i": i}) for i in range(1000)], expected_version=0)


def test_actors_page_by_100_by_default(admin_client: Client, thousand_actors: list[str]) -> None:
    pages = follow(admin_client, API + "actors/")
    assert [len(p["results"]) for p in pages] == [100] * 10
    assert [a["actor_id"] for p in pages for a in p["results"]] == thousand_actors
    assert all(a["latest_version"] == 1 and a["snapshot_version"] is None for p in pages for a in p["results"])


def test_actors_in_one_page_of_1000_and_filtered_pages(admin_client: Client, thousand_actors: list[str]) -> None:
    page = admin_client.get(API + "actors/", {"limit": 1000}).json()
    assert len(page["results"]) == 1000 and page["next"] is None
    pages = follow(admin_client, API + "actors/", {"type": "order", "limit": 300})
    assert [len(p["results"]) for p in pages] == [300, 200]
    assert parse_qs(urlsplit(pages[0]["next"]).query)["type"] == ["order"]
    assert {a["actor_type"] for p in pages for a in p["results"]} == {"order"}
    assert admin_client.get(API + "actors/", {"limit": 1001}).status_code == 400


def test_actor_cursor_escapes_ids(admin_client: Client) -> None:
    for actor_id in ("a/b", "a b", "a&b=c", "ü"):
        get_store().save_event(Event(actor_id=actor_id, event_type="Created", version=1))
    pages = follow(admin_client, API + "actors/", {"limit": 1})
    assert [p["results"][0]["actor_id"] for p in pages] == ["a b", "a&b=c", "a/b", "ü"]
    assert "after=a%26b%3Dc" in pages[1]["next"]


def test_events_of_an_actor_page_by_from_version(admin_client: Client, thousand_events: list[Event]) -> None:
    pages = follow(admin_client, API + "actors/order-1/events/")
    assert [len(p["results"]) for p in pages] == [100] * 10
    assert [e["version"] for p in pages for e in p["results"]] == list(range(1, 1001))
    assert pages[0]["next"] == "http://testserver/api/eventstore/actors/order-1/events/?from_version=100&limit=100"
    page = admin_client.get(API + "actors/order-1/events/", {"limit": 1000}).json()
    assert len(page["results"]) == 1000 and page["next"] is None


def test_next_links_re_escape_the_actor_id(admin_client: Client) -> None:
    get_store().append("a/b ü", [Event(event_type="Step") for _ in range(3)], expected_version=0)
    pages = follow(admin_client, API + "actors/a~2Fb~20~C3~BC/events/", {"limit": 2})
    assert pages[0]["next"] == "http://testserver/api/eventstore/actors/a~2Fb~20~C3~BC/events/?from_version=2&limit=2"
    assert [e["version"] for p in pages for e in p["results"]] == [1, 2, 3]


def test_global_feed_pages_by_position(admin_client: Client, thousand_events: list[Event]) -> None:
    get_store().save_event(Event(actor_id="user-1", event_type="Joined", version=1))
    pages = follow(admin_client, API + "events/", {"limit": 250})
    events = [e for p in pages for e in p["results"]]
    assert [len(p["results"]) for p in pages] == [250, 250, 250, 250, 1]
    assert [e["position"] for e in events] == list(range(1, 1002))
    assert events[-1]["actor_id"] == "user-1"
    users = admin_client.get(API + "events/", {"type": "user"}).json()
    assert [e["actor_id"] for e in users["results"]] == ["user-1"] and users["next"] is None
    tail = admin_client.get(API + "events/", {"after": 1000}).json()
    assert [e["position"] for e in tail["results"]] == [1001]
