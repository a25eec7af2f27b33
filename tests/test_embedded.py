"""SERVERS = "embedded": one local nats-server per data directory, on a port of its own, shared by processes.

How long it lives (the process that started it, eventstore_server) is in test_embedded_isolation.py.
"""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import time

import pytest
from django.core.management import CommandError, call_command

from django_eventstore import Event, EventStoreUnavailable
from django_eventstore.embedded import (
    NATS_DEFAULT_PORT,
    EmbeddedServerNotRunning,
    ensure_embedded_server,
    running_server,
    server_state,
    stop_embedded_server,
)
from django_eventstore.nats_process import HOST, port_free
from django_eventstore.store import get_running_store, get_store
from django_eventstore.testing import NatsServer

pytestmark = pytest.mark.without_nats  # each test starts the embedded server it needs

READ_ONLY_COMMANDS = [
    ("eventstore_status",),
    ("eventstore_actors",),
    ("eventstore_events", "order-1"),
    ("eventstore_verify",),
    ("eventstore_export", "-"),
]


def gone(pid: int | None, timeout: float = 15.0) -> bool:
    """Whether the process has exited (now or within timeout): waited for on a pidfd where there is one."""
    assert pid, "no pid recorded"
    if not hasattr(os, "pidfd_open"):  # not Linux: poll the pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.02)
        return False
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def processes_using(directory: os.PathLike[str]) -> list[str]:
    """Command lines of the running processes that name the directory (a nats-server or its watcher would)."""
    listing = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if str(directory) in line and "ps -eo" not in line]


def assert_stopped(directory: os.PathLike[str], *pids: int | None) -> None:
    """The directory's server is gone: its processes exited, nothing listens on its port, its lock is free."""
    for pid in pids:
        assert gone(pid), f"process {pid} still runs: {processes_using(directory)}"
    state = server_state(directory)
    assert not state.running and running_server(directory) is None
    assert state.port is None or port_free(HOST, state.port)
    assert processes_using(directory) == []


@pytest.fixture
def embedded_dir(tmp_path):
    directory = tmp_path / "eventstore"
    yield directory
    stop_embedded_server(directory)


@pytest.fixture
def embedded_settings(settings, embedded_dir):
    """settings.EVENTSTORE on the embedded server of embedded_dir, with the default stream and prefix."""
    settings.EVENTSTORE = {"SERVERS": "embedded", "EMBEDDED_DIR": str(embedded_dir)}
    return settings


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
    state = server_state(embedded_dir)
    assert stop_embedded_server(embedded_dir)
    assert_stopped(embedded_dir, state.pid, state.watcher)
    assert not stop_embedded_server(embedded_dir)


def test_its_port_is_never_4222_and_is_recorded_in_the_data_dir(embedded_dir):
    url = ensure_embedded_server(embedded_dir)
    record = json.loads((embedded_dir / "server.json").read_text())
    assert url == f"nats://127.0.0.1:{record['port']}" and record["port"] != NATS_DEFAULT_PORT
    assert record["mode"] == "process" and record["owner"] == os.getpid()
    stop_embedded_server(embedded_dir)
    assert ensure_embedded_server(embedded_dir) == url  # the next start takes the recorded port again


def test_a_busy_recorded_port_is_replaced_and_recorded(embedded_dir):
    port = int(ensure_embedded_server(embedded_dir).rsplit(":", 1)[1])
    stop_embedded_server(embedded_dir)
    with NatsServer(port=port):  # something else took the port meanwhile
        url = ensure_embedded_server(embedded_dir)
    assert url != f"nats://127.0.0.1:{port}"
    assert url == f"nats://127.0.0.1:{json.loads((embedded_dir / 'server.json').read_text())['port']}"


def test_two_data_dirs_get_two_servers_that_do_not_share_actors(settings, tmp_path):
    first, second = tmp_path / "project-a", tmp_path / "project-b"
    try:
        settings.EVENTSTORE = {"SERVERS": "embedded", "EMBEDDED_DIR": str(first)}  # the default stream and prefix in both
        get_store().save_event(Event(actor_id="order-a", event_type="Placed", version=1))
        settings.EVENTSTORE = {"SERVERS": "embedded", "EMBEDDED_DIR": str(second)}
        store = get_store()
        assert store.get_latest_version("order-a") == 0 and store.list_actors().total == 0
        store.save_event(Event(actor_id="order-b", event_type="Placed", version=1))
        settings.EVENTSTORE = {"SERVERS": "embedded", "EMBEDDED_DIR": str(first)}
        assert [a.actor_id for a in get_store().list_actors().actors] == ["order-a"]
        urls = {running_server(first), running_server(second)}
        assert None not in urls and len(urls) == 2
        assert f"nats://127.0.0.1:{NATS_DEFAULT_PORT}" not in urls
    finally:
        stop_embedded_server(first)
        stop_embedded_server(second)


@pytest.mark.parametrize("content", ["", "not json", "[]", '{"pid": 1}', '{"pid": "x", "port": 1}', '{"pid": 1, "port": 1, "mode": "process"}'])
def test_an_unreadable_or_stale_record_means_no_server(embedded_dir, content):
    embedded_dir.mkdir()
    (embedded_dir / "server.json").write_text(content)
    assert running_server(embedded_dir) is None
    assert not server_state(embedded_dir).running
    assert not stop_embedded_server(embedded_dir)


def test_get_store_with_embedded_servers_starts_and_uses_it(embedded_settings, embedded_dir):
    stored = get_store().save_event(Event(actor_id="order-1", event_type="Placed", version=1))
    assert stored.position == 1
    assert running_server(embedded_dir) is not None


def test_a_directory_that_cannot_be_used_is_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(EventStoreUnavailable, match="embedded nats-server"):
        ensure_embedded_server(blocker / "sub")


def test_the_running_store_does_not_start_one(embedded_settings, embedded_dir):
    with pytest.raises(EmbeddedServerNotRunning, match=r"manage\.py eventstore_server"):
        get_running_store()
    assert not embedded_dir.exists()
    embedded_dir.mkdir()
    with pytest.raises(EmbeddedServerNotRunning):
        get_running_store()
    assert not server_state(embedded_dir).running and not (embedded_dir / "server.json").exists()


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda c: c[0])
def test_commands_that_only_read_say_none_runs_instead_of_starting_one(embedded_settings, embedded_dir, command):
    with pytest.raises(CommandError) as refused:
        call_command(*command, stdout=io.StringIO(), stderr=io.StringIO())
    message = str(refused.value)
    assert message.startswith(f"no embedded nats-server runs for {embedded_dir}")
    assert "`manage.py eventstore_server`" in message and "`manage.py demo`" in message
    assert "Check settings" not in message  # the generic unreachable-server hint would mislead here
    assert not server_state(embedded_dir).running and not (embedded_dir / "server.json").exists()
    assert processes_using(embedded_dir) == []


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS, ids=lambda c: c[0])
def test_commands_that_only_read_use_a_running_one(embedded_settings, embedded_dir, command):
    url = ensure_embedded_server(embedded_dir)
    get_store().save_event(Event(actor_id="order-1", event_type="Placed", version=1))
    call_command(*command, stdout=io.StringIO(), stderr=io.StringIO())
    assert running_server(embedded_dir) == url


def test_a_server_of_an_earlier_version_is_refused_and_can_be_stopped(embedded_dir):
    embedded_dir.mkdir()
    with NatsServer(store_dir=embedded_dir / "jetstream") as old:  # detached, recorded as earlier versions did: no lock, no mode
        assert old.process is not None
        (embedded_dir / "server.json").write_text(json.dumps({"pid": old.process.pid, "port": old.port}))
        with pytest.raises(EventStoreUnavailable, match=rf"earlier version of django-eventstore \(pid {old.process.pid}, port {old.port}\).*--stop"):
            ensure_embedded_server(embedded_dir)
        assert stop_embedded_server(embedded_dir)
        assert old.process.wait(15) == 0
    assert ensure_embedded_server(embedded_dir) == old.url  # its recorded port, free again
    assert server_state(embedded_dir).mode == "process"
