"""The eventsourcing library's own abstract test cases, run against our persistence module on a real nats-server.

Each test gets a fresh stream (the suite's autouse fixture points
settings.EVENTSTORE at it), so notification ids start at 1 as the cases expect.
"""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.tests import application as es_application
from eventsourcing.tests import persistence as es_persistence
from eventsourcing.utils import Environment

from django_eventstore.contrib.eventsourcing import (
    JetStreamAggregateRecorder,
    JetStreamApplicationRecorder,
    JetStreamFactory,
    JetStreamProcessRecorder,
    JetStreamTrackingRecorder,
)

from .conftest import MODULE


def new_factory() -> JetStreamFactory:
    return JetStreamFactory(Environment("TestApp"))


class TestAggregateRecorder(es_persistence.AggregateRecorderTestCase):
    def create_recorder(self) -> JetStreamAggregateRecorder:
        return new_factory().aggregate_recorder()  # type: ignore[return-value]


class TestSnapshotRecorder(es_persistence.AggregateRecorderTestCase):
    """The snapshots' recorder (purpose "snapshots") passes the same case."""

    def create_recorder(self) -> JetStreamAggregateRecorder:
        return new_factory().aggregate_recorder(purpose="snapshots")  # type: ignore[return-value]


class TestApplicationRecorder(es_persistence.ApplicationRecorderTestCase[JetStreamApplicationRecorder]):
    def create_recorder(self) -> JetStreamApplicationRecorder:
        return new_factory().application_recorder()  # type: ignore[return-value]

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()

    @pytest.mark.slow
    def test_concurrent_no_conflicts(self, initial_position: int = 0) -> None:
        super().test_concurrent_no_conflicts(initial_position)

    @pytest.mark.slow
    def test_concurrent_throughput(self) -> None:
        super().test_concurrent_throughput()


class TestTrackingRecorder(es_persistence.TrackingRecorderTestCase):
    def create_recorder(self) -> JetStreamTrackingRecorder:
        return new_factory().tracking_recorder()


class TestProcessRecorder(es_persistence.ProcessRecorderTestCase):
    def create_recorder(self) -> JetStreamProcessRecorder:
        return new_factory().process_recorder()  # type: ignore[return-value]


@pytest.mark.slow
class TestNonInterleavingNotificationIDs(es_persistence.NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> JetStreamApplicationRecorder:
        return new_factory().application_recorder()  # type: ignore[return-value]


class MyTrackingRecorder(JetStreamTrackingRecorder):
    pass


class TestFactory(es_persistence.InfrastructureFactoryTestCase[JetStreamFactory]):
    def setUp(self) -> None:
        self.env = Environment("TestCase")
        self.env[InfrastructureFactory.PERSISTENCE_MODULE] = MODULE
        super().setUp()

    def expected_factory_class(self) -> type[JetStreamFactory]:
        return JetStreamFactory

    def expected_aggregate_recorder_class(self) -> type[Any]:
        return JetStreamAggregateRecorder

    def expected_application_recorder_class(self) -> type[Any]:
        return JetStreamApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[Any]:
        return JetStreamTrackingRecorder

    def tracking_recorder_subclass(self) -> type[Any]:
        return MyTrackingRecorder

    def expected_process_recorder_class(self) -> type[Any]:
        return JetStreamProcessRecorder


class TestBankAccountsExample(es_application.ExampleApplicationTestCase):
    """The library's bank-accounts example application (snapshotting on) on our module."""

    expected_factory_topic = f"{MODULE}:JetStreamFactory"
