"""The fixtures of the ``django_eventstore.testing`` pytest plugin (loaded by it; see that module)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .testing import NatsServer

if TYPE_CHECKING:
    from .store import EventStore

ENV_URL = "EVENTSTORE_TEST_NATS_URL"


@pytest.fixture(scope="session")
def eventstore_nats_url() -> Iterator[str]:
    """URL of the tests' nats-server: EVENTSTORE_TEST_NATS_URL, or a throw-away one started for the session."""
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    with NatsServer() as server:
        yield server.url


@pytest.fixture
def eventstore_settings(settings: Any, eventstore_nats_url: str) -> dict[str, Any]:
    """settings.EVENTSTORE pointed at the tests' server, with a stream and subject prefix of this test's own.

    ``settings`` is pytest-django's fixture: it restores the setting after the test.
    """
    stream = f"T{uuid.uuid4().hex[:12].upper()}"
    project = getattr(settings, "EVENTSTORE", None)
    settings.EVENTSTORE = {
        **(project if isinstance(project, dict) else {}),
        "BACKEND": "jetstream",
        "SERVERS": [eventstore_nats_url],
        "STREAM": stream,
        "SUBJECT_PREFIX": stream.lower(),  # streams may not share subjects: one prefix per stream
        "REPLICAS": 1,
        "AUTO_SETUP": True,
    }
    config: dict[str, Any] = settings.EVENTSTORE
    return config


@pytest.fixture
def eventstore_store(eventstore_settings: dict[str, Any]) -> Iterator[EventStore]:
    """get_store() on this test's stream; closed and forgotten after the test."""
    from .store import get_store, reset_store

    yield get_store()
    reset_store()
