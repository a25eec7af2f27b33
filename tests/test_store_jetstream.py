"""The store contract against JetStream on a real nats-server, and what only JetStream has."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import platform
import re
import select
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nats
import pytest

from django_eventstore import Event, EventStoreUnavailable, StreamSetupError, VersionConflictError
from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.core.portal import Portal
from django_eventstore.core.portal import _start as portal_start
from django_eventstore.testing import NatsServer, free_port

from .conftest import publish_raw
from .contract import StoreContract, ev


class TestJetStreamStore(StoreContract):
    @pytest.fixture
    def store(self, js_store):
        return js_store

    def publish_raw_subject(self, store, subject, body, headers=None):
        """Publish with a connection of its own, in a thread of its own (the caller may be on the store's loop)."""
        if not store.portal.in_loop_thread():
            store.setup()
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(publish_raw, store.backend.servers[0], subject, body, headers).result()


def _writer_process(url, stream, prefix, barrier, results, n_threads):
    """One process, one store, n_threads writers of version 2 of race-1."""
    from concurrent.futures import ThreadPoolExecutor

    store = JetStreamEventStore(url, stream=stream, subject_prefix=prefix)
    store.get_latest_version("race-1")  # connect before the race

    def attempt(i):
        try:
            store.save_event(ev("race-1", 2, writer=f"{os.getpid()}-{i}"))
            return "won"
        except VersionConflictError as e:
            return f"conflict:{e.current_version}"

    barrier.wait()
    with ThreadPoolExecutor(n_threads) as pool:
        for r in pool.map(attempt, range(n_threads)):
            results.put(r)
    store.close()


def test_four_processes_of_twelve_writers_one_wins(js_store, nats_url, stream_name, subject_prefix):
    js_store.save_event(ev("race-1", 1))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_writer_process, args=(nats_url, stream_name, subject_prefix, barrier, results, 12)) for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in range(48)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert outcomes.count("won") == 1
    assert outcomes.count("conflict:2") == 47
    assert [e.version for e in js_store.get_events("race-1")] == [1, 2]


def test_forked_child_gets_its_own_connection(js_store):
    js_store.save_event(ev("fork-1", 1))
    parent_conn = js_store.backend._conn
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+ warns about fork with threads
        pid = os.fork()
    if pid == 0:  # child
        try:
            stored = js_store.save_event(ev("fork-1", 2))
            ok = js_store.backend._conn is not parent_conn and stored.version == 2
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 60)
    assert ready, "the forked child did not answer within 60 s"
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
    assert js_store.get_latest_version("fork-1") == 2
    assert js_store.save_event(ev("fork-1", 3)).version == 3


def test_unreachable_server_raises_unavailable_within_timeout(stream_name):
    url = f"nats://127.0.0.1:{free_port()}"
    store = JetStreamEventStore(url, stream=stream_name, timeout=1.0)
    start = time.monotonic()
    with pytest.raises(EventStoreUnavailable, match=url.replace(".", r"\.")):
        store.get_latest_version("order-1")
    assert time.monotonic() - start < 3.0  # TIMEOUT plus slack for a loaded machine


def test_credentials_never_appear_in_errors(stream_name):
    url = f"nats://alice:s3cret@127.0.0.1:{free_port()}"
    store = JetStreamEventStore(url, stream=stream_name, timeout=0.5)
    with pytest.raises(EventStoreUnavailable) as error:
        store.get_latest_version("order-1")
    assert "s3cret" not in str(error.value) and "alice" not in str(error.value)
    assert "127.0.0.1" in str(error.value)


def test_stopped_server_raises_unavailable_within_timeout(stream_name):
    with NatsServer() as server:
        store = JetStreamEventStore(server.url, stream=stream_name, timeout=1.0)
        store.save_event(ev("order-1", 1))
        server.stop()
        start = time.monotonic()
        with pytest.raises(EventStoreUnavailable, match=r"127\.0\.0\.1"):
            store.save_event(ev("order-1", 2))
        with pytest.raises(EventStoreUnavailable):
            store.get_latest_version("order-1")
        assert time.monotonic() - start < 6.0  # two calls of TIMEOUT each, plus slack
        store.close()


def test_reads_create_no_consumers(js_store, nats_url, stream_name):
    for v in range(1, 4):
        js_store.save_event(ev("order-1", v))
    js_store.get_latest_version("order-1")
    js_store.get_events("order-1")
    js_store.list_actors()
    js_store.read_all()

    async def consumers():
        nc = await nats.connect(nats_url)
        try:
            return (await nc.jetstream().stream_info(stream_name)).state.consumer_count
        finally:
            await nc.close()

    assert asyncio.run(consumers()) == 0


def test_setup_is_idempotent_and_reports(js_store, stream_name):
    js_store.get_latest_version("x")  # auto setup
    changes = js_store.setup()
    assert [(c.stream, c.action) for c in changes] == [(stream_name, "unchanged"), (f"{stream_name}_SNAPSHOTS", "unchanged")]
    summary = js_store.server_summary()
    assert re.fullmatch(r"2\.\d+\.\d+.*", summary.version)
    assert summary.url.startswith("nats://127.0.0.1:")
    assert [s.name for s in summary.streams] == [stream_name, f"{stream_name}_SNAPSHOTS"]


def test_setup_dry_run_creates_nothing(nats_url, stream_name, subject_prefix):
    store = JetStreamEventStore(nats_url, stream=stream_name, subject_prefix=subject_prefix, auto_setup=False)
    planned = store.setup(dry_run=True)
    assert [c.action for c in planned] == ["created", "created"]
    assert [c.action for c in store.setup(dry_run=True)] == ["created", "created"]
    assert [c.action for c in store.setup()] == ["created", "created"]
    assert [c.action for c in store.setup()] == ["unchanged", "unchanged"]
    store.close()


MISCONFIGURED = {
    "missing": (None, lambda store: store.get_events("order-1"), "does not exist$"),
    "no direct gets": ({"subjects": ["{prefix}.events.>"], "allow_direct": False}, lambda store: store.get_latest_version("order-1"), "does not allow direct gets"),
    "other subjects": ({"subjects": ["{prefix}.other.>"], "allow_direct": True}, lambda store: store.save_event(ev("order-1", 1)), "does not take subject {prefix}.events.order.order-1"),
}


@pytest.mark.parametrize("case", MISCONFIGURED)
def test_a_misconfigured_stream_fails_at_once_saying_what_is_wrong(nats_url, stream_name, subject_prefix, case):
    """A missing answer is waited out (a restarting server) only while JetStream itself is silent."""
    from django_eventstore import EventStoreError

    config, call, match = MISCONFIGURED[case]
    if config is not None:

        async def create():
            nc = await nats.connect(nats_url)
            await nc.jetstream().add_stream(name=stream_name, subjects=[config["subjects"][0].format(prefix=subject_prefix)], allow_direct=config["allow_direct"])
            await nc.close()

        asyncio.run(create())
    store = JetStreamEventStore(nats_url, stream=stream_name, subject_prefix=subject_prefix, auto_setup=False, timeout=5.0)
    try:
        started = time.monotonic()
        with pytest.raises(EventStoreError, match=f"stream {stream_name} " + match.format(prefix=subject_prefix)) as error:
            call(store)
        assert isinstance(error.value, StreamSetupError) and error.value.stream == stream_name  # the Django layer adds the eventstore_setup hint
        assert time.monotonic() - started < 2.5  # not the 5 s TIMEOUT
        store.setup()  # which puts it right
        assert store.get_latest_version("order-1") == 0
    finally:
        store.close()


def test_a_deleted_stream_is_created_again_under_auto_setup(js_store, nats_url, stream_name):
    from django_eventstore import ActorSnapshot, SnapshotNotFound

    js_store.save_event(ev("order-1", 1))
    js_store.save_snapshot(ActorSnapshot(actor_id="order-1", version=1, state={}))

    async def delete_snapshots_stream():
        nc = await nats.connect(nats_url)
        await nc.jetstream().delete_stream(f"{stream_name}_SNAPSHOTS")
        await nc.close()

    asyncio.run(delete_snapshots_stream())
    with pytest.raises(SnapshotNotFound):
        js_store.get_latest_snapshot("order-1")
    assert js_store.save_snapshot(ActorSnapshot(actor_id="order-1", version=1, state={"again": True})).version == 1
    assert js_store.get_latest_snapshot("order-1").state == {"again": True}


@pytest.mark.parametrize("auto_setup", [True, False])
def test_a_server_without_jetstream_is_unavailable_within_timeout(stream_name, auto_setup):
    with NatsServer(args=["-js=false"]) as server:
        store = JetStreamEventStore(server.url, stream=stream_name, timeout=1.0, auto_setup=auto_setup)
        try:
            started = time.monotonic()
            with pytest.raises(EventStoreUnavailable, match="is JetStream enabled"):
                store.get_latest_version("order-1")
            assert 0.5 < time.monotonic() - started < 2.0  # waited for JetStream about TIMEOUT, not longer
        finally:
            store.close()


def test_small_max_payload_server_raises_event_too_large(stream_name):
    with NatsServer(max_payload=4096) as server:
        store = JetStreamEventStore(server.url, stream=stream_name)
        from django_eventstore import EventTooLarge

        with pytest.raises(EventTooLarge, match="4096"):
            store.save_event(ev("big-1", 1, blob="x" * 5000))
        assert store.get_latest_version("big-1") == 0
        store.close()


def test_get_events_seeks_far_into_a_long_stream(js_store):
    events = [Event(event_type="E", data={"i": i}) for i in range(3000)]
    for start in range(0, 3000, 1000):
        js_store.append("long-1", events[start : start + 1000], expected_version=start)
    tail = js_store.get_events("long-1", from_version=2990)
    assert [e.version for e in tail] == list(range(2991, 3001))
    page = js_store.get_events("long-1", from_version=1500, limit=3)
    assert [e.version for e in page] == [1501, 1502, 1503]
    assert len(js_store.get_events("long-1")) == 3000


@pytest.mark.slow
def test_list_actors_beyond_100000_subjects(js_store, nats_url):
    """nats-py's stream_info stops at 100,000 subjects; the store pages past it."""
    js_store.get_latest_version("x-0")  # creates the streams
    n = 100_005
    subjects = js_store.engine.subjects

    async def fill():
        nc = await nats.connect(nats_url)
        inbox = nc.new_inbox()
        done = asyncio.get_running_loop().create_future()
        acks = 0

        async def on_ack(msg):
            nonlocal acks
            acks += 1
            if acks == n and not done.done():
                done.set_result(None)

        await nc.subscribe(inbox, cb=on_ack, pending_msgs_limit=-1)
        for i in range(n):
            actor = f"bulk-{i:06d}"
            e = ev(actor, 1)
            from django_eventstore.core.events import encode_event

            headers, body = encode_event(e)
            await nc.publish(subjects.event_subject(actor), body, reply=inbox, headers=headers)
        await asyncio.wait_for(done, 120)
        await nc.close()

    asyncio.run(fill())
    page = js_store.list_actors(limit=10, offset=100_000)
    assert page.total == n
    assert [a.actor_id for a in page.actors] == [f"bulk-{i:06d}" for i in range(100_000, n)]
    assert all(a.latest_version == 1 for a in page.actors)
    after = js_store.list_actors(limit=2, after="bulk-100003")
    assert [a.actor_id for a in after.actors] == ["bulk-100004"]


def test_sync_call_from_the_stores_own_loop_raises_instead_of_deadlocking(js_store):
    from django_eventstore import EventStoreError

    async def inside():
        return js_store.get_latest_version("order-1")

    with pytest.raises(EventStoreError, match="async twin"):
        js_store.portal.call(inside())
    assert js_store.portal.call(js_store.aget_latest_version("order-1")) == 0


def test_closed_store_reconnects_on_next_use(js_store):
    js_store.save_event(ev("order-1", 1))
    js_store.close()
    assert js_store.get_latest_version("order-1") == 1
    assert js_store.save_event(ev("order-1", 2)).version == 2


def test_retry_answered_wrong_last_sequence_returns_the_stored_event(js_store, nats_url, stream_name, subject_prefix):
    """A publish that reached the server, retried by a writer whose view is stale, is recognised as its own."""
    other = JetStreamEventStore(nats_url, stream=stream_name, subject_prefix=subject_prefix)
    try:
        assert other.get_latest_version("order-1") == 0  # other now caches "empty"
        event = ev("order-1", 1)
        first = js_store.save_event(event)
        again = other.save_event(event)  # expected-last-sequence 0 is wrong now: the server says 10071
        assert again == first
        assert len(js_store.get_events("order-1")) == 1
        with pytest.raises(VersionConflictError):
            other.save_event(ev("order-1", 1))  # a different event at that version is a real conflict
    finally:
        other.close()


def test_batch_with_an_event_near_max_payload_is_too_large_not_a_dropped_connection(stream_name):
    with NatsServer(max_payload=8192) as server:
        store = JetStreamEventStore(server.url, stream=stream_name, timeout=2.0)
        store.get_latest_version("cart-1")
        from django_eventstore import EventTooLarge
        from django_eventstore.core.engine import PUBLISH_HEADROOM

        refused = 0
        for size in range(8192, 8192 - PUBLISH_HEADROOM - 600, -8):  # down to the largest event the store accepts
            try:
                store.append("cart-1", [Event(event_type="A"), Event(event_type="B", data={"x": "y" * size})], expected_version=0)
                break
            except EventTooLarge:
                refused += 1
        assert refused > 0
        assert store.get_latest_version("cart-1") == 2  # the largest accepted batch was stored, not dropped
        assert store.save_event(ev("other-1", 1)).version == 1
        store.close()


@pytest.mark.parametrize("way", ["sync", "async"])
def test_closing_the_store_fails_a_running_call_instead_of_hanging(js_store, way):
    js_store.get_latest_version("order-1")
    started = threading.Event()

    async def slow():
        started.set()
        await asyncio.sleep(30)

    async def from_another_loop():
        return await js_store.portal.acall(slow())

    run = {"sync": lambda: js_store.portal.call(slow()), "async": lambda: asyncio.run(from_another_loop())}[way]
    _close_while_waiting(js_store, run, started)


def _close_while_waiting(store, run, started) -> float:
    """Call run() in a thread, close the store once started is set: the call fails with EventStoreUnavailable; its duration."""
    outcome = []

    def caller():
        began = time.monotonic()
        try:
            run()
        except BaseException as e:  # noqa: BLE001 - recorded for the assertion
            outcome.append((e, time.monotonic() - began))

    thread = threading.Thread(target=caller)
    thread.start()
    assert started.wait(10)
    store.close()
    thread.join(10)
    assert not thread.is_alive(), "the call still waits after close()"
    ((error, waited),) = outcome
    assert isinstance(error, EventStoreUnavailable)
    assert store.get_latest_version("order-1") == 0  # and the store works again
    return waited


def test_a_dry_run_first_still_lets_auto_setup_create_the_streams(js_store):
    assert [c.action for c in js_store.setup(dry_run=True)] == ["created", "created"]
    assert js_store.save_event(ev("order-1", 1)).version == 1


# ----- sync callers and async twins on one connection -----


def _run_threads(target, args_list):
    """Run target(*args) in one thread each; re-raise the first failure."""
    errors = []

    def run(*args):
        try:
            target(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=run, args=args, daemon=True) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a caller thread is stuck"
    if errors:
        raise errors[0]


def test_sync_threads_and_async_twins_share_the_connection(js_store):
    def sync_writer(k):
        for v in range(1, 31):
            js_store.save_event(ev(f"sync-{k}", v))
            assert js_store.get_latest_version(f"sync-{k}") == v

    def async_writers():
        async def one(k):
            for v in range(1, 31):
                await js_store.asave_event(ev(f"async-{k}", v))
                assert await js_store.aget_latest_version(f"async-{k}") == v

        async def all_of_them():
            await asyncio.gather(*(one(k) for k in range(4)))

        asyncio.run(all_of_them())

    _run_threads(lambda k: async_writers() if k is None else sync_writer(k), [(k,) for k in range(6)] + [(None,)])
    for name in [f"sync-{k}" for k in range(6)] + [f"async-{k}" for k in range(4)]:
        assert [e.version for e in js_store.get_events(name)] == list(range(1, 31))


def test_closing_the_store_fails_a_sync_caller_waiting_for_its_reply(nats_url, stream_name, subject_prefix):
    store = JetStreamEventStore(nats_url, stream=stream_name, subject_prefix=subject_prefix, timeout=30.0)
    try:

        async def ignore(msg):
            pass

        async def silent_listener():  # takes the request and never answers
            conn = await store.backend._connection()
            await conn.nc.subscribe("silent.request", cb=ignore)
            await conn.nc.flush()

        store.portal.call(silent_listener())
        asked = threading.Event()

        async def ask():
            conn = await store.backend._connection()
            asked.set()
            return await conn.request("silent.request")

        waited = _close_while_waiting(store, lambda: store.portal.call(ask()), asked)
        assert waited < 10  # failed by close(), not by the 30 s timeout
    finally:
        store.close()


def test_sync_callers_in_threads_carry_on_across_a_server_restart(stream_name, tmp_path):
    """Writers keep going while the server stops and comes back: versions stay gap-free, nothing is stored twice."""
    server = NatsServer(store_dir=tmp_path, keep_data=True).start()
    store = JetStreamEventStore(server.url, stream=stream_name, timeout=5.0)
    warmed = threading.Barrier(5)
    restarted = threading.Event()

    def writer(k):
        actor, version, after_restart, waited = f"restart-{k}", 0, 0, False
        give_up = time.monotonic() + 60
        while after_restart < 10 and time.monotonic() < give_up:
            if version >= 5 and not waited:  # all writers are going before the server stops
                warmed.wait(30)
                waited = True
            try:
                store.save_event(ev(actor, version + 1))
                version += 1
                after_restart += restarted.is_set()
            except (EventStoreUnavailable, VersionConflictError):  # the reply may be lost: ask the server
                while time.monotonic() < give_up:
                    try:
                        version = store.get_latest_version(actor)
                        break
                    except EventStoreUnavailable:
                        continue

    threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(4)]
    try:
        for t in threads:
            t.start()
        warmed.wait(30)
        server.stop()
        server.start()
        restarted.set()
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads), "a writer is stuck"
        for k in range(4):
            versions = [e.version for e in store.get_events(f"restart-{k}")]
            assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 15
    finally:
        store.close()
        server.keep_data = False
        server.stop()


_COUNT_LOOP_PAGE_FAULTS = """
import sys, threading
from django_eventstore import Event
from django_eventstore.core import portal
from django_eventstore.core.jetstream import JetStreamEventStore

if sys.argv[4] == "without":  # the control: the loop thread leaves glibc's threshold alone
    portal._raise_mmap_threshold = lambda: None
store = JetStreamEventStore(sys.argv[1], stream=sys.argv[2], subject_prefix=sys.argv[3])

async def native_id():
    return threading.get_native_id()

loop_thread = store.portal.call(native_id())
actor = f"order-{sys.argv[4]}"
store.save_event(Event(actor_id=actor, event_type="Placed", version=1))

def minor_faults():
    with open(f"/proc/self/task/{loop_thread}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])

before = minor_faults()
for _ in range(200):
    assert store.get_latest_version(actor) == 1  # one direct get, one reply received, each time
print((minor_faults() - before) / 200)
store.close()
"""


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
    reason="glibc on Linux only: other C libraries have other allocators, which the store leaves alone",
)
def test_the_loop_thread_receives_without_a_page_fault_per_message(nats_url, stream_name, subject_prefix):
    """asyncio's 256 KiB read buffer comes from the loop thread's heap, not from a fresh mmap per message.

    Each count runs in a fresh interpreter (glibc's threshold is the process's: an earlier test may
    have raised it), without the environment's allocator settings, and next to a control run in
    which the loop thread does not raise the threshold.
    """
    root = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = root

    def faults_per_read(mode: str) -> float:
        script = [sys.executable, "-c", _COUNT_LOOP_PAGE_FAULTS, nats_url, stream_name, subject_prefix, mode]
        result = subprocess.run(script, capture_output=True, text=True, timeout=60, cwd=root, env=env)
        assert result.returncode == 0, result.stderr
        return float(result.stdout.strip())

    assert faults_per_read("without") >= 1.0  # the cost the store avoids: a fresh mapping per message
    assert faults_per_read("with") < 0.5


def test_a_call_handed_over_as_the_loop_stops_fails_and_its_coroutine_is_closed():
    """Cancelled before its first step (Python 3.11 has no eager tasks), the call still fails its caller and its coroutine is closed, not left never awaited."""
    portal = Portal(name="stopping-portal")
    loop = portal.loop
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait()

    loop.call_soon_threadsafe(hold)
    held.wait()  # the loop runs hold: what follows lands in one turn, the stop with the hand-over

    async def never_started() -> int:
        return 42

    coro = never_started()
    outcome: list[tuple[object, BaseException | None]] = []
    loop.call_soon_threadsafe(portal_start, portal._state, coro, lambda result, error: outcome.append((result, error)))
    loop.call_soon_threadsafe(loop.stop)
    thread = portal._thread
    release.set()
    assert thread is not None
    thread.join(10)
    assert outcome, "the caller was never told"  # the first outcome counts: the portal's callers ignore repeats
    if sys.version_info >= (3, 12):  # started eagerly in the hand-over's own turn, it ran to its end
        assert outcome[0] == (42, None)
    else:
        assert isinstance(outcome[0][1], asyncio.CancelledError)
    assert coro.cr_frame is None  # closed or finished (a coroutine never started keeps its frame)
