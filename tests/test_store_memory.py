"""The store contract against the in-memory store."""

import pytest

from django_eventstore.core.memory import MemoryEventStore

from .contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return MemoryEventStore()

    def publish_raw(self, store, actor_id, body, headers=None):
        return store.backend.publish_raw(store.engine.subjects.event_subject(actor_id), body, headers)
