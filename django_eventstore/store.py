"""``get_store()``: the process-wide store configured from ``settings.EVENTSTORE``."""

from __future__ import annotations

import threading
from typing import Any

from .conf import get_config
from .core.errors import EventStoreError, EventStoreUnavailable, StreamSetupError
from .core.facade import EventStore
from .embedded import EmbeddedServerNotRunning, ensure_embedded_server

_lock = threading.Lock()
_store: EventStore | None = None


def build_store(config: dict[str, Any], *, start_embedded: bool = True) -> EventStore:
    """A new store for a configuration (the shape of ``conf.get_config()``).

    With ``SERVERS = "embedded"`` it starts the embedded nats-server when none
    runs, unless ``start_embedded`` is false (then EmbeddedServerNotRunning).
    """
    if config["BACKEND"] == "memory":
        from .core.memory import MemoryEventStore

        return MemoryEventStore(
            prefix=config["SUBJECT_PREFIX"],
            stream=config["STREAM"],
            snapshots_keep=config["SNAPSHOTS_KEEP"],
            cache_size=config["VERSION_CACHE_SIZE"],
            encryption=config["ENCRYPTION"],
        )
    from .core.jetstream import JetStreamEventStore

    servers = config["SERVERS"]
    if servers == "embedded":
        servers = [ensure_embedded_server(start=start_embedded)]
    return JetStreamEventStore(
        servers,
        stream=config["STREAM"],
        subject_prefix=config["SUBJECT_PREFIX"],
        replicas=config["REPLICAS"],
        snapshots_keep=config["SNAPSHOTS_KEEP"],
        timeout=float(config["TIMEOUT"]),
        auto_setup=config["AUTO_SETUP"],
        connect_options=config["CONNECT_OPTIONS"],
        cache_size=config["VERSION_CACHE_SIZE"],
        encryption=config["ENCRYPTION"],
    )


def get_store() -> EventStore:
    """The store of this process, built on first use (no connection is opened until a call needs one)."""
    return _get_store(start_embedded=True)


def get_running_store() -> EventStore:
    """The store for callers that only read: as get_store(), but it never starts the embedded nats-server.

    With ``SERVERS = "embedded"`` and none running it raises
    EmbeddedServerNotRunning (an EventStoreUnavailable) instead: a command that
    only looks at the store should say that nothing runs, not start a server.
    """
    return _get_store(start_embedded=False)


def _get_store(start_embedded: bool) -> EventStore:
    global _store
    store = _store
    if store is None:
        with _lock:
            if _store is None:
                _store = build_store(get_config(), start_embedded=start_embedded)
            store = _store
    return store


def reset_store() -> None:
    """Forget the current store (closing it); the next get_store() builds one from the settings."""
    global _store
    with _lock:
        store, _store = _store, None
    if store is not None:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - a store that cannot reach NATS has nothing to close
            pass


SETUP_HINT = "Run `manage.py eventstore_setup` (or leave AUTO_SETUP on)."
SERVERS_HINT = "Check settings.EVENTSTORE['SERVERS'] (and TIMEOUT), or start a local server with `manage.py eventstore_server`."


def explain(error: EventStoreError) -> str:
    """A store error for people (commands, admin): the core's message and, where one helps, what to do about it."""
    if isinstance(error, EmbeddedServerNotRunning):  # its message says what to run
        return str(error)
    hint = SETUP_HINT if isinstance(error, StreamSetupError) else SERVERS_HINT if isinstance(error, EventStoreUnavailable) else ""
    text = str(error).rstrip(". ")
    return f"{text}. {hint}" if hint else str(error)
