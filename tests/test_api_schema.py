"""The OpenAPI schema: served at ``schema/``, lists every route, and real responses validate against it."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from django.test import Client
from jsonschema import Draft202012Validator

from django_eventstore import Event, get_store
from django_eventstore.testing import free_port

pytestmark = pytest.mark.django_db
API = "/api/eventstore/"
ACTOR = "/actors/{actor_id}/"
EVENTS = ACTOR + "events/"
SNAPSHOT = ACTOR + "snapshot/"
VERSION = ACTOR + "version/"


def closed(components: dict[str, Any]) -> dict[str, Any]:
    """The components with every object closed, so a response field the schema does not list fails."""
    components = copy.deepcopy(components)
    for schema in components["schemas"].values():
        if schema.get("type") == "object" and "properties" in schema:
            schema["additionalProperties"] = False
    return components


@pytest.fixture
def openapi(admin_client: Client) -> dict[str, Any]:
    response = admin_client.get(API + "schema/")
    assert response.status_code == 200
    return response.json()


class Checker:
    """Sends requests and validates each response against the schema's entry for its path, method and status."""

    def __init__(self, client: Client, doc: dict[str, Any]):
        self.client, self.doc, self.components = client, doc, closed(doc["components"])
        self.seen: set[tuple[str, str, int]] = set()

    def __call__(self, method: str, template: str, path: str, status: int, body: Any = None, **headers: str) -> Any:
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type="application/json")
        response = getattr(self.client, method)(API + path.lstrip("/"), **kwargs)
        assert response.status_code == status, (method, path, response.content)
        documented = self.doc["paths"][template][method]["responses"][str(status)]
        if status == 304:
            assert "content" not in documented and response.content == b""
        else:
            schema = documented["content"]["application/json"]["schema"]
            Draft202012Validator({**schema, "components": self.components}).validate(response.json())
        if "ETag" in documented.get("headers", {}):
            assert response["ETag"].startswith('"')
        self.seen.add((template, method, status))
        return response


def test_schema_lists_every_route_with_bodies(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.")
    assert openapi["servers"] == [{"url": "http://testserver/api/eventstore/"}]
    assert {p: sorted(ops) for p, ops in openapi["paths"].items()} == {
        "/actors/": ["get"], ACTOR: ["get"], EVENTS: ["get", "post"], VERSION: ["get"],
        SNAPSHOT: ["get", "put"], "/events/": ["get"], ACTOR + "state/": ["get"], "/events/stream/": ["get"],
    }
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            ok = "201" if method == "post" else "200"
            media = "text/event-stream" if path == "/events/stream/" else "application/json"
            assert media in op["responses"][ok]["content"], (path, method)
            if method in ("post", "put"):
                assert op["requestBody"]["content"]["application/json"]["schema"], (path, method)


def test_schema_as_yaml(admin_client: Client) -> None:
    response = admin_client.get(API + "schema/", {"format": "yaml"})
    assert response.status_code == 200
    assert set(yaml.safe_load(response.content)["paths"]) >= {"/actors/", "/events/"}


def test_real_responses_validate_against_the_schema(admin_client: Client, client: Client, openapi: dict[str, Any]) -> None:
    check = Checker(admin_client, openapi)
    event = {"event_type": "Placed", "version": 1, "data": {"total": 3}}
    check("post", EVENTS, "actors/a~2Fb/events/", 201, event)
    check("post", EVENTS, "actors/a~2Fb/events/", 201, [{**event, "version": 2}, {**event, "version": 3}])
    check("post", EVENTS, "actors/a~2Fb/events/", 409, {**event, "version": 2})
    check("post", EVENTS, "actors/a~2Fb/events/", 400, {"version": 4})
    check("post", EVENTS, "actors/a~2Fb/events/", 400, [{"version": 4}])
    check("post", EVENTS, "actors/a~2Fb/events/", 412, {**event, "version": 4}, **{"If-Match": '"1"'})
    check("post", EVENTS, "actors/a~2Fb/events/", 413, {**event, "version": 4, "data": {"x": "x" * 1_100_000}})
    check("get", EVENTS, "actors/a~2Fb/events/?limit=2", 200)
    check("get", EVENTS, "actors/a~2Fb/events/", 304, **{"If-None-Match": '"3"'})
    check("get", EVENTS, "actors/a~2Fb/events/?limit=0", 400)
    check("get", ACTOR, "actors/a~2Fb/", 200)
    check("get", ACTOR, "actors/a~2Fb/", 304, **{"If-None-Match": '"3"'})
    check("get", ACTOR, "actors/nobody/", 404)
    check("get", VERSION, "actors/a~2Fb/version/", 200)
    check("get", VERSION, "actors/a~2Fb/version/", 304, **{"If-None-Match": '"3"'})
    check("get", VERSION, "actors/" + "x" * 300 + "/version/", 400)
    check("get", SNAPSHOT, "actors/a~2Fb/snapshot/", 404)
    check("put", SNAPSHOT, "actors/a~2Fb/snapshot/", 200, {"version": 2, "state": {"total": 3}})
    check("put", SNAPSHOT, "actors/a~2Fb/snapshot/", 409, {"version": 9, "state": {}})
    check("put", SNAPSHOT, "actors/nobody/snapshot/", 404, {"version": 1, "state": {}})
    check("put", SNAPSHOT, "actors/a~2Fb/snapshot/", 412, {"version": 1, "state": {}}, **{"If-Match": '"2"'})
    check("put", SNAPSHOT, "actors/a~2Fb/snapshot/", 400, {"version": "2", "state": {}})
    check("get", SNAPSHOT, "actors/a~2Fb/snapshot/", 200)
    check("get", SNAPSHOT, "actors/a~2Fb/snapshot/", 304, **{"If-None-Match": '"3"'})
    get_store().save_event(Event(actor_id="user-1", event_type="Joined", version=1))
    check("get", "/actors/", "actors/?limit=1", 200)
    check("get", "/actors/", "actors/?limit=-1", 400)
    check("get", "/events/", "events/?limit=2", 200)
    check("get", "/events/", "events/?after=x", 400)
    check("get", "/events/stream/", "events/stream/?after=x", 400)
    check("get", ACTOR + "state/", "actors/a~2Fb/state/", 404)
    Checker(client, openapi)("get", "/actors/", "actors/", 403)
    exercised = {(path, method) for path, method, _ in check.seen}
    assert exercised == {(p, m) for p, ops in openapi["paths"].items() for m in ops}


def test_unavailable_response_validates(admin_client: Client, openapi: dict[str, Any], settings: Any) -> None:
    settings.EVENTSTORE = {**settings.EVENTSTORE, "SERVERS": [f"nats://127.0.0.1:{free_port()}"], "TIMEOUT": 0.5}
    check = Checker(admin_client, openapi)
    check("get", VERSION, "actors/order-1/version/", 503)
    check("post", EVENTS, "actors/order-1/events/", 503, {"event_type": "X", "version": 1, "data": {}})


def test_schema_works_without_spectacular_installed_or_configured(settings: Any, admin_client: Client) -> None:
    assert "drf_spectacular" not in settings.INSTALLED_APPS
    assert "DEFAULT_SCHEMA_CLASS" not in getattr(settings, "REST_FRAMEWORK", {})
    assert admin_client.get(API + "schema/").json()["paths"]
