"""The REST API's default permissions follow Django's model permissions: ``view_actor`` to read, ``write_events`` to write."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from django_eventstore import ActorSnapshot, Event, get_store
from django_eventstore.api.permissions import EventStorePermission

pytestmark = pytest.mark.django_db
API = "/api/eventstore/"
READS = ["actors/", "actors/order-1/", "actors/order-1/events/", "actors/order-1/version/", "actors/order-1/snapshot/", "events/", "schema/"]


def client_of(*codenames: str, staff: bool = False, superuser: bool = False) -> Client:
    """A logged-in client of a new user with these permissions of the app."""
    user = User.objects.create_user(f"u{User.objects.count()}", password="pw", is_staff=staff or superuser, is_superuser=superuser)
    user.user_permissions.add(*(Permission.objects.get(codename=c, content_type__app_label="django_eventstore") for c in codenames))
    client = Client()
    client.force_login(user)
    return client


def reads(client: Client) -> list[int]:
    return [client.get(API + path).status_code for path in READS]


def writes(client: Client, version: int) -> list[int]:
    """POST an event at ``version`` and PUT a snapshot at 1; their status codes."""
    posted = client.post(API + "actors/order-1/events/", json.dumps({"event_type": "Happened", "version": version, "data": {}}), content_type="application/json")
    put = client.put(API + "actors/order-1/snapshot/", json.dumps({"version": 1, "state": {}}), content_type="application/json")
    return [posted.status_code, put.status_code]


@pytest.fixture(autouse=True)
def _one_actor() -> None:
    store = get_store()
    store.save_event(Event(actor_id="order-1", event_type="Seeded", version=1))
    store.save_snapshot(ActorSnapshot(actor_id="order-1", version=1, state={}))


def test_the_migration_creates_the_write_events_permission() -> None:
    permission = Permission.objects.get(codename="write_events", content_type__app_label="django_eventstore")
    assert permission.name == "Can write events and snapshots"


def test_staff_without_model_permissions_can_neither_read_nor_write() -> None:
    client = client_of(staff=True)  # IsAdminUser used to let this user read and write everything
    assert set(reads(client)) == {403}
    assert writes(client, 2) == [403, 403]
    assert get_store().get_latest_version("order-1") == 1


def test_view_permission_reads_but_does_not_write() -> None:
    client = client_of("view_actor")  # not staff: the API follows model permissions, not the admin's staff flag
    assert set(reads(client)) == {200}
    assert writes(client, 2) == [403, 403]
    assert get_store().get_latest_version("order-1") == 1


def test_write_permission_writes_but_does_not_read() -> None:
    client = client_of("write_events")
    assert writes(client, 2) == [201, 200]
    assert set(reads(client)) == {403}
    assert get_store().get_latest_version("order-1") == 2


def test_both_permissions_and_superusers_read_and_write() -> None:
    for version, client in ((2, client_of("view_actor", "write_events")), (3, client_of(superuser=True))):
        assert set(reads(client)) == {200}
        assert writes(client, version) == [201, 200]


def test_a_refusal_names_the_missing_permission() -> None:
    client = client_of("view_actor")
    response = client.post(API + "actors/order-1/events/", json.dumps({"event_type": "X", "version": 2, "data": {}}), content_type="application/json")
    assert response.json() == {"detail": "Writing events needs the django_eventstore.write_events permission."}
    response = client_of("write_events").get(API + "events/")
    assert response.json() == {"detail": "Reading the event store needs the django_eventstore.view_actor permission."}


def test_inactive_users_are_refused_whatever_their_permissions() -> None:
    user = User.objects.create_user("gone", password="pw", is_active=False, is_superuser=True)
    client = Client()
    client.force_login(user)
    assert set(reads(client)) == {403}


def test_it_is_the_default_and_the_setting_still_overrides_it(settings: Any) -> None:
    from django_eventstore.api.http import permission_classes

    assert permission_classes() == [EventStorePermission]
    settings.EVENTSTORE = {**settings.EVENTSTORE, "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"]}
    assert [c.__name__ for c in permission_classes()] == ["IsAdminUser"]
    assert set(reads(client_of(staff=True))) == {200}
