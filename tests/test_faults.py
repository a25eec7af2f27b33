"""Faults on a single server: lost acknowledgements, network cuts, a server killed and restarted,
NATS unreachable (fail fast), wrong credentials, and no secret in any log line."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import pytest

from django_eventstore import EventStoreUnavailable, VersionConflictError
from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.nats_process import free_port
from django_eventstore.testing import NatsServer

from .contract import ev
from .proxy import NatsProxy


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture
def proxy(nats_url):
    p = NatsProxy(_port(nats_url))
    yield p
    p.close()


@pytest.fixture
def proxied_store(proxy, stream_name, subject_prefix):
    store = JetStreamEventStore(proxy.url, stream=stream_name, subject_prefix=subject_prefix, timeout=5.0)
    yield store
    store.close()


def test_a_lost_publish_ack_is_sent_again_and_the_event_stored_once(proxied_store, proxy):
    first = proxied_store.save_event(ev("order-1", 1))
    proxy.drop_next_ack()
    started = time.monotonic()
    saved = proxied_store.save_event(ev("order-1", 2))
    took = time.monotonic() - started
    assert proxy.dropped == 1, "the test dropped no acknowledgement"
    assert saved.version == 2 and saved.position
    assert [e.id for e in proxied_store.get_events("order-1")] == [first.id, saved.id]
    assert took < 3, f"the retry took {took:.1f}s"
    print(f"\nlost ack: save_event answered after {took:.2f}s")


def test_a_lost_batch_ack_is_sent_again_and_the_batch_stored_once(proxied_store, proxy):
    proxied_store.save_event(ev("order-1", 1))
    proxy.drop_next_ack()
    stored = proxied_store.append("order-1", [ev("order-1", None), ev("order-1", None), ev("order-1", None)], expected_version=1)
    assert proxy.dropped == 1
    assert [e.version for e in stored] == [2, 3, 4]
    assert [e.id for e in proxied_store.get_events("order-1")][1:] == [e.id for e in stored]


@dataclass
class Writers:
    """Writer threads saving one event at a time to their own actors, riding out faults."""

    store: JetStreamEventStore
    count: int = 4
    acknowledged: dict[str, list[str]] = field(default_factory=dict)
    longest: float = 0.0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, k: int) -> None:
        actor = f"writer-{k}"
        acked = self.acknowledged.setdefault(actor, [])
        version = 0
        while not self.stop.is_set():
            event = ev(actor, version + 1)
            started = time.monotonic()
            try:
                self.store.save_event(event)
                acked.append(event.id)
                version += 1
            except (EventStoreUnavailable, VersionConflictError) as e:
                with self.lock:
                    self.errors += 1
                    if len(self.error_samples) < 5:
                        self.error_samples.append(f"{type(e).__name__}: {e}")
                try:
                    version = self.store.get_latest_version(actor)
                except EventStoreUnavailable:
                    time.sleep(0.05)  # NATS is down: fail-fast errors come back at once, do not spin
            finally:
                with self.lock:
                    self.longest = max(self.longest, time.monotonic() - started)

    def __enter__(self) -> Writers:
        self.threads = [threading.Thread(target=self.run, args=(k,), daemon=True) for k in range(self.count)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads), "a writer is stuck"

    def wait_for_events(self, n: int, timeout: float = 30) -> None:
        """Until every writer has n more acknowledged events than now."""
        start = {a: len(ids) for a, ids in self.acknowledged.items()}
        deadline = time.monotonic() + timeout
        while any(len(self.acknowledged.get(f"writer-{k}", [])) < start.get(f"writer-{k}", 0) + n for k in range(self.count)):
            assert time.monotonic() < deadline, f"writers did not make progress: {self.acknowledged_counts()}"
            time.sleep(0.01)

    def acknowledged_counts(self) -> dict[str, int]:
        return {a: len(ids) for a, ids in self.acknowledged.items()}

    def check_stored(self, store: JetStreamEventStore) -> None:
        """Every acknowledged event stored exactly once, versions gap-free."""
        for actor, ids in self.acknowledged.items():
            events = store.get_events(actor)
            assert [e.version for e in events] == list(range(1, len(events) + 1)), f"{actor}: versions not gap-free"
            stored = [e.id for e in events]
            assert len(set(stored)) == len(stored), f"{actor}: an event stored twice"
            assert set(ids) <= set(stored), f"{actor}: an acknowledged event is missing"


def test_writers_ride_out_network_cuts(proxied_store, proxy):
    with Writers(proxied_store) as writers:
        for _ in range(3):
            writers.wait_for_events(20)
            proxy.cut()
        writers.wait_for_events(20)
    writers.check_stored(proxied_store)
    print(f"\nnetwork cuts: longest call {writers.longest:.2f}s, {writers.errors} errors")
    assert writers.longest < 4


@pytest.mark.slow
def test_writers_across_a_kill_9_and_restart_of_the_server(stream_name, tmp_path):
    server = NatsServer(store_dir=tmp_path, keep_data=True).start()
    store = JetStreamEventStore(server.url, stream=stream_name, timeout=5.0)
    try:
        with Writers(store) as writers:
            writers.wait_for_events(20)
            assert server.process is not None
            server.process.kill()  # kill -9
            server.process.wait()
            killed = time.monotonic()
            time.sleep(2)  # the server stays down 2 s: the fault under test, not a synchronisation
            server.start()
            writers.wait_for_events(20)
            back = time.monotonic() - killed
        writers.check_stored(store)
        print(f"\nkill -9 + restart after 2 s: back after {back:.1f}s, longest call {writers.longest:.2f}s, {writers.errors} errors")
        assert writers.longest < 4, f"a write stalled {writers.longest:.1f}s"
    finally:
        store.close()
        server.keep_data = False
        server.stop()


def test_calls_fail_fast_while_nats_is_down_and_recover(stream_name, tmp_path):
    server = NatsServer(store_dir=tmp_path, keep_data=True).start()
    store = JetStreamEventStore(server.url, stream=stream_name, timeout=3.0)
    try:
        store.save_event(ev("order-1", 1))
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        deadline = time.monotonic() + 3.5
        while True:  # the first calls may wait for the disconnect to be noticed
            try:
                store.get_latest_version("order-1")
            except EventStoreUnavailable:
                break
            assert time.monotonic() < deadline
        timings = []
        for _ in range(10):
            started = time.monotonic()
            with pytest.raises(EventStoreUnavailable, match="cannot be reached"):
                store.get_latest_version("order-1")
            timings.append(time.monotonic() - started)
        print(f"\nfail fast while down: slowest of 10 calls {max(timings) * 1000:.1f} ms")
        assert max(timings) < 0.1
        server.start()
        assert _eventually(lambda: store.get_latest_version("order-1")) == 1
    finally:
        store.close()
        server.keep_data = False
        server.stop()


def test_the_first_call_waits_timeout_then_calls_fail_fast_until_a_server_comes(stream_name, tmp_path):
    port = free_port()
    store = JetStreamEventStore(f"nats://127.0.0.1:{port}", stream=stream_name, timeout=1.5)
    server = NatsServer(port=port, store_dir=tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(EventStoreUnavailable, match=r"within 1\.5s"):
            store.get_latest_version("order-1")
        assert 1.4 < time.monotonic() - started < 3
        timings = []
        for _ in range(5):
            started = time.monotonic()
            with pytest.raises(EventStoreUnavailable, match="still trying"):
                store.get_latest_version("order-1")
            timings.append(time.monotonic() - started)
        assert max(timings) < 0.1
        server.start()
        assert _eventually(lambda: store.get_latest_version("order-1")) == 0
    finally:
        store.close()
        server.stop()


def _eventually(call, timeout: float = 15.0):
    """call()'s result once NATS is back (it fails fast meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except EventStoreUnavailable:
            assert time.monotonic() < deadline, "the store did not come back"
            time.sleep(0.05)


def test_a_wrong_password_says_authorization_violation_and_not_the_password(stream_name):
    with NatsServer(args=["--user", "alice", "--pass", "right-pw-1"]) as server:
        store = JetStreamEventStore(f"nats://alice:wrong-pw-2@127.0.0.1:{server.port}", stream=stream_name, timeout=1.5)
        try:
            with pytest.raises(EventStoreUnavailable, match="authorization violation") as error:
                store.get_latest_version("order-1")
            assert "wrong-pw-2" not in str(error.value) and "alice" not in str(error.value)
        finally:
            store.close()


def test_credentials_never_reach_the_log(stream_name, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server = NatsServer(store_dir=tmp_path, keep_data=True, args=["--user", "alice", "--pass", "secret-pw-3"]).start()
    store = JetStreamEventStore(f"nats://alice:secret-pw-3@127.0.0.1:{server.port}", stream=stream_name, timeout=3.0)
    try:
        store.save_event(ev("order-1", 1))
        server.stop()
        server.start()
        assert _eventually(lambda: store.save_event(ev("order-1", 2))).version == 2
        assert "reconnected to NATS" in caplog.text  # the log lines under test were written
        assert "secret-pw-3" not in caplog.text and "alice:" not in caplog.text
    finally:
        store.close()
        server.keep_data = False
        server.stop()


def test_a_message_nats_py_cannot_parse_costs_one_call_not_the_connection(nats_url, stream_name, subject_prefix):
    """nats-py stops reading (yet says connected) on an inline status with invalid UTF-8; the store notices and connects again."""
    import socket
    from urllib.parse import urlsplit

    store = JetStreamEventStore(nats_url, stream=stream_name, subject_prefix=subject_prefix, timeout=3.0)
    try:
        store.save_event(ev("order-1", 1))
        inbox = store.portal.call(store.backend._connection()).prefix  # the store's own reply subjects
        poison = b"NATS/1.0 503\r\nX: \xff\r\n\r\n"
        url = urlsplit(nats_url)
        with socket.create_connection((url.hostname, url.port)) as sock:
            sock.recv(4096)  # INFO
            sock.sendall(b'CONNECT {"verbose":false,"headers":true}\r\nHPUB %sx %d %d\r\n%s\r\nPING\r\n' % (inbox.encode(), len(poison), len(poison), poison))
            assert b"PONG" in sock.recv(4096)
        outcomes = []
        for _ in range(3):
            try:
                outcomes.append(store.get_latest_version("order-1"))
            except EventStoreUnavailable as e:
                outcomes.append(str(e))
            if outcomes[-1] == 1:
                break
        assert outcomes[-1] == 1, outcomes
        assert len(outcomes) <= 2 and all("stopped reading" in o for o in outcomes[:-1] if isinstance(o, str)), outcomes
        store.save_event(ev("order-1", 2))
    finally:
        store.close()
