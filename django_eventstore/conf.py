"""The ``EVENTSTORE`` setting: defaults, read lazily, re-read when ``override_settings`` changes it."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    "BACKEND": "jetstream",
    "SERVERS": ["nats://127.0.0.1:4222"],
    "STREAM": "EVENTSTORE",
    "SUBJECT_PREFIX": "es",
    "REPLICAS": 1,
    "SNAPSHOTS_KEEP": 1,
    "TIMEOUT": 5.0,
    "AUTO_SETUP": True,
    "CONNECT_OPTIONS": {},
    "VERSION_CACHE_SIZE": 10_000,
    "API_PERMISSION_CLASSES": ["django_eventstore.api.permissions.EventStorePermission"],
    "EMBEDDED_DIR": None,
    "ENCRYPTION": None,
    "TIME_TRAVEL_MAX_EVENTS": 10_000,
}


@cache
def get_config() -> dict[str, Any]:
    """The effective configuration: DEFAULTS updated with ``settings.EVENTSTORE``."""
    user = getattr(settings, "EVENTSTORE", None) or {}
    return {**DEFAULTS, **(user if isinstance(user, dict) else {})}


def embedded_dir() -> str:
    """Where ``SERVERS = "embedded"`` keeps the local nats-server's data: EMBEDDED_DIR, else BASE_DIR/.eventstore.

    Without either, a directory in the temporary directory named after the
    working directory: two projects never share one.
    """
    configured = get_config()["EMBEDDED_DIR"]
    if configured:
        return os.fspath(configured)
    base = getattr(settings, "BASE_DIR", None)
    if base:
        return os.path.join(base, ".eventstore")
    import hashlib
    import tempfile

    project = hashlib.sha256(os.fsencode(os.path.abspath(os.getcwd()))).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"django-eventstore-{project}")


@receiver(setting_changed)
def _reload(setting: str, **kwargs: Any) -> None:
    if setting in ("EVENTSTORE", "BASE_DIR"):
        get_config.cache_clear()
        from .store import reset_store

        reset_store()
