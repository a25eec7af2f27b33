"""GET events/?event_type=: the global feed filtered by event type, beside ?type= (the actor type)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_eventstore import Event, get_store
from django_eventstore.api.views import EventFeedView

pytestmark = pytest.mark.django_db
API = "/api/eventstore/events/"


def follow(client: Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of the feed from ``params`` on."""
    pages = [client.get(API, params).json()]
    while pages[-1]["next"]:
        assert pages[-1]["next"].startswith("http://testserver/api/eventstore/events/?")
        pages.append(client.get(pages[-1]["next"]).json())
    return pages


@pytest.fixture
def mixed() -> None:
    """order-1: Placed, Paid x 9; user-1: Paid, Joined; order-2: Paid (positions 1..13)."""
    store = get_store()
    store.append("order-1", [Event(event_type="Placed")] + [Event(event_type="Paid", data={"i": i}) for i in range(9)], expected_version=0)
    store.append("user-1", [Event(event_type="Paid"), Event(event_type="Joined")], expected_version=0)
    store.save_event(Event(actor_id="order-2", event_type="Paid", version=1))


def test_event_type_filters_the_feed(admin_client: Client, mixed: None) -> None:
    body = admin_client.get(API, {"event_type": "Joined"}).json()
    assert [(e["actor_id"], e["event_type"], e["position"]) for e in body["results"]] == [("user-1", "Joined", 12)]
    assert body["next"] is None
    assert admin_client.get(API, {"event_type": "Nothing"}).json() == {"results": [], "next": None}


def test_event_type_pages_keep_the_filter_in_next(admin_client: Client, mixed: None) -> None:
    pages = follow(admin_client, {"event_type": "Paid", "limit": 4})
    assert [len(p["results"]) for p in pages] == [4, 4, 3]
    assert pages[0]["next"] == "http://testserver/api/eventstore/events/?after=5&event_type=Paid&limit=4"
    events = [e for p in pages for e in p["results"]]
    assert {e["event_type"] for e in events} == {"Paid"}
    assert [e["position"] for e in events] == [*range(2, 12), 13]


def test_the_last_match_of_the_stream_ends_the_feed(admin_client: Client, mixed: None) -> None:
    body = admin_client.get(API, {"event_type": "Paid", "after": 11, "limit": 1}).json()
    assert [e["position"] for e in body["results"]] == [13] and body["next"] is None


def test_event_type_and_actor_type_together(admin_client: Client, mixed: None) -> None:
    body = admin_client.get(API, {"event_type": "Paid", "type": "user"}).json()
    assert [(e["actor_id"], e["position"]) for e in body["results"]] == [("user-1", 11)]
    orders = follow(admin_client, {"event_type": "Paid", "type": "order", "limit": 5})
    assert [e["actor_id"] for p in orders for e in p["results"]] == ["order-1"] * 9 + ["order-2"]
    assert "type=order" in orders[0]["next"]


def test_a_rare_type_answers_after_the_scan_limit_with_a_next_link(admin_client: Client, mixed: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EventFeedView, "scan_limit", 1)  # one page of the store read per request
    for batch in range(5):
        get_store().append("bulk-1", [Event(event_type="Noise") for _ in range(1000)], expected_version=batch * 1000)
    get_store().save_event(Event(actor_id="user-1", event_type="Joined", version=3))
    pages = follow(admin_client, {"event_type": "Joined"})
    assert len(pages) > 1 and pages[0]["next"]
    assert [e["position"] for p in pages for e in p["results"]] == [12, 5014]


def test_an_empty_event_type_is_no_filter_as_in_an_html_form(admin_client: Client, mixed: None) -> None:
    assert len(admin_client.get(API, {"event_type": ""}).json()["results"]) == 13


@pytest.mark.parametrize("params", [{"limit": 0, "event_type": "Paid"}, {"after": -1, "event_type": "Paid"}])
def test_bad_parameters_are_400s_naming_the_field(admin_client: Client, params: dict[str, Any]) -> None:
    response = admin_client.get(API, params)
    assert response.status_code == 400
    assert set(response.json()) <= set(params) and response.json()
