"""REST ``GET actors/<id>/state/?version=N``: an actor's state at a version, against the real nats-server."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from django_eventstore import ActorSnapshot, Event, get_store
from django_eventstore.actor_urls import actor_segment
from tests.test_api_schema import Checker
from tests.test_time_travel import HISTORY, Ledger, build, expected_state

pytestmark = pytest.mark.django_db
API = "/api/eventstore/"
STATE = "/actors/{actor_id}/state/"


def state_url(actor_id: str) -> str:
    return f"{API}actors/{actor_segment(actor_id)}/state/"


def test_state_at_every_version_with_how_it_was_computed(admin_client: Client) -> None:
    build("ttledger-40", HISTORY)
    snapshot = get_store().get_latest_snapshot("ttledger-40").version
    latest = len(HISTORY)
    for version in (1, snapshot - 1, snapshot, latest):
        response = admin_client.get(state_url("ttledger-40"), {"version": version})
        assert response.status_code == 200, response.content
        computed = {"snapshot_version": snapshot, "events_applied": version - snapshot} if version >= snapshot else {"snapshot_version": None, "events_applied": version}
        assert response.json() == {"actor_id": "ttledger-40", "version": version, "state": expected_state(HISTORY, version), "computed_from": computed}
        assert response["ETag"] == f'"{latest}"'
    latest_state = admin_client.get(state_url("ttledger-40")).json()
    assert latest_state["version"] == latest and latest_state["state"] == Ledger.load("ttledger-40", use_snapshot=False).get_state()
    assert admin_client.get(state_url("ttledger-40"), headers={"If-None-Match": f'"{latest}"'}).status_code == 304


def test_version_above_the_latest_and_actor_without_events_are_404(admin_client: Client) -> None:
    build("ttledger-41", [("add", 1), ("add", 2)])
    response = admin_client.get(state_url("ttledger-41"), {"version": 3})
    assert response.status_code == 404
    assert response.json() == {"detail": "Actor 'ttledger-41' has no version 3: its latest version is 2."}
    assert admin_client.get(state_url("ttledger-nobody")).json() == {"detail": "Actor 'ttledger-nobody' has no events."}


def test_actor_type_without_aggregate_is_404(admin_client: Client) -> None:
    get_store().save_event(Event(actor_id="order-1", event_type="Placed", version=1))
    response = admin_client.get(state_url("order-1"))
    assert response.status_code == 404
    assert "No aggregate is registered for actor type 'order'" in response.json()["detail"]


@pytest.mark.parametrize("bad", ["0", "-1", "x", "1.5", str(2**53)])
def test_bad_version_is_400_with_a_field_error(admin_client: Client, bad: str) -> None:
    build("ttledger-42", [("add", 1)])
    response = admin_client.get(state_url("ttledger-42"), {"version": bad})
    assert response.status_code == 400 and list(response.json()) == ["version"]


def test_unappliable_event_and_too_long_replay_are_422_saying_why(admin_client: Client, settings: Any) -> None:
    build("ttledger-43", [("add", 1)])
    get_store().save_event(Event(actor_id="ttledger-43", event_type="Added", version=2, data={}))
    response = admin_client.get(state_url("ttledger-43"))
    assert response.status_code == 422
    assert response.json() == {"detail": "Replay stopped at version 2: KeyError: 'n'"}
    assert admin_client.get(state_url("ttledger-43"), {"version": 1}).status_code == 200
    settings.EVENTSTORE = {**settings.EVENTSTORE, "TIME_TRAVEL_MAX_EVENTS": 1}
    response = admin_client.get(state_url("ttledger-43"), {"version": 2})
    assert response.status_code == 422 and "needs 2 events replayed from version 1" in response.json()["detail"]


def test_permissions_are_those_of_the_other_reads(client: Client) -> None:
    build("ttledger-44", [("add", 1)])
    assert client.get(state_url("ttledger-44")).status_code in (401, 403)

    def client_of(*codenames: str) -> Client:
        user = User.objects.create_user(f"u{User.objects.count()}", password="pw")
        user.user_permissions.add(*(Permission.objects.get(codename=c, content_type__app_label="django_eventstore") for c in codenames))
        logged_in = Client()
        logged_in.force_login(user)
        return logged_in

    assert client_of("write_events").get(state_url("ttledger-44")).status_code == 403
    assert client_of("view_actor").get(state_url("ttledger-44")).status_code == 200


def test_the_schema_documents_the_route_and_responses_validate(admin_client: Client, client: Client) -> None:
    openapi = admin_client.get(API + "schema/").json()
    assert sorted(openapi["paths"][STATE]) == ["get"]
    build("ttledger-45", [("add", 1), ("add", 2)])
    get_store().save_snapshot(ActorSnapshot(actor_id="ttledger-45", version=1, state={"total": 1, "amounts": [1], "tags": {}}))
    get_store().save_event(Event(actor_id="plain-9", event_type="Happened", version=1))
    check = Checker(admin_client, openapi)
    check("get", STATE, "actors/ttledger-45/state/", 200)
    check("get", STATE, "actors/ttledger-45/state/?version=1", 200)
    check("get", STATE, "actors/ttledger-45/state/", 304, **{"If-None-Match": '"2"'})
    check("get", STATE, "actors/ttledger-45/state/?version=3", 404)
    check("get", STATE, "actors/plain-9/state/", 404)
    check("get", STATE, "actors/ttledger-45/state/?version=0", 400)
    get_store().save_event(Event(actor_id="ttledger-45", event_type="Nope", version=3, data={}))
    check("get", STATE, "actors/ttledger-45/state/", 422)
    Checker(client, openapi)("get", STATE, "actors/ttledger-45/state/", 403)


def test_browsable_page_renders_the_state(admin_client: Client) -> None:
    build("ttledger-46", [("tag", ("<script>", "x"))])
    response = admin_client.get(state_url("ttledger-46"), headers={"Accept": "text/html"})
    assert response.status_code == 200 and b"<script>&quot;" not in response.content and b"&lt;script&gt;" in response.content
