"""The "Actors" admin: a changelist, one page per actor and a stream overview, read from the store.

The ``Actor`` model has no table, so only these read-only views are routed
(the admin's add, change, delete and history views are not), and each checks
the model's ``view`` permission itself.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from . import (
    EventStoreError,
    EventStoreUnavailable,
    StreamSetupError,
    admin_projections,  # noqa: F401 - registers the "Projections" admin
    get_store,
)
from . import admin_live as live
from . import admin_views as pages
from .admin_state import state_section
from .middleware import RETRY_AFTER_SECONDS
from .models import Actor
from .store import explain

TEMPLATES = "django_eventstore/admin/"
log = logging.getLogger("django_eventstore")


@admin.register(Actor)
class ActorAdmin(admin.ModelAdmin):
    """Browse actors, their snapshots and events; nothing here writes to the store."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(require_safe(view))

        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", wrap(self.changelist_view), name=f"{name}_changelist"),
            # Two segments: an actor's token (one segment, no "/") can never take this route.
            path("stream/overview/", wrap(self.overview_view), name=f"{name}_overview"),
            path("stream/live/", wrap(self.live_view), name=f"{name}_live"),
            path("stream/live/events/", wrap(self.live_events_view), name=f"{name}_live_events"),
            path("<str:token>/", wrap(self.actor_view), name=f"{name}_actor"),
            path("<str:token>/forget/", self.admin_site.admin_view(self.forget_view), name=f"{name}_forget"),
        ]

    def _url(self, view: str, *args: str) -> str:
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}", args=args)

    def _render(
        self, request: HttpRequest, template: str, title: str, build: Callable[[], dict[str, Any]], crumbs: bool = True
    ) -> HttpResponse:
        """Check the view permission, read what the page shows, render it; a store error gives a 503 page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "changelist_url": self._url("changelist"),
            "overview_url": self._url("overview"),
            "live_url": self._url("live"),
            "crumbs": crumbs,
        }
        try:
            context.update(build())
        except EventStoreError as e:
            return self.store_error(request, context, e)
        return TemplateResponse(request, TEMPLATES + template, context)

    def store_error(self, request: HttpRequest, context: dict[str, Any], error: EventStoreError) -> HttpResponse:
        """The 503 page: what is wrong and what to do, for people; the server's own answer goes to the log only."""
        known = isinstance(error, (EventStoreUnavailable, StreamSetupError))
        log.warning("admin %s answered 503: %s: %s", request.path, type(error).__name__, error)
        context["error"] = explain(error) if known else "The server's log has the details."
        context["unavailable"] = isinstance(error, EventStoreUnavailable)
        context["not_set_up"] = isinstance(error, StreamSetupError)
        response = TemplateResponse(request, TEMPLATES + "store_error.html", context, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        def build() -> dict[str, Any]:
            return {"listing": pages.actor_list(get_store(), request.GET, lambda token: self._url("actor", token))}

        return self._render(request, "changelist.html", "Actors", build, crumbs=False)

    def actor_view(self, request: HttpRequest, token: str) -> HttpResponse:
        def build() -> dict[str, Any]:
            actor_id = pages.actor_id_of(token)
            page = pages.actor_page(get_store(), actor_id, request.GET)
            state = state_section(get_store(), actor_id, request.GET, page.latest_version)
            forget_url = self._url("forget", token) if self.has_forget_permission(request) and get_store().encrypted else None
            return {"page": page, "title": f"Actor {actor_id}", "state": state, "forget_url": forget_url}

        try:
            return self._render(request, "actor.html", "Actor", build)
        except pages.NoSuchActor as e:
            # As the admin does for a missing object: back to the list, with its own (translated) message.
            message = _("%(name)s with ID “%(key)s” doesn’t exist. Perhaps it was deleted?")
            messages.warning(request, message % {"name": self.opts.verbose_name, "key": e.actor_id})
            return HttpResponseRedirect(self._url("changelist"))

    def has_forget_permission(self, request: HttpRequest) -> bool:
        """Forgetting erases data for good: superusers only."""
        return bool(request.user.is_active and request.user.is_superuser)

    def forget_view(self, request: HttpRequest, token: str) -> HttpResponse:
        """GET: ask to confirm; POST: forget the actor (store.forget) and go back to its page."""
        if not self.has_forget_permission(request):
            raise PermissionDenied
        actor_id = pages.actor_id_of(token)
        if request.method == "POST":
            try:
                result = get_store().forget(actor_id)
            except EventStoreError as e:
                messages.error(request, f"Actor {actor_id} was not forgotten: {explain(e)}")
            else:
                done = "was forgotten already" if result.already_forgotten else "is forgotten: its data can no longer be read"
                messages.success(request, f"Actor {actor_id} {done}.")
            return HttpResponseRedirect(self._url("actor", token))
        if request.method != "GET":
            return HttpResponse(status=405, headers={"Allow": "GET, POST"})
        context = {"actor_id": actor_id, "actor_url": self._url("actor", token)}
        return self._render(request, "forget.html", f"Forget {actor_id}", lambda: context)

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        return self._render(request, "overview.html", "Stream overview", lambda: pages.stream_rows(get_store()))

    def live_view(self, request: HttpRequest) -> HttpResponse:
        """New events as they are stored (``?actor_id=`` for one actor's), shown by live.js."""

        def build() -> dict[str, Any]:
            page = live.live_page(get_store(), request.GET, self._url("live_events"), lambda token: self._url("actor", token))
            return {"live": page, "title": f"Live events of {page.flt.actor_id}" if page.flt.actor_id else "Live events"}

        return self._render(request, "live.html", "Live events", build)

    def live_events_view(self, request: HttpRequest) -> HttpResponse:
        """The live page's Server-Sent Events: staff with the view permission, as the other pages."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return live.live_events(request, get_store())
