"""The store over NATS JetStream: the engine's rules over the JetStream backend, run on the process's portal loop.

connection.py talks to NATS (through nats-py's public API only), jetstream_backend.py
turns stream primitives into JetStream requests, and this module assembles them.
"""

from __future__ import annotations

from typing import Any, Coroutine, TypeVar

from .crypto import encryption_options, keyring_for
from .engine import Engine
from .facade import EventStore
from .jetstream_backend import JetStreamBackend
from .portal import Portal
from .subjects import Subjects

T = TypeVar("T")


class JetStreamEventStore(EventStore):
    """The store over JetStream, run on the process's portal loop; see EventStore for the API."""

    def __init__(
        self,
        servers: list[str] | str,
        *,
        stream: str = "EVENTSTORE",
        subject_prefix: str = "es",
        replicas: int = 1,
        snapshots_keep: int = 1,
        timeout: float = 5.0,
        auto_setup: bool = True,
        connect_options: dict[str, Any] | None = None,
        cache_size: int = 10_000,
        encryption: dict[str, Any] | None = None,
    ):
        subjects = Subjects(subject_prefix)
        encryption = encryption_options(encryption, stream)
        self.backend = JetStreamBackend(
            [servers] if isinstance(servers, str) else servers,
            subjects,
            stream,
            replicas,
            snapshots_keep,
            timeout,
            auto_setup,
            connect_options,
            key_bucket=encryption["KEY_BUCKET"] if encryption else None,
        )
        # index_follow: after a listing, the actor index reads new events as they come for a minute (listings stay fast)
        super().__init__(Engine(self.backend, subjects, cache_size, keyring=keyring_for(self.backend, encryption), index_follow=60.0))
        self.portal = Portal(on_fork=self._after_fork)

    def _after_fork(self) -> None:
        self.backend.forget()
        self.engine.forget_cache()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.portal.call(coro)

    async def _acall(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self.portal.acall(coro)

    def close(self) -> None:
        super().close()
        self.portal.stop()
