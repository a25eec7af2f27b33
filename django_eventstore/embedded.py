"""``SERVERS = "embedded"``: one local nats-server per data directory, for development.

The data directory (``EMBEDDED_DIR``, else ``BASE_DIR/.eventstore``) holds the
JetStream store (``jetstream/``), the server's log, and ``server.json``, which
records the server's port (chosen once per directory, never NATS's default 4222,
so two projects never share a store), its pid and who started it.

Who keeps it running:

- ``process``: a process that used the store and found none running started it
  (``manage.py shell``, runserver, a test). Every process using the server holds
  a shared lock on ``clients.lock``; a watcher process stops the server once
  none does, so it goes when the last of them exits, even by ``kill -9``.
- ``foreground``: ``manage.py eventstore_server``; it stops with that command.
- ``detached``: ``manage.py eventstore_server --detach``; it runs until
  ``manage.py eventstore_server --stop``.

A server is running exactly while ``server.lock`` is locked: the lock is held by
the server and its watcher, and the kernel drops it when both are gone, so a
stale pid in ``server.json`` can never pass for a running server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

from . import nats_process
from .conf import embedded_dir
from .core.errors import EventStoreUnavailable
from .nats_process import HOST, free_port, port_free, server_command, stop_process

try:
    import fcntl
except ImportError:  # Windows: no flock, no embedded server
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("django_eventstore")

NATS_DEFAULT_PORT = 4222  # a real NATS's port: the embedded server never takes it unless asked to
RECORD, LOG = "server.json", "nats-server.log"
START_LOCK, SERVER_LOCK, CLIENTS_LOCK = "lock", "server.lock", "clients.lock"
START_TIMEOUT = STOP_TIMEOUT = 15.0
MODES = ("process", "foreground", "detached")

_clients: dict[Path, int] = {}  # data directory -> this process's descriptor holding a shared lock on its clients.lock


class EmbeddedServerNotRunning(EventStoreUnavailable):
    """No embedded server runs for the data directory, and the caller only reads, so it did not start one."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        super().__init__(
            f"no embedded nats-server runs for {self.directory}, and commands that only read do not start one. "
            "Start it with `manage.py eventstore_server` (in the foreground, or with --detach), "
            "or run something that writes to the store (runserver, the demo's `manage.py demo`), then retry."
        )


@dataclass(frozen=True)
class ServerState:
    """What ``server.json`` and ``server.lock`` say about a data directory's embedded server."""

    directory: Path
    running: bool
    port: int | None = None  # the recorded port: the one the server uses, or will use next time
    pid: int | None = None  # nats-server's pid (of the last run when not running)
    watcher: int | None = None
    mode: str | None = None  # one of MODES
    owner: int | None = None  # the process that started it

    @property
    def url(self) -> str | None:
        return f"nats://{HOST}:{self.port}" if self.port else None

    def describe(self) -> str:
        """Who keeps it running, in words."""
        if self.mode == "process":
            return f"started by process {self.owner} when it used the store; stops when the last process using it exits"
        if self.mode == "foreground":
            return f"run by `manage.py eventstore_server` (pid {self.owner}); stops with it"
        if self.mode == "detached":
            return "started by `manage.py eventstore_server --detach`; runs until `manage.py eventstore_server --stop`"
        return "started by an earlier version of django-eventstore"


@dataclass
class StartedServer:
    """A server this process just started: its state and, in the foreground, its watcher (our child) and the lifeline that keeps it."""

    state: ServerState
    watcher: subprocess.Popen[bytes] | None = None
    lifeline: int | None = None

    def stop(self) -> int:
        """Stop a foreground server: close the lifeline, wait for the watcher; its exit status (0: stopped on request)."""
        if self.lifeline is not None:
            os.close(self.lifeline)  # the watcher sees end of file and stops nats-server
            self.lifeline = None
        if self.watcher is None:
            return 0
        try:
            return self.watcher.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            stop_process(self.watcher)
            return self.watcher.returncode


class AlreadyRunning(RuntimeError):
    """The data directory's server runs already (``state`` says how)."""

    def __init__(self, state: ServerState):
        self.state = state
        super().__init__(f"the embedded nats-server of {state.directory} already runs at {state.url} (pid {state.pid}; {state.describe()})")


def _need_flock() -> None:
    if fcntl is None:
        raise RuntimeError("the embedded nats-server needs flock (Linux, macOS, BSD); set EVENTSTORE['SERVERS'] to a NATS URL")


def _read_record(root: Path) -> dict[str, Any]:
    try:
        record = json.loads((root / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _int(value: Any) -> int | None:
    return value if type(value) is int and value > 0 else None


def _locked(path: Path) -> bool:
    """Whether some process holds a lock on path (False when the file does not exist)."""
    _need_flock()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken above
    return False


def server_state(directory: str | os.PathLike[str] | None = None) -> ServerState:
    """The state of the directory's embedded server (default: the configured directory), from its files only."""
    root = Path(directory or embedded_dir())
    record = _read_record(root)
    mode = record.get("mode") if record.get("mode") in MODES else None
    return ServerState(
        directory=root,
        running=_locked(root / SERVER_LOCK),
        port=_int(record.get("port")),
        pid=_int(record.get("pid")),
        watcher=_int(record.get("watcher")),
        mode=mode,
        owner=_int(record.get("owner")),
    )


def _listening(port: int | None) -> bool:
    if not port:
        return False
    try:
        with socket.create_connection((HOST, port), timeout=0.3):
            return True
    except OSError:
        return False


def running_server(directory: str | os.PathLike[str] | None = None) -> str | None:
    """URL of the directory's embedded server if it runs and listens, else None; never starts one."""
    state = server_state(directory)
    return state.url if state.running and _listening(state.port) else None


@contextlib.contextmanager
def _start_lock(root: Path) -> Iterator[None]:
    """One process at a time checks and starts the directory's server."""
    _need_flock()
    with open(root / START_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _join(root: Path) -> bool:
    """Count this process (and its forks) among the server's users until it exits; False while a server is stopping for want of users."""
    if root in _clients:
        return True
    fd = os.open(root / CLIENTS_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:  # a watcher holds it exclusively: it found no user and is stopping its server
        os.close(fd)
        return False
    _clients[root] = fd
    return True


def _wait_stopped(root: Path, timeout: float = STOP_TIMEOUT) -> None:
    """Wait (bounded) until the directory's server and watcher are gone; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while _locked(root / SERVER_LOCK):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the embedded nats-server of {root} did not stop within {timeout:g}s")
        time.sleep(0.02)  # polling a lock: flock has no timed wait, and the wait ends with another process


def ensure_embedded_server(directory: str | os.PathLike[str] | None = None, port: int | None = None, *, start: bool = True) -> str:
    """URL of the directory's embedded server, starting it (mode ``process``) when none runs and ``start`` is true.

    The calling process counts as one of its users until it exits. Raises
    EmbeddedServerNotRunning when none runs and ``start`` is false, and
    EventStoreUnavailable when it cannot be started.
    """
    root = Path(directory or embedded_dir())
    if not start and not root.is_dir():
        raise EmbeddedServerNotRunning(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _start_lock(root):
            if not _join(root):
                _wait_stopped(root)
                if not _join(root):
                    raise RuntimeError("its server keeps stopping")
            state = server_state(root)
            if state.running:
                if _listening(state.port):
                    return state.url  # type: ignore[return-value]
                _wait_stopped(root)  # running but not listening: it is on its way out (a --stop)
            if not start:
                raise EmbeddedServerNotRunning(root)
            _refuse_legacy(root)
            return start_server(root, port, "process").state.url  # type: ignore[return-value]
    except (OSError, RuntimeError, TimeoutError) as e:
        raise EventStoreUnavailable(f"could not start the embedded nats-server in {root}: {e}") from None


def _legacy_server(root: Path) -> tuple[int, int] | None:
    """(pid, port) of a server that an earlier version started detached in this directory (no lock, no mode) and that still runs."""
    record = _read_record(root)
    pid, port = _int(record.get("pid")), _int(record.get("port"))
    if "mode" in record or not pid or not port or _locked(root / SERVER_LOCK):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return (pid, port) if _listening(port) else None


def _refuse_legacy(root: Path) -> None:
    legacy = _legacy_server(root)
    if legacy:
        raise RuntimeError(
            f"a nats-server started by an earlier version of django-eventstore (pid {legacy[0]}, port {legacy[1]}) still uses this directory; "
            "stop it with `manage.py eventstore_server --stop`, then retry"
        )


def _choose_port(root: Path) -> int:
    """The directory's recorded port when it is free, else a free one the OS picks (never 4222)."""
    recorded = _int(_read_record(root).get("port"))
    if recorded and recorded != NATS_DEFAULT_PORT and port_free(HOST, recorded):
        return recorded
    port = free_port()
    while port == NATS_DEFAULT_PORT:
        port = free_port()
    return port


def launch(directory: str | os.PathLike[str], port: int | None, mode: str, output: int | IO[bytes] | None = None) -> StartedServer:
    """Start the directory's server for ``manage.py eventstore_server`` (``foreground`` or ``detached``); AlreadyRunning if one runs."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    with _start_lock(root):
        state = server_state(root)
        if state.running and not _listening(state.port):
            _wait_stopped(root)  # on its way out
            state = server_state(root)
        if state.running:
            raise AlreadyRunning(state)
        _refuse_legacy(root)
        return start_server(root, port, mode, output)


def start_server(directory: str | os.PathLike[str], port: int | None, mode: str, output: int | IO[bytes] | None = None) -> StartedServer:
    """Start the directory's server under a watcher, record it, and return once it listens.

    The caller holds the start lock and has seen that none runs. ``output``
    takes the server's log (default: ``nats-server.log`` in the directory). A
    ``foreground`` server's watcher is this process's child, and stops the
    server when the returned lifeline is closed or this process exits; the
    others' watchers are nobody's children: a ``process`` server stops when no
    process holds a shared lock on ``clients.lock``, a ``detached`` one only
    when stopped.
    """
    _need_flock()
    root = Path(directory)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    port = port or _choose_port(root)
    command = server_command(port, root / "jetstream", HOST)
    alive = os.open(root / SERVER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    report_r: int | None
    report_w: int | None
    lifeline_r: int | None
    report_r, report_w = os.pipe()
    lifeline_r, lifeline = os.pipe() if mode == "foreground" else (None, None)
    args = ["watch", "--port", str(port), "--timeout", str(START_TIMEOUT), "--report-fd", str(report_w), "--keep-fd", str(alive)]
    if lifeline_r is not None:
        args += ["--lifeline-fd", str(lifeline_r)]
    else:
        args += ["--daemon"]
    if mode == "process":
        args += ["--clients", str(root / CLIENTS_LOCK)]
    inherited = tuple(fd for fd in (alive, report_w, lifeline_r) if fd is not None)
    try:
        fcntl.flock(alive, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if a server runs after all
        with contextlib.ExitStack() as files:
            log_file = output if output is not None else files.enter_context(open(root / LOG, "ab"))
            watcher = subprocess.Popen(
                [sys.executable, "-I", nats_process.__file__, *args, "--", *command],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                pass_fds=inherited,
                start_new_session=True,  # the terminal's Ctrl-C goes to the owner, which decides
            )
        for fd in (report_w, lifeline_r):
            if fd is not None:
                os.close(fd)
        report_w = lifeline_r = None
        with os.fdopen(report_r, "rb") as report_file:
            report_r = None
            report = report_file.read().split()  # "<watcher pid> <server pid> ready", once it listens or gave up
        if mode != "foreground":
            watcher.wait()  # the watcher forked and this first half exited at once
        if len(report) != 3 or report[2] != b"ready":
            raise RuntimeError(f"nats-server did not start on {HOST}:{port}; {_log_tail(root, watcher if mode == 'foreground' else None)}")
        state = ServerState(root, True, port, int(report[1]), int(report[0]), mode, os.getpid())
        _write_record(root, state)
    except BaseException:
        for fd in (report_r, report_w, lifeline_r, lifeline):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        os.close(alive)  # the server and its watcher hold the lock from now on
    log.info("started the embedded nats-server at %s (data in %s)", state.url, root)
    return StartedServer(state, watcher if mode == "foreground" else None, lifeline)


def _log_tail(root: Path, watcher: subprocess.Popen[bytes] | None, lines: int = 5) -> str:
    """The end of the server's log, for an error message: from the foreground watcher's output, else from the log file."""
    try:
        if watcher is not None and watcher.stdout is not None:
            watcher.wait(STOP_TIMEOUT)
            text = watcher.stdout.read().decode("utf-8", "replace")
        else:
            text = (root / LOG).read_text("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired):
        return f"see {root / LOG}"
    tail = " | ".join(text.strip().splitlines()[-lines:])
    return f"its log ends: {tail}" if tail else "it wrote nothing"


def _write_record(root: Path, state: ServerState) -> None:
    record = {"port": state.port, "pid": state.pid, "watcher": state.watcher, "mode": state.mode, "owner": state.owner}
    partial = root / (RECORD + ".partial")
    partial.write_text(json.dumps(record) + "\n")
    os.replace(partial, root / RECORD)


def stop_embedded_server(directory: str | os.PathLike[str] | None = None, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the directory's embedded server, whoever started it, and wait until it is gone; False when none ran."""
    root = Path(directory or embedded_dir())
    state = server_state(root)
    if not state.running:
        legacy = _legacy_server(root)
        if legacy:
            os.kill(legacy[0], signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _listening(legacy[1]) and time.monotonic() < deadline:
                time.sleep(0.02)  # not our child: nothing to wait on but its port
        return bool(legacy)
    for pid in (state.watcher, state.pid):  # the watcher stops its server; the server itself if the watcher is gone
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                break
    try:
        _wait_stopped(root, timeout)
    except TimeoutError:
        for pid in (state.pid, state.watcher):
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _wait_stopped(root, timeout)
    return True
