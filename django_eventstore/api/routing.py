"""Routes for one actor's resources, with actor ids URL-encoded in the path (``a%2Fb`` included).

Servers decode ``%2F`` before Django routes, so ``actors/x%2Fevents/`` (the actor
``x/events``) and ``actors/x/events/`` (the events of ``x``) reach Django as the
same path. Where the server passes the raw path (ASGI ``raw_path``: uvicorn,
daphne, hypercorn; WSGI ``RAW_URI``/``REQUEST_URI``: gunicorn, uWSGI, mod_wsgi)
each route re-reads the id from it, so every id works. Elsewhere (``runserver``,
the test client) the decoded path is read greedily and an id ending in
``/events``, ``/version`` or ``/snapshot`` is refused with a 400.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple
from urllib.parse import unquote, urlsplit

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, re_path

SUBRESOURCES = ("events", "version", "snapshot")
ACTOR = ""  # the kind of the actor's own resource, ``actors/<id>/``
ROUTE_NAMES = {ACTOR: "actor-detail", "events": "actor-events", "version": "actor-version", "snapshot": "actor-snapshot"}


class Target(NamedTuple):
    kind: str
    actor_id: str
    exact: bool  # True when read from the raw path: no ambiguity


def raw_path(request: HttpRequest) -> str | None:
    """The path as the client sent it, percent-escapes intact, when the server says."""
    scope = getattr(request, "scope", None)
    if scope is not None:
        raw = scope.get("raw_path")
        return raw.decode("latin-1") if raw else None
    uri = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    return urlsplit(uri).path if uri else None


def _from_segments(segments: list[str]) -> tuple[str, str] | None:
    """(kind, actor id) from the raw segments ``actors/<id>/[<kind>/]``; None if they are not that shape."""
    if len(segments) not in (3, 4) or segments[0] != "actors" or not segments[1] or segments[-1] != "":
        return None
    try:
        actor_id = unquote(segments[1], errors="strict")
        kind = unquote(segments[2], errors="strict") if len(segments) == 4 else ACTOR
    except UnicodeDecodeError:
        return None
    return (kind, actor_id) if kind in ROUTE_NAMES else None


def locate(request: HttpRequest, kind: str, actor_id: str) -> Target:
    """The resource the client meant, given what Django's resolver matched on the decoded path."""
    raw = raw_path(request)
    if raw is not None:
        tail = f"actors/{actor_id}/" + (f"{kind}/" if kind else "")
        mount_segments = request.path[: -len(tail)].count("/")
        found = _from_segments(raw.split("/")[mount_segments:])
        if found is not None:
            return Target(*found, exact=True)
    return Target(kind, actor_id, exact=False)


def _routed(kind: str, views: dict[str, Callable[..., Any]]) -> Callable[..., Any]:
    """The view of ``kind``, wrapped to hand the request to the view the raw path names."""
    view = views[kind]

    def target(request: HttpRequest, actor_id: str) -> tuple[Callable[..., Any], dict[str, Any]]:
        found = locate(request, kind, actor_id)
        return views[found.kind], {"actor_id": found.actor_id, "exact_path": found.exact}

    if iscoroutinefunction(view):

        async def routed(request: HttpRequest, actor_id: str) -> HttpResponse:
            chosen, kwargs = target(request, actor_id)
            if iscoroutinefunction(chosen):
                return await chosen(request, **kwargs)
            return await sync_to_async(chosen)(request, **kwargs)

    else:
        # A decoded path ending in /version/ always resolves to the version route, so a
        # synchronous route only ever hands over to synchronous views.
        def routed(request: HttpRequest, actor_id: str) -> HttpResponse:  # type: ignore[misc]
            chosen, kwargs = target(request, actor_id)
            return chosen(request, **kwargs)

    # Keep .cls and .initkwargs: the schema generator reads them.
    return functools.update_wrapper(routed, view)


def actor_patterns(views: dict[str, Callable[..., Any]]) -> list[URLPattern]:
    """URL patterns for ``actors/<id>/`` and its sub-resources, the sub-resources first (greedy ids)."""
    return [
        re_path(rf"^actors/(?P<actor_id>.+)/{kind + '/' if kind else ''}$", _routed(kind, views), name=ROUTE_NAMES[kind])
        for kind in (*SUBRESOURCES, ACTOR)
    ]


def ambiguous(actor_id: str) -> bool:
    """Whether a greedy reading of a decoded path may have split this id wrongly."""
    return actor_id.endswith(tuple(f"/{kind}" for kind in SUBRESOURCES))
