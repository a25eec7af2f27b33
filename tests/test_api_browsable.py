"""DRF's browsable API (Accept: text/html, ?format=api) and the API root at the mount point."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.test import AsyncClient, Client

from django_eventstore import ActorSnapshot, Event, get_store

from .test_api_asgi import session_cookie

pytestmark = pytest.mark.django_db
API = "/api/eventstore/"
PAGES = ["", "actors/", "events/", "actors/order-1/", "actors/order-1/events/", "actors/order-1/version/", "actors/order-1/snapshot/"]


@pytest.fixture
def order() -> None:
    get_store().append("order-1", [Event(event_type="Placed", data={"total": 30}), Event(event_type="Paid")], expected_version=0)
    get_store().save_snapshot(ActorSnapshot(actor_id="order-1", version=2, state={"paid": True}))


@pytest.mark.parametrize("path", PAGES)
def test_a_browser_gets_the_browsable_page(admin_client: Client, order: None, path: str) -> None:
    for response in (admin_client.get(API + path, headers={"Accept": "text/html"}), admin_client.get(API + path, {"format": "api"})):
        assert response.status_code == 200, response.content[:300]
        assert response["Content-Type"].startswith("text/html")
        assert b"rest_framework/css/bootstrap" in response.content  # DRF's page, not a bare error


@pytest.mark.parametrize("path", PAGES)
def test_json_stays_the_default(admin_client: Client, order: None, path: str) -> None:
    for accept in ("*/*", "application/json"):
        response = admin_client.get(API + path, headers={"Accept": accept})
        assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert admin_client.get(API + path, {"format": "json"})["Content-Type"] == "application/json"


def test_errors_render_in_the_page_too(admin_client: Client) -> None:
    response = admin_client.get(API + "actors/nobody-1/", headers={"Accept": "text/html"})
    assert response.status_code == 404 and b"has no events" in response.content
    response = admin_client.get(API + "events/", {"format": "api", "limit": 0})
    assert response.status_code == 400 and b"limit" in response.content


def test_an_unknown_format_is_still_a_404(admin_client: Client) -> None:
    assert admin_client.get(API + "actors/", {"format": "xml"}).status_code == 404


def test_anonymous_browsers_are_refused_without_data(client: Client, order: None) -> None:
    response = client.get(API + "actors/order-1/events/", headers={"Accept": "text/html"})
    assert response.status_code in (401, 403) and b"Placed" not in response.content


def test_hostile_values_are_escaped(admin_client: Client) -> None:
    actor_id = "x-<script>alert(1)</script>"
    get_store().save_event(Event(actor_id=actor_id, event_type="<img src=x onerror=alert(2)>", version=1, data={"<b>k</b>": "</pre><script>alert(3)</script>"}))
    for path in ("events/", "actors/"):
        content = admin_client.get(API + path, {"format": "api"}).content
        assert b"<script>" not in content and b"<img" not in content and b"<b>k" not in content
        assert b"&lt;script&gt;" in content


def test_the_root_lists_the_routes_as_absolute_urls(admin_client: Client, order: None) -> None:
    body = admin_client.get(API).json()
    assert body == {
        "actors": "http://testserver/api/eventstore/actors/",
        "events": "http://testserver/api/eventstore/events/",
        "schema": "http://testserver/api/eventstore/schema/",
        "docs": "http://testserver/api/eventstore/docs/",
    }
    for url in body.values():
        assert admin_client.get(url).status_code == 200


def test_the_root_needs_the_api_permissions(client: Client) -> None:
    assert client.get(API).status_code in (401, 403)


@pytest.mark.django_db(transaction=True)
def test_the_browsable_pages_render_under_asgi(admin_user: Any) -> None:
    get_store().append("order-1", [Event(event_type="Placed")], expected_version=0)
    client = AsyncClient()
    client.cookies.load(session_cookie(admin_user))

    async def go() -> list[Any]:
        return [await client.get(API + path, {"format": "api"}) for path in PAGES] + [await client.get(API + "docs/")]

    responses = asyncio.run(go())
    assert [r.status_code for r in responses] == [200] * 6 + [404, 200]  # order-1 has no snapshot
    assert all(r["Content-Type"].startswith("text/html") for r in responses)
