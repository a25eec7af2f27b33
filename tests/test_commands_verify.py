"""eventstore_verify finds each planted kind of problem, and nothing on a clean stream."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_eventstore import ActorSnapshot, get_store

from .conftest import publish_raw
from .test_commands import run, store_events


def subject(actor_id: str) -> str:
    store = get_store()
    store.setup()
    return store.engine.subjects.event_subject(actor_id)


def raw_event(actor_id: str, version: int, event_id: str, *, header_version: int | None = None, event_type: str = "Raw") -> tuple[bytes, dict[str, str]]:
    """A message as the store writes it; ``header_version`` makes its Es-Version header disagree."""
    body = {"id": event_id, "eventType": event_type, "actorId": actor_id, "version": version, "data": {}, "metadata": {}, "timestamp": "2025-01-01T00:00:00Z"}
    headers = {"Nats-Msg-Id": event_id, "Es-Version": str(header_version or version), "Es-Event-Type": event_type}
    return json.dumps(body).encode(), headers


def verify(*args: str) -> tuple[str, int]:
    """The report followed by the error message, and the exit status the command line would give."""
    out = io.StringIO()
    try:
        call_command("eventstore_verify", *args, stdout=out, stderr=io.StringIO())
    except CommandError as e:
        return out.getvalue() + str(e), e.returncode
    return out.getvalue(), 0


def find_problems(*args: str) -> str:
    out, status = verify(*args)
    assert status == 1, out
    return out


def test_clean_stream_has_no_problems():
    store_events("order-1", 3)
    store_events("user-1", 2)
    get_store().save_snapshot(ActorSnapshot(actor_id="order-1", version=3, state={}))
    assert verify() == ("no problems in 5 events of 2 actors and 1 snapshot\n", 0)


def test_empty_stream_has_no_problems():
    assert verify() == ("no problems in 0 events of 0 actors and 0 snapshots\n", 0)


def test_finds_a_raw_malformed_message(nats_url):
    store_events("order-1", 2)
    position = publish_raw(nats_url, subject("order-1"), b"{broken")
    out = find_problems()
    assert f"position {position}  subject {subject('order-1')}: malformed message: body is not JSON" in out
    assert "found 1 problem in 2 events of 1 actor" in out


def test_finds_a_header_body_mismatch(nats_url):
    store_events("order-1", 2)
    body, headers = raw_event("order-1", 3, "e-3", header_version=4)
    position = publish_raw(nats_url, subject("order-1"), body, headers)
    out = find_problems()
    assert f"position {position}  subject {subject('order-1')}: malformed message: header Es-Version '4' disagrees with body version 3" in out


def test_finds_an_event_type_header_mismatch(nats_url):
    body, headers = raw_event("order-1", 1, "e-1")
    headers["Es-Event-Type"] = "Other"
    publish_raw(nats_url, subject("order-1"), body, headers)
    out = find_problems()
    assert "header Es-Event-Type 'Other' disagrees with body eventType 'Raw'" in out


def test_finds_gaps_and_repeats(nats_url):
    store_events("order-1", 2)
    gap = publish_raw(nats_url, subject("order-1"), *raw_event("order-1", 5, "e-5"))
    repeat = publish_raw(nats_url, subject("order-1"), *raw_event("order-1", 5, "e-5b"))
    out = find_problems()
    assert f"position {gap}  actor 'order-1': version 5 follows version 2: versions 3..4 missing" in out
    assert f"position {repeat}  actor 'order-1': version 5 after version 5: out of order or repeated" in out


def test_finds_an_actor_not_starting_at_version_1(nats_url):
    position = publish_raw(nats_url, subject("user-2"), *raw_event("user-2", 2, "u-2"))
    out = find_problems()
    assert f"position {position}  actor 'user-2': version 2 follows version 0: version 1 missing" in out


def publish_snapshot(nats_url: str, actor_id: str, version: int) -> None:
    """A snapshot written behind the store's back (the store itself refuses one ahead of the events)."""
    snapshot = {"actorId": actor_id, "version": version, "state": {}, "timestamp": "2025-01-01T00:00:00Z", "position": 0}
    publish_raw(nats_url, get_store().engine.subjects.snapshot_subject(actor_id), json.dumps(snapshot).encode(), {"Es-Version": str(version)})


def test_finds_a_snapshot_ahead_of_its_actor(nats_url):
    store_events("order-1", 2)
    publish_snapshot(nats_url, "order-1", 9)
    out = find_problems()
    assert "actor 'order-1': snapshot at version 9 is ahead of the latest event, version 2" in out


def test_finds_a_snapshot_of_an_actor_without_events(nats_url):
    store_events("order-1", 1)
    publish_snapshot(nats_url, "order-7", 3)
    out = find_problems()
    assert "actor 'order-7': snapshot at version 3, but the actor has no events" in out
    assert "in 1 event of 1 actor and 1 snapshot" in out
    assert "actor 'order-7': snapshot at version 3" in find_problems("--actor", "order-7")
    assert verify("--type", "user")[1] == 0  # another type's snapshots are not looked at


def test_type_and_actor_filters(nats_url):
    store_events("order-1", 2)
    store_events("order-2", 2)
    publish_raw(nats_url, subject("user-1"), b"junk")
    assert verify("--type", "order")[1] == 0
    assert verify("--actor", "order-2") == ("no problems in 2 events of 1 actor and 0 snapshots\n", 0)
    assert "user.user-1: malformed message" in find_problems("--type", "user")


def test_unknown_actor_is_an_error():
    store_events("order-1", 1)
    with pytest.raises(CommandError, match="actor 'order-9' has no events"):
        run("eventstore_verify", "--actor", "order-9")


def test_progress_bar_at_verbosity_2():
    store_events("order-1", 3)
    _, err = run("eventstore_verify", verbosity=2)
    assert "verifying [" in err and "100%" in err


def verify_json(*args: str) -> tuple[list[dict], str, int]:
    """The JSON problems on stdout, stderr (summary and error), and the exit status."""
    out, err = io.StringIO(), io.StringIO()
    status = 0
    try:
        call_command("eventstore_verify", "--format", "json", *args, stdout=out, stderr=err)
    except CommandError as e:
        err.write(str(e))
        status = e.returncode
    return json.loads(out.getvalue()), err.getvalue(), status


def test_json_format_on_a_clean_stream_is_an_empty_list():
    store_events("order-1", 2)
    problems, err, status = verify_json()
    assert (problems, status) == ([], 0)
    assert "no problems in 2 events of 1 actor and 0 snapshots" in err


def test_json_format_lists_every_kind_of_problem(nats_url):
    store_events("order-1", 2)
    malformed = publish_raw(nats_url, subject("order-1"), b"{broken")
    gap = publish_raw(nats_url, subject("order-1"), *raw_event("order-1", 5, "e-5"))
    repeat = publish_raw(nats_url, subject("order-1"), *raw_event("order-1", 5, "e-5b"))
    publish_snapshot(nats_url, "order-1", 9)
    problems, err, status = verify_json()
    assert status == 1
    assert "found 4 problems in 4 events of 1 actor and 1 snapshot" in err
    assert problems[0]["detail"].startswith("malformed message: body is not JSON")
    assert problems == [
        {"kind": "malformed_message", "position": malformed, "actor_id": None, "subject": subject("order-1"), "detail": problems[0]["detail"]},
        {"kind": "version_gap", "position": gap, "actor_id": "order-1", "subject": None, "detail": "version 5 follows version 2: versions 3..4 missing"},
        {"kind": "version_out_of_order", "position": repeat, "actor_id": "order-1", "subject": None, "detail": "version 5 after version 5: out of order or repeated"},
        {"kind": "snapshot_ahead", "position": None, "actor_id": "order-1", "subject": None, "detail": "snapshot at version 9 is ahead of the latest event, version 5"},
    ]


def test_json_format_keeps_filters_and_the_unknown_actor_error(nats_url):
    store_events("order-1", 1)
    publish_raw(nats_url, subject("user-1"), b"junk")
    assert verify_json("--type", "order")[0::2] == ([], 0)
    problems, _, status = verify_json("--type", "user")
    assert status == 1 and [p["subject"] for p in problems] == [subject("user-1")]
    with pytest.raises(CommandError, match="actor 'order-9' has no events"):
        run("eventstore_verify", "--actor", "order-9", "--format", "json")


def test_bad_format_is_refused():
    with pytest.raises(CommandError, match="invalid choice: 'yaml'"):
        run("eventstore_verify", "--format", "yaml")
