"""Our persistence module's own promises: the mapping onto actors, faithful state bytes, server-checked conflicts, settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from eventsourcing.cipher import AESCipher
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent, Tracking
from eventsourcing.tests.application import BankAccounts
from eventsourcing.utils import Environment

from django_eventstore import get_store
from django_eventstore.contrib.eventsourcing import JetStreamApplicationRecorder, JetStreamFactory, data_to_state, env_config, state_to_data

from .conftest import MODULE


def recorder(name: str = "Shop", **env: str) -> JetStreamApplicationRecorder:
    return JetStreamFactory(Environment(name, env)).application_recorder()  # type: ignore[return-value]


def test_aggregates_are_actors_of_the_applications_type_and_a_read_by_id_finds_them() -> None:
    rec = recorder("Shop")
    oid = uuid4()
    rec.insert_events([StoredEvent(oid, 1, "shop.domain:Cart.Created", b'{"a":1}')])
    store = get_store()
    assert store.get_latest_version(f"shop-{oid}") == 1
    assert store.list_actors(actor_type="shop").total == 1
    (event,) = store.get_events(f"shop-{oid}")
    assert event.event_type == "shop.domain:Cart.Created"
    assert event.data == {"a": 1}
    assert event.metadata == {"originator_version": 1, "state": "json"}
    assert rec.select_events(oid) == [StoredEvent(oid, 1, "shop.domain:Cart.Created", b'{"a":1}')]
    assert isinstance(rec.select_events(oid)[0].originator_id, UUID)


@pytest.mark.parametrize(
    "state",
    [
        zlib.compress(b'{"amount":"10.00"}'),
        AESCipher(Environment(env={"CIPHER_KEY": AESCipher.create_key(16)})).encrypt(b'{"a":1}'),
        b'{"a": 1}',  # JSON, but not as the library writes it: kept byte for byte
        b'{"x":NaN}',
        b"[1,2]",
        b"\xff\x00",
        b"",
    ],
)
def test_other_state_bytes_are_kept_faithfully_as_base64_never_malformed(state: bytes) -> None:
    rec = recorder()
    oid = uuid4()
    rec.insert_events([StoredEvent(oid, 1, "t", state)])
    result = get_store().get_events_with_errors(f"shop-{oid}")
    assert result.errors == []
    assert result.events[0].metadata["state"] == "base64"
    assert set(result.events[0].data) == {"base64"}
    assert rec.select_events(oid)[0].state == state
    assert rec.select_notifications(None, 10)[0].state == state


def test_state_to_data_keeps_the_librarys_json_as_data() -> None:
    state = '{"amount":{"_type_":"decimal_str","_data_":"1.50"},"name":"Zoë"}'.encode()
    data, kind = state_to_data(state)
    assert kind == "json" and data["name"] == "Zoë"
    assert data_to_state(data, kind) == state


def test_a_topic_too_long_for_an_event_type_is_kept_in_metadata() -> None:
    rec = recorder()
    oid = uuid4()
    topic = "pkg.module:" + "Nested." * 60 + "Event"
    rec.insert_events([StoredEvent(oid, 1, topic, b"{}")])
    assert rec.select_events(oid)[0].topic == topic
    assert rec.select_notifications(None, 10, topics=[topic])[0].topic == topic
    (event,) = get_store().get_events(f"shop-{oid}")
    assert len(event.event_type) <= 256 and event.event_type.endswith("…")


def test_racing_writers_with_their_own_caches_get_one_success_and_integrity_errors() -> None:
    """Each recorder has its own cache and takes a miss at version 1 as a new aggregate: only the server's check decides."""
    oid = uuid4()
    recorders = [recorder() for _ in range(8)]
    barrier = threading.Barrier(len(recorders))
    outcomes: list[str] = []

    def write(rec: JetStreamApplicationRecorder) -> None:
        barrier.wait()
        try:
            rec.insert_events([StoredEvent(oid, 1, "t", b"{}"), StoredEvent(oid, 2, "t", b"{}")])
            outcomes.append("ok")
        except IntegrityError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(r,)) for r in recorders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
    assert get_store().get_latest_version(f"shop-{oid}") == 2


def test_a_stale_aggregate_in_a_multi_aggregate_save_stores_nothing() -> None:
    rec = recorder()
    a, b = uuid4(), uuid4()
    rec.insert_events([StoredEvent(b, 1, "t", b"{}")])
    with pytest.raises(IntegrityError):
        rec.insert_events([StoredEvent(a, 1, "t", b"{}"), StoredEvent(b, 1, "t", b"{}")])
    assert rec.select_events(a) == []
    ids = rec.insert_events([StoredEvent(a, 1, "t", b"{}"), StoredEvent(b, 2, "t", b"{}")])
    assert ids is not None and len(ids) == 2 and ids[0] < ids[1]


def test_versions_not_starting_at_one_and_with_gaps_are_read_by_originator_version() -> None:
    rec = recorder()
    oid = uuid4()
    rec.insert_events([StoredEvent(oid, v, "t", b"{}") for v in (5, 7, 8, 20)])
    assert [e.originator_version for e in rec.select_events(oid, gt=6)] == [7, 8, 20]
    assert [e.originator_version for e in rec.select_events(oid, gt=5, lte=8)] == [7, 8]
    assert [e.originator_version for e in rec.select_events(oid, lte=19, desc=True, limit=1)] == [8]
    assert [e.originator_version for e in rec.select_events(oid, desc=True, limit=2)] == [20, 8]
    with pytest.raises(IntegrityError):
        rec.insert_events([StoredEvent(oid, 8, "t", b"{}")])
    fresh = recorder()  # no cache: reads what is stored
    with pytest.raises(IntegrityError):
        fresh.insert_events([StoredEvent(oid, 20, "t", b"{}")])
    fresh.insert_events([StoredEvent(oid, 21, "t", b"{}")])


def test_notifications_are_the_applications_events_only() -> None:
    shop, other = recorder("Shop"), recorder("Other")
    shop.insert_events([StoredEvent(uuid4(), 1, "a", b"{}")])
    other.insert_events([StoredEvent(uuid4(), 1, "b", b"{}")])
    process = JetStreamFactory(Environment("Shop")).process_recorder()
    process.insert_events([], tracking=Tracking("Upstream", 7))
    assert [n.topic for n in shop.select_notifications(None, 10)] == ["a"]
    assert shop.max_notification_id() == 1
    assert other.max_notification_id() == 2
    assert process.max_tracking_id("Upstream") == 7
    assert "shop_tracking" in get_store().actor_types()
    other.insert_events([StoredEvent(uuid4(), v, "b", b"{}") for v in range(1, 301)])  # the look back widens past them
    assert shop.max_notification_id() == 1


def test_the_last_tracking_record_of_a_long_history_is_found() -> None:
    process = JetStreamFactory(Environment("Shop")).process_recorder()
    for n in range(1, 71):  # past SHORT_HISTORY: found by looking back from the stream's end
        process.insert_events([StoredEvent(uuid4(), 1, "t", b"{}")], tracking=Tracking("Upstream", n * 2))
    recorder("Other").insert_events([StoredEvent(uuid4(), v, "b", b"{}") for v in range(1, 101)])
    assert process.max_tracking_id("Upstream") == 140
    with pytest.raises(IntegrityError):
        process.insert_tracking(Tracking("Upstream", 140))
    process.insert_tracking(Tracking("Upstream", 141))


def test_text_originator_ids() -> None:
    rec = recorder(ORIGINATOR_ID_TYPE="text")
    rec.insert_events([StoredEvent("cart-1", 1, "t", b"{}")])
    assert rec.select_events("cart-1")[0].originator_id == "cart-1"
    assert get_store().get_latest_version("shop-cart-1") == 1


def test_a_subscription_stopped_from_another_thread_ends() -> None:
    rec = recorder()
    rec.insert_events([StoredEvent(uuid4(), 1, "t", b"{}")])
    got: list[int] = []
    both = threading.Event()

    def read(subscription: Iterator[Notification]) -> None:
        for notification in subscription:
            got.append(notification.id)
            if len(got) == 2:
                both.set()

    with rec.subscribe(gt=0) as subscription:
        thread = threading.Thread(target=read, args=(subscription,))
        thread.start()
        rec.insert_events([StoredEvent(uuid4(), 1, "t", b"{}")])
        assert both.wait(10)
        subscription.stop()  # the reader waits on the live feed: it sees the stop within SUBSCRIPTION_IDLE
        thread.join(5)
    assert not thread.is_alive()
    assert got == [1, 2]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"ORIGINATOR_ID_TYPE": "int"}, "ORIGINATOR_ID_TYPE"),
        ({"EVENTSTORE_ACTOR_TYPE": "my-app"}, "EVENTSTORE_ACTOR_TYPE"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(env: dict[str, str], problem: str) -> None:
    with pytest.raises(OSError, match=problem):
        JetStreamFactory(Environment("Shop", env))


def test_env_config_reads_the_applications_environment() -> None:
    env = Environment("Bank", {"BANK_EVENTSTORE_STREAM": "BANK", "EVENTSTORE_SERVERS": "nats://a:4222, nats://b:4222", "EVENTSTORE_TIMEOUT": "2"})
    assert env_config(env) == {"SERVERS": ["nats://a:4222", "nats://b:4222"], "STREAM": "BANK", "SUBJECT_PREFIX": "es", "TIMEOUT": 2.0}
    with pytest.raises(OSError, match="EVENTSTORE_TIMEOUT"):
        env_config(Environment("", {"EVENTSTORE_TIMEOUT": "soon"}))


SCRIPT = """
from collections.abc import Iterator
from decimal import Decimal
from eventsourcing.tests.application import BankAccounts
app = BankAccounts()
assert type(app.factory).__module__ == "django_eventstore.contrib.eventsourcing", app.factory
account = app.open_account("Alice", "alice@example.com")
app.credit_account(account, Decimal("10.00"))
print(app.factory.actor_type, account, app.get_balance(account), app.recorder.max_notification_id())
"""


@pytest.mark.slow
def test_outside_django_the_store_comes_from_environment_variables(nats_url: str, stream_name: str, subject_prefix: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(PERSISTENCE_MODULE=MODULE, EVENTSTORE_SERVERS=nats_url, EVENTSTORE_STREAM=stream_name, EVENTSTORE_SUBJECT_PREFIX=subject_prefix)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60, check=True).stdout.split()
    actor_type, account, balance, max_id = out
    assert (actor_type, balance, max_id) == ("bankaccounts", "10.00", "2")
    assert get_store().get_latest_version(f"bankaccounts-{account}") == 2  # the same stream, seen through settings.EVENTSTORE


def test_the_example_application_is_browsable_in_the_store() -> None:
    app = BankAccounts(env={"IS_SNAPSHOTTING_ENABLED": "y"})
    account = app.open_account("Alice", "alice@example.com")
    app.credit_account(account, Decimal("10.00"))
    app.take_snapshot(account)
    store = get_store()
    events = store.get_events(f"bankaccounts-{account}")
    assert [e.event_type for e in events] == ["eventsourcing.tests.domain:BankAccount.Opened", "eventsourcing.tests.domain:BankAccount.TransactionAppended"]
    assert events[0].data["full_name"] == "Alice"
    assert json.loads(json.dumps(events[1].data))["amount"] == {"_type_": "decimal_str", "_data_": "10.00"}
    assert store.get_latest_version(f"bankaccounts_snapshots-{account}") == 1
    assert app.repository.get(account).balance == Decimal("10.00")


