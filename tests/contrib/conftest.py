"""The eventsourcing library's applications find our module through PERSISTENCE_MODULE in the environment."""

from __future__ import annotations

import pytest

MODULE = "django_eventstore.contrib.eventsourcing"


@pytest.fixture(autouse=True)
def _persistence_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Application built in these tests persists with our module, on this test's stream."""
    monkeypatch.setenv("PERSISTENCE_MODULE", MODULE)
