"""The bare DRF view the store's endpoints are compared with (same authentication, permissions and renderers, a constant body), and a sync twin of version/."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django_eventstore.api.views import ActorView

CONSTANT = {"actor_id": "bare", "latest_version": 0}  # the shape of a version/ answer


class BareView(APIView):
    """GET answers a constant: what DRF and Django cost before any store work (authentication and permissions come from the settings)."""

    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]  # as the store's views

    def get(self, request: Request) -> Response:
        return Response(CONSTANT)


class SyncVersionView(ActorView):
    """The API's ``version/`` written as a plain sync view (bench only): shows what the async view costs a WSGI worker."""

    def get(self, request: Request, **kwargs: Any) -> Response:
        version = self.store.get_latest_version(self.actor_id)
        return Response({"actor_id": self.actor_id, "latest_version": version}, headers={"ETag": f'"{version}"'})
