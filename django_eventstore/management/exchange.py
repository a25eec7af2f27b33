"""The export format of ``eventstore_export`` / ``eventstore_import``: JSON Lines.

One event per line, with the REST API's field names
(``{"id","event_type","actor_id","version","schema","data","forgotten","metadata","timestamp","position"}``;
``schema`` and ``forgotten`` may be left out: 1 and false);
snapshots as ``{"kind":"snapshot","actor_id","version","state","timestamp"}``.
An event line may carry ``"kind":"event"``; ``position`` is informative (the store assigns new ones).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from django_eventstore import ActorSnapshot, Event
from django_eventstore.core.events import check_event, check_snapshot, parse_timestamp
from django_eventstore.management.base import to_json

SNAPSHOT = "snapshot"
EVENT = "event"
EVENT_REQUIRED = ("id", "event_type", "actor_id", "version", "data", "timestamp")
EVENT_OPTIONAL = ("metadata", "position", "kind", "schema", "forgotten")
SNAPSHOT_REQUIRED = ("actor_id", "version", "state", "timestamp", "kind")


class FormatError(ValueError):
    """A line that is not a valid export line; the message says why."""


def event_line(event: Event) -> str:
    return to_json(event.to_dict())


def snapshot_line(snapshot: ActorSnapshot) -> str:
    return to_json({"kind": SNAPSHOT, **snapshot.to_dict()})


def _no_constant(name: str) -> Any:
    raise FormatError(f"{name} is not a JSON number (the store keeps only finite numbers)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) < len(pairs):  # rare: find the key given twice
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise FormatError(f"key {key!r} appears twice in one object")
            seen.add(key)
    return doc


_DECODER = json.JSONDecoder(parse_constant=_no_constant, object_pairs_hook=_object)  # built once: json.loads(..., hooks) builds one per call


def load_json(raw: bytes) -> Any:
    """The JSON document of a line, refusing what the store could not write back as read: NaN, Infinity,
    integers Python cannot read, duplicate keys, nesting deeper than Python's recursion limit."""
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8: {e.reason} at byte {e.start + 1}") from None
    except json.JSONDecodeError as e:
        raise FormatError(f"not JSON: {e.msg} at column {e.colno}") from None
    except FormatError:  # the hooks' (a ValueError too)
        raise
    except ValueError:  # int() refused a number's digits
        raise FormatError(f"an integer of more than {sys.get_int_max_str_digits():,} digits, more than Python reads") from None
    except RecursionError:
        raise FormatError("JSON nested too deeply") from None


def parse_line(raw: bytes) -> Event | ActorSnapshot:
    """The event or snapshot of one line; FormatError (or the store's InvalidEvent/InvalidActorId) when invalid."""
    doc = load_json(raw)
    if type(doc) is not dict:
        raise FormatError(f"expected a JSON object, got {type(doc).__name__}")
    kind = doc.get("kind", EVENT)
    if kind == EVENT:
        _check_fields(doc, EVENT_REQUIRED, EVENT_OPTIONAL)
        position = doc.get("position")
        if position is not None and type(position) is not int:
            raise FormatError(f"position must be an integer or null, got {position!r}")
        event = Event(
            id=doc["id"],
            event_type=doc["event_type"],
            actor_id=doc["actor_id"],
            version=doc["version"],
            data=doc["data"],
            metadata=doc.get("metadata", {}),
            timestamp=_timestamp(doc["timestamp"]),
            schema=doc.get("schema", 1),
            forgotten=doc.get("forgotten", False),
        )
        check_event(event)
        return event
    if kind == SNAPSHOT:
        _check_fields(doc, SNAPSHOT_REQUIRED, ())
        snapshot = ActorSnapshot(actor_id=doc["actor_id"], version=doc["version"], state=doc["state"], timestamp=_timestamp(doc["timestamp"]))
        check_snapshot(snapshot)
        return snapshot
    raise FormatError(f"unknown kind {kind!r}: expected {EVENT!r} or {SNAPSHOT!r}")


def _check_fields(doc: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    missing = [k for k in required if k not in doc]
    if missing:
        raise FormatError(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    unknown = sorted(set(doc) - set(required) - set(optional))
    if unknown:
        raise FormatError(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")


def _timestamp(value: Any) -> datetime:
    if type(value) is not str:
        raise FormatError(f"timestamp must be an RFC 3339 string, got {value!r}")
    try:
        return parse_timestamp(value)
    except ValueError as e:
        raise FormatError(f"bad timestamp {value!r}: {e}") from None
