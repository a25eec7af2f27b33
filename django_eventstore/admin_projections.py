"""The "Projections" admin: each projection's position, the stream's last position, lag, last update and error; rebuilds.

The list comes from the projections defined in code (with their checkpoint
rows), so a projection that never ran shows at position 0; checkpoints no
projection in code uses follow, marked "not in code". Viewing needs the
checkpoint model's ``view`` permission; a rebuild, behind a confirmation page,
its ``change`` permission. A rebuild replays in the request for at most
``rebuild_seconds`` and leaves the rest to the projection runner.
"""

from __future__ import annotations

from typing import Any, Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_http_methods, require_safe

from . import EventStoreError, EventStoreUnavailable, get_store
from .models import ProjectionCheckpoint
from .projections import ProjectionError, get_projections, rebuild, states

TEMPLATES = "django_eventstore/admin/"


@admin.register(ProjectionCheckpoint)
class ProjectionAdmin(admin.ModelAdmin):
    """Lists the projections with their progress; rebuilds one after a confirmation. Checkpoints are never edited by hand."""

    #: How long a rebuild replays inside the request before leaving the rest to ``manage.py eventstore_project``.
    rebuild_seconds: float = 10.0

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", wrap(require_safe(self.changelist_view)), name=f"{name}_changelist"),
            path("rebuild/", wrap(require_http_methods(["GET", "HEAD", "POST"])(self.rebuild_view)), name=f"{name}_rebuild"),
        ]

    def _url(self, view: str) -> str:
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}")

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "changelist_url": self._url("changelist"),
            "rebuild_url": self._url("rebuild"),
            "crumbs": title != "Projections",
            "rebuild_seconds": self.rebuild_seconds,
        }

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = self._context(request, "Projections")
        try:
            last_position = get_store().last_position()
        except EventStoreError as e:
            context.update(error=e, unavailable=isinstance(e, EventStoreUnavailable))
            return TemplateResponse(request, TEMPLATES + "store_error.html", context, status=503)
        found = states(last_position=last_position, orphans=True)
        context.update(
            last_position=last_position,
            projections=found,
            orphans=any(not state.in_code for state in found),
            can_rebuild=self.has_change_permission(request),
        )
        return TemplateResponse(request, TEMPLATES + "projections.html", context)

    def rebuild_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the confirmation page; POST: empty the read models, replay the stream into them, back to the list."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        name = data.get("name", "")
        try:
            projection = get_projections([name])[name]
        except LookupError:
            raise Http404(f"no projection named {name!r}") from None
        if request.method != "POST":
            context = self._context(request, f"Rebuild {name}")
            context.update(projection=projection, state=states([name])[0])
            return TemplateResponse(request, TEMPLATES + "projections_rebuild.html", context)
        try:
            last_position = get_store().last_position()
            position = rebuild(name, max_seconds=self.rebuild_seconds)
        except ProjectionError as e:
            messages.error(request, f"Rebuild stopped: {e}")
        except NotImplementedError as e:
            messages.error(request, str(e))
        except EventStoreError as e:
            messages.error(request, f"Rebuild failed, the event store did not answer: {e}")
        else:
            if position < last_position:
                messages.warning(
                    request,
                    f"Rebuilt {name} up to position {position} of {last_position} in {self.rebuild_seconds:g} s; the projection runner "
                    f"(manage.py eventstore_project) applies the rest. A large rebuild is better done with: manage.py eventstore_project --rebuild {name}",
                )
            else:
                messages.success(request, f"Rebuilt {name} up to position {position}.")
        return HttpResponseRedirect(self._url("changelist"))
