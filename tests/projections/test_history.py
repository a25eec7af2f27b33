"""Projections receive events as readers do: upcast, and with no data once their actor is forgotten."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from cryptography.fernet import Fernet

from django_eventstore import Event, get_store
from django_eventstore.projections import Projection, catch_up, handles
from django_eventstore.upcasting import registry

pytestmark = pytest.mark.usefixtures("projections_db")


class Names(Projection):
    """Keeps what it was given: (actor, schema, data, forgotten) of each event."""

    name = "tests.names"
    actor_types = ["person"]
    seen: ClassVar[list[tuple[Any, ...]]] = []

    @handles("Registered")
    def registered(self, event: Event) -> None:
        self.seen.append((event.actor_id, event.schema, event.data, event.forgotten))

    @handles("ActorForgotten")
    def forgotten(self, event: Event) -> None:
        self.seen.append((event.actor_id, "ActorForgotten"))


def to_full_name(data: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    return {"full_name": f"{data['first']} {data['last']}"}


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch, settings: Any, eventstore_settings: dict[str, Any]) -> Iterator[type[Names]]:
    monkeypatch.setattr(Names, "seen", [])
    settings.EVENTSTORE = {**eventstore_settings, "ENCRYPTION": {"MASTER_KEY": Fernet.generate_key().decode()}}
    registry.register("Registered", 1, to_full_name)
    yield Names
    registry.unregister("Registered", 1)


def test_a_projection_gets_upcast_events_and_forgotten_ones_without_data(names: type[Names]) -> None:
    store = get_store()
    store.save_event(Event(event_type="Registered", actor_id="person-1", version=1, data={"first": "Ada", "last": "Lovelace"}, schema=1))
    store.save_event(Event(event_type="Registered", actor_id="person-2", version=1, data={"full_name": "Alan Turing"}))
    store.forget("person-2")
    catch_up([names.name])
    assert names.seen == [
        ("person-1", 2, {"full_name": "Ada Lovelace"}, False),
        ("person-2", 2, None, True),
        ("person-2", "ActorForgotten"),
    ]
