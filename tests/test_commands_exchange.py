"""eventstore_export and eventstore_import: the JSON Lines format, round trips, idempotence, refusals."""

from __future__ import annotations

import io
import json
import os
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_eventstore import ActorSnapshot, Event, get_store
from django_eventstore.management.base import Progress, to_json
from django_eventstore.management.commands import eventstore_import
from django_eventstore.testing import NatsServer

from .conftest import publish_raw
from .test_commands import run, store_events
from .test_faults import _eventually

T0 = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)


def sample_data(n: int) -> dict:
    """Event data exercising what JSON can carry: unicode, escapes, floats, big ints, nesting, key order."""
    return {
        "n": n,
        "z_first": "kept in this order",
        "text": f"naïve café ☕ {n} \"quoted\" \\ back\nslash \u0000",
        "price": n / 7,
        "big": 2**63 + n,
        "nested": {"list": [1, 2.5, None, True, {"k": []}], "empty": {}},
    }


def make_dataset(actors: int = 1000, per_actor: int = 10) -> list[Event]:
    """Store actors x per_actor events: the first half actor after actor, the rest interleaved."""
    store = get_store()
    stored: list[Event] = []
    ids = [f"{('order', 'user', 'cart')[i % 3]}-{i}" for i in range(actors)]

    def event(actor: str, version: int) -> Event:
        return Event(
            actor_id=actor,
            version=version,
            event_type=f"Happened{version % 3}",
            data=sample_data(version),
            metadata={"correlation_id": str(uuid.uuid4())},
            timestamp=T0 + timedelta(microseconds=version),
        )

    for actor in ids[: actors // 2]:
        stored += [store.save_event(event(actor, v)) for v in range(1, per_actor + 1)]
    for version in range(1, per_actor + 1):
        for actor in ids[actors // 2 :]:
            stored.append(store.save_event(event(actor, version)))
    return stored


def read_everything() -> list[Event]:
    store, events, position = get_store(), [], 0
    while batch := store.read_all(position, 1000):
        events += batch
        position = batch[-1].position
    return events


def use_new_stream(settings, eventstore_settings) -> None:
    name = f"I{uuid.uuid4().hex[:12].upper()}"
    settings.EVENTSTORE = {**eventstore_settings, "STREAM": name, "SUBJECT_PREFIX": name.lower()}


def import_lines(*lines: str, dry_run: bool = False) -> str:
    args = ["eventstore_import", "-"] + (["--dry-run"] if dry_run else [])
    out, _ = run(*args, stdin=io.StringIO("".join(line + "\n" for line in lines)))
    return out


def line(actor_id: str, version: int, event_id: str | None = None, **fields) -> str:
    doc = {
        "id": event_id or f"{actor_id}-v{version}",
        "event_type": "Made",
        "actor_id": actor_id,
        "version": version,
        "data": {"v": version},
        "metadata": {},
        "timestamp": "2025-01-01T00:00:00Z",
        "position": None,
    }
    return to_json({**doc, **fields})


def last_position() -> int:
    return get_store().server_summary().streams[0].last_seq


# ----- export -----


def test_export_writes_rest_shaped_lines_in_stream_order(tmp_path):
    first = store_events("order-1", 2)
    second = store_events("user-1", 1)
    third = store_events("order-1", 1, start=3)
    target = tmp_path / "out.jsonl"
    out, err = run("eventstore_export", str(target))
    assert out == ""
    assert "exported 4 events of 2 actors" in err
    assert target.read_text(encoding="utf-8").splitlines() == [to_json(e.to_dict()) for e in first + second + third]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no partial file left


def test_export_to_stdout_with_filters_and_snapshots():
    store_events("order-1", 3)
    store_events("user-1", 2)
    store = get_store()
    snapshot = store.save_snapshot(ActorSnapshot(actor_id="order-1", version=2, state={"sum": 3}, timestamp=T0))
    out, _ = run("eventstore_export", "-", "--type", "order", "--snapshots")
    lines = [json.loads(text) for text in out.splitlines()]
    assert [(d.get("kind"), d["actor_id"], d["version"]) for d in lines] == [(None, "order-1", 1), (None, "order-1", 2), (None, "order-1", 3), ("snapshot", "order-1", 2)]
    assert lines[-1] == {"kind": "snapshot", **snapshot.to_dict()}
    out, _ = run("eventstore_export", "-", "--actor", "user-1")
    assert [json.loads(text)["actor_id"] for text in out.splitlines()] == ["user-1", "user-1"]


def test_export_of_an_unknown_actor_is_an_error(tmp_path):
    store_events("order-1", 1)
    with pytest.raises(CommandError, match="actor 'order-2' has no events"):
        run("eventstore_export", str(tmp_path / "x.jsonl"), "--actor", "order-2")
    assert list(tmp_path.iterdir()) == []


def test_export_files_get_the_users_umask_and_keep_a_replaced_files_mode(tmp_path):
    store_events("order-1", 1)
    old = os.umask(0o027)
    try:
        run("eventstore_export", str(tmp_path / "new.jsonl"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.jsonl").stat().st_mode) == 0o640
    existing = tmp_path / "existing.jsonl"
    existing.write_text("")
    existing.chmod(0o604)
    run("eventstore_export", str(existing))
    assert stat.S_IMODE(existing.stat().st_mode) == 0o604 and existing.read_text().count("\n") == 1


def test_export_into_a_missing_directory_is_an_error(tmp_path):
    with pytest.raises(CommandError, match=r"cannot write .*no/such/x.jsonl: No such file or directory"):
        run("eventstore_export", str(tmp_path / "no" / "such" / "x.jsonl"))


def test_export_skips_malformed_messages_with_a_warning(nats_url):
    store_events("order-1", 1)
    store = get_store()
    position = publish_raw(nats_url, store.engine.subjects.event_subject("order-1"), b"junk")
    store_events("order-1", 1, start=2)
    out, err = run("eventstore_export", "-")
    assert [json.loads(text)["version"] for text in out.splitlines()] == [1, 2]
    assert f"skipped malformed message at position {position}" in err


def test_export_progress_bar_at_verbosity_2():
    store_events("order-1", 3)
    _, err = run("eventstore_export", "-", verbosity=2)
    assert "exporting [" in err and "100% 3" in err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_export_progress_is_one_line_per_step_in_a_file_and_redrawn_on_a_terminal():
    store_events("order-1", 3)
    _, err = run("eventstore_export", "-", verbosity=2)
    assert "\r" not in err
    assert [line.split()[0] for line in err.splitlines()] == ["exporting", "exported"]
    assert err.splitlines()[0].endswith("100% 3")
    terminal = Terminal()
    call_command("eventstore_export", "-", stdout=io.StringIO(), stderr=terminal)
    assert terminal.getvalue().startswith("\rexporting [") and "100% 3\n" in terminal.getvalue()


def test_progress_in_a_file_writes_a_line_per_tenth():
    err = io.StringIO()
    command = eventstore_import.Command(stdout=io.StringIO(), stderr=err)
    command.verbosity = 2
    progress = Progress(command, 1000, "importing")
    for done in range(0, 1001, 25):
        progress.update(done, done)
    progress.finish(1000)
    assert [line.split()[-2] for line in err.getvalue().splitlines()] == [f"{p}%" for p in range(10, 101, 10)]


# ----- round trip -----


@pytest.mark.slow
def test_export_then_import_reproduces_10000_events_over_1000_actors(settings, eventstore_settings, tmp_path):
    original = make_dataset(1000, 10)
    get_store().save_snapshot(ActorSnapshot(actor_id="order-0", version=7, state={"s": "☃"}, timestamp=T0))
    target = tmp_path / "export.jsonl"
    run("eventstore_export", str(target), "--snapshots")
    assert len(target.read_bytes().splitlines()) == 10_001

    use_new_stream(settings, eventstore_settings)
    assert last_position() == 0
    out, _ = run("eventstore_import", str(target))
    assert out.strip() == "imported 10,000 events of 1,000 actors and 1 snapshot (0 events and 0 snapshots were already stored)"

    copied = read_everything()
    assert len(copied) == 10_000
    for before, after in zip(original, copied):  # same stream order
        assert (after.id, after.actor_id, after.version, after.event_type, after.timestamp, after.metadata) == (
            before.id, before.actor_id, before.version, before.event_type, before.timestamp, before.metadata
        )
        assert to_json(after.data).encode() == to_json(before.data).encode()
    assert get_store().get_latest_snapshot("order-0").state == {"s": "☃"}

    out, _ = run("eventstore_import", str(target))
    assert out.strip() == "imported 0 events of 1,000 actors and 0 snapshots (10,000 events and 1 snapshot were already stored)"
    assert last_position() == 10_000


# ----- import -----


def test_import_twice_stores_nothing_the_second_time(settings, eventstore_settings):
    store_events("order-1", 3)
    store_events("user-1", 2)
    exported, _ = run("eventstore_export", "-")
    use_new_stream(settings, eventstore_settings)
    assert "imported 5 events of 2 actors" in import_lines(*exported.splitlines())
    assert "imported 0 events of 2 actors and 0 snapshots (5 events" in import_lines(*exported.splitlines())
    assert last_position() == 5


def test_import_completes_an_actor_partly_stored():
    store = get_store()
    store.append("order-1", [Event(id="order-1-v1", event_type="Made", data={"v": 1}), Event(id="order-1-v2", event_type="Made", data={"v": 2})], 0)
    out = import_lines(*(line("order-1", v) for v in range(1, 5)))
    assert "imported 2 events of 1 actor and 0 snapshots (2 events" in out
    assert [e.id for e in store.get_events("order-1")] == ["order-1-v1", "order-1-v2", "order-1-v3", "order-1-v4"]


def test_import_dry_run_writes_nothing():
    out = import_lines(line("order-1", 1), line("order-1", 2), dry_run=True)
    assert out.strip() == "would import 2 events of 1 actor (0 already stored) and up to 0 snapshots"
    assert get_store().get_latest_version("order-1") == 0


def test_import_keeps_ids_versions_timestamps_and_metadata():
    import_lines(line("cart-5", 1, "abc", metadata={"user": "zoë"}, timestamp="2020-05-06T07:08:09.000123+02:00"))
    event = get_store().get_events("cart-5")[0]
    assert (event.id, event.version, event.metadata) == ("abc", 1, {"user": "zoë"})
    assert event.timestamp == datetime(2020, 5, 6, 5, 8, 9, 123, tzinfo=UTC)


def test_import_stores_more_events_than_one_save_events_call_takes():
    out = import_lines(*(line("order-1", v) for v in range(1, 1203)))
    assert "imported 1,202 events" in out
    assert get_store().get_latest_version("order-1") == 1202


@pytest.mark.parametrize(
    "lines, message",
    [
        ([line("order-1", 1), "{not json"], "line 3: not JSON: Expecting property name enclosed in double quotes at column 2"),
        (["[1, 2]"], "line 2: expected a JSON object, got list"),
        ([line("order-1", 1, colour="red")], "line 2: unknown field colour"),
        ([to_json({"id": "x", "actor_id": "order-1", "version": 1})], "line 2: missing fields event_type, data, timestamp"),
        ([line("order-1", 1, kind="command")], "line 2: unknown kind 'command'"),
        ([line("order-1", 0)], "line 2: version must be an int >= 1, got 0"),
        ([line("order-1", 1, data=[1])], "line 2: data must be a dict, got list"),
        ([line("order-1", 1, timestamp="yesterday")], "line 2: bad timestamp 'yesterday'"),
        ([line("order-1", 1, timestamp="2025-01-01T00:00:00")], "line 2: bad timestamp .* has no time zone"),
        ([line("", 1)], "line 2: actor id must not be empty"),
        ([line("order-1", 1), line("order-1", 3)], r"line 3: actor 'order-1' version 3 follows version 1 \(line 2\)"),
        ([line("order-1", 2)], "line 2: actor 'order-1' version 2 would leave a gap: the store has versions up to 0"),
        ([line("order-1", 1, "same"), line("order-2", 1, "same")], "line 3: event id 'same' is also used on line 2"),
        (
            [line("order-1", 1), to_json({"kind": "snapshot", "actor_id": "order-1", "version": 2, "state": {}, "timestamp": "2025-01-01T00:00:00Z"})],
            "line 3: snapshot of actor 'order-1' at version 2 is ahead of its events",
        ),
    ],
    ids=["json", "array", "unknown-field", "missing-fields", "kind", "version", "data", "timestamp", "naive-timestamp", "actor-id", "order", "gap", "duplicate-id", "snapshot-ahead"],
)
def test_import_refuses_invalid_input_before_writing(lines, message):
    with pytest.raises(CommandError, match=message):
        import_lines(line("user-1", 1), *lines)
    assert last_position() == 0


def test_import_refuses_a_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(line("order-1", 1).encode() + b"\n" + line("order-1", 2, data={"t": "x"}).encode().replace(b"x", b"\xff") + b"\n")
    with pytest.raises(CommandError, match="line 2: not UTF-8: invalid start byte"):
        run("eventstore_import", str(path))


def test_import_refuses_a_conflict_with_the_store():
    store_events("order-1", 2)
    with pytest.raises(CommandError, match=r"line 3: actor 'order-1' version 2 conflicts with the store: stored event id '.+', the file has 'order-1-v2'"):
        import_lines(line("user-1", 1), line("order-1", 1, get_store().get_events("order-1")[0].id), line("order-1", 2))
    assert get_store().get_latest_version("user-1") == 0


class AnotherWriterBetweenThePasses(eventstore_import.Command):
    """The import, with another writer storing order-2's version 1 after the check and before the writes."""

    def write(self, source, plan, written):
        get_store().save_event(Event(actor_id="order-2", event_type="Other", version=1))
        return super().write(source, plan, written)


def import_with(command, *lines: str) -> str:
    out = io.StringIO()
    call_command(command, "-", stdin=io.StringIO("".join(line + "\n" for line in lines)), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_a_conflict_while_writing_names_its_line_and_says_what_was_stored():
    with pytest.raises(CommandError, match=r"line 2: version conflict on actor 'order-2'.*\. Stored before the failure: 1 event and 0 snapshots, the last from line 1; importing the file again"):
        import_with(AnotherWriterBetweenThePasses(), line("order-1", 1), line("order-2", 1), line("order-3", 1))
    assert get_store().get_latest_version("order-1") == 1
    assert get_store().get_latest_version("order-3") == 0


def test_a_conflict_on_the_first_line_written_says_nothing_was_stored():
    with pytest.raises(CommandError, match=r"^line 1: version conflict on actor 'order-2'.*\. Nothing of this file was stored\.$") as raised:
        import_with(AnotherWriterBetweenThePasses(), line("order-2", 1), line("order-1", 1))
    assert "before line 1" not in str(raised.value)
    assert get_store().get_latest_version("order-1") == 0


class NatsStopsAfterTheFirstChunk(eventstore_import.Command):
    """The import, with the test's nats-server stopped once the first chunk of events is stored."""

    def __init__(self, server):
        super().__init__()
        self.server = server

    def store_events(self, pending, written):
        super().store_events(pending, written)
        self.server.stop()


def test_nats_failing_mid_import_says_how_much_was_stored_and_the_last_line(settings, eventstore_settings, tmp_path):
    server = NatsServer(store_dir=tmp_path).start()
    try:
        settings.EVENTSTORE = {**eventstore_settings, "SERVERS": [server.url], "TIMEOUT": 2.0}
        lines = [line(f"order-{n}", 1) for n in range(1, 1501)]
        with pytest.raises(CommandError) as raised:
            import_with(NatsStopsAfterTheFirstChunk(server), *lines)
        message = str(raised.value)
        assert "Stored before the failure: 1,000 events and 0 snapshots, the last from line 1000; importing the file again skips what is stored" in message
        assert "NATS" in message and "Traceback" not in message
        server.start()
        assert _eventually(lambda: get_store().get_latest_version("order-1000"))  # once the store has reconnected == 1
        assert get_store().get_latest_version("order-1001") == 0
    finally:
        server.stop()


HUGE_INT = '{"n": ' + "9" * 5000 + "}"
DEEP = '{"a": ' * 100_000 + "1" + "}" * 100_000


def raw_line(data_json: str, actor_id: str = "order-1", version: int = 1) -> str:
    """An event line whose data is the given JSON text, as written by hand."""
    return line(actor_id, version, data={}).replace('"data":{}', f'"data":{data_json}')


def snapshot(state, actor_id: str = "user-1", version: int = 1) -> str:
    return to_json({"kind": "snapshot", "actor_id": actor_id, "version": version, "state": state, "timestamp": "2025-01-01T00:00:00Z"})


@pytest.mark.parametrize(
    "bad, message",
    [
        (raw_line(HUGE_INT), "line 2: an integer of more than 4,300 digits, more than Python reads"),
        (raw_line(DEEP), "line 2: JSON nested too deeply"),
        (raw_line('{"x": NaN}'), "line 2: NaN is not a JSON number"),
        (raw_line('{"x": Infinity}'), "line 2: Infinity is not a JSON number"),
        (raw_line('{"x": [-Infinity]}'), "line 2: -Infinity is not a JSON number"),
        (raw_line('{"x": 1, "x": 2}'), "line 2: key 'x' appears twice in one object"),
        (raw_line('{"x": 1e400}'), "line 2: event 'Made' of actor 'order-1' is not JSON serialisable: Out of range float values"),
        (line("order-1", 1, data={"blob": "x" * 2_000_000}), r"line 2: event 'Made' of actor 'order-1' is 20\d{5} bytes encoded, above the server's max_payload of 1048576 bytes"),
        (snapshot({"x": float("nan")}), "line 2: NaN is not a JSON number"),
        (snapshot({"blob": "x" * 2_000_000}), r"line 2: snapshot of actor 'user-1' is \d+ bytes encoded, above the server's max_payload"),
        (snapshot([1, 2]), "line 2: snapshot state must be a dict, got list"),
        (line("user-1", 2, "user-1-v1"), "line 2: event id 'user-1-v1' is also used on line 1"),
    ],
    ids=["5000-digits", "100000-levels", "nan", "infinity", "minus-infinity", "duplicate-key", "float-overflow", "2mb-event", "nan-state", "2mb-state", "list-state", "duplicate-id"],
)
def test_import_refuses_what_the_store_would_refuse_before_writing(bad, message):
    with pytest.raises(CommandError, match=message):
        import_lines(line("user-1", 1), bad)
    assert last_position() == 0


@pytest.mark.parametrize("bad", [raw_line('{"x": NaN}', "order-9"), line("order-9", 1, data={"blob": "x" * 2_000_000})], ids=["nan", "2mb"])
def test_a_bad_line_1501_after_1500_good_ones_stores_nothing(bad):
    with pytest.raises(CommandError, match=r"^line 1501: "):
        import_lines(*(line(f"order-{n}", 1) for n in range(1, 1501)), bad)
    assert last_position() == 0


def test_import_of_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(CommandError, match=r"cannot read .*nope.jsonl: No such file or directory"):
        run("eventstore_import", str(tmp_path / "nope.jsonl"))


def test_import_snapshots_once_and_never_over_a_newer_one():
    snap = to_json({"kind": "snapshot", "actor_id": "order-1", "version": 1, "state": {"a": 1}, "timestamp": "2025-01-01T00:00:00Z"})
    lines = [line("order-1", 1), line("order-1", 2), snap]
    assert "and 1 snapshot (0 events and 0 snapshots" in import_lines(*lines)
    assert "and 0 snapshots (2 events and 1 snapshot" in import_lines(*lines)
    get_store().save_snapshot(ActorSnapshot(actor_id="order-1", version=2, state={"a": 2}))
    import_lines(*lines)
    assert get_store().get_latest_snapshot("order-1").version == 2


def test_import_skips_blank_lines(tmp_path: Path):
    path = tmp_path / "in.jsonl"
    path.write_text(line("order-1", 1) + "\n\n   \n" + line("order-1", 2) + "\n", encoding="utf-8")
    out, _ = run("eventstore_import", str(path))
    assert "imported 2 events" in out
