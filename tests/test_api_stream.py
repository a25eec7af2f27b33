"""``events/stream/``: Server-Sent Events under uvicorn (ASGI) and through Django's test client (WSGI)."""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from django.contrib.auth.models import Permission, User
from django.core.asgi import get_asgi_application
from django.test import Client
from django.urls import path

from django_eventstore import Event, get_store
from django_eventstore.api.stream import EventStreamView
from tests.test_api_asgi import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)  # uvicorn's threads read the session from the database
STREAM = "/api/eventstore/events/stream/"
SSE = {"Accept": "text/event-stream"}

# Mounted by the keep-alive tests (pytest.mark.urls): the interval is a parameter of the view.
urlpatterns = [path("fast/", EventStreamView.as_view(keepalive=0.2))]


@dataclass
class Message:
    """One SSE block: an event (``data`` set), an id-only block (``data`` None), or a comment."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    comment: str | None = None
    retry: str | None = None


def parse_sse(lines: Iterator[str]) -> Iterator[Message]:
    """The blocks of an SSE body, as EventSource reads them (one ``data`` line per event here)."""
    block = Message()
    for line in lines:
        if line == "":
            if block != Message():
                yield block
            block = Message()
        elif line.startswith(":"):
            yield Message(comment=line[1:].strip())
        else:
            name, _, value = line.partition(":")
            setattr(block, name, value.removeprefix(" "))


class ClosedStreams(logging.Handler):
    """Counts the streams the server closed (its log line), so a test can wait for a disconnect to end one."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("event stream after position"):
            with self.changed:
                self.count += 1
                self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.count >= count, timeout)


@pytest.fixture
def closed_streams() -> Iterator[ClosedStreams]:
    logger = logging.getLogger("django_eventstore")
    handler, level = ClosedStreams(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def asgi_url() -> Iterator[str]:
    """uvicorn serving the test project on a free loopback port, in a thread of this process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()  # bound and listening before the server starts: clients can connect at once
    server = uvicorn.Server(uvicorn.Config(get_asgi_application(), lifespan="off", log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def reader(db: Any) -> User:
    user = User.objects.create_user("reader", password="reader-pw")
    user.user_permissions.add(Permission.objects.get(codename="view_actor"))
    return user


def read_until(response: httpx.Response, last_position: int) -> tuple[list[dict[str, Any]], list[Message]]:
    """The events (parsed) and every block of a stream, read until the stream has passed ``last_position``."""
    events, blocks = [], []
    for message in parse_sse(response.iter_lines()):
        blocks.append(message)
        if message.data is not None:
            events.append(json.loads(message.data))
        if message.id is not None and int(message.id) >= last_position:
            return events, blocks
    raise AssertionError("the stream ended")


def test_resume_with_last_event_id_across_1000_events_loses_and_repeats_nothing(asgi_url: str, admin_user: User, closed_streams: ClosedStreams) -> None:
    """A writer stores 1,000 events while the client keeps disconnecting and reconnecting with Last-Event-ID."""
    store = get_store()
    total, written = 1000, []
    writer_done = threading.Event()

    def write() -> None:
        for n in range(total):
            written.append(store.save_event(Event(actor_id=f"acct-{n % 7}", event_type="Moved", version=n // 7 + 1, data={"n": n})))
        writer_done.set()

    received: list[dict[str, Any]] = []
    last_id: str | None = None
    connections = reconnects_while_writing = 0
    rng = random.Random(15)
    threading.Thread(target=write, daemon=True).start()
    with httpx.Client(base_url=asgi_url, cookies=session_cookie(admin_user), timeout=10) as client:
        while len(received) < total:
            headers = {**SSE, **({"Last-Event-ID": last_id} if last_id is not None else {})}
            # the first connection says where to start; every later one resumes from its Last-Event-ID alone
            with client.stream("GET", STREAM if last_id is not None else STREAM + "?after=0", headers=headers) as response:
                assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
                connections += 1
                quota = rng.randint(1, 120)
                for message in parse_sse(response.iter_lines()):
                    if message.id is not None:
                        last_id = message.id
                    if message.data is not None:
                        assert message.event == "Moved"
                        received.append(json.loads(message.data))
                        quota -= 1
                    if quota == 0 or len(received) == total:
                        break
            reconnects_while_writing += not writer_done.is_set()
    assert writer_done.wait(30)
    assert [e["position"] for e in received] == [e.position for e in written]  # nothing lost or repeated, in stream order
    assert [e["id"] for e in received] == [e.id for e in written]
    assert received[-1] == {**written[-1].to_dict()}
    assert connections > 10 and reconnects_while_writing > 0
    assert closed_streams.wait_for(connections), f"{closed_streams.count} of {connections} streams closed on disconnect"


def test_filters_by_actor_type_event_type_and_actor(asgi_url: str, admin_user: User) -> None:
    store = get_store()
    store.save_event(Event(actor_id="order-1", event_type="Placed", version=1, data={}))
    store.save_event(Event(actor_id="user-1", event_type="Joined", version=1, data={}))
    store.save_event(Event(actor_id="order-2", event_type="Placed", version=1, data={}))
    store.save_event(Event(actor_id="order-1", event_type="Paid", version=2, data={"total": 3}))
    store.save_event(Event(actor_id="user-2", event_type="Joined", version=1, data={}))
    # the last event matches every filter below: a filter by actor type reads only that type's
    # subjects, so the stream's position passes other types' events only when one of its own follows
    last = store.save_event(Event(actor_id="order-1", event_type="Placed", version=3, data={})).position or 0

    def seen(query: str) -> list[tuple[str, str]]:
        with httpx.Client(base_url=asgi_url, cookies=session_cookie(admin_user), timeout=10) as client:
            with client.stream("GET", STREAM + "?after=0&" + query, headers=SSE) as response:
                events, _ = read_until(response, last)  # id-only blocks carry the position past events filtered out here
        return [(e["actor_id"], e["event_type"]) for e in events]

    end = [("order-1", "Placed")]
    assert seen("type=order") == [("order-1", "Placed"), ("order-2", "Placed"), ("order-1", "Paid"), *end]
    assert seen("event_type=Joined") == [("user-1", "Joined"), ("user-2", "Joined")]  # matched here: the position still passes the rest
    assert seen("event_type=Placed") == [("order-1", "Placed"), ("order-2", "Placed"), *end]
    assert seen("type=order&event_type=Placed") == [("order-1", "Placed"), ("order-2", "Placed"), *end]
    assert seen("actor_id=order-1") == [("order-1", "Placed"), ("order-1", "Paid"), *end]
    everything = [("order-1", "Placed"), ("user-1", "Joined"), ("order-2", "Placed"), ("order-1", "Paid"), ("user-2", "Joined"), *end]
    assert seen("type=&event_type=") == everything


def test_without_after_only_new_events_and_the_start_position_comes_first(asgi_url: str, admin_user: User) -> None:
    store = get_store()
    old = store.save_event(Event(actor_id="order-1", event_type="Placed", version=1, data={}))
    with httpx.Client(base_url=asgi_url, cookies=session_cookie(admin_user), timeout=10) as client:
        with client.stream("GET", STREAM, headers=SSE) as response:
            blocks = parse_sse(response.iter_lines())
            first = next(blocks)
            assert (first.retry, first.id, first.data) == ("3000", str(old.position), None)  # a reconnect before any event resumes here
            new = store.save_event(Event(actor_id="order-1", event_type="Paid", version=2, data={"<b>": "&"}))
            second = next(blocks)
    assert (second.id, second.event) == (str(new.position), "Paid")
    assert second.data is not None and '"data":{"<b>":"&"}' in second.data


def test_refusals_are_json_whatever_accept_says(asgi_url: str, reader: User) -> None:
    staff = User.objects.create_user("staff", is_staff=True)  # no view_actor permission
    with httpx.Client(base_url=asgi_url, timeout=10) as client:
        anonymous = client.get(STREAM, headers=SSE)
    with httpx.Client(base_url=asgi_url, timeout=10, cookies=session_cookie(staff)) as client:
        no_permission = client.get(STREAM, headers=SSE)
    with httpx.Client(base_url=asgi_url, timeout=10, cookies=session_cookie(reader)) as client:
        bad = [client.get(STREAM + query, headers={**SSE, **headers}) for query, headers in BAD_REQUESTS]
        head = client.head(STREAM)
    with httpx.Client(base_url=asgi_url, timeout=10) as client:
        with client.stream("GET", STREAM, headers=SSE, auth=("reader", "reader-pw")) as allowed:  # DRF's basic authentication
            assert allowed.status_code == 200
            assert next(parse_sse(allowed.iter_lines())).retry == "3000"
    assert staff.is_staff
    assert anonymous.status_code == 403 and anonymous.headers["content-type"] == "application/json"
    assert "detail" in anonymous.json()
    assert no_permission.status_code == 403 and "django_eventstore.view_actor" in no_permission.json()["detail"]
    assert [(r.status_code, r.headers["content-type"]) for r in bad] == [(400, "application/json")] * len(BAD_REQUESTS)
    assert [next(iter(r.json().values())) for r in bad][:2] == [["A valid integer is required."], ["Ensure this value is greater than or equal to 0."]]
    assert "Last-Event-ID must be a stream position" in bad[2].json()["detail"]
    assert "actor_id 'order-1' is of actor type 'order', not 'user'" in bad[3].json()["detail"]
    assert "256" in bad[4].json()["detail"]
    assert head.status_code == 405


BAD_REQUESTS = [
    ("?after=x", {}),
    ("?after=-1", {}),
    ("", {"Last-Event-ID": "12abc"}),
    ("?actor_id=order-1&type=user", {}),
    ("?actor_id=" + "x" * 300, {}),
]


def test_wsgi_streams_through_the_test_client_and_closing_ends_the_subscription(admin_user: User, closed_streams: ClosedStreams) -> None:
    store = get_store()
    first = store.save_event(Event(actor_id="order-1", event_type="Placed", version=1, data={"n": 1}))
    client = Client()
    client.force_login(admin_user)
    # Last-Event-ID wins over after: an EventSource reconnecting to a URL with ?after= resumes where it was
    response = client.get(STREAM, {"after": 999}, headers={"Last-Event-ID": "0", "Accept": "text/event-stream"})
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"retry: 3000\nid: 0\n\n"
    assert next(chunks).startswith(f"id: {first.position}\nevent: Placed\ndata: {{".encode())
    second = store.save_event(Event(actor_id="order-1", event_type="Paid", version=2, data={"n": 2}))
    assert next(chunks).startswith(f"id: {second.position}\nevent: Paid\n".encode())
    response.close()  # what the WSGI server does when the client has gone
    assert closed_streams.wait_for(1, timeout=0)  # closed at once, in this thread


@pytest.mark.urls(__name__)
def test_keep_alive_comment_when_nothing_comes_wsgi(admin_user: User) -> None:
    client = Client()
    client.force_login(admin_user)
    response = client.get("/fast/", headers=SSE)
    chunks = iter(response.streaming_content)
    assert next(chunks).startswith(b"retry: 3000\n")
    assert next(chunks) == b": keep-alive\n\n"
    assert next(chunks) == b": keep-alive\n\n"
    response.close()


@pytest.mark.urls(__name__)
def test_keep_alive_comment_when_nothing_comes_asgi(asgi_url: str, admin_user: User) -> None:
    with httpx.Client(base_url=asgi_url, cookies=session_cookie(admin_user), timeout=10) as client:
        with client.stream("GET", "/fast/", headers=SSE) as response:
            blocks = parse_sse(response.iter_lines())
            assert next(blocks).retry == "3000"
            assert next(blocks).comment == "keep-alive"
            assert next(blocks).comment == "keep-alive"
