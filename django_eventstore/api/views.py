"""The REST API's views. Each one talks to the store through ``get_store()``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import ActorSnapshot, Event, VersionConflictError, get_store
from ..actor_urls import ENCODING, actor_id_from_segment
from ..core.facade import EventStore
from ..core.limits import MAX_APPEND
from ..core.subjects import actor_type
from ..paging import read_pages
from . import serializers as s
from .http import NestingJSONParser, actor_url, api_url, check_if_match, etag, handle_exception, json_body, next_link, not_modified, permission_classes

TAGS = ["eventstore"]
ERRORS: dict[int, Any] = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, "Invalid input: field errors, or a detail."),
    401: OpenApiResponse(s.ErrorSerializer, "Not authenticated (with an authentication class that challenges)."),
    403: OpenApiResponse(s.ErrorSerializer, "Not authenticated, or not allowed by API_PERMISSION_CLASSES."),
    503: OpenApiResponse(s.ErrorSerializer, "NATS could not be reached, or the streams are not set up."),
}
NOT_FOUND = OpenApiResponse(s.ErrorSerializer, "The actor has no events (or no snapshot).")
NOT_MODIFIED = OpenApiResponse(None, "If-None-Match names the current version.")
PRECONDITION_FAILED = OpenApiResponse(s.ErrorSerializer, "If-Match does not name the latest version.")
TOO_LARGE = OpenApiResponse(s.ErrorSerializer, "The body or an event is larger than the server accepts.")
CONFLICT = OpenApiResponse(s.ConflictSerializer, "Version conflict: another writer got there first, or the version leaves a gap.")
ACTOR_ID = OpenApiParameter("actor_id", str, OpenApiParameter.PATH, description=f"The actor id as one path segment: {ENCODING}.")


def etag_header(*codes: int) -> OpenApiParameter:
    """The ETag response header, on the given status codes."""
    return OpenApiParameter("ETag", str, OpenApiParameter.HEADER, response=list(codes), description='The actor\'s latest version, quoted: `"3"`.')


IF_NONE_MATCH = OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, description="An ETag: 304 when it is current.")
IF_MATCH = OpenApiParameter("If-Match", str, OpenApiParameter.HEADER, description="An ETag: 412 unless it is the latest version.")


def document(**kwargs: Any) -> Any:
    """``extend_schema`` for a view method, based on drf-spectacular's AutoSchema whatever DEFAULT_SCHEMA_CLASS is."""

    def decorator(method: Any) -> Any:
        method.kwargs = {"schema": AutoSchema}  # where extend_schema looks for the base schema class of a method
        return extend_schema(**kwargs)(method)

    return decorator


def _query(request: Request, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """The validated query parameters (400 with field errors when invalid)."""
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class StoreView(APIView):
    """Base of the API views: JSON (and DRF's browsable page for browsers), permissions from API_PERMISSION_CLASSES, store errors mapped."""

    schema: AutoSchema | None = AutoSchema()
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    parser_classes = [NestingJSONParser]

    def get_permissions(self) -> list[BasePermission]:
        return [cls() for cls in permission_classes()]

    def get_exception_handler(self) -> Any:
        return handle_exception

    @property
    def store(self) -> EventStore:
        return get_store()


ROOT_ROUTES = {"actors": "actor-list", "events": "event-list", "schema": "schema", "docs": "docs"}


class APIRootView(StoreView):
    schema = None  # a map of the API, not one of its resources

    def get(self, request: Request) -> Response:
        """The API's routes, as absolute URLs; an actor's routes hang below ``actors/<id>/``."""
        return Response({key: request.build_absolute_uri(api_url(request, name)) for key, name in ROOT_ROUTES.items()})


class ActorListView(StoreView):
    @document(operation_id="actors_list", tags=TAGS, parameters=[s.ActorListQuery], responses={200: s.ActorPageSerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        """A page of actors ordered by id, with their latest and snapshot versions."""
        q = _query(request, s.ActorListQuery)
        page = self.store.list_actors(q.get("type"), q.get("prefix"), q["limit"], q.get("after"))
        more = page.next_after and next_link(
            request, api_url(request, "actor-list"), {"type": q.get("type"), "prefix": q.get("prefix"), "after": page.next_after, "limit": q["limit"]}
        )
        return Response({"results": [_actor(a.actor_id, a.latest_version, a.snapshot_version) for a in page.actors], "next": more or None})


def _actor(actor_id: str, latest_version: int, snapshot_version: int | None) -> dict[str, Any]:
    return {"actor_id": actor_id, "actor_type": actor_type(actor_id), "latest_version": latest_version, "snapshot_version": snapshot_version}


class ActorView(StoreView):
    """Base of the views about one actor; ``self.actor_id`` is the decoded id of the URL (400 when it is not one)."""

    actor_id: str

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.actor_id = actor_id_from_segment(kwargs["actor_id"])

    def preconditions(self, request: Request) -> None:
        """Honour If-Match (412 unless it names the latest version); costs one read only when sent."""
        header = request.headers.get("If-Match")
        if header:
            check_if_match(header, self.store.get_latest_version(self.actor_id))


@extend_schema(tags=TAGS, parameters=[ACTOR_ID])
class ActorDetailView(ActorView):
    @document(operation_id="actor_retrieve", parameters=[IF_NONE_MATCH, etag_header(200, 304)], responses={200: s.ActorSerializer, 304: NOT_MODIFIED, 404: NOT_FOUND, **ERRORS})
    def get(self, request: Request, **kwargs: Any) -> Response:
        """The actor with its latest version and snapshot version; 404 when it has no events."""
        version = self.store.get_latest_version(self.actor_id)
        if version == 0:
            raise NotFound(f"Actor {self.actor_id!r} has no events.")
        cached = not_modified(request, version)
        if cached:
            return cached
        snapshot = self.store.snapshot_versions([self.actor_id]).get(self.actor_id)
        return Response(_actor(self.actor_id, version, snapshot), headers={"ETag": etag(version)})


EVENT_OR_LIST_IN = PolymorphicProxySerializer("EventInputOrList", [s.EventInputSerializer, s.EventInputSerializer(many=True)], None, many=False)
EVENT_OR_LIST_OUT = PolymorphicProxySerializer("EventOrList", [s.EventSerializer, s.EventSerializer(many=True)], None, many=False)


@extend_schema(tags=TAGS, parameters=[ACTOR_ID])
class ActorEventsView(ActorView):
    @document(operation_id="actor_events_list", parameters=[s.ActorEventsQuery, IF_NONE_MATCH, etag_header(200, 304)], responses={200: s.EventPageSerializer, 304: NOT_MODIFIED, **ERRORS})
    def get(self, request: Request, **kwargs: Any) -> Response:
        """The actor's events in version order, from ``from_version`` on (an empty list for an unknown actor)."""
        q = _query(request, s.ActorEventsQuery)
        version = self.store.get_latest_version(self.actor_id)  # before the read: the ETag never runs ahead
        cached = not_modified(request, version)
        if cached:
            return cached
        events = self.store.get_events(self.actor_id, q["from_version"], limit=q["limit"] + 1)
        page, more = events[: q["limit"]], len(events) > q["limit"]
        link = more and next_link(request, actor_url(request, "actor-events", self.actor_id), {"from_version": page[-1].version, "limit": q["limit"]})
        return Response({"results": [e.to_dict() for e in page], "next": link or None}, headers={"ETag": etag(version)})

    @document(
        operation_id="actor_events_create",
        request=EVENT_OR_LIST_IN,
        parameters=[IF_MATCH, etag_header(201, 409, 412)],
        responses={201: EVENT_OR_LIST_OUT, 409: CONFLICT, 412: PRECONDITION_FAILED, 413: TOO_LARGE, **ERRORS},
    )
    def post(self, request: Request, **kwargs: Any) -> Response:
        """Store one event, or a list atomically (all or none); 201 with the stored events."""
        body = json_body(request)
        many = isinstance(body, list)
        serializer = s.EventInputSerializer(
            data=body, many=many, context={"actor_id": self.actor_id}, **({"max_length": MAX_APPEND, "allow_empty": False} if many else {})
        )
        serializer.is_valid(raise_exception=True)
        self.preconditions(request)
        events = [Event(**{**fields, "actor_id": self.actor_id}) for fields in (serializer.validated_data if many else [serializer.validated_data])]
        if many:
            stored = self.store.append(self.actor_id, events, expected_version=events[0].version - 1)  # type: ignore[operator]
        else:
            stored = [self.store.save_event(events[0])]
        result = [e.to_dict() for e in stored]
        return Response(result if many else result[0], status=status.HTTP_201_CREATED, headers={"ETag": etag(stored[-1].version)})  # type: ignore[arg-type]


class AsyncAPIView(APIView):
    """DRF's dispatch for ``async def`` handlers: authentication, permissions and throttles run in a thread."""

    async def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.args, self.kwargs = args, kwargs
        drf_request = self.initialize_request(request, *args, **kwargs)
        self.request = drf_request
        self.headers = self.default_response_headers
        try:
            await sync_to_async(self.initial)(drf_request, *args, **kwargs)
            method = drf_request.method.lower()
            handler: Callable[..., Any] | None = getattr(self, method, None) if method in self.http_method_names else None
            response = (handler or self.http_method_not_allowed)(drf_request, *args, **kwargs)
            if inspect.isawaitable(response):
                response = await response
        except Exception as exc:  # noqa: BLE001 - exactly what DRF's dispatch does
            response = self.handle_exception(exc)
        self.response = self.finalize_response(drf_request, response, *args, **kwargs)
        return self.response


@extend_schema(tags=TAGS, parameters=[ACTOR_ID])
class ActorVersionView(AsyncAPIView, ActorView):
    """An async view: the store's async API, awaited from the ASGI server's loop."""

    @document(operation_id="actor_version_retrieve", parameters=[IF_NONE_MATCH, etag_header(200, 304)], responses={200: s.VersionSerializer, 304: NOT_MODIFIED, **ERRORS})
    async def get(self, request: Request, **kwargs: Any) -> Response:
        """The actor's latest version (0 when it has no events)."""
        version = await self.store.aget_latest_version(self.actor_id)
        return not_modified(request, version) or Response({"actor_id": self.actor_id, "latest_version": version}, headers={"ETag": etag(version)})


@extend_schema(tags=TAGS, parameters=[ACTOR_ID])
class ActorSnapshotView(ActorView):
    @document(operation_id="actor_snapshot_retrieve", parameters=[IF_NONE_MATCH, etag_header(200, 304)], responses={200: s.SnapshotSerializer, 304: NOT_MODIFIED, 404: NOT_FOUND, **ERRORS})
    def get(self, request: Request, **kwargs: Any) -> Response:
        """The actor's latest snapshot; 404 when it has none."""
        version = self.store.get_latest_version(self.actor_id)
        cached = not_modified(request, version)
        if cached:
            return cached
        snapshot = self.store.get_latest_snapshot(self.actor_id)
        return Response(snapshot.to_dict(), headers={"ETag": etag(version)})

    @document(
        operation_id="actor_snapshot_update",
        request=s.SnapshotInputSerializer,
        parameters=[IF_MATCH, etag_header(200, 409, 412)],
        responses={200: s.SnapshotSerializer, 404: NOT_FOUND, 409: CONFLICT, 412: PRECONDITION_FAILED, 413: TOO_LARGE, **ERRORS},
    )
    def put(self, request: Request, **kwargs: Any) -> Response:
        """Save a snapshot at or below the latest version; 404 for an actor with no events, 409 above its latest."""
        serializer = s.SnapshotInputSerializer(data=json_body(request), context={"actor_id": self.actor_id})
        serializer.is_valid(raise_exception=True)
        self.preconditions(request)
        fields = serializer.validated_data
        try:
            saved = self.store.save_snapshot(ActorSnapshot(actor_id=self.actor_id, version=fields["version"], state=fields["state"]))
        except VersionConflictError as e:
            if e.current_version == 0:
                raise NotFound(f"Actor {self.actor_id!r} has no events.") from None
            raise
        return Response(saved.to_dict(), headers={"ETag": etag(self.store.get_latest_version(self.actor_id))})


class EventFeedView(StoreView):
    scan_limit = 20_000  # messages one request with ?event_type= reads at most before answering with a next link

    @document(operation_id="events_list", tags=TAGS, parameters=[s.EventFeedQuery], responses={200: s.EventPageSerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        """Events of all actors in global (stream) order, after a position; malformed messages skipped."""
        q = _query(request, s.EventFeedQuery)
        if q.get("event_type") is not None:
            events, cursor = self._of_event_type(q)
        else:
            page = next(read_pages(self.store, q["after"], page_size=q["limit"], actor_type=q.get("type")), None)
            events, cursor = (page.events, page.position if page.more else None) if page else ([], None)
        params = {"after": cursor, "type": q.get("type"), "event_type": q.get("event_type"), "limit": q["limit"]}
        link = cursor is not None and next_link(request, api_url(request, "event-list"), params)
        return Response({"results": [e.to_dict() for e in events], "next": link or None})

    def _of_event_type(self, q: dict[str, Any]) -> tuple[list[Event], int | None]:
        """Up to ``limit`` events of one event type, scanning at most ``scan_limit`` messages; the cursor when more may follow.

        The store filters by actor type only, so the event type is matched here;
        the scan bound keeps a rare type from reading the whole stream in one
        request: the page may then be short (even empty) with a ``next`` link.
        """
        found: list[Event] = []
        scanned = 0
        for page in read_pages(self.store, q["after"], actor_type=q.get("type")):
            for event in page.events:
                if event.event_type == q["event_type"]:
                    found.append(event)
                    if len(found) == q["limit"]:
                        position = event.position or 0
                        return found, position if page.more or position < page.position else None
            scanned += len(page.events) + len(page.errors)
            if not page.more:
                return found, None
            if scanned >= self.scan_limit:
                return found, page.position
        return found, None
