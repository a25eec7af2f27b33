"""Bearer-token authentication without a database: the benchmark's requests authenticate as an in-memory superuser."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request


class BenchTokenAuthentication(BaseAuthentication):
    """``Authorization: Bearer <BENCH_TOKEN>`` authenticates as an unsaved superuser (no query); a wrong token is a 401."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        scheme, _, token = get_authorization_header(request).partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        if not hmac.compare_digest(token, settings.BENCH_TOKEN.encode()):
            raise AuthenticationFailed("Wrong bench token.")
        return User(username="bench", is_active=True, is_staff=True, is_superuser=True), None

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"
