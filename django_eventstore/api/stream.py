"""Server-Sent Events: ``events/stream/`` sends events as they are stored, for ``EventSource`` and curl.

Under ASGI the response body is an async iterator over ``store.asubscribe``: no
thread is held while a client waits. Under WSGI it is a generator over
``store.subscribe``, which holds one worker thread for as long as the client
stays connected. The admin's live page serves the same stream (``admin_live``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, closing
from dataclasses import dataclass
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import ParseError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from .. import Event, EventStoreError
from ..core.facade import EventStore
from ..core.subjects import actor_type as actor_type_of
from ..core.subjects import validate_actor_id
from . import serializers as s
from .views import ERRORS, TAGS, AsyncAPIView, StoreView, document

KEEPALIVE_SECONDS = 15.0  # a comment line this often while nothing is sent, so proxies keep the connection open
RETRY_MILLISECONDS = 3000  # the reconnection delay the stream asks EventSource clients to use
CONTENT_TYPE = "text/event-stream"
KEEPALIVE = b": keep-alive\n\n"
MAX_POSITION = s.MAX_INTEGER

log = logging.getLogger("django_eventstore")


class BadStreamRequest(ValueError):
    """A query parameter or header of a stream request is not valid; the message says which and why."""


@dataclass(frozen=True)
class StreamFilter:
    """Which events a stream sends: of one actor type, one event type, one actor (each None for any)."""

    actor_type: str | None = None
    event_type: str | None = None
    actor_id: str | None = None

    def __post_init__(self) -> None:
        if self.actor_id is not None:
            try:
                validate_actor_id(self.actor_id)
            except EventStoreError as e:
                raise BadStreamRequest(f"actor_id: {e}") from None
            own = actor_type_of(self.actor_id)
            if self.actor_type not in (None, own):
                raise BadStreamRequest(f"actor_id {self.actor_id!r} is of actor type {own!r}, not {self.actor_type!r}: give one of them")
            object.__setattr__(self, "actor_type", own)

    @property
    def actor_types(self) -> list[str] | None:
        """The actor types ``subscribe`` selects on the server (none with an actor id: its own subject is read)."""
        return [self.actor_type] if self.actor_type and self.actor_id is None else None

    def keeps(self, event: Event) -> bool:
        return (self.event_type is None or event.event_type == self.event_type) and (self.actor_id is None or event.actor_id == self.actor_id)


def last_event_id(request: HttpRequest | Request) -> int | None:
    """The position in the ``Last-Event-ID`` header an EventSource sends when it reconnects; None when absent."""
    header = request.headers.get("Last-Event-ID")
    if header is None or header.strip() == "":
        return None
    text = header.strip()
    if not (text.isascii() and text.isdecimal() and int(text) <= MAX_POSITION):
        raise BadStreamRequest(f"Last-Event-ID must be a stream position (a whole number from 0 to {MAX_POSITION}), got {header[:40]!r}")
    return int(text)


def _field(name: str, value: Any) -> bytes:
    """One ``name: value`` line; CR and LF would end the field early, so they become spaces."""
    text = str(value).replace("\r", " ").replace("\n", " ")
    return f"{name}: {text}\n".encode()


class Encoder:
    """Turns the feed's batches into SSE text: kept events, the position read up to, keep-alive comments.

    ``named`` puts the event type in ``event:`` (listen with ``addEventListener(type)``);
    without it every event is a plain ``message``, which is what a page showing any type wants.
    """

    def __init__(self, start: int, flt: StreamFilter, *, keepalive: float, named: bool):
        self.flt, self.keepalive, self.named = flt, keepalive, named
        self.last_id = start
        self.last_write = time.monotonic()
        self.sent = 0

    def preamble(self) -> bytes:
        """The reconnection delay, and the start position as the id: a client that reconnects before any event resumes there."""
        return f"retry: {RETRY_MILLISECONDS}\nid: {self.last_id}\n\n".encode()

    def encode(self, events: list[Event], position: int) -> bytes:
        """What to send for one batch of the feed (empty when nothing is due)."""
        out = bytearray()
        for event in events:
            if self.flt.keeps(event):
                body = json.dumps(event.to_dict(), ensure_ascii=False, separators=(",", ":"), default=str)
                out += _field("id", event.position)
                if self.named:
                    out += _field("event", event.event_type)
                out += _field("data", body) + b"\n"
                self.last_id = event.position or self.last_id
                self.sent += 1
        if position > self.last_id:
            out += f"id: {position}\n\n".encode()  # no data: moves the client's Last-Event-ID past the messages skipped
            self.last_id = position
        now = time.monotonic()
        if not out and now - self.last_write >= self.keepalive:
            out += KEEPALIVE
        if out:
            self.last_write = now
        return bytes(out)

    def closed(self, how: str) -> None:
        log.info("event stream after position %s closed (%s) having sent %s event%s", self.last_id, how, self.sent, "" if self.sent == 1 else "s")


def sync_stream(store: EventStore, start: int, flt: StreamFilter, *, keepalive: float = KEEPALIVE_SECONDS, named: bool = True) -> Iterator[bytes]:
    """The stream for WSGI: ``store.subscribe`` in this (the request's) thread until the client goes or the store fails."""
    encoder = Encoder(start, flt, keepalive=keepalive, named=named)
    how = "client gone"
    yield encoder.preamble()
    try:
        with closing(store.subscribe(start, actor_types=flt.actor_types, actor_id=flt.actor_id, idle_timeout=keepalive)) as feed:
            for batch in feed:
                chunk = encoder.encode(batch.events, batch.position)
                if chunk:
                    yield chunk
    except EventStoreError as e:
        how = f"store error: {type(e).__name__}"  # the client reconnects after RETRY_MILLISECONDS, from its Last-Event-ID
    finally:
        encoder.closed(how)


async def async_stream(store: EventStore, start: int, flt: StreamFilter, *, keepalive: float = KEEPALIVE_SECONDS, named: bool = True) -> AsyncIterator[bytes]:
    """The stream for ASGI: ``store.asubscribe``, awaited on the server's loop; a disconnect cancels it."""
    encoder = Encoder(start, flt, keepalive=keepalive, named=named)
    how = "client gone"
    yield encoder.preamble()
    try:
        async with aclosing(store.asubscribe(start, actor_types=flt.actor_types, actor_id=flt.actor_id, idle_timeout=keepalive)) as feed:
            async for batch in feed:
                chunk = encoder.encode(batch.events, batch.position)
                if chunk:
                    yield chunk
    except EventStoreError as e:
        how = f"store error: {type(e).__name__}"
    finally:
        encoder.closed(how)


def stream_response(request: HttpRequest, store: EventStore, start: int, flt: StreamFilter, *, keepalive: float = KEEPALIVE_SECONDS, named: bool = True) -> StreamingHttpResponse:
    """The SSE response: an async iterator under ASGI, a generator under WSGI; never cached or buffered by proxies."""
    if isinstance(request, ASGIRequest):
        content: Any = async_stream(store, start, flt, keepalive=keepalive, named=named)
    else:
        content = sync_stream(store, start, flt, keepalive=keepalive, named=named)
    response = StreamingHttpResponse(content, content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


class StreamQuery(s.EventFeedQuery):
    after = s.BoundedIntegerField(min_value=0, required=False, help_text="Only events after this stream position; default: the end of the stream (only new events). Last-Event-ID wins.")
    actor_id = s.StrictCharField(required=False, trim_whitespace=False, help_text="Only the events of this actor.")
    limit = None  # type: ignore[assignment] # a stream has no pages


LAST_EVENT_ID = OpenApiParameter("Last-Event-ID", int, OpenApiParameter.HEADER, description="Sent by EventSource when it reconnects: resume after this position (wins over `after`).")


class EventStreamView(AsyncAPIView, StoreView):
    """``GET events/stream/``: an async view, so under ASGI it awaits the store; the body is SSE (see the module)."""

    http_method_names = ["get", "options"]  # a HEAD would run the endless GET
    renderer_classes = [JSONRenderer]  # errors are JSON whatever Accept says (see perform_content_negotiation)
    keepalive = KEEPALIVE_SECONDS  # as_view(keepalive=...) changes it

    @document(
        operation_id="events_stream",
        tags=TAGS,
        parameters=[StreamQuery, LAST_EVENT_ID],
        responses={(200, CONTENT_TYPE): OpenApiResponse(OpenApiTypes.STR, "Server-Sent Events: `id:` the position, `event:` the event type, `data:` the event's JSON."), **ERRORS},
    )
    async def get(self, request: Request) -> StreamingHttpResponse:
        """New events as Server-Sent Events, in stream order, until the client disconnects."""
        query = StreamQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        try:
            flt = StreamFilter(q.get("type"), q.get("event_type"), q.get("actor_id"))
            start = last_event_id(request)
        except BadStreamRequest as e:
            raise ParseError(str(e)) from None
        if start is None:
            start = q["after"] if q.get("after") is not None else await self.store.alast_position(flt.actor_type)
        return stream_response(self.django_request, self.store, start, flt, keepalive=self.keepalive)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # EventSource sends Accept: text/event-stream, which no renderer offers: the stream is not
        # rendered by DRF, and errors before it starts (400, 403, 503) are answered in JSON.
        return super().perform_content_negotiation(request, force=True)

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        self.django_request = request  # the handler's own request: ASGIRequest under ASGI
        return super().initialize_request(request, *args, **kwargs)
