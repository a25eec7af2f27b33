"""The admin's live page and its Server-Sent Events endpoint, through the test client (the browser test drives the page)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from django_eventstore import Event, get_store
from django_eventstore.actor_urls import actor_segment

pytestmark = pytest.mark.django_db

LIVE = "admin:django_eventstore_actor_live"
LIVE_EVENTS = "admin:django_eventstore_actor_live_events"
SSE = {"Accept": "text/event-stream"}


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_endpoint_refuses_non_staff_and_staff_without_the_view_permission(db: None) -> None:
    url = reverse(LIVE_EVENTS)
    anonymous = Client().get(url, headers=SSE)
    not_staff = logged_in(User.objects.create_user("member")).get(url, headers=SSE)
    staff = logged_in(User.objects.create_user("staff", is_staff=True)).get(url, headers=SSE)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert not_staff.status_code == 302 and "/admin/login/" in not_staff["Location"]
    assert staff.status_code == 403
    assert not any(r.streaming for r in (anonymous, not_staff, staff))
    assert logged_in(User.objects.create_user("staff-2", is_staff=True)).get(reverse(LIVE)).status_code == 403


def test_staff_with_the_view_permission_get_the_stream_of_one_actor_without_event_names(db: None) -> None:
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_actor", content_type__app_label="django_eventstore"))
    store = get_store()
    first = store.save_event(Event(actor_id="order-1", event_type="Placed", version=1, data={}))
    other = store.save_event(Event(actor_id="order-2", event_type="Placed", version=1, data={}))
    mine = store.save_event(Event(actor_id="order-1", event_type="Paid", version=2, data={"total": 3}))
    response = logged_in(viewer).get(reverse(LIVE_EVENTS), {"actor_id": "order-1", "after": first.position}, headers=SSE)
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    chunks = iter(response.streaming_content)
    assert next(chunks) == f"retry: 3000\nid: {first.position}\n\n".encode()
    chunk = next(chunks).decode()
    response.close()
    assert other.position is not None and mine.position is not None and other.position < mine.position
    assert chunk.startswith(f"id: {mine.position}\ndata: {{")  # no "event:" line: EventSource's onmessage gets every type
    assert '"actor_id":"order-1"' in chunk and '"total":3' in chunk and "order-2" not in chunk


def test_the_page_starts_at_the_end_of_the_stream_and_links_both_ways(admin_client: Client) -> None:
    store = get_store()
    stored = store.save_event(Event(actor_id="a/<b>", event_type="Placed", version=1, data={}))
    overview = admin_client.get(reverse("admin:django_eventstore_actor_overview")).content.decode()
    actor_page = admin_client.get(reverse("admin:django_eventstore_actor_actor", args=[actor_segment("a/<b>")])).content.decode()
    assert f'href="{reverse(LIVE)}" id="live-link"' in overview
    assert f'href="{reverse(LIVE)}?actor_id=a%2F%3Cb%3E" id="live-link"' in actor_page

    page = admin_client.get(reverse(LIVE), {"actor_id": "a/<b>"})
    html = page.content.decode()
    assert page.status_code == 200
    assert f'data-after="{stored.position}"' in html
    assert f'data-stream-url="{reverse(LIVE_EVENTS)}?actor_id=a%2F%3Cb%3E"' in html
    assert "of actor a/&lt;b&gt;" in html and "a/<b>" not in html
    assert 'src="/static/django_eventstore/live.js"' in html


@pytest.mark.parametrize(
    ("params", "headers"),
    [({"actor_id": "order-1", "type": "user"}, {}), ({"actor_id": "x" * 300}, {}), ({"after": "-1"}, {}), ({}, {"Last-Event-ID": "1e3"})],
)
def test_bad_parameters_are_404(admin_client: Client, params: dict[str, str], headers: dict[str, str]) -> None:
    assert admin_client.get(reverse(LIVE_EVENTS), params, headers={**SSE, **headers}).status_code == 404
    if "actor_id" in params:  # the page checks its filter too
        assert admin_client.get(reverse(LIVE), params).status_code == 404
