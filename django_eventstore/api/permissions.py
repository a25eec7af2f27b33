"""The REST API's default permission: Django's model permissions on the ``Actor`` model, as the admin uses them.

Reading (GET, HEAD, OPTIONS) needs ``django_eventstore.view_actor``, the
admin's "Can view actor"; writing (POST events, PUT snapshots) needs
``django_eventstore.write_events``. Superusers have both; anonymous and
inactive users neither. ``EVENTSTORE["API_PERMISSION_CLASSES"]`` replaces it.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

READ_PERMISSION = "django_eventstore.view_actor"
WRITE_PERMISSION = "django_eventstore.write_events"


class EventStorePermission(BasePermission):
    """``view_actor`` to read, ``write_events`` to write; the refusal names the permission missing."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            needed, self.message = READ_PERMISSION, f"Reading the event store needs the {READ_PERMISSION} permission."
        else:
            needed, self.message = WRITE_PERMISSION, f"Writing events needs the {WRITE_PERMISSION} permission."
        return bool(user.has_perm(needed))
