"""Serializers: the input ones validate request bodies and query strings; the output ones document responses.

Responses themselves are built with ``Event.to_dict()`` / ``ActorSnapshot.to_dict()``
(the schema test checks the two agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from ..core.limits import DEFAULT_PAGE, MAX_EVENT_ID_LENGTH, MAX_EVENT_TYPE_LENGTH, MAX_PAGE

MAX_INTEGER = 2**53 - 1  # the largest integer every JSON client reads exactly (and far inside NATS's uint64 sequences)


def _printable(value: str) -> str:
    if not value.isprintable():
        raise serializers.ValidationError("Must contain printable characters only.")
    return value


class StrictCharField(serializers.CharField):
    """A JSON string: numbers are refused, not turned into text."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class BoundedIntegerField(serializers.IntegerField):
    """An integer of at most ``MAX_INTEGER``: a larger one is a field error, not a request the server refuses."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("max_value", MAX_INTEGER)
        super().__init__(**kwargs)


class StrictIntegerField(BoundedIntegerField):
    """A JSON integer: strings and floats are refused, not converted."""

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class ActorBodySerializer(serializers.Serializer):
    """A body about the actor of the URL; refuses unknown keys, so a misspelt field is an error rather than dropped."""

    actor_id = StrictCharField(required=False, trim_whitespace=False, help_text="Optional; must be the actor of the URL.")

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                accepted = ", ".join(self.fields)
                raise serializers.ValidationError({key: [f"Unknown field; accepted: {accepted}."] for key in unknown})
        return super().to_internal_value(data)

    def validate_actor_id(self, value: str) -> str:
        expected = self.context["actor_id"]
        if value != expected:
            raise serializers.ValidationError(f"Does not match the actor in the URL, {expected!r}.")
        return value


# ----- request bodies -----


class EventInputSerializer(ActorBodySerializer):
    """One event to store: ``event_type``, ``version`` and ``data`` required."""

    id = StrictCharField(required=False, max_length=MAX_EVENT_ID_LENGTH, trim_whitespace=False, help_text="Defaults to a new UUID; a retry with the same id is not stored twice.")
    event_type = StrictCharField(max_length=MAX_EVENT_TYPE_LENGTH, trim_whitespace=False)
    version = StrictIntegerField(min_value=1, help_text="The actor's latest version + 1.")
    schema = StrictIntegerField(required=False, min_value=1, help_text="The schema of data; defaults to the newest the project's upcasters know for the type.")
    data = serializers.DictField()
    metadata = serializers.DictField(required=False)

    def validate_id(self, value: str) -> str:
        if " " in value:
            raise serializers.ValidationError("Must not contain spaces.")
        return _printable(value)

    def validate_event_type(self, value: str) -> str:
        # the store's rule: NATS strips header values, so the Es-Event-Type header must need no stripping
        if not value.strip():
            raise serializers.ValidationError("Must not be blank.")
        if value != value.strip():
            raise serializers.ValidationError("Must not start or end with whitespace.")
        return _printable(value)


class SnapshotInputSerializer(ActorBodySerializer):
    """A snapshot to save: the actor's ``state`` as of ``version``."""

    version = StrictIntegerField(min_value=1)
    state = serializers.DictField()


# ----- query strings -----


def _limit() -> serializers.IntegerField:
    return BoundedIntegerField(min_value=1, max_value=MAX_PAGE, default=DEFAULT_PAGE, help_text=f"Page size, 1 to {MAX_PAGE}.")


class ActorListQuery(serializers.Serializer):
    type = serializers.CharField(required=False, help_text="Only actors of this type (the id's part before its first '-').")
    prefix = serializers.CharField(required=False, help_text="Only actors whose id starts with this.")
    after = serializers.CharField(required=False, help_text="Cursor: the last actor id of the previous page.")
    limit = _limit()


class ActorEventsQuery(serializers.Serializer):
    from_version = BoundedIntegerField(min_value=0, default=0, help_text="Only events with versions above this (the cursor).")
    limit = _limit()


class EventFeedQuery(serializers.Serializer):
    after = BoundedIntegerField(min_value=0, default=0, help_text="Cursor: only events after this stream position.")
    type = serializers.CharField(required=False, help_text="Only events of actors of this type (the actor id's part before its first `-`).")
    event_type = serializers.CharField(required=False, help_text="Only events of this event type (exact match).")
    limit = _limit()


# ----- responses (documentation) -----


class EventSerializer(serializers.Serializer):
    id = serializers.CharField()
    event_type = serializers.CharField()
    actor_id = serializers.CharField()
    version = serializers.IntegerField()
    schema = serializers.IntegerField(help_text="The schema of data: reads return events upcast to the newest.")
    data = serializers.DictField(allow_null=True, help_text="null when the actor was forgotten.")
    forgotten = serializers.BooleanField(help_text="True when the actor was forgotten: its data is gone for good.")
    metadata = serializers.DictField()
    timestamp = serializers.DateTimeField()
    position = serializers.IntegerField(help_text="Stream sequence: the event's place in the global order.")


class EventPageSerializer(serializers.Serializer):
    results = EventSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="Absolute URL of the next page; null on the last.")


class ActorSerializer(serializers.Serializer):
    actor_id = serializers.CharField()
    actor_type = serializers.CharField()
    latest_version = serializers.IntegerField()
    snapshot_version = serializers.IntegerField(allow_null=True)


class ActorPageSerializer(serializers.Serializer):
    results = ActorSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="Absolute URL of the next page; null on the last.")


class VersionSerializer(serializers.Serializer):
    actor_id = serializers.CharField()
    latest_version = serializers.IntegerField(help_text="0 when the actor has no events.")


class SnapshotSerializer(serializers.Serializer):
    actor_id = serializers.CharField()
    version = serializers.IntegerField()
    state = serializers.DictField()
    timestamp = serializers.DateTimeField()


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    actor_id = serializers.CharField()
    attempted_version = serializers.IntegerField()
    current_version = serializers.IntegerField()


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
