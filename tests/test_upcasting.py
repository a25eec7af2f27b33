"""Upcasting on a real nats-server: every read path returns upcast events, writes state their schema, export keeps them as stored."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from django_eventstore import Event, get_store
from django_eventstore.aggregates import Aggregate, applies
from django_eventstore.checks import check_upcasters
from django_eventstore.core.upcasting import Upcasters
from django_eventstore.upcasting import registry, upcaster


def split_owner(data: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    first, _, last = data.pop("owner").partition(" ")
    return {**data, "first_name": first, "last_name": last}


def add_currency(data: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": metadata.get("currency", "EUR")}


@pytest.fixture
def chain() -> Iterator[None]:
    """MemberJoined: schema 1 {owner} -> 2 {first_name, last_name} -> 3 (+ currency)."""
    registry.register("MemberJoined", 1, split_owner)
    registry.register("MemberJoined", 2, add_currency)
    yield
    registry.unregister("MemberJoined", 1)
    registry.unregister("MemberJoined", 2)


def v1(actor_id: str = "member-1", version: int = 1, owner: str = "Ada Lovelace") -> Event:
    return Event(event_type="MemberJoined", actor_id=actor_id, version=version, data={"owner": owner}, schema=1, metadata={"currency": "GBP"})


UPCAST = {"first_name": "Ada", "last_name": "Lovelace", "currency": "GBP"}


def test_registry_rules() -> None:
    reg = Upcasters()
    assert reg.newest("X") == 1
    reg.register("X", 1, split_owner)
    assert reg.newest("X") == 2
    with pytest.raises(ValueError, match="two upcasters for 'X' from schema 1"):
        reg.register("X", 1, add_currency)
    with pytest.raises(ValueError, match="from_schema must be an int >= 1"):
        reg.register("X", 0, add_currency)
    reg.register("X", 3, add_currency)
    assert reg.gaps() == ["'X' has no upcaster from schema 2 (it has [1, 3])"]


def test_a_gap_in_a_chain_is_a_system_check_error() -> None:
    upcaster("GapEvent", from_schema=2)(add_currency)
    try:
        errors = check_upcasters()
        assert [e.id for e in errors] == ["django_eventstore.E016"]
        assert "'GapEvent' has no upcaster from schema 1" in errors[0].msg
    finally:
        registry.unregister("GapEvent", 2)


def test_every_python_read_path_returns_upcast_events(chain: None) -> None:
    store = get_store()
    store.save_event(v1())
    [stored] = store.get_events("member-1", upcast=False)
    assert (stored.schema, stored.data) == (1, {"owner": "Ada Lovelace"})
    [event] = store.get_events("member-1")
    assert (event.schema, event.data) == (3, UPCAST)
    assert [e.data for e in store.read_all()] == [UPCAST]
    assert [e.data for e in store.read_all_with_errors(actor_id="member-1").events] == [UPCAST]
    batch = next(store.subscribe(0, idle_timeout=0.1))
    assert [e.data for e in batch.events] == [UPCAST]


def test_writes_state_the_newest_schema_by_default_and_may_state_an_older_one(chain: None) -> None:
    store = get_store()
    saved = store.save_event(Event(event_type="MemberJoined", actor_id="member-2", version=1, data=dict(UPCAST)))
    assert saved.schema == 3
    store.save_event(v1("member-3"))
    by_actor = {e.actor_id: e for e in store.read_all(upcast=False)}
    assert (by_actor["member-2"].schema, by_actor["member-3"].schema) == (3, 1)
    assert store.get_events("member-2")[0].data == UPCAST  # not upcast again
    assert store.get_events("member-3")[0].data == UPCAST


def test_aggregates_replay_upcast_events(chain: None) -> None:
    class Account(Aggregate):
        name = ""

        @applies("MemberJoined")
        def opened(self, event: Event) -> None:
            self.name = f"{event.data['last_name']}, {event.data['first_name']}"

    get_store().save_event(v1())
    assert Account.load("member-1").name == "Lovelace, Ada"


def test_an_upcaster_that_raises_makes_a_malformed_event_not_an_error(chain: None) -> None:
    store = get_store()
    store.save_event(v1())
    store.save_event(Event(event_type="MemberJoined", actor_id="member-1", version=2, data={"no_owner": True}, schema=1))
    result = store.get_events_with_errors("member-1")
    assert [e.version for e in result.events] == [1]
    [bad] = result.errors
    assert "upcaster tests.test_upcasting.split_owner (MemberJoined schema 1 -> 2) raised KeyError" in bad.reason
    assert json.loads(bad.raw)["data"] == {"no_owner": True}
    assert [e.version for e in store.get_events("member-1")] == [1]


@pytest.fixture
def api(django_user_model: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_the_rest_api_returns_upcast_events_and_takes_a_schema(chain: None, api: APIClient) -> None:
    body = {"event_type": "MemberJoined", "version": 1, "schema": 1, "data": {"owner": "Ada Lovelace"}, "metadata": {"currency": "GBP"}}
    r = api.post("/api/eventstore/actors/member-1/events/", body, format="json")
    assert r.status_code == 201, r.content
    body = api.get("/api/eventstore/actors/member-1/events/").json()
    [event] = body["results"]
    assert (event["schema"], event["data"], event["forgotten"]) == (3, UPCAST, False)
    assert api.get("/api/eventstore/events/").json()["results"][0]["data"] == UPCAST
    r = api.post("/api/eventstore/actors/member-1/events/", {"event_type": "MemberJoined", "version": 2, "schema": 0, "data": {}}, format="json")
    assert r.status_code == 400 and "schema" in r.json()


def test_the_admin_shows_the_upcast_event_and_on_demand_the_stored_one(chain: None, admin_client: Any) -> None:
    get_store().save_event(v1())
    page = admin_client.get("/admin/django_eventstore/actor/member-1/").content.decode()
    assert "Lovelace" in page and "Ada Lovelace" not in page
    stored = admin_client.get("/admin/django_eventstore/actor/member-1/?stored=1").content.decode()
    assert "Ada Lovelace" in stored


def test_export_writes_events_as_stored_and_an_import_reproduces_them_byte_for_byte(chain: None, tmp_path: Path, settings: Any, eventstore_settings: dict[str, Any]) -> None:
    store = get_store()
    store.save_event(v1())
    store.save_event(Event(event_type="MemberJoined", actor_id="member-2", version=1, data=dict(UPCAST)))
    first = tmp_path / "first.jsonl"
    call_command("eventstore_export", str(first), stderr=io.StringIO())
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    assert [(line["schema"], line["data"]) for line in lines] == [(1, {"owner": "Ada Lovelace"}), (3, UPCAST)]
    upcast = tmp_path / "upcast.jsonl"
    call_command("eventstore_export", str(upcast), "--upcast", stderr=io.StringIO())
    assert [json.loads(line)["data"] for line in upcast.read_text().splitlines()] == [UPCAST, UPCAST]

    settings.EVENTSTORE = {**eventstore_settings, "STREAM": eventstore_settings["STREAM"] + "B", "SUBJECT_PREFIX": eventstore_settings["SUBJECT_PREFIX"] + "b"}
    call_command("eventstore_import", str(first), stdout=io.StringIO(), stderr=io.StringIO())
    second = tmp_path / "second.jsonl"
    call_command("eventstore_export", str(second), stderr=io.StringIO())
    assert second.read_bytes() == first.read_bytes()


def test_verify_upcast_reports_the_events_an_upcaster_fails_on(chain: None) -> None:
    store = get_store()
    store.save_event(v1())
    store.save_event(Event(event_type="MemberJoined", actor_id="member-1", version=2, data={"oops": 1}, schema=1))
    call_command("eventstore_verify", stdout=io.StringIO(), stderr=io.StringIO())  # as stored: no problem
    out = io.StringIO()
    with pytest.raises(CommandError, match="found 1 problem"):
        call_command("eventstore_verify", "--upcast", "--format", "json", stdout=out, stderr=io.StringIO())
    [problem] = json.loads(out.getvalue())
    assert problem["kind"] == "upcast_failed" and problem["actor_id"] == "member-1" and "split_owner" in problem["detail"]
