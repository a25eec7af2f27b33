"""``docs/``: Swagger UI for the API's schema, its assets served from drf-spectacular-sidecar (no CDN).

The assets are read from the sidecar package's files by a view of this
URLconf, so the page needs neither ``drf_spectacular_sidecar`` in
``INSTALLED_APPS`` nor ``collectstatic``, like ``schema/`` needs no settings.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

import drf_spectacular_sidecar
from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest
from django.utils.html import format_html, json_script
from django.utils.safestring import SafeString
from rest_framework.renderers import StaticHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .http import api_url
from .views import StoreView

DIST = Path(drf_spectacular_sidecar.__file__).parent / "static" / "drf_spectacular_sidecar" / "swagger-ui-dist"
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"})
ASSET_MAX_AGE = 86_400  # seconds: the files change only with the installed sidecar version

INIT = SafeString(
    """<script>
const config = JSON.parse(document.getElementById("eventstore-swagger").textContent);
window.ui = SwaggerUIBundle({
  url: config.schema, dom_id: "#swagger-ui", deepLinking: true, layout: "StandaloneLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  requestInterceptor: (request) => {
    const token = document.cookie.split("; ").find((c) => c.startsWith(config.csrfCookie + "="));
    if (token) request.headers["X-CSRFToken"] = decodeURIComponent(token.split("=").slice(1).join("="));
    return request;
  },
});
</script>"""
)


def swagger_page(asset_base: str, schema_url: str) -> str:
    """The HTML page: Swagger UI's files from ``asset_base``, the schema from ``schema_url``."""
    config = json_script({"schema": schema_url, "csrfCookie": settings.CSRF_COOKIE_NAME}, "eventstore-swagger")
    return format_html(
        """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>django-eventstore API</title><link rel="icon" href="{0}favicon-32x32.png"><link rel="stylesheet" href="{0}swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="{0}swagger-ui-bundle.js"></script><script src="{0}swagger-ui-standalone-preset.js"></script>
{1}{2}</body></html>""",
        asset_base,
        config,
        INIT,
    )


class DocsView(StoreView):
    """GET ``docs/``: Swagger UI showing ``schema/``; the same permissions as the other views."""

    schema = None
    renderer_classes = [StaticHTMLRenderer]

    def get(self, request: Request) -> Response:
        return Response(swagger_page(api_url(request, "docs"), api_url(request, "schema")))


def docs_asset(request: HttpRequest, name: str) -> FileResponse:
    """One of Swagger UI's files, from the installed sidecar; 404 for any other name."""
    if name not in ASSETS:
        raise Http404(f"No Swagger UI file named {name!r}.")
    response = FileResponse((DIST / name).open("rb"), content_type=mimetypes.guess_type(name)[0])
    response["Cache-Control"] = f"public, max-age={ASSET_MAX_AGE}"
    return response
