"""Encryption at rest and forgetting (crypto-shredding), on a real nats-server."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from django_eventstore import ActorSnapshot, EncryptionError, Event, SnapshotNotFound, get_store
from django_eventstore.aggregates import Aggregate, applies
from django_eventstore.checks import check_settings
from django_eventstore.core.backend import EVENTS, KEYS, SNAPSHOTS
from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.core.memory import MemoryEventStore

MARKER = "Zebulon-Q-Marker-42"
KEY = Fernet.generate_key().decode()


@pytest.fixture
def encrypted(settings: Any, eventstore_settings: dict[str, Any]) -> dict[str, Any]:
    """get_store() of this test encrypts with KEY."""
    settings.EVENTSTORE = {**eventstore_settings, "ENCRYPTION": {"MASTER_KEY": KEY}}
    config: dict[str, Any] = settings.EVENTSTORE
    return config


@pytest.fixture
def second(nats_url: str, encrypted: dict[str, Any]) -> Iterator[JetStreamEventStore]:
    """Another store on the same stream and bucket, as another process would have (its own key cache)."""
    store = JetStreamEventStore(nats_url, stream=encrypted["STREAM"], subject_prefix=encrypted["SUBJECT_PREFIX"], encryption={"MASTER_KEY": KEY})
    yield store
    store.close()


def write_customer(actor_id: str = "customer-1") -> None:
    store = get_store()
    store.save_event(Event(event_type="Registered", actor_id=actor_id, version=1, data={"name": MARKER}))
    store.append(actor_id, [Event(event_type="Moved", data={"address": f"{MARKER} street"}), Event(event_type="Moved", data={"address": "elsewhere"})], 1)
    store.save_snapshot(ActorSnapshot(actor_id=actor_id, version=3, state={"name": MARKER}))


def stored_messages(stream: str, subject_filter: str) -> bytes:
    """Every stored message's headers and body on a stream, as bytes (read with the store's raw stream reads)."""
    store = get_store()

    async def read() -> bytes:
        msgs, _ = await store.engine.backend.next_msgs(stream, subject_filter, 1, 10_000)
        return b"".join(repr(m.headers).encode() + m.data for m in msgs)

    return store._call(read())


def test_data_is_stored_encrypted_and_reads_back_in_clear(encrypted: dict[str, Any]) -> None:
    write_customer()
    store = get_store()
    assert [e.data for e in store.get_events("customer-1")] == [{"name": MARKER}, {"address": f"{MARKER} street"}, {"address": "elsewhere"}]
    assert store.get_latest_snapshot("customer-1").state == {"name": MARKER}
    prefix = encrypted["SUBJECT_PREFIX"]
    assert MARKER.encode() not in stored_messages(EVENTS, f"{prefix}.events.>")
    assert MARKER.encode() not in stored_messages(SNAPSHOTS, f"{prefix}.snapshots.>")
    census = store.census()
    assert (census.events_sealed, census.events_plain, census.snapshots_sealed) == (3, 0, 1)


def test_forget_leaves_no_readable_data_anywhere(encrypted: dict[str, Any], admin_client: Any, django_user_model: Any) -> None:
    write_customer()
    write_customer("customer-2")
    result = get_store().forget("customer-1")
    assert (result.key_destroyed, result.snapshots_deleted, result.plaintext_events) == (True, 1, 0)
    assert result.audit_event is not None and (result.audit_event.event_type, result.audit_event.version) == ("ActorForgotten", 4)

    store = get_store()
    events = store.get_events("customer-1")
    assert [(e.version, e.event_type, e.data, e.forgotten) for e in events] == [
        (1, "Registered", None, True),
        (2, "Moved", None, True),
        (3, "Moved", None, True),
        (4, "ActorForgotten", {}, False),
    ]
    with pytest.raises(SnapshotNotFound):
        store.get_latest_snapshot("customer-1")
    assert store.get_events("customer-2")[0].data == {"name": MARKER}  # the others keep theirs
    assert [e.data for e in store.read_all() if e.actor_id == "customer-1"] == [None, None, None, {}]

    class Customer(Aggregate):
        seen: list[Any]

        def __init__(self, actor_id: str, store: Any = None) -> None:
            super().__init__(actor_id, store)
            self.seen = []

        @applies("Registered")
        def registered(self, event: Event) -> None:
            self.seen.append((event.forgotten, event.data))

        @applies("Moved")
        def moved(self, event: Event) -> None:
            self.seen.append((event.forgotten, event.data))

        @applies("ActorForgotten")
        def forgotten(self, event: Event) -> None:
            self.seen.append((event.forgotten, event.data))

    assert Customer.load("customer-1").seen == [(True, None), (True, None), (True, None), (False, {})]

    api = APIClient()
    api.force_authenticate(django_user_model.objects.create_superuser("api", "api@example.com", "pw"))
    body = api.get("/api/eventstore/actors/customer-1/events/").json()
    assert [(e["data"], e["forgotten"]) for e in body["results"][:3]] == [(None, True)] * 3
    assert MARKER not in api.get("/api/eventstore/events/?type=customer").content.decode().split("customer-2")[0]
    page = admin_client.get("/admin/django_eventstore/actor/customer-1/").content.decode()
    assert "forgotten" in page and MARKER not in page

    prefix = encrypted["SUBJECT_PREFIX"]
    events_raw = stored_messages(EVENTS, f"{prefix}.events.customer.customer-1")
    assert MARKER.encode() not in events_raw and b'"sealed"' in events_raw
    assert MARKER.encode() not in stored_messages(SNAPSHOTS, f"{prefix}.snapshots.>")
    keys_raw = stored_messages(KEYS, f"$KV.{encrypted['STREAM']}_KEYS.customer-1")
    assert b"PURGE" in keys_raw and b'"key"' not in keys_raw  # the key is gone, a purge marker stands


def test_forgetting_twice_changes_nothing_the_second_time(encrypted: dict[str, Any]) -> None:
    write_customer()
    store = get_store()
    store.forget("customer-1")
    again = store.forget("customer-1")
    assert again.already_forgotten
    assert [e.event_type for e in store.get_events("customer-1")].count("ActorForgotten") == 1


def test_new_events_after_a_forget_get_a_new_key(encrypted: dict[str, Any]) -> None:
    write_customer()
    store = get_store()
    store.forget("customer-1")
    store.save_event(Event(event_type="Registered", actor_id="customer-1", version=5, data={"name": "new"}))
    assert [e.data for e in store.get_events("customer-1", 3)] == [{}, {"name": "new"}]


def test_a_process_that_cached_the_key_stops_reading_once_its_cache_expires(encrypted: dict[str, Any], second: JetStreamEventStore) -> None:
    write_customer()
    now = [1000.0]
    keyring = second.engine.keyring
    assert keyring is not None
    keyring.clock = lambda: now[0]
    assert second.get_events("customer-1")[0].data == {"name": MARKER}  # key cached at t=1000
    get_store().forget("customer-1")
    now[0] += keyring.cache_seconds - 1
    assert second.get_events("customer-1", limit=1)[0].data == {"name": MARKER}  # within KEY_CACHE_SECONDS: still cached
    now[0] += 2
    assert second.get_events("customer-1", limit=1)[0].forgotten


def test_a_wrong_master_key_is_a_clear_error(encrypted: dict[str, Any], nats_url: str) -> None:
    write_customer()
    other = JetStreamEventStore(nats_url, stream=encrypted["STREAM"], subject_prefix=encrypted["SUBJECT_PREFIX"], encryption={"MASTER_KEY": Fernet.generate_key().decode()})
    try:
        with pytest.raises(EncryptionError, match="cannot be unwrapped with any configured MASTER_KEY") as caught:
            other.get_events("customer-1")
        assert KEY not in str(caught.value)
        with pytest.raises(EncryptionError, match="cannot be unwrapped"):
            other.save_event(Event(event_type="Moved", actor_id="customer-1", version=4, data={"x": 1}))
        assert get_store().get_latest_version("customer-1") == 3  # nothing written
    finally:
        other.close()
    plain = JetStreamEventStore(nats_url, stream=encrypted["STREAM"], subject_prefix=encrypted["SUBJECT_PREFIX"])
    try:
        with pytest.raises(EncryptionError, match="encrypted, and EVENTSTORE has no ENCRYPTION setting"):
            plain.get_events("customer-1")
    finally:
        plain.close()


def test_a_stream_written_in_clear_keeps_working_when_encryption_is_turned_on(settings: Any, eventstore_settings: dict[str, Any]) -> None:
    get_store().save_event(Event(event_type="Registered", actor_id="customer-1", version=1, data={"name": MARKER}))
    settings.EVENTSTORE = {**eventstore_settings, "ENCRYPTION": {"MASTER_KEY": KEY}}
    store = get_store()
    store.save_event(Event(event_type="Moved", actor_id="customer-1", version=2, data={"address": "x"}))
    assert [e.data for e in store.get_events("customer-1")] == [{"name": MARKER}, {"address": "x"}]
    census = store.census()
    assert (census.events_sealed, census.events_plain, census.plain_actors) == (1, 1, {"customer-1"})
    err = io.StringIO()
    call_command("eventstore_verify", stdout=io.StringIO(), stderr=err)
    assert "1 events encrypted, 1 in clear" in err.getvalue() and "1 actor with data in clear" in err.getvalue()
    result = store.forget("customer-1")
    assert result.plaintext_events == 1  # said, not hidden


def test_rotating_the_master_key_rewraps_the_data_keys(encrypted: dict[str, Any], nats_url: str, settings: Any) -> None:
    write_customer()
    new = Fernet.generate_key().decode()
    settings.EVENTSTORE = {**encrypted, "ENCRYPTION": {"MASTER_KEY": [new, KEY]}}
    out = io.StringIO()
    call_command("eventstore_rotate_master_key", stdout=out)
    assert "re-wrapped 1 data key" in out.getvalue()
    only_new = JetStreamEventStore(nats_url, stream=encrypted["STREAM"], subject_prefix=encrypted["SUBJECT_PREFIX"], encryption={"MASTER_KEY": new})
    try:
        assert only_new.get_events("customer-1")[0].data == {"name": MARKER}
    finally:
        only_new.close()


def test_the_forget_command_asks_first(encrypted: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    write_customer()
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="not forgotten"):
        call_command("eventstore_forget", "customer-1", stdout=io.StringIO())
    assert get_store().get_events("customer-1")[0].data == {"name": MARKER}
    out = io.StringIO()
    call_command("eventstore_forget", "customer-1", "--yes", stdout=out)
    assert "forgot actor 'customer-1': its data key erased, 1 snapshot deleted, ActorForgotten appended at version 4" in out.getvalue()
    out = io.StringIO()
    call_command("eventstore_forget", "customer-1", "--yes", stdout=out)
    assert "was forgotten already" in out.getvalue()


def test_forgetting_without_encryption_is_refused() -> None:
    get_store().save_event(Event(event_type="Registered", actor_id="customer-1", version=1, data={"name": MARKER}))
    with pytest.raises(EncryptionError, match="forgetting needs encryption"):
        get_store().forget("customer-1")
    with pytest.raises(CommandError, match="forgetting needs encryption"):
        call_command("eventstore_forget", "customer-1", "--yes", stdout=io.StringIO())


@pytest.mark.without_nats
def test_bad_encryption_settings_are_system_check_errors(settings: Any) -> None:
    settings.EVENTSTORE = {"ENCRYPTION": {"MASTER_KEY": "not-a-key"}}
    [error] = check_settings()
    assert error.id == "django_eventstore.E015" and "not a Fernet key" in error.msg and "not-a-key" not in error.msg
    settings.EVENTSTORE = {"ENCRYPTION": {"MASTER_KEY": KEY, "KEY_BUKET": "x"}}
    assert "unknown ENCRYPTION key 'KEY_BUKET'" in check_settings()[0].msg


@pytest.mark.without_nats
def test_the_memory_store_encrypts_and_forgets_too() -> None:
    store = MemoryEventStore(encryption={"MASTER_KEY": KEY})
    store.save_event(Event(event_type="Registered", actor_id="customer-1", version=1, data={"name": MARKER}))
    assert store.get_events("customer-1")[0].data == {"name": MARKER}
    store.forget("customer-1")
    assert store.get_events("customer-1")[0].forgotten


def test_the_admin_forgets_after_confirmation_for_superusers_only(encrypted: dict[str, Any], admin_client: Any, client: Any, django_user_model: Any) -> None:
    write_customer()
    page = admin_client.get("/admin/django_eventstore/actor/customer-1/").content.decode()
    assert 'id="forget-link"' in page
    confirm = admin_client.get("/admin/django_eventstore/actor/customer-1/forget/")
    assert confirm.status_code == 200 and b"Yes, forget customer-1" in confirm.content
    assert get_store().get_events("customer-1")[0].data == {"name": MARKER}  # asking changes nothing

    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_actor"))
    client.force_login(staff)
    assert 'id="forget-link"' not in client.get("/admin/django_eventstore/actor/customer-1/").content.decode()
    assert client.post("/admin/django_eventstore/actor/customer-1/forget/").status_code == 403
    assert get_store().get_events("customer-1")[0].data == {"name": MARKER}

    done = admin_client.post("/admin/django_eventstore/actor/customer-1/forget/", follow=True)
    assert "Actor customer-1 is forgotten" in done.content.decode()
    assert get_store().get_events("customer-1")[0].forgotten


READER = """
import sys, time
from django_eventstore.core.jetstream import JetStreamEventStore
url, stream, prefix, key = sys.argv[1:5]
store = JetStreamEventStore(url, stream=stream, subject_prefix=prefix, encryption={"MASTER_KEY": key, "KEY_CACHE_SECONDS": 1.0})
print("read", store.get_events("customer-1", limit=1)[0].data, flush=True)
sys.stdin.readline()  # the test forgets the actor, then says go
started = time.monotonic()
print("cached", store.get_events("customer-1", limit=1)[0].data, flush=True)
while not store.get_events("customer-1", limit=1)[0].forgotten:
    time.sleep(0.02)
print("forgotten after", round(time.monotonic() - started, 2), flush=True)
store.close()
"""


def test_another_process_stops_reading_the_data_once_its_key_cache_expires(encrypted: dict[str, Any], nats_url: str) -> None:
    """A second process with KEY_CACHE_SECONDS = 1 reads the data from its cache right after the forget, then never again."""
    write_customer()
    root = str(Path(__file__).resolve().parents[1])
    child = subprocess.Popen(
        [sys.executable, "-c", READER, nats_url, encrypted["STREAM"], encrypted["SUBJECT_PREFIX"], KEY],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root, env={**os.environ, "PYTHONPATH": root},
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == f"read {{'name': '{MARKER}'}}"
        get_store().forget("customer-1")
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == f"cached {{'name': '{MARKER}'}}"  # within the cache window
        line = child.stdout.readline().strip()
        assert line.startswith("forgotten after "), line
        assert float(line.rsplit(" ", 1)[1]) <= 1.5  # at the latest KEY_CACHE_SECONDS after it read the key (plus a read)
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
