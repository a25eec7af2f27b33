"""Fixtures: one real nats-server with JetStream per session, a fresh stream and subject prefix per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Iterator

import pytest

from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.testing import NatsServer


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """URL of the suite's nats-server: EVENTSTORE_TEST_NATS_URL, or one started for the session."""
    url = os.environ.get("EVENTSTORE_TEST_NATS_URL")
    if url:
        yield url
        return
    with NatsServer() as server:
        yield server.url


@pytest.fixture
def stream_name() -> str:
    return f"T{uuid.uuid4().hex[:12].upper()}"


@pytest.fixture
def subject_prefix(stream_name: str) -> str:
    """Streams may not share subjects, so each test's stream gets its own prefix."""
    return stream_name.lower()


@pytest.fixture(autouse=True)
def eventstore_settings(settings, nats_url: str, stream_name: str, subject_prefix: str) -> dict:
    """Point get_store() at the test server, with this test's stream."""
    settings.EVENTSTORE = {"SERVERS": [nats_url], "STREAM": stream_name, "SUBJECT_PREFIX": subject_prefix, "TIMEOUT": 5.0}
    return settings.EVENTSTORE


@pytest.fixture
def js_store(nats_url: str, stream_name: str, subject_prefix: str) -> Iterator[JetStreamEventStore]:
    store = JetStreamEventStore(nats_url, stream=stream_name, subject_prefix=subject_prefix)
    yield store
    store.close()


def publish_raw(url: str, subject: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    """Publish any message with plain nats-py, as another program could; its stream sequence."""
    import nats

    async def go() -> int:
        nc = await nats.connect(url)
        try:
            ack = await nc.jetstream().publish(subject, body, headers=headers)
            return ack.seq
        finally:
            await nc.close()

    return asyncio.run(go())
