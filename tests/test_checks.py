"""System checks of settings.EVENTSTORE: one stable id per kind of mistake, no network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_eventstore.checks import VALIDATORS
from django_eventstore.conf import DEFAULTS

pytestmark = pytest.mark.without_nats  # system checks never touch the network

UNREACHABLE = {"SERVERS": ["nats://127.0.0.1:1"]}


def ids(eventstore: Any) -> list[str]:
    with override_settings(EVENTSTORE=eventstore):
        return [m.id for m in run_checks() if m.id and m.id.startswith("django_eventstore.")]


def test_every_setting_has_a_check() -> None:
    assert set(VALIDATORS) == set(DEFAULTS)


@pytest.mark.parametrize(
    "eventstore",
    [
        None,
        {},
        UNREACHABLE,
        {**DEFAULTS},
        {"SERVERS": "embedded", "EMBEDDED_DIR": Path("/tmp/x")},
        {"SERVERS": "nats://host:4222"},
        {"SERVERS": ["tls://a.example:4222", "ws://b:80", "wss://user:pw@c"], "TIMEOUT": 2, "REPLICAS": 3},
        {"BACKEND": "memory", "VERSION_CACHE_SIZE": 0, "CONNECT_OPTIONS": {"name": "web"}, "SUBJECT_PREFIX": "app.es"},
        {"API_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"], "AUTO_SETUP": False, "SNAPSHOTS_KEEP": 5, "STREAM": "ORDERS-1"},
    ],
)
def test_valid_settings_pass(eventstore: Any) -> None:
    assert ids(eventstore) == []


@pytest.mark.parametrize(
    "key,value,check_id",
    [
        (None, ["not", "a", "dict"], "E001"),
        ("SERVER", ["nats://x"], "E002"),
        ("BACKEND", "redis", "E003"),
        ("SERVERS", [], "E004"),
        ("SERVERS", ["http://127.0.0.1:4222"], "E004"),
        ("SERVERS", ["nats://"], "E004"),
        ("SERVERS", ["nats://host:notaport"], "E004"),
        ("SERVERS", [4222], "E004"),
        ("SERVERS", "embeded", "E004"),
        ("SERVERS", {"url": "nats://x"}, "E004"),
        ("STREAM", "my.stream", "E005"),
        ("STREAM", "", "E005"),
        ("STREAM", 3, "E005"),
        ("SUBJECT_PREFIX", "es.>", "E006"),
        ("SUBJECT_PREFIX", "a..b", "E006"),
        ("SUBJECT_PREFIX", "has space", "E006"),
        ("REPLICAS", 0, "E007"),
        ("REPLICAS", "3", "E007"),
        ("REPLICAS", 7, "E007"),
        ("SNAPSHOTS_KEEP", 0, "E008"),
        ("TIMEOUT", 0, "E009"),
        ("TIMEOUT", "5", "E009"),
        ("TIMEOUT", True, "E009"),
        ("AUTO_SETUP", "yes", "E010"),
        ("CONNECT_OPTIONS", ["user"], "E011"),
        ("CONNECT_OPTIONS", {1: "x"}, "E011"),
        ("VERSION_CACHE_SIZE", -1, "E012"),
        ("VERSION_CACHE_SIZE", 1.5, "E012"),
        ("API_PERMISSION_CLASSES", "rest_framework.permissions.AllowAny", "E013"),
        ("API_PERMISSION_CLASSES", ["no.such.Permission"], "E013"),
        ("API_PERMISSION_CLASSES", [42], "E013"),
        ("EMBEDDED_DIR", 5, "E014"),
        ("EMBEDDED_DIR", "", "E014"),
    ],
)
def test_each_mistake_has_its_id(key: str | None, value: Any, check_id: str) -> None:
    eventstore = value if key is None else {**UNREACHABLE, key: value}
    assert ids(eventstore) == [f"django_eventstore.{check_id}"]
    with override_settings(EVENTSTORE=eventstore), pytest.raises(SystemCheckError, match=f"django_eventstore.{check_id}"):
        call_command("check")


def test_messages_name_the_key_and_hint_a_fix() -> None:
    with override_settings(EVENTSTORE={"SERVERS": ["http://x"], "TIMEUOT": 5}):
        messages = {m.id: m for m in run_checks() if m.id.startswith("django_eventstore.")}
    assert "'http://x'" in messages["django_eventstore.E004"].msg and "nats://" in messages["django_eventstore.E004"].msg
    assert "'TIMEUOT'" in messages["django_eventstore.E002"].msg
    assert messages["django_eventstore.E002"].hint == "Did you mean 'TIMEOUT'?"


def test_several_mistakes_are_all_reported() -> None:
    assert sorted(ids({"BACKEND": 1, "REPLICAS": 0, "NOPE": 1})) == ["django_eventstore.E002", "django_eventstore.E003", "django_eventstore.E007"]


def test_checks_open_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a system check tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert ids({"SERVERS": ["nats://10.255.255.1:4222"], "TIMEOUT": 30}) == []
