"""The admin's live page: new events as they are stored, newest on top, from an admin-side SSE stream.

The stream is the REST API's (``api/stream.py``) served under the admin's URL
and permissions, so the page works without the API being mounted. Its events
carry no ``event:`` name, so ``EventSource.onmessage`` sees every type.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from django.http import Http404, HttpRequest, HttpResponse, QueryDict

from . import EventStoreError, EventStoreUnavailable, StreamSetupError
from .actor_urls import actor_segment
from .admin_views import positive_int, query_string, type_label
from .api.stream import BadStreamRequest, StreamFilter, last_event_id, stream_response
from .core.facade import EventStore
from .middleware import RETRY_AFTER_SECONDS
from .store import explain

MAX_ROWS = 500  # the page keeps this many rows; older ones drop off the bottom
ACTOR_PLACEHOLDER = "__actor__"  # where live.js puts an actor's URL segment in the actor page's URL
log = logging.getLogger("django_eventstore")


def live_filter(params: QueryDict) -> StreamFilter:
    """The events the page follows: ``type``, ``event_type``, ``actor_id`` (empty: any); Http404 when they do not fit."""
    try:
        return StreamFilter(params.get("type") or None, params.get("event_type") or None, params.get("actor_id") or None)
    except BadStreamRequest as e:
        raise Http404(str(e)) from None


@dataclass
class LivePage:
    flt: StreamFilter
    after: int  # the stream's last position when the page was made: the script starts there
    stream_url: str
    actor_url: str  # the actor's page, for a page about one actor
    actor_url_template: str  # any actor's page, with ACTOR_PLACEHOLDER for its segment
    max_rows: int = MAX_ROWS

    @property
    def type_label(self) -> str:
        return type_label(self.flt.actor_type) if self.flt.actor_type else ""


def live_page(store: EventStore, params: QueryDict, stream_url: str, actor_url: Callable[[str], str]) -> LivePage:
    """What the live page needs: its filter, where its stream starts, and the URLs the script uses."""
    flt = live_filter(params)
    query = query_string({"type": None if flt.actor_id else flt.actor_type, "event_type": flt.event_type, "actor_id": flt.actor_id})
    return LivePage(
        flt=flt,
        after=store.last_position(flt.actor_type),
        stream_url=stream_url + (query if query != "?" else ""),
        actor_url=actor_url(actor_segment(flt.actor_id)) if flt.actor_id else "",
        actor_url_template=actor_url(ACTOR_PLACEHOLDER),
    )


def live_events(request: HttpRequest, store: EventStore) -> HttpResponse:
    """The page's SSE stream, from Last-Event-ID, else ``after``, else the end; a store error before it starts is a 503."""
    flt = live_filter(request.GET)
    try:
        start = last_event_id(request)
    except BadStreamRequest as e:
        raise Http404(str(e)) from None
    if start is None:
        after = request.GET.get("after")
        start = 0 if after == "0" else positive_int(request.GET, "after")
    try:
        if start is None:
            start = store.last_position(flt.actor_type)
    except EventStoreError as e:
        log.warning("admin %s answered 503: %s: %s", request.path, type(e).__name__, e)
        known = isinstance(e, (EventStoreUnavailable, StreamSetupError))
        response = HttpResponse(explain(e) if known else "The server's log has the details.", status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return stream_response(request, store, start, flt, named=False)
