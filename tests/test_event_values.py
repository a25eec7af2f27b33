"""The Event value itself: its default id and the fast copy the store makes of it."""

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from django_eventstore import Event
from django_eventstore.core.events import decode_event, encode_event, evolve, format_timestamp, parse_timestamp


def test_a_new_event_gets_a_random_uuid4_text_id():
    ids = [Event(event_type="E").id for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


def test_evolve_is_dataclasses_replace():
    event = Event(event_type="Placed", data={"n": 1}, metadata={"by": "x"})
    changed = evolve(event, actor_id="order-1", version=3, schema=2)
    assert changed == dataclasses.replace(event, actor_id="order-1", version=3, schema=2)
    assert evolve(event) == event and evolve(event) is not event
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.version = 4  # type: ignore[misc]


def test_evolve_names_a_field_events_do_not_have():
    with pytest.raises(TypeError, match="'versoin'"):
        evolve(Event(event_type="E"), versoin=2)


def test_timestamps_are_written_in_utc_whatever_their_zone():
    instant = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert format_timestamp(instant) == "2026-01-02T03:04:05.678000Z"
    assert format_timestamp(instant.astimezone(timezone(timedelta(hours=5, minutes=30)))) == "2026-01-02T03:04:05.678000Z"
    assert format_timestamp(instant.astimezone(timezone(timedelta(0), "GMT"))) == "2026-01-02T03:04:05.678000Z"


def test_timestamps_are_read_back_in_utc():
    assert parse_timestamp("2026-01-02T03:04:05.678Z") == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert parse_timestamp("2026-01-02T08:34:05.678+05:30").tzinfo is UTC
    assert parse_timestamp("2026-01-02T08:34:05.678+05:30") == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    with pytest.raises(ValueError, match="no time zone"):
        parse_timestamp("2026-01-02T03:04:05")


def test_a_decoded_event_has_every_field_of_a_constructed_one():
    """decode_event sets Event's fields itself (a replay makes one per message): none may be left out."""
    event = evolve(Event(event_type="E", data={"n": 1}, metadata={"by": "x"}), actor_id="a-1", version=2, schema=1)
    headers, body = encode_event(event)
    decoded = decode_event("a-1", headers, body, 17)
    assert {f.name: getattr(decoded, f.name) for f in dataclasses.fields(Event)} == {
        f.name: getattr(event, f.name) for f in dataclasses.fields(Event)
    } | {"position": 17}
    assert decoded == evolve(event, position=17)
