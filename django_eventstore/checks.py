"""System checks of the ``EVENTSTORE`` setting (ids ``django_eventstore.E001``...); they never touch the network.

| id   | what is wrong |
|------|---------------|
| E001 | ``EVENTSTORE`` is not a dict |
| E002 | an unknown key |
| E003 | ``BACKEND`` is not ``"jetstream"`` or ``"memory"`` |
| E004 | ``SERVERS`` is not ``"embedded"`` or a non-empty list of nats://, tls://, ws:// or wss:// URLs |
| E005 | ``STREAM`` is not a valid JetStream stream name |
| E006 | ``SUBJECT_PREFIX`` is not a valid subject prefix |
| E007 | ``REPLICAS`` is not an int from 1 to 5 |
| E008 | ``SNAPSHOTS_KEEP`` is not an int >= 1 |
| E009 | ``TIMEOUT`` is not a number > 0 |
| E010 | ``AUTO_SETUP`` is not a bool |
| E011 | ``CONNECT_OPTIONS`` is not a dict with string keys |
| E012 | ``VERSION_CACHE_SIZE`` is not an int >= 0 |
| E013 | ``API_PERMISSION_CLASSES`` is not a list of importable permission class paths |
| E014 | ``EMBEDDED_DIR`` is not None or a non-empty string or path |
| E015 | ``ENCRYPTION`` is not None or a dict with a valid ``MASTER_KEY`` (see docs/forgetting.md) |
| E016 | an upcaster chain has a gap (e.g. upcasters from schema 1 and 3, none from 2) |
| E017 | ``TIME_TRAVEL_MAX_EVENTS`` is not an int >= 1 |
"""

from __future__ import annotations

import os
import re
from difflib import get_close_matches
from typing import Any, Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.utils.module_loading import import_string

from .conf import DEFAULTS
from .core.crypto import encryption_options
from .core.errors import EncryptionError
from .core.upcasting import registry

URL_SCHEMES = ("nats", "tls", "ws", "wss")
_STREAM_NAME = re.compile(r"[^\s.*>/\\]{1,255}")
_SUBJECT_TOKEN = re.compile(r"[^\s.*>]+")


def _error(number: int, msg: str, hint: str | None = None) -> Error:
    return Error(msg, hint=hint, obj="settings.EVENTSTORE", id=f"django_eventstore.E{number:03d}")


def _is_int(value: Any, minimum: int, maximum: int | None = None) -> bool:
    return type(value) is int and value >= minimum and (maximum is None or value <= maximum)


def _bad_server(url: Any) -> str | None:
    """Why one SERVERS entry is not a NATS URL (None when it is one)."""
    if not isinstance(url, str):
        return f"{url!r} is not a string"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        return f"{url!r} is not a URL ({e})"
    if parts.scheme not in URL_SCHEMES:
        return f"{url!r} does not start with {', '.join(s + '://' for s in URL_SCHEMES)}"
    if not parts.hostname:
        return f"{url!r} has no host"
    return None


def _servers(value: Any) -> str | None:
    if value == "embedded":
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        return f'must be "embedded" or a non-empty list of URLs, got {value!r}'
    problems = [p for p in map(_bad_server, value) if p]
    return "; ".join(problems) or None


def _permission_classes(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)):
        return f"must be a list, got {type(value).__name__}"
    for entry in value:
        if isinstance(entry, type):
            continue
        if not isinstance(entry, str):
            return f"{entry!r} is neither a dotted path nor a class"
        try:
            import_string(entry)
        except ImportError as e:
            return f"{entry!r} cannot be imported: {e}"
    return None


def _subject_prefix(value: Any) -> bool:
    return isinstance(value, str) and all(_SUBJECT_TOKEN.fullmatch(t) for t in value.split("."))


_Validator = Callable[[Any], str | None]


def _encryption(value: Any) -> str | None:
    try:
        encryption_options(value, "EVENTSTORE")
    except EncryptionError as e:
        return str(e)
    return None


def _expect(ok: Callable[[Any], bool], what: str) -> _Validator:
    return lambda value: None if ok(value) else f"must be {what}, got {value!r}"


# key -> (error number, validator returning what is wrong or None, hint)
VALIDATORS: dict[str, tuple[int, _Validator, str | None]] = {
    "BACKEND": (3, _expect(lambda v: v in ("jetstream", "memory"), '"jetstream" or "memory"'), 'Use "memory" only in tests.'),
    "SERVERS": (4, _servers, 'For example ["nats://127.0.0.1:4222"], or "embedded" for development.'),
    "STREAM": (5, _expect(lambda v: isinstance(v, str) and bool(_STREAM_NAME.fullmatch(v)), "a stream name without spaces, '.', '*', '>', '/' or '\\'"), 'For example "EVENTSTORE".'),
    "SUBJECT_PREFIX": (6, _expect(_subject_prefix, "dot-separated subject tokens without spaces, '*' or '>'"), 'For example "es".'),
    "REPLICAS": (7, _expect(lambda v: _is_int(v, 1, 5), "an int from 1 to 5"), "1 for a single server, 3 for a cluster."),
    "SNAPSHOTS_KEEP": (8, _expect(lambda v: _is_int(v, 1), "an int >= 1"), "How many snapshots per actor the server keeps."),
    "TIMEOUT": (9, _expect(lambda v: type(v) in (int, float) and v > 0, "a number of seconds > 0"), "For example 5.0."),
    "AUTO_SETUP": (10, _expect(lambda v: type(v) is bool, "True or False"), None),
    "CONNECT_OPTIONS": (11, _expect(lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "a dict of nats.connect() keyword arguments"), None),
    "VERSION_CACHE_SIZE": (12, _expect(lambda v: _is_int(v, 0), "an int >= 0"), "0 turns the cache off."),
    "API_PERMISSION_CLASSES": (13, _permission_classes, 'For example ["django_eventstore.api.permissions.EventStorePermission"] (the default).'),
    "ENCRYPTION": (15, lambda v: _encryption(v), 'For example {"MASTER_KEY": os.environ["EVENTSTORE_MASTER_KEY"]}.'),
    "TIME_TRAVEL_MAX_EVENTS": (17, _expect(lambda v: _is_int(v, 1), "an int >= 1"), "The most events one replay applies to show a state; default 10000."),
    "EMBEDDED_DIR": (
        14,
        _expect(lambda v: v is None or (isinstance(v, (str, os.PathLike)) and os.fspath(v) != ""), "None or a non-empty string or path"),
        "For example BASE_DIR / '.eventstore' (the default); add that folder to .gitignore.",
    ),
}


def _unknown_key(key: Any) -> Error:
    close = get_close_matches(str(key).upper(), DEFAULTS, n=1)
    hint = f"Did you mean {close[0]!r}?" if close else f"Known keys: {', '.join(DEFAULTS)}."
    return _error(2, f"EVENTSTORE has an unknown key {key!r}", hint)


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Validate the types and values of ``settings.EVENTSTORE`` without connecting anywhere."""
    user = getattr(settings, "EVENTSTORE", None)
    if user is None:
        return []
    if not isinstance(user, dict):
        return [_error(1, f"EVENTSTORE must be a dict, got {type(user).__name__}")]
    errors = [_unknown_key(key) for key in user if key not in VALIDATORS]
    for key, value in user.items():
        if key in VALIDATORS:
            number, validate, hint = VALIDATORS[key]
            problem = validate(value)
            if problem:
                errors.append(_error(number, f"EVENTSTORE[{key!r}]: {problem}", hint))
    return errors


@register()
def check_upcasters(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every registered upcaster chain runs from schema 1 to its newest without a gap."""
    return [
        Error(f"upcaster chain of {gap}", hint="Add the missing @upcaster, or renumber.", obj="upcasters", id="django_eventstore.E016")
        for gap in registry.gaps()
    ]
