"""The backend contract against the JetStream backend on a real nats-server and against the memory backend."""

from __future__ import annotations

import pytest

from django_eventstore.core.memory import MemoryBackend, run_now
from django_eventstore.core.subjects import Subjects

from .backend_contract import BackendContract, BackendUnderTest


class TestJetStreamBackend(BackendContract):
    @pytest.fixture
    def backend(self, js_store):
        js_store.setup()
        return BackendUnderTest(js_store.backend, js_store.engine.subjects, js_store.portal.call)


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self):
        subjects = Subjects("es")
        return BackendUnderTest(MemoryBackend(subjects), subjects, run_now)
