"""The store contract against the in-memory store."""

import pytest

from django_eventstore.core.memory import MemoryEventStore

from .contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return MemoryEventStore()

    def publish_raw_subject(self, store, subject, body, headers=None):
        return store.backend.publish_raw(subject, body, headers)
