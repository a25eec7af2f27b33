"""SERVERS = "embedded": one local nats-server per data directory, shared by processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from django_eventstore import Event, EventStoreUnavailable
from django_eventstore.embedded import ensure_embedded_server, running_server, stop_embedded_server
from django_eventstore.store import get_store

pytestmark = pytest.mark.without_nats  # each test starts the embedded server it needs


@pytest.fixture
def embedded_dir(tmp_path):
    yield tmp_path
    stop_embedded_server(tmp_path)


def test_second_process_reuses_the_running_server(embedded_dir):
    url = ensure_embedded_server(embedded_dir)
    other = subprocess.run(
        [sys.executable, "-c", f"from django_eventstore.embedded import ensure_embedded_server as e; print(e({str(embedded_dir)!r}))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert other.stdout.strip() == url
    assert running_server(embedded_dir) == url
    assert stop_embedded_server(embedded_dir)
    assert running_server(embedded_dir) is None
    assert not stop_embedded_server(embedded_dir)


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"pid": 1}', '{"pid": "x", "port": 1}'])
def test_an_unreadable_record_means_no_server(embedded_dir, content):
    (embedded_dir / "server.json").write_text(content)
    assert running_server(embedded_dir) is None
    assert not stop_embedded_server(embedded_dir)


def test_get_store_with_embedded_servers_starts_and_uses_it(settings, embedded_dir):
    settings.EVENTSTORE = {"SERVERS": "embedded", "EMBEDDED_DIR": str(embedded_dir), "STREAM": "EMB", "SUBJECT_PREFIX": "emb"}
    stored = get_store().save_event(Event(actor_id="order-1", event_type="Placed", version=1))
    assert stored.position == 1
    assert running_server(embedded_dir) is not None


def test_a_directory_that_cannot_be_used_is_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(EventStoreUnavailable, match="embedded nats-server"):
        ensure_embedded_server(blocker / "sub")
