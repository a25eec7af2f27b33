"""``EventStoreUnavailableMiddleware``: a project's own views answer 503 while NATS is down, instead of a 500.

Add ``"django_eventstore.middleware.EventStoreUnavailableMiddleware"`` to
``MIDDLEWARE``. When a view raises ``EventStoreUnavailable`` (NATS cannot be
reached) or ``StreamSetupError`` (the streams are not set up), the response is
a 503 with ``Retry-After``: JSON for API clients, a short page for people
(the project's ``503.html`` template when it has one). Neither says more than
that; the details (servers tried, the server's answer) go to the log.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import TemplateDoesNotExist, loader
from django.utils.cache import add_never_cache_headers
from django.utils.deprecation import MiddlewareMixin

from .core.errors import EventStoreError, EventStoreUnavailable, StreamSetupError

log = logging.getLogger("django_eventstore")

RETRY_AFTER_SECONDS = 5  # a reconnect is tried every half second; a leader election takes 4-9 s
STORE_DOWN = (EventStoreUnavailable, StreamSetupError)
JSON = "application/json"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Temporarily unavailable</title></head>
<body>
<h1>Temporarily unavailable</h1>
<p>This page cannot be shown right now: the service that keeps its data is not answering.</p>
<p>Please try again in a few seconds.</p>
</body>
</html>
"""


class EventStoreUnavailableMiddleware(MiddlewareMixin):
    """Turns the store being unreachable (or not set up) in a view into a 503 with ``Retry-After``; other errors pass."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, STORE_DOWN):
            return None
        log.warning("%s %s answered 503: %s: %s", request.method, request.path, type(exception).__name__, exception)
        return unavailable_response(request, exception)


def unavailable_response(request: HttpRequest, error: EventStoreError) -> HttpResponse:
    """The 503 answering a store that cannot serve: JSON or a page, per ``wants_json``; never cached."""
    response: HttpResponse
    if wants_json(request):
        from .api.http import error_body  # the API's own wording (imports DRF)

        response = JsonResponse(error_body(error), status=503)
    else:
        response = HttpResponse(_page(request), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    add_never_cache_headers(response)
    return response


def wants_json(request: HttpRequest) -> bool:
    """True for a DRF view's request, or one whose Accept header prefers JSON to HTML."""
    match = request.resolver_match
    view_class = getattr(match.func, "view_class", None) if match else None
    if view_class is not None:
        from rest_framework.views import APIView

        if isinstance(view_class, type) and issubclass(view_class, APIView):
            return True
    return request.get_preferred_type(["text/html", JSON]) == JSON


def _page(request: HttpRequest) -> str:
    """The project's ``503.html`` when it has one, else the built-in page."""
    try:
        template = loader.get_template("503.html")
    except TemplateDoesNotExist:
        return PAGE
    context: dict[str, Any] = {"retry_after": RETRY_AFTER_SECONDS}
    return template.render(context, request)
