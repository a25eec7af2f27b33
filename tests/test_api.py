"""The REST API through Django's test client, against the suite's real nats-server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from django_eventstore import ActorSnapshot, Event, EventStoreError, EventStoreUnavailable, StreamSetupError, get_store
from django_eventstore.actor_urls import actor_segment
from django_eventstore.api import serializers as s
from django_eventstore.api.http import handle_exception
from django_eventstore.core import limits
from django_eventstore.core.subjects import Subjects
from django_eventstore.testing import free_port
from tests.conftest import publish_raw

pytestmark = pytest.mark.django_db
API = "/api/eventstore/"
IDS = ["order-1", "a.b", "a b", "ü", "a/b"]


def url(actor_id: str, kind: str = "") -> str:
    return f"{API}actors/{actor_segment(actor_id)}/" + (f"{kind}/" if kind else "")


def post(client: Client, path: str, body: Any, **headers: str) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


def put(client: Client, path: str, body: Any, **headers: str) -> Any:
    return client.put(path, json.dumps(body), content_type="application/json", headers=headers)


def event(version: int, event_type: str = "Happened", **extra: Any) -> dict[str, Any]:
    return {"event_type": event_type, "version": version, "data": {"n": version}, **extra}


def seed(actor_id: str, count: int) -> None:
    get_store().append(actor_id, [Event(event_type="Seeded", data={"n": i}) for i in range(count)], expected_version=0)


# ----- permissions -----


@pytest.mark.parametrize(
    "method,path",
    [("get", "actors/"), ("get", "actors/order-1/"), ("get", "actors/order-1/events/"), ("post", "actors/order-1/events/"),
     ("get", "actors/order-1/version/"), ("get", "actors/order-1/snapshot/"), ("put", "actors/order-1/snapshot/"),
     ("get", "events/"), ("get", "schema/")],
)
def test_anonymous_requests_are_refused_and_get_no_data(client: Client, method: str, path: str) -> None:
    seed("order-1", 1)
    if method == "get":
        response = client.get(API + path)
    else:
        response = getattr(client, method)(API + path, json.dumps(event(2)), content_type="application/json")
    assert response.status_code in (401, 403)
    assert set(response.json()) == {"detail"}
    assert get_store().get_latest_version("order-1") == 1


def test_staff_without_admin_rights_is_refused(client: Client, django_user_model: Any) -> None:
    client.force_login(django_user_model.objects.create_user("bob", password="x"))
    assert client.get(API + "actors/").status_code == 403


def test_permission_classes_come_from_the_setting(client: Client, settings: Any) -> None:
    settings.EVENTSTORE = {**settings.EVENTSTORE, "API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]}
    response = post(client, url("order-1", "events"), event(1))
    assert response.status_code == 201
    assert client.get(url("order-1", "version")).json()["latest_version"] == 1


# ----- POST events -----


@pytest.mark.parametrize("actor_id", IDS)
def test_url_encoded_ids_reach_every_route(admin_client: Client, actor_id: str) -> None:
    assert post(admin_client, url(actor_id, "events"), event(1)).json()["actor_id"] == actor_id
    assert put(admin_client, url(actor_id, "snapshot"), {"version": 1, "state": {"s": 1}}).status_code == 200
    assert admin_client.get(url(actor_id)).json() == {"actor_id": actor_id, "actor_type": "order" if actor_id == "order-1" else "_", "latest_version": 1, "snapshot_version": 1}
    assert [e["actor_id"] for e in admin_client.get(url(actor_id, "events")).json()["results"]] == [actor_id]
    assert admin_client.get(url(actor_id, "version")).json() == {"actor_id": actor_id, "latest_version": 1}
    assert admin_client.get(url(actor_id, "snapshot")).json()["state"] == {"s": 1}
    assert get_store().get_latest_version(actor_id) == 1


def test_post_one_event_answers_201_with_the_stored_event(admin_client: Client) -> None:
    response = post(admin_client, url("order-1", "events"), event(1, id="evt-1", metadata={"user": "ann"}))
    assert response.status_code == 201
    assert response["ETag"] == '"1"'
    body = response.json()
    assert body == {**body, "id": "evt-1", "event_type": "Happened", "actor_id": "order-1", "version": 1, "data": {"n": 1}, "metadata": {"user": "ann"}}
    assert body["position"] >= 1 and body["timestamp"].endswith("Z")
    assert get_store().get_events("order-1")[0].to_dict() == body


def test_post_a_list_appends_atomically(admin_client: Client) -> None:
    response = post(admin_client, url("order-1", "events"), [event(1), event(2), event(3)])
    assert response.status_code == 201
    assert [e["version"] for e in response.json()] == [1, 2, 3]
    assert response["ETag"] == '"3"'
    huge = {"event_type": "Big", "version": 5, "data": {"blob": "x" * 2_000_000}}
    with_big = post(admin_client, url("order-1", "events"), [event(4), huge])
    assert with_big.status_code == 413
    assert get_store().get_latest_version("order-1") == 3


def test_a_retried_post_with_the_same_id_is_not_stored_twice(admin_client: Client) -> None:
    first = post(admin_client, url("order-1", "events"), event(1, id="once"))
    again = post(admin_client, url("order-1", "events"), event(1, id="once"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert len(get_store().get_events("order-1")) == 1


def test_version_conflict_answers_409_with_the_versions(admin_client: Client) -> None:
    seed("order-1", 2)
    for version in (2, 4):
        response = post(admin_client, url("order-1", "events"), event(version))
        assert response.status_code == 409
        body = response.json()
        assert body == {"detail": body["detail"], "actor_id": "order-1", "attempted_version": version, "current_version": 2}
        assert response["ETag"] == '"2"'
    assert post(admin_client, url("order-1", "events"), [event(2), event(3)]).status_code == 409
    assert get_store().get_latest_version("order-1") == 2


@pytest.mark.parametrize(
    "body,field",
    [
        ({"version": 1, "data": {}}, "event_type"),
        ({"event_type": "", "version": 1, "data": {}}, "event_type"),
        ({"event_type": "   ", "version": 1, "data": {}}, "event_type"),
        ({"event_type": "a\nb", "version": 1, "data": {}}, "event_type"),
        ({"event_type": "x" * 257, "version": 1, "data": {}}, "event_type"),
        ({"event_type": 5, "version": 1, "data": {}}, "event_type"),
        ({"event_type": "X", "data": {}}, "version"),
        ({"event_type": "X", "version": 0, "data": {}}, "version"),
        ({"event_type": "X", "version": -3, "data": {}}, "version"),
        ({"event_type": "X", "version": "one", "data": {}}, "version"),
        ({"event_type": "X", "version": "2", "data": {}}, "version"),
        ({"event_type": "X", "version": 1.0, "data": {}}, "version"),
        ({"event_type": "X", "version": True, "data": {}}, "version"),
        ({"event_type": "X", "version": 1}, "data"),
        ({"event_type": "X", "version": 1, "data": [1, 2]}, "data"),
        ({"event_type": "X", "version": 1, "data": "text"}, "data"),
        ({"event_type": "X", "version": 1, "data": {}, "metadata": 3}, "metadata"),
        ({"event_type": "X", "version": 1, "data": {}, "id": "has space"}, "id"),
        ({"event_type": "X", "version": 1, "data": {}, "id": "x" * 129}, "id"),
        ({"event_type": "X", "version": 1, "data": {}, "actor_id": "order-2"}, "actor_id"),
        ({"event_type": "X", "version": 1, "data": {}, "metdata": {}}, "metdata"),
    ],
)
def test_invalid_events_answer_400_with_field_errors_and_store_nothing(admin_client: Client, body: dict[str, Any], field: str) -> None:
    response = post(admin_client, url("order-1", "events"), body)
    assert response.status_code == 400
    errors = response.json()
    assert field in errors, errors
    assert get_store().get_latest_version("order-1") == 0


@pytest.mark.parametrize("body", [[], "text", 42, None, [event(1), "x"], [event(1), event(3)], [event(1, id="d"), event(2, id="d")]])
def test_invalid_lists_and_bodies_answer_400(admin_client: Client, body: Any) -> None:
    assert post(admin_client, url("order-1", "events"), body).status_code == 400
    assert get_store().get_latest_version("order-1") == 0


def test_malformed_json_and_too_many_events_answer_400(admin_client: Client) -> None:
    assert admin_client.post(url("order-1", "events"), "{nope", content_type="application/json").status_code == 400
    response = post(admin_client, url("order-1", "events"), [event(i) for i in range(1, limits.MAX_APPEND + 2)])
    assert response.status_code == 400 and str(limits.MAX_APPEND) in json.dumps(response.json())
    assert get_store().get_latest_version("order-1") == 0


def test_the_api_accepts_what_the_store_accepts_at_its_limits(admin_client: Client) -> None:
    longest = event(1, "T" * limits.MAX_EVENT_TYPE_LENGTH, id="i" * limits.MAX_EVENT_ID_LENGTH)
    assert post(admin_client, url("order-1", "events"), longest).status_code == 201
    assert post(admin_client, url("order-1", "events"), [event(v) for v in range(2, limits.MAX_APPEND + 2)]).status_code == 201
    assert admin_client.get(API + "actors/", {"limit": limits.MAX_PAGE}).status_code == 200
    too_long = event(limits.MAX_APPEND + 2, "T" * (limits.MAX_EVENT_TYPE_LENGTH + 1), id="i" * (limits.MAX_EVENT_ID_LENGTH + 1))
    assert set(post(admin_client, url("order-1", "events"), too_long).json()) == {"event_type", "id"}
    assert admin_client.get(API + "actors/", {"limit": limits.MAX_PAGE + 1}).status_code == 400
    assert admin_client.get(API + "events/").json()["next"].endswith(f"limit={limits.DEFAULT_PAGE}")


@pytest.mark.without_nats
def test_the_api_takes_its_limits_from_the_store() -> None:
    fields = s.EventInputSerializer().fields
    assert (fields["event_type"].max_length, fields["id"].max_length) == (limits.MAX_EVENT_TYPE_LENGTH, limits.MAX_EVENT_ID_LENGTH)
    assert (s.ActorListQuery().fields["limit"].max_value, s.EventFeedQuery().fields["limit"].default) == (limits.MAX_PAGE, limits.DEFAULT_PAGE)


@pytest.mark.parametrize("actor_id", ["", "x" * 257, "é" * 129])
def test_bad_actor_ids_answer_400(admin_client: Client, actor_id: str) -> None:
    response = post(admin_client, url(actor_id, "events"), event(1))
    assert response.status_code in (400, 404)  # an empty id matches no route at all
    if actor_id:
        assert "bytes in UTF-8" in response.json()["actor_id"][0]
        assert admin_client.get(url(actor_id, "version")).status_code == 400


def test_body_over_djangos_upload_limit_answers_413(admin_client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post(admin_client, url("order-1", "events"), event(1, data={"blob": "x" * 2000}))
    assert response.status_code == 413
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]
    assert put(admin_client, url("order-1", "snapshot"), {"version": 1, "state": {"blob": "x" * 2000}}).status_code == 413
    assert get_store().get_latest_version("order-1") == 0


def test_event_over_the_servers_max_payload_answers_413(admin_client: Client) -> None:
    response = post(admin_client, url("order-1", "events"), event(1, data={"blob": "x" * 1_100_000}))
    assert response.status_code == 413
    assert "max_payload" in response.json()["detail"]
    assert get_store().get_latest_version("order-1") == 0


# ----- ETag, If-Match, If-None-Match -----


def test_if_match_on_post(admin_client: Client) -> None:
    assert post(admin_client, url("order-1", "events"), event(1), **{"If-Match": "*"}).status_code == 412
    assert post(admin_client, url("order-1", "events"), event(1), **{"If-Match": '"0"'}).status_code == 201
    stale = post(admin_client, url("order-1", "events"), event(2), **{"If-Match": '"0"'})
    assert stale.status_code == 412
    assert '"1"' in stale.json()["detail"] and stale["ETag"] == '"1"'
    assert post(admin_client, url("order-1", "events"), event(2), **{"If-Match": 'W/"1"'}).status_code == 412  # strong comparison
    assert post(admin_client, url("order-1", "events"), event(2), **{"If-Match": '"7", "1"'}).status_code == 201
    assert post(admin_client, url("order-1", "events"), event(3), **{"If-Match": "*"}).status_code == 201
    assert get_store().get_latest_version("order-1") == 3


def test_if_match_on_snapshot_put(admin_client: Client) -> None:
    seed("order-1", 2)
    assert put(admin_client, url("order-1", "snapshot"), {"version": 2, "state": {}}, **{"If-Match": '"1"'}).status_code == 412
    with pytest.raises(LookupError):
        get_store().get_latest_snapshot("order-1")
    assert put(admin_client, url("order-1", "snapshot"), {"version": 2, "state": {}}, **{"If-Match": '"2"'}).status_code == 200


@pytest.mark.parametrize("kind", ["", "events", "version", "snapshot"])
def test_etag_and_if_none_match_on_reads(admin_client: Client, kind: str) -> None:
    seed("order-1", 2)
    get_store().save_snapshot(ActorSnapshot(actor_id="order-1", version=2, state={}))
    path = url("order-1", kind)
    first = admin_client.get(path)
    assert (first.status_code, first["ETag"]) == (200, '"2"')
    for tag in ('"2"', 'W/"2"', '"1", "2"', "*"):
        cached = admin_client.get(path, headers={"If-None-Match": tag})
        assert (cached.status_code, cached["ETag"], cached.content) == (304, '"2"', b"")
    assert admin_client.get(path, headers={"If-None-Match": '"1"'}).status_code == 200
    seed_more = get_store().append("order-1", [Event(event_type="More")], expected_version=2)
    assert seed_more[0].version == 3
    assert admin_client.get(path, headers={"If-None-Match": '"2"'})["ETag"] == '"3"'


# ----- reads -----


def test_actor_with_no_events_is_404_but_version_0(admin_client: Client) -> None:
    assert admin_client.get(url("order-9")).status_code == 404
    version = admin_client.get(url("order-9", "version"))
    assert (version.status_code, version.json(), version["ETag"]) == (200, {"actor_id": "order-9", "latest_version": 0}, '"0"')
    events = admin_client.get(url("order-9", "events"))
    assert (events.status_code, events.json()) == (200, {"results": [], "next": None})


def test_snapshot_get_and_put(admin_client: Client) -> None:
    assert admin_client.get(url("order-1", "snapshot")).status_code == 404
    no_events = put(admin_client, url("order-1", "snapshot"), {"version": 1, "state": {}})
    assert no_events.status_code == 404
    seed("order-1", 3)
    ahead = put(admin_client, url("order-1", "snapshot"), {"version": 4, "state": {}})
    assert ahead.status_code == 409
    assert ahead.json()["current_version"] == 3 and ahead.json()["attempted_version"] == 4
    saved = put(admin_client, url("order-1", "snapshot"), {"version": 2, "state": {"total": 7}})
    assert saved.status_code == 200 and saved["ETag"] == '"3"'
    assert saved.json() == {**saved.json(), "actor_id": "order-1", "version": 2, "state": {"total": 7}}
    read = admin_client.get(url("order-1", "snapshot"))
    assert read.json() == saved.json()
    assert admin_client.get(url("order-1")).json()["snapshot_version"] == 2


@pytest.mark.parametrize(
    "body,field",
    [({"state": {}}, "version"), ({"version": 0, "state": {}}, "version"), ({"version": 1, "state": []}, "state"),
     ({"version": 1}, "state"), ({"version": 1, "state": {}, "extra": 1}, "extra"), ({"version": 1, "state": {}, "actor_id": "x"}, "actor_id")],
)
def test_invalid_snapshots_answer_400(admin_client: Client, body: dict[str, Any], field: str) -> None:
    seed("order-1", 1)
    response = put(admin_client, url("order-1", "snapshot"), body)
    assert response.status_code == 400 and field in response.json()
    assert admin_client.get(url("order-1", "snapshot")).status_code == 404


def test_events_from_version(admin_client: Client) -> None:
    seed("order-1", 5)
    body = admin_client.get(url("order-1", "events"), {"from_version": 3}).json()
    assert [e["version"] for e in body["results"]] == [4, 5] and body["next"] is None


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"from_version": -1}])
def test_bad_query_parameters_answer_400(admin_client: Client, query: dict[str, Any]) -> None:
    response = admin_client.get(url("order-1", "events"), query)
    assert response.status_code == 400
    assert set(response.json()) <= {"limit", "from_version"}
    assert admin_client.get(API + "actors/", {"limit": query.get("limit", 0)}).status_code == 400
    assert admin_client.get(API + "events/", {"after": -1}).status_code == 400


def test_actor_list_filters(admin_client: Client) -> None:
    for actor_id in ("order-1", "order-2", "user-1", "plain"):
        seed(actor_id, 1)
    get_store().save_snapshot(ActorSnapshot(actor_id="user-1", version=1, state={}))
    ids = lambda **q: [a["actor_id"] for a in admin_client.get(API + "actors/", q).json()["results"]]  # noqa: E731
    assert ids() == ["order-1", "order-2", "plain", "user-1"]
    assert ids(type="order") == ["order-1", "order-2"]
    assert ids(prefix="u") == ["user-1"]
    assert ids(type="_") == ["plain"]
    assert admin_client.get(API + "actors/", {"prefix": "user"}).json()["results"][0]["snapshot_version"] == 1


def test_feed_skips_malformed_messages_and_keeps_its_cursor(admin_client: Client, nats_url: str, subject_prefix: str) -> None:
    seed("order-1", 2)
    publish_raw(nats_url, Subjects(subject_prefix).event_subject("order-1"), b"not json")
    get_store().append("order-1", [Event(event_type="After")], expected_version=2)
    page = admin_client.get(API + "events/", {"limit": 2}).json()
    assert [e["version"] for e in page["results"]] == [1, 2]
    page = admin_client.get(page["next"]).json()
    assert [e["version"] for e in page["results"]] == [3]  # position 3 (malformed) counted but not shown
    assert page["next"] is None


# ----- actor ids in URLs -----


HOSTILE = ["a/b", "a%2Fb", "..", ".", "a b", "é", "?#", "x/events", "~2F"]


@pytest.mark.parametrize("actor_id", HOSTILE)
def test_hostile_ids_round_trip_through_every_route_and_next_link(admin_client: Client, actor_id: str) -> None:
    assert post(admin_client, url(actor_id, "events"), [event(1), event(2)]).status_code == 201
    assert put(admin_client, url(actor_id, "snapshot"), {"version": 1, "state": {}}).status_code == 200
    assert admin_client.get(url(actor_id)).json()["actor_id"] == actor_id
    assert admin_client.get(url(actor_id, "version")).json() == {"actor_id": actor_id, "latest_version": 2}
    assert admin_client.get(url(actor_id, "snapshot")).json()["actor_id"] == actor_id
    first = admin_client.get(url(actor_id, "events"), {"limit": 1}).json()
    assert first["next"] == f"http://testserver{url(actor_id, 'events')}?from_version=1&limit=1"
    assert [e["actor_id"] for e in admin_client.get(first["next"]).json()["results"]] == [actor_id]
    assert get_store().get_latest_version(actor_id) == 2


def test_urls_carry_ids_as_one_segment_in_the_subject_encoding(admin_client: Client) -> None:
    for actor_id, segment in [("order-1", "order-1"), ("a/b", "a~2Fb"), ("x/events", "x~2Fevents"), ("..", "~2E~2E"), ("é", "~C3~A9")]:
        assert post(admin_client, f"{API}actors/{segment}/events/", event(1)).json()["actor_id"] == actor_id
        assert admin_client.get(f"{API}actors/{segment}/").json()["actor_id"] == actor_id
    assert admin_client.get(f"{API}actors/x/events/").json() == {"results": [], "next": None}  # actor x has no events


@pytest.mark.parametrize("segment", ["a~2fb", "~41", "a~", "a~ZZ", "~FF", "a.b"])
def test_segments_the_encoding_cannot_produce_answer_400_naming_it(admin_client: Client, segment: str) -> None:
    response = admin_client.get(f"{API}actors/{segment}/version/")
    assert response.status_code == 400
    assert "~XX" in response.json()["actor_id"][0]


def test_a_percent_encoded_slash_is_not_an_actor_route(admin_client: Client) -> None:
    seed("a/b", 1)
    assert admin_client.get(f"{API}actors/a%2Fb/").status_code == 404


# ----- NATS unreachable -----


def test_nats_unreachable_answers_503_without_internals(admin_client: Client, settings: Any) -> None:
    secret_url = f"nats://user:s3cret@127.0.0.1:{free_port()}"
    settings.EVENTSTORE = {**settings.EVENTSTORE, "SERVERS": [secret_url], "TIMEOUT": 0.5}
    for response in (admin_client.get(url("order-1", "version")), post(admin_client, url("order-1", "events"), event(1)), admin_client.get(API + "actors/")):
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert "unavailable" in response.json()["detail"]
        assert b"s3cret" not in response.content


# ----- other store errors, oversized and hostile input -----


def test_a_stream_that_is_not_set_up_answers_503_json(admin_client: Client, settings: Any) -> None:
    settings.EVENTSTORE = {**settings.EVENTSTORE, "AUTO_SETUP": False}
    responses = [
        admin_client.get(url("order-1", "version")),
        admin_client.get(url("order-1", "events")),
        post(admin_client, url("order-1", "events"), event(1)),
        put(admin_client, url("order-1", "snapshot"), {"version": 1, "state": {}}),
        admin_client.get(API + "events/"),
        admin_client.get(API + "actors/"),
    ]
    for response in responses:
        assert response.status_code == 503, response.content
        assert response["Content-Type"] == "application/json"
        detail = response.json()["detail"]
        assert detail == "The event store could not answer the request: its streams are not set up. Run `manage.py eventstore_setup` (or leave AUTO_SETUP on)."


@pytest.mark.without_nats
@pytest.mark.parametrize(
    "error,detail",
    [
        (StreamSetupError("ES", "stream ES does not exist"), "its streams are not set up. Run `manage.py eventstore_setup`"),
        (EventStoreError("$JS.API.STREAM.INFO.ES answered 500"), "could not answer the request. The server's log has the details."),
        (EventStoreUnavailable("could not connect to nats://user:pw@10.0.0.1:4222"), "NATS could not be reached"),
    ],
)
def test_store_trouble_answers_503_with_a_short_message_and_the_setup_hint_only_when_it_helps(error: EventStoreError, detail: str) -> None:
    response = handle_exception(error, {})
    assert response is not None and response.status_code == 503
    assert detail in response.data["detail"]
    assert ("eventstore_setup" in response.data["detail"]) == isinstance(error, StreamSetupError)
    assert "$JS" not in response.data["detail"] and "pw@" not in response.data["detail"]


TOO_BIG = [10**30, 2**63, 2**53]  # 2**53 - 1 is the largest integer accepted


@pytest.mark.parametrize("value", TOO_BIG)
def test_too_large_integers_in_query_strings_answer_400(admin_client: Client, value: int) -> None:
    seed("order-1", 1)
    for path, field in [(API + "events/", "after"), (API + "events/", "limit"), (url("order-1", "events"), "from_version"), (url("order-1", "events"), "limit"), (API + "actors/", "limit")]:
        response = admin_client.get(path, {field: value})
        assert response.status_code == 400, (path, field, response.content)
        assert field in response.json()


@pytest.mark.parametrize("value", TOO_BIG)
def test_too_large_versions_in_bodies_answer_400(admin_client: Client, value: int) -> None:
    seed("order-1", 1)
    response = post(admin_client, url("order-1", "events"), event(value))
    assert response.status_code == 400 and "version" in response.json()
    response = put(admin_client, url("order-1", "snapshot"), {"version": value, "state": {}})
    assert response.status_code == 400 and "version" in response.json()
    assert get_store().get_latest_version("order-1") == 1


def test_the_largest_accepted_integers_are_not_a_server_error(admin_client: Client) -> None:
    seed("order-1", 1)
    biggest = 2**53 - 1
    assert admin_client.get(API + "events/", {"after": biggest}).json() == {"results": [], "next": None}
    assert admin_client.get(url("order-1", "events"), {"from_version": biggest}).json() == {"results": [], "next": None}
    conflict = post(admin_client, url("order-1", "events"), event(biggest))
    assert (conflict.status_code, conflict.json()["attempted_version"]) == (409, biggest)
    assert put(admin_client, url("order-1", "snapshot"), {"version": biggest, "state": {}}).status_code == 409


@pytest.mark.parametrize("method", ["post", "put"])
def test_deeply_nested_json_answers_400(admin_client: Client, method: str) -> None:
    path = url("order-1", "events" if method == "post" else "snapshot")
    for body in ("[" * 50000, '{"data": ' * 50000):
        response = getattr(admin_client, method)(path, body, content_type="application/json")
        assert response.status_code == 400, response.content
        assert "nested too deeply" in response.json()["detail"]
    assert get_store().get_latest_version("order-1") == 0


@pytest.mark.parametrize("event_type", [" Placed", "Placed ", "\tPlaced", "Placed\n", "Pla\x00ced", "Pla\u200bced", "\u00a0Placed"])
def test_event_types_with_surrounding_space_or_unprintable_characters_answer_400(admin_client: Client, event_type: str) -> None:
    response = post(admin_client, url("order-1", "events"), event(1, event_type))
    assert response.status_code == 400
    assert "event_type" in response.json()
    assert get_store().get_latest_version("order-1") == 0


def test_event_types_with_inner_spaces_and_non_ascii_letters_are_stored(admin_client: Client) -> None:
    response = post(admin_client, url("order-1", "events"), [event(1, "Order placed"), event(2, "Bestellung_geändert"), event(3, "x" * 256)])
    assert response.status_code == 201
    assert [e.event_type for e in get_store().get_events("order-1")] == ["Order placed", "Bestellung_geändert", "x" * 256]
