"""HTTP plumbing of the API: ETags and preconditions, the body limit, store errors as responses, links."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.urls import reverse
from django.utils.http import parse_etags
from django.utils.module_loading import import_string
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from .. import (
    EventStoreError,
    EventStoreUnavailable,
    EventTooLarge,
    InvalidActorId,
    InvalidEvent,
    SnapshotNotFound,
    StreamSetupError,
    VersionConflictError,
)
from ..actor_urls import actor_segment
from ..conf import get_config
from ..middleware import RETRY_AFTER_SECONDS
from ..store import SETUP_HINT

log = logging.getLogger("django_eventstore")


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than the server accepts."
    default_code = "too_large"


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_code = "precondition_failed"

    def __init__(self, header: str, version: int):
        self.version = version
        super().__init__(f"If-Match {header} does not match the actor's latest version, {etag(version)}.")


def permission_classes() -> list[type[BasePermission]]:
    """The classes named by ``API_PERMISSION_CLASSES`` (dotted paths or classes); EventStorePermission by default."""
    return [import_string(p) if isinstance(p, str) else p for p in get_config()["API_PERMISSION_CLASSES"]]


# ----- ETags -----


def etag(version: int) -> str:
    """The strong ETag of an actor at its latest version."""
    return f'"{version}"'


def _matches(header: str, version: int, *, weak: bool) -> bool:
    tags = parse_etags(header)
    if tags == ["*"]:
        return version > 0  # "*" matches an actor that exists, i.e. has events
    if weak:
        tags = [t.removeprefix("W/") for t in tags]
    return etag(version) in tags


def not_modified(request: Request, version: int) -> Response | None:
    """A 304 when ``If-None-Match`` (weak comparison) names the actor's current version."""
    header = request.headers.get("If-None-Match")
    if header and _matches(header, version, weak=True):
        return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(version)})
    return None


def check_if_match(header: str, version: int) -> None:
    """Raise 412 unless ``If-Match`` (strong comparison) names the latest version."""
    if not _matches(header, version, weak=False):
        raise PreconditionFailed(header, version)


# ----- request bodies -----

NESTED_TOO_DEEPLY = "JSON parse error - JSON nested too deeply."


class NestingJSONParser(JSONParser):
    """DRF's JSON parser, with a body nested deeper than Python's recursion limit a 400 rather than a 500."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(NESTED_TOO_DEEPLY) from None



def json_body(request: Request) -> Any:
    """The parsed JSON body; 413 above DATA_UPLOAD_MAX_MEMORY_SIZE (DRF's parsers do not check it)."""
    try:
        request.body  # noqa: B018 - Django's HttpRequest.body enforces the upload limit
    except RequestDataTooBig:
        raise PayloadTooLarge(
            f"The request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE ({settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes)."
        ) from None
    return request.data


# ----- store errors -----

_STATUS: list[tuple[type[EventStoreError], int]] = [
    (VersionConflictError, status.HTTP_409_CONFLICT),
    (SnapshotNotFound, status.HTTP_404_NOT_FOUND),
    (EventTooLarge, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (InvalidActorId, status.HTTP_400_BAD_REQUEST),
    (InvalidEvent, status.HTTP_400_BAD_REQUEST),
    (EventStoreUnavailable, status.HTTP_503_SERVICE_UNAVAILABLE),
    (EventStoreError, status.HTTP_503_SERVICE_UNAVAILABLE),  # last: any other store error, e.g. streams not set up
]
UNAVAILABLE = "The event store is unavailable: NATS could not be reached. Try again later."
NOT_SET_UP = f"The event store could not answer the request: its streams are not set up. {SETUP_HINT}"
NOT_ANSWERING = "The event store could not answer the request. The server's log has the details."


def error_body(exc: EventStoreError) -> dict[str, Any]:
    """The JSON body that answers a store error."""
    if isinstance(exc, VersionConflictError):
        return {
            "detail": str(exc),
            "actor_id": exc.actor_id,
            "attempted_version": exc.attempted_version,
            "current_version": exc.current_version,
        }
    if isinstance(exc, InvalidActorId):
        return {"actor_id": [str(exc)]}
    if isinstance(exc, EventStoreUnavailable):
        return {"detail": UNAVAILABLE}  # the store's message names the servers, maybe with credentials
    if isinstance(exc, StreamSetupError):
        return {"detail": NOT_SET_UP}
    if isinstance(exc, (SnapshotNotFound, InvalidEvent)):
        return {"detail": str(exc)}
    return {"detail": NOT_ANSWERING}  # the message of a plain store error is about internals (subjects, server replies)


def handle_exception(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Store errors as 400/404/409/413/503; everything else goes to DRF's configured handler.

    409 and 412 carry the actor's current version as their ETag.
    """
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            headers = {"ETag": etag(exc.current_version)} if isinstance(exc, VersionConflictError) else None
            if code == status.HTTP_503_SERVICE_UNAVAILABLE:
                log.warning("event store API: %s: %s", type(exc).__name__, exc)
                headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return Response(error_body(exc), status=code, headers=headers)
    response = api_settings.EXCEPTION_HANDLER(exc, context)
    if isinstance(exc, PreconditionFailed) and response is not None:
        response["ETag"] = etag(exc.version)
    return response


# ----- links -----


def api_url(request: Request, name: str, *args: str) -> str:
    """The path of one of the API's named routes, under the namespace it was mounted with."""
    namespace = request.resolver_match.namespace if request.resolver_match else ""
    return reverse(f"{namespace}:{name}" if namespace else name, args=args)


def actor_url(request: Request, name: str, actor_id: str) -> str:
    """The path of one of an actor's named routes, the id encoded as URLs carry it."""
    return api_url(request, name, actor_segment(actor_id))


def next_link(request: Request, path: str, params: dict[str, Any]) -> str:
    """An absolute URL to ``path`` with the query parameters that are not None."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return request.build_absolute_uri(f"{path}?{query}")
