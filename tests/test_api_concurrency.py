"""Concurrent writers through the full Django stack: the NATS server decides, exactly one wins."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest
from django.test import Client

from django_eventstore import Event, get_store

WRITERS = 20
TIMEOUT = 60  # seconds: a thread that fails or hangs breaks the barrier and fails the test instead of stalling the suite


@pytest.mark.django_db(transaction=True)
def test_20_concurrent_posts_of_the_next_version_give_one_201_and_19_409(admin_user: Any) -> None:
    get_store().append("order-1", [Event(event_type="Placed"), Event(event_type="Paid")], expected_version=0)
    clients = []
    for _ in range(WRITERS):
        client = Client()
        client.force_login(admin_user)
        clients.append(client)
    start = threading.Barrier(WRITERS, timeout=TIMEOUT)
    statuses: list[int] = []
    bodies: list[dict[str, Any]] = []

    def write(client: Client, n: int) -> None:
        body = json.dumps({"event_type": "Shipped", "version": 3, "data": {"writer": n}})
        start.wait()
        response = client.post("/api/eventstore/actors/order-1/events/", body, content_type="application/json")
        statuses.append(response.status_code)
        bodies.append(response.json())

    threads = [threading.Thread(target=write, args=(c, n), daemon=True) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not [t for t in threads if t.is_alive()], "a writer did not finish"
    assert Counter(statuses) == {201: 1, 409: WRITERS - 1}
    conflicts = [b for b in bodies if "current_version" in b]
    assert all(b["attempted_version"] == 3 and b["current_version"] == 3 for b in conflicts)
    stored = get_store().get_events("order-1")
    assert [e.version for e in stored] == [1, 2, 3]
    winner = next(b for b in bodies if "position" in b)
    assert stored[-1].data == winner["data"]
