"""A three-server JetStream cluster with an R3 stream: the stream leader killed under writers,
and writers racing on one actor (the clustered "wrong last sequence" answer is a conflict)."""

from __future__ import annotations

import threading
import time

import pytest

from django_eventstore import EventStoreError, VersionConflictError
from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.testing import NatsCluster

from .contract import ev
from .test_faults import Writers

pytestmark = [pytest.mark.slow, pytest.mark.without_nats]


@pytest.fixture(scope="module")
def cluster():
    with NatsCluster(3) as c:
        yield c


@pytest.fixture
def r3_store(cluster, request):
    name = f"R3{abs(hash(request.node.name)) % 10**8}"
    store = JetStreamEventStore(cluster.urls, stream=name, subject_prefix=name.lower(), replicas=3, timeout=15.0)
    deadline = time.monotonic() + 30
    while True:  # a server restarted by the test before may still be catching up ("no suitable peers")
        try:
            store.setup()
            break
        except EventStoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield store
    store.close()


def test_writers_ride_out_a_kill_9_of_the_stream_leader(cluster, r3_store):
    stream = r3_store.backend.stream_names["events"]
    leader = cluster.stream_leader(stream)
    try:
        with Writers(r3_store) as writers:
            writers.wait_for_events(20)
            cluster.kill(leader)
            killed = time.monotonic()
            new_leader = cluster.stream_leader(stream)
            election = time.monotonic() - killed
            writers.wait_for_events(20, timeout=60)
        writers.check_stored(r3_store)
    finally:
        cluster.restart(leader)
    print(f"\nR3 leader kill -9: new leader {cluster.names[new_leader]} after {election:.1f}s; longest call {writers.longest:.1f}s; {writers.errors} errors")
    assert new_leader != leader
    assert writers.errors == 0, f"with TIMEOUT 15 s no writer should see an error: {writers.error_samples}"
    assert writers.longest <= election + 1.5, f"a writer stalled {writers.longest:.1f}s, the election took {election:.1f}s"


def test_racing_writers_on_one_actor_get_only_version_conflicts(r3_store):
    """On an R3 stream a racing write can be refused with 10164 instead of 10071: both are conflicts."""
    stop = threading.Event()
    other_errors: list[EventStoreError] = []
    conflicts = [0]
    lock = threading.Lock()

    def racer() -> None:
        while not stop.is_set():
            try:
                version = r3_store.get_latest_version("race-1")
                r3_store.save_event(ev("race-1", version + 1))
            except VersionConflictError:
                with lock:
                    conflicts[0] += 1
            except EventStoreError as e:
                other_errors.append(e)

    threads = [threading.Thread(target=racer, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while r3_store.get_latest_version("race-1") < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(30)
    assert other_errors == [], other_errors[:3]
    assert conflicts[0] > 0, "the writers never raced"
    versions = [e.version for e in r3_store.get_events("race-1")]
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 300
