"""The store contract against the in-memory store (no nats-server needed)."""

import pytest

from django_eventstore.core.memory import MemoryEventStore

from .contract import StoreContract

pytestmark = pytest.mark.without_nats


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self):
        return MemoryEventStore()

    def publish_raw_subject(self, store, subject, body, headers=None):
        return store.backend.publish_raw(subject, body, headers)
