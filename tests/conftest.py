"""Fixtures: the django_eventstore.testing plugin (one real nats-server per session, a fresh stream per test), and a Chromium for browser tests.

A test marked ``without_nats`` gets no server: nothing starts one for it, and
``settings.EVENTSTORE`` stays the unreachable default of tests/settings.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from django_eventstore.core.jetstream import JetStreamEventStore

pytest_plugins = ["django_eventstore.testing"]

REQUIRE_BROWSER = "EVENTSTORE_REQUIRE_BROWSER"


@pytest.fixture(autouse=True)
def _eventstore_for_every_test(request: pytest.FixtureRequest) -> None:
    """get_store() of every test uses its own stream on the suite's server, unless the test is marked without_nats."""
    if request.node.get_closest_marker("without_nats") is None:
        request.getfixturevalue("eventstore_settings")


@pytest.fixture(scope="session")
def nats_url(eventstore_nats_url: str) -> str:
    """URL of the suite's nats-server: EVENTSTORE_TEST_NATS_URL, or one started for the session."""
    return eventstore_nats_url


@pytest.fixture
def stream_name(eventstore_settings: dict[str, Any]) -> str:
    """This test's events stream (get_store() uses it)."""
    name: str = eventstore_settings["STREAM"]
    return name


@pytest.fixture
def subject_prefix(eventstore_settings: dict[str, Any]) -> str:
    """This test's subject prefix: streams may not share subjects, so each test's stream has its own."""
    prefix: str = eventstore_settings["SUBJECT_PREFIX"]
    return prefix


@pytest.fixture
def js_store(nats_url: str, stream_name: str, subject_prefix: str) -> Iterator[JetStreamEventStore]:
    """A JetStream store of its own on this test's stream, closed after the test."""
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


def find_chromium() -> str | None:
    """A Chromium to drive: the system's (chromium, chromium-browser, google-chrome on PATH), else Playwright's own; None when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as playwright:
        path = playwright.chromium.executable_path
    return path if path and os.path.isfile(path) else None


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of a Chromium for browser tests; without one they are skipped, or fail under EVENTSTORE_REQUIRE_BROWSER=1."""
    path = find_chromium()
    if path is None:
        reason = "no Chromium found (chromium on PATH or Playwright's): apt-get install chromium, or playwright install chromium"
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{reason}; {REQUIRE_BROWSER}=1 requires the browser tests", pytrace=False)
        pytest.skip(reason)
    return path
