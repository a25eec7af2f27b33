"""The API under ASGI: the async version view, and hostile ids through a real HTTP client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from django.core.asgi import get_asgi_application
from django.test import AsyncClient, Client

from django_eventstore import Event, get_store
from django_eventstore.actor_urls import actor_segment

pytestmark = pytest.mark.django_db(transaction=True)  # the ASGI handler reaches the database from other threads
API = "/api/eventstore/"


def session_cookie(user: Any) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


def test_async_version_view_under_the_asgi_client(admin_user: Any) -> None:
    get_store().append("order-1", [Event(event_type="Placed"), Event(event_type="Paid")], expected_version=0)
    anonymous, admin = AsyncClient(), AsyncClient()
    admin.cookies.load(session_cookie(admin_user))

    async def go() -> list[Any]:
        return list(
            await asyncio.gather(
                anonymous.get(API + "actors/order-1/version/"),
                *[admin.get(API + "actors/order-1/version/") for _ in range(10)],
                admin.get(API + "actors/order-1/version/", headers={"If-None-Match": '"2"'}),
                admin.get(API + "actors/" + "x" * 300 + "/version/"),
            )
        )

    refused, *ok, cached, bad = asyncio.run(go())
    assert refused.status_code == 403 and set(refused.json()) == {"detail"}
    assert all(r.status_code == 200 and r.json() == {"actor_id": "order-1", "latest_version": 2} and r["ETag"] == '"2"' for r in ok)
    assert (cached.status_code, cached["ETag"]) == (304, '"2"')
    assert bad.status_code == 400 and "actor_id" in bad.json()


def test_ids_with_slashes_and_dot_segments_reach_their_routes_through_an_http_client(admin_user: Any) -> None:
    transport = httpx.ASGITransport(app=get_asgi_application())
    csrf = "k" * 32  # SessionAuthentication checks CSRF on writes, as a browser would be
    cookies = {**session_cookie(admin_user), "csrftoken": csrf}
    ids = ["x/events", "..", ".", "a%2Fb", "x"]

    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", cookies=cookies) as client:
            headers = {"Content-Type": "application/json", "X-CSRFToken": csrf}
            body = json.dumps({"event_type": "X", "version": 1, "data": {}})
            created = [await client.post(API + f"actors/{actor_segment(i)}/events/", content=body, headers=headers) for i in ids]
            return {
                "created": [r.json()["actor_id"] for r in created],
                "versions": [(await client.get(API + f"actors/{actor_segment(i)}/version/")).json() for i in ids],
                "events_of_x": (await client.get(API + "actors/x/events/")).json(),
            }

    result = asyncio.run(go())
    assert result["created"] == ids
    assert result["versions"] == [{"actor_id": i, "latest_version": 1} for i in ids]
    assert [e["actor_id"] for e in result["events_of_x"]["results"]] == ["x"]
