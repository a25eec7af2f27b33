"""``GET actors/<id>/state/?version=N``: an actor's state at a version, rebuilt by its registered aggregate (time travel)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from ..time_travel import NoAggregate, NoSuchVersion, ReplayStopped, ReplayTooLong, state_at
from . import serializers as s
from .http import etag, not_modified
from .views import ACTOR_ID, ERRORS, IF_NONE_MATCH, TAGS, ActorView, document, etag_header


class StateQuery(serializers.Serializer):
    version = s.BoundedIntegerField(min_value=1, required=False, help_text="The version whose state to show (default: the latest).")


class ComputedFromSerializer(serializers.Serializer):
    snapshot_version = serializers.IntegerField(allow_null=True, help_text="The snapshot the replay started from; null: from version 1.")
    events_applied = serializers.IntegerField(help_text="Events applied after it.")


class StateSerializer(serializers.Serializer):
    actor_id = serializers.CharField()
    version = serializers.IntegerField()
    state = serializers.DictField()
    computed_from = ComputedFromSerializer()


class CannotReplay(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "cannot_replay"


NOT_FOUND = OpenApiResponse(
    s.ErrorSerializer, "No aggregate is registered for the actor's type, the actor has no events, or the version is above its latest."
)
UNPROCESSABLE = OpenApiResponse(
    s.ErrorSerializer,
    "The aggregate cannot apply an event (replay stopped at version V: the error), or the version needs more events replayed than TIME_TRAVEL_MAX_EVENTS.",
)


@extend_schema(tags=TAGS, parameters=[ACTOR_ID])
class ActorStateView(ActorView):
    @document(
        operation_id="actor_state_retrieve",
        parameters=[StateQuery, IF_NONE_MATCH, etag_header(200, 304)],
        responses={200: StateSerializer, 304: OpenApiResponse(None, "If-None-Match names the current version."), 404: NOT_FOUND, 422: UNPROCESSABLE, **ERRORS},
    )
    def get(self, request: Request, **kwargs: Any) -> Response:
        """The actor's state at ``version`` (default: the latest), from the nearest snapshot at or below it, else replayed from version 1."""
        serializer = StateQuery(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        try:
            result = state_at(self.actor_id, serializer.validated_data.get("version"), store=self.store)
        except (NoAggregate, NoSuchVersion) as e:
            raise NotFound(str(e)) from None
        except (ReplayStopped, ReplayTooLong) as e:
            raise CannotReplay(str(e)) from None
        cached = not_modified(request, result.latest_version)
        if cached:
            return cached
        computed = {"snapshot_version": result.computed_from.snapshot_version, "events_applied": result.computed_from.events_applied}
        body = {"actor_id": self.actor_id, "version": result.version, "state": result.state, "computed_from": computed}
        return Response(body, headers={"ETag": etag(result.latest_version)})
