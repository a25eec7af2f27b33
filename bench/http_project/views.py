"""The bare DRF view the store's endpoints are compared with: the same authentication, permissions and renderers, a constant body."""

from __future__ import annotations

from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

CONSTANT = {"actor_id": "bare", "latest_version": 0}  # the shape of a version/ answer


class BareView(APIView):
    """GET answers a constant: what DRF and Django cost before any store work (authentication and permissions come from the settings)."""

    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]  # as the store's views

    def get(self, request: Request) -> Response:
        return Response(CONSTANT)
