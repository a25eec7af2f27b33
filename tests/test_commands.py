"""eventstore_setup, _status, _actors and _events through call_command, against the real nats-server."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from typing import Any, Callable

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_eventstore import ActorSnapshot, Event, get_store
from django_eventstore.core.events import format_timestamp
from django_eventstore.core.subjects import Subjects
from django_eventstore.management.commands.eventstore_events import Command as EventsCommand
from django_eventstore.paging import read_pages
from django_eventstore.store import reset_store
from django_eventstore.testing import NatsCluster, free_port

from .conftest import publish_raw


def run(*args: Any, **options: Any) -> tuple[str, str]:
    """Call a command; its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def store_events(actor_id: str, count: int, start: int = 1) -> list[Event]:
    events = [Event(event_type="Counted", data={"n": n, "text": "héllo"}, metadata={"user": "ann"}) for n in range(start, start + count)]
    return get_store().append(actor_id, events, expected_version=start - 1)


class WatchedOutput(io.StringIO):
    """A stdout that lets a test wait, without sleeping, until a command has written enough lines."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            written = super().write(text)
            self.changed.notify_all()
            return written

    def wait_until(self, predicate: Callable[[list[str]], bool], timeout: float = 10) -> list[str]:
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self.getvalue().splitlines()), timeout), self.getvalue()
            return self.getvalue().splitlines()


# ----- eventstore_setup -----


def test_setup_creates_then_reports_unchanged(stream_name):
    out, _ = run("eventstore_setup")
    assert f"stream {stream_name}: created" in out
    assert f"stream {stream_name}_SNAPSHOTS: created" in out
    assert "deny_delete: null -> true" in out
    out, _ = run("eventstore_setup")
    lines = out.splitlines()
    assert lines[0::2] == [f"stream {stream_name}: unchanged", f"stream {stream_name}_SNAPSHOTS: unchanged"]
    assert all(re.fullmatch(r"  placement: 1 replica, not clustered \(server .{1,12}\)", line) for line in lines[1::2]), lines


def test_setup_dry_run_changes_nothing(stream_name):
    out, _ = run("eventstore_setup", "--dry-run")
    assert f"stream {stream_name}: would create" in out
    out, _ = run("eventstore_setup", "--dry-run")
    assert f"stream {stream_name}: would create" in out


def test_setup_reports_an_update(settings, eventstore_settings, stream_name):
    run("eventstore_setup")
    settings.EVENTSTORE = {**eventstore_settings, "SNAPSHOTS_KEEP": 3}
    out, _ = run("eventstore_setup", "--dry-run")
    assert f"stream {stream_name}_SNAPSHOTS: would update" in out
    assert "max_msgs_per_subject: 1 -> 3" in out
    run("eventstore_setup")
    out, _ = run("eventstore_setup")
    assert f"stream {stream_name}_SNAPSHOTS: unchanged" in out


# ----- eventstore_status -----


def test_status_json_has_server_and_stream_state(stream_name, nats_url):
    store_events("order-1", 3)
    store_events("user-1", 2)
    out, _ = run("eventstore_status", "--format", "json")
    status = json.loads(out)
    assert status["url"] == nats_url
    assert "2." in status["version"]
    events, snapshots = status["streams"]
    assert (events["name"], events["messages"], events["subject_count"], events["replicas"]) == (stream_name, 5, 2, 1)
    assert events["cluster"]["leader"]
    assert snapshots["name"] == f"{stream_name}_SNAPSHOTS"
    assert status["account"]["streams"] >= 2


def test_status_table_fits_100_columns_with_the_leader_shortened(stream_name, nats_url):
    store_events("order-1", 3)
    out, _ = run("eventstore_status")
    assert nats_url in out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, out
    header, events = lines[3:5]
    assert header.split() == ["STREAM", "MESSAGES", "BYTES", "ACTORS", "SEQUENCES", "STORAGE", "REPLICAS", "LEADER"]
    assert events.split()[:4] == [stream_name, "3", events.split()[2], "1"]
    leader = get_store().server_summary().streams[0].cluster["leader"]  # the server's default name: a 56-character id
    assert len(leader) == 56 and events.split()[-1] == leader[:9] + "..."
    assert lines[7].split() == ["STREAM", "SUBJECTS", "CLUSTER", "FOLLOWERS"]
    assert lines[8].split() == [stream_name, f"{stream_name.lower()}.events.>", "not", "clustered", "-"]


@pytest.mark.slow
@pytest.mark.without_nats
def test_setup_and_status_show_the_replicas_and_their_placement_on_a_cluster(settings):
    with NatsCluster(3, name="east") as cluster:
        settings.EVENTSTORE = {"SERVERS": cluster.urls, "REPLICAS": 3, "TIMEOUT": 15.0}
        try:
            deadline = time.monotonic() + 30
            while True:  # a cluster just started may not know all its peers yet
                try:
                    out, _ = run("eventstore_setup")
                    break
                except CommandError as e:
                    assert "no suitable peers" in str(e) and time.monotonic() < deadline, e
                    time.sleep(0.2)
            placements = [line for line in out.splitlines() if line.startswith("  placement: ")]
            assert len(placements) == 2
            for line in placements:
                assert re.fullmatch(r"  placement: 3 replicas, cluster east: leader n[123]; replicas: n[123] (current|lag [\d,]+|lagging), n[123] (current|lag [\d,]+|lagging)", line), line
            store_events("order-1", 3)
            status = json.loads(run("eventstore_status", "--format", "json")[0])
            leader = status["streams"][0]["cluster"]["leader"]
            table, _ = run("eventstore_status")
            lines = table.splitlines()
            assert max(len(line) for line in lines) <= 100, table
            assert lines[4].split()[:4] + lines[4].split()[-2:] == ["EVENTSTORE", "3", lines[4].split()[2], "1", "3", leader]
            assert lines[8].split()[:3] == ["EVENTSTORE", "es.events.>", "east"]
            followers = " ".join(lines[8].split()[3:])
            assert re.fullmatch(r"n[123] (current|lag [\d,]+|lagging), n[123] (current|lag [\d,]+|lagging)", followers), followers
            assert leader not in followers
        finally:
            reset_store()
def test_status_refuses_an_unknown_format():
    with pytest.raises(CommandError, match="invalid choice: 'xml'"):
        run("eventstore_status", "--format", "xml")


# ----- eventstore_actors -----


@pytest.fixture
def three_actors() -> None:
    store_events("order-1", 3)
    store_events("order-2", 1)
    store_events("user-9", 2)
    get_store().save_snapshot(ActorSnapshot(actor_id="order-1", version=2, state={"total": 2}))


def test_actors_table(three_actors):
    out, err = run("eventstore_actors")
    assert [line.split() for line in out.splitlines()] == [
        ["ACTOR", "TYPE", "LATEST", "SNAPSHOT"],
        ["order-1", "order", "3", "2"],
        ["order-2", "order", "1", "-"],
        ["user-9", "user", "2", "-"],
    ]
    assert "3 of 3 actors" in err


def test_actors_json_filters_and_limit(three_actors):
    out, _ = run("eventstore_actors", "--format", "json", "--type", "order")
    store = get_store()
    last = {a: format_timestamp(store.get_events(a)[-1].timestamp) for a in ("order-1", "order-2")}
    assert json.loads(out) == [
        {"actor_id": "order-1", "actor_type": "order", "latest_version": 3, "snapshot_version": 2, "last_event_at": last["order-1"]},
        {"actor_id": "order-2", "actor_type": "order", "latest_version": 1, "snapshot_version": None, "last_event_at": last["order-2"]},
    ]
    out, _ = run("eventstore_actors", "--format", "json", "--prefix", "user-")
    assert [a["actor_id"] for a in json.loads(out)] == ["user-9"]
    out, err = run("eventstore_actors", "--format", "json", "--limit", "1")
    assert [a["actor_id"] for a in json.loads(out)] == ["order-1"]
    assert "1 of 3 actors; use --limit 3" in err


def test_actors_pages_past_a_thousand():
    store = get_store()
    for n in range(1005):
        store.save_event(Event(actor_id=f"a-{n:04d}", version=1, event_type="Made"))
    out, _ = run("eventstore_actors", "--format", "json", "--limit", "0", verbosity=0)
    assert [a["actor_id"] for a in json.loads(out)] == [f"a-{n:04d}" for n in range(1005)]
    out, _ = run("eventstore_actors", "--format", "json", "--limit", "1002")
    assert len(json.loads(out)) == 1002


def test_actors_of_an_empty_store():
    out, err = run("eventstore_actors", "--format", "json")
    assert json.loads(out) == [] and "0 of 0 actors" in err


def test_counts_of_one_read_in_the_singular(tmp_path):
    store_events("order-1", 1)
    get_store().save_snapshot(ActorSnapshot(actor_id="order-1", version=1, state={}))
    _, err = run("eventstore_actors")
    assert "1 of 1 actor\n" in err
    out, _ = run("eventstore_verify")
    assert "no problems in 1 event of 1 actor and 1 snapshot" in out
    _, err = run("eventstore_export", str(tmp_path / "one.jsonl"), "--snapshots")
    assert "exported 1 event of 1 actor and 1 snapshot in" in err


def test_actors_refuses_a_negative_limit():
    with pytest.raises(CommandError, match="expected an integer >= 0, got '-1'"):
        run("eventstore_actors", "--limit", "-1")


# ----- eventstore_events -----


def test_events_formats():
    stored = store_events("order-7", 3)
    out, _ = run("eventstore_events", "order-7", "--format", "json")
    assert json.loads(out) == [e.to_dict() for e in stored]
    out, _ = run("eventstore_events", "order-7", "--format", "jsonl", "--from-version", "1", "--limit", "1")
    assert [json.loads(line) for line in out.splitlines()] == [stored[1].to_dict()]
    out, _ = run("eventstore_events", "order-7")
    header, *rows = out.splitlines()
    assert header.split() == ["VERSION", "TIMESTAMP", "EVENT_TYPE", "DATA"]
    assert rows[2].split(maxsplit=3) == ["3", stored[2].to_dict()["timestamp"], "Counted", '{"n":3,"text":"héllo"}']


def test_events_of_an_unknown_actor_is_an_error():
    with pytest.raises(CommandError, match="actor 'order-404' has no events"):
        run("eventstore_events", "order-404")


def test_events_after_the_latest_version_is_empty_not_an_error():
    store_events("order-7", 2)
    out, _ = run("eventstore_events", "order-7", "--from-version", "2", "--format", "json")
    assert json.loads(out) == []


def test_events_with_a_limit_say_how_many_more_there_are():
    store_events("order-7", 5)
    out, err = run("eventstore_events", "order-7", "--format", "jsonl", "--limit", "2")
    assert [json.loads(line)["version"] for line in out.splitlines()] == [1, 2]
    assert "2 events shown, 3 more events up to version 5; use --from-version 2 to see them" in err
    _, err = run("eventstore_events", "order-7", "--from-version", "3", "--limit", "1")
    assert "1 event shown, 1 more event up to version 5; use --from-version 4" in err
    _, err = run("eventstore_events", "order-7", "--from-version", "3", "--limit", "2")
    assert err == ""


def test_events_from_a_version_past_the_end_say_so():
    store_events("order-7", 2)
    out, err = run("eventstore_events", "order-7", "--from-version", "9")
    assert out.splitlines()[1:] == []
    assert "no events after version 9: actor 'order-7' is at version 2" in err


def test_follow_says_it_waits_and_shows_new_events_without_polling():
    """With a 30 s idle tick, a new event shows at once: the live feed wakes the command, not a timer."""
    store_events("order-9", 1)
    command, out, err = EventsCommand(), WatchedOutput(), WatchedOutput()
    args = (command, "order-9", "--follow", "--format", "jsonl", "--poll-interval", "30")
    thread = threading.Thread(target=call_command, args=args, kwargs={"stdout": out, "stderr": err})
    thread.start()
    try:
        err.wait_until(lambda lines: len(lines) == 1)
        started = time.monotonic()
        store_events("order-9", 1, start=2)
        lines = out.wait_until(lambda lines: len(lines) == 2)
        shown_after = time.monotonic() - started
    finally:
        command.stop.set()
        store_events("order-wake", 1)  # an event of the same type ends the wait at once
        thread.join(10)
    assert not thread.is_alive()
    assert err.getvalue().splitlines() == ["waiting for new events of actor 'order-9' after version 1 (Ctrl-C to stop)"]
    assert [json.loads(line)["version"] for line in lines] == [1, 2]
    assert shown_after < 5


def test_events_refuses_an_invalid_actor_id():
    with pytest.raises(CommandError, match="more than the 256 allowed"):
        run("eventstore_events", "x" * 300)


def test_events_warns_of_malformed_messages_on_stderr(nats_url):
    store_events("order-7", 1)
    position = publish_raw(nats_url, get_store().engine.subjects.event_subject("order-7"), b"not json")
    out, err = run("eventstore_events", "order-7", "--format", "jsonl")
    assert len(out.splitlines()) == 1
    assert f"malformed message at position {position} skipped: body is not JSON" in err


def test_follow_refuses_json_format():
    with pytest.raises(CommandError, match="use --format jsonl or table"):
        run("eventstore_events", "order-7", "--follow", "--format", "json")


def test_follow_prints_new_events_until_stopped():
    store_events("order-7", 2)
    command, out, failures = EventsCommand(), WatchedOutput(), []

    def follow() -> None:
        try:
            call_command(command, "order-7", "--follow", "--format", "jsonl", "--poll-interval", "0.02", stdout=out, stderr=io.StringIO())
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            failures.append(e)

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        out.wait_until(lambda lines: len(lines) == 2)
        store_events("order-7", 3, start=3)
        get_store().save_event(Event(actor_id="order-7", version=6, event_type="Closed"))
        lines = out.wait_until(lambda lines: len(lines) == 6)
    finally:
        command.stop.set()
        thread.join(10)
    assert not thread.is_alive() and not failures
    assert [json.loads(line)["version"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert json.loads(lines[-1])["event_type"] == "Closed"


def test_follow_waits_for_the_first_event_of_a_new_actor():
    command, out = EventsCommand(), WatchedOutput()
    thread = threading.Thread(target=call_command, args=(command, "order-new", "--follow", "--poll-interval", "0.02"), kwargs={"stdout": out, "stderr": io.StringIO()})
    thread.start()
    try:
        out.wait_until(lambda lines: len(lines) == 1)  # the table header
        store_events("order-new", 1)
        lines = out.wait_until(lambda lines: len(lines) == 2)
    finally:
        command.stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert lines[1].split()[:3][0] == "1" and "Counted" in lines[1]


def test_follow_from_a_version_not_stored_yet_shows_only_the_events_after_it():
    store_events("order-8", 2)
    command, out = EventsCommand(), WatchedOutput()
    args = (command, "order-8", "--from-version", "3", "--follow", "--format", "jsonl", "--poll-interval", "0.02")
    thread = threading.Thread(target=call_command, args=args, kwargs={"stdout": out, "stderr": io.StringIO()})
    thread.start()
    try:
        store_events("order-8", 3, start=3)
        lines = out.wait_until(lambda lines: len(lines) >= 2)
    finally:
        command.stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert [json.loads(line)["version"] for line in lines] == [4, 5]


# ----- store errors -----

UNREACHABLE_CALLS = [
    ("eventstore_setup",),
    ("eventstore_status",),
    ("eventstore_actors",),
    ("eventstore_events", "order-1"),
    ("eventstore_verify",),
    ("eventstore_export", "-"),
]


@pytest.mark.parametrize("call", UNREACHABLE_CALLS, ids=[c[0] for c in UNREACHABLE_CALLS])
def test_unreachable_server_is_a_command_error(settings, call):
    port = free_port()
    settings.EVENTSTORE = {"SERVERS": [f"nats://127.0.0.1:{port}"], "TIMEOUT": 1}
    with pytest.raises(CommandError) as caught:
        run(*call)
    message = str(caught.value)
    assert f"nats://127.0.0.1:{port}" in message
    assert "Check settings.EVENTSTORE['SERVERS']" in message and "eventstore_server" in message


NOT_SET_UP_CALLS = [c for c in UNREACHABLE_CALLS if c[0] != "eventstore_setup"]


@pytest.mark.parametrize("call", NOT_SET_UP_CALLS, ids=[c[0] for c in NOT_SET_UP_CALLS])
def test_streams_not_set_up_is_a_command_error_saying_how_to_set_them_up(settings, stream_name, call):
    settings.EVENTSTORE = {**settings.EVENTSTORE, "AUTO_SETUP": False}
    with pytest.raises(CommandError) as caught:
        run(*call)
    message = str(caught.value)
    assert stream_name in message
    assert message.endswith(". Run `manage.py eventstore_setup` (or leave AUTO_SETUP on).")
    assert message.count("eventstore_setup") == 1


# ----- paging through the stream (the feed view and the commands share it) -----


def test_read_pages_counts_malformed_messages_and_says_when_the_last_page_comes(nats_url, subject_prefix):
    store_events("order-1", 2)
    publish_raw(nats_url, Subjects(subject_prefix).event_subject("order-1"), b"not json")
    store_events("order-1", 2, start=3)
    store_events("user-1", 1)
    pages = list(read_pages(get_store(), page_size=2))
    assert [([e.position for e in p.events], [m.position for m in p.errors], p.position, p.more) for p in pages] == [
        ([1, 2], [], 2, True),
        ([4], [3], 4, True),
        ([5, 6], [], 6, False),
    ]
    assert [p.position for p in read_pages(get_store(), 1, page_size=2, upto=4)] == [3, 4]
    assert [[e.actor_id for e in p.events] for p in read_pages(get_store(), actor_type="user")] == [["user-1"]]
    assert [[e.version for e in p.events] for p in read_pages(get_store(), 4, actor_id="order-1")] == [[4]]
    assert list(read_pages(get_store(), 6)) == []
