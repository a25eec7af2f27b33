"""``python manage.py demo``: migrate, create a local admin, start NATS, seed the bank once, and serve with the projection runner beside it."""

from __future__ import annotations

import signal
import socket
import threading
import time
import urllib.parse
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_eventstore import EventStoreError, get_store
from django_eventstore.conf import embedded_dir, get_config
from django_eventstore.embedded import running_server, stop_embedded_server
from django_eventstore.projections import ProjectionError, catch_up, follow
from django_eventstore.store import reset_store

from ...seed import seed_missing

ADMIN_USER = ADMIN_PASSWORD = "admin"


class Command(BaseCommand):
    _seeding = False  # whether the seeding progress line is being written
    help = (
        "Run the demo: migrate SQLite, create an admin/admin user if none, start NATS, seed the sample accounts still missing, "
        "bring the accounts list up to date, then serve with the projection runner beside the server."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addrport", default="127.0.0.1:8000", help="where to serve (default 127.0.0.1:8000)")
        parser.add_argument("--accounts", type=int, default=300, help="how many sample accounts to seed when the store has fewer (default 300; 0: none)")

    def handle(self, *args: Any, addrport: str, accounts: int, **options: Any) -> None:
        if accounts < 0:
            raise CommandError(f"--accounts {accounts}: give a number of accounts, 0 or more")
        host, port = _host_port(addrport)
        _check_free(host, port)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        call_command("migrate", interactive=False, verbosity=0)
        login = self._admin_login()
        embedded = get_config()["SERVERS"] == "embedded"
        started_nats = embedded and running_server(embedded_dir()) is None
        stop_projections = threading.Event()
        runner = threading.Thread(target=follow, kwargs={"stop": stop_projections}, name="projection runner", daemon=True)
        try:
            self._prepare_store(accounts)
            self._project()
            runner.start()  # keeps the read models up to date while the server runs (eventstore_project in production)
            self._announce(f"http://{address}", login)
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop on SIGTERM as on Ctrl-C
            call_command("runserver", address, use_reloader=False)
        finally:
            stop_projections.set()
            if runner.is_alive():
                runner.join(30)  # each projection finishes its batch
            if started_nats:
                reset_store()  # close the connection first: no "unexpected EOF" error when the server goes
                url = running_server(embedded_dir())
                stop_embedded_server(embedded_dir())
                if url:
                    _wait_until_closed(url)
                self.stdout.write("Stopped the embedded nats-server (its data stays for the next run).")

    def _admin_login(self) -> str:
        """Create admin/admin when there is no superuser; the login to print."""
        users = get_user_model()._default_manager
        if not users.filter(is_superuser=True).exists():
            users.create_superuser(ADMIN_USER, "admin@example.com", ADMIN_PASSWORD)
            self.stdout.write(f"Created a local admin user for the demo (login: {ADMIN_USER} / {ADMIN_PASSWORD}).")
        admin = users.filter(username=ADMIN_USER, is_superuser=True).first()
        if admin is not None and admin.check_password(ADMIN_PASSWORD):
            return f"{ADMIN_USER} / {ADMIN_PASSWORD}"
        return "your superuser's username and password"

    def _prepare_store(self, accounts: int) -> None:
        try:
            store = get_store()
            store.setup()
            server = store.server_summary()
            self.stdout.write(f"NATS JetStream at {server.url}")
            self._seeding = False
            created = seed_missing(accounts, progress=self._progress)
        except KeyboardInterrupt:
            if self._seeding:
                self.stdout.write(("\n" if self.stdout.isatty() else "") + "Seeding interrupted: the next run writes the accounts still missing.")
            raise
        except (EventStoreError, OSError, RuntimeError) as e:  # OSError, RuntimeError: the embedded nats-server did not start
            raise CommandError(f"the event store is not usable: {e}") from e
        if self._seeding and self.stdout.isatty():
            self.stdout.write("")  # end the progress line redrawn in place
        if not accounts:
            self.stdout.write("No sample accounts asked for (--accounts 0): not seeding.")
        elif not created:
            self.stdout.write("Sample data already there: reusing it.")
        elif created < accounts:
            self.stdout.write(f"Finished the sample data: wrote the {created} accounts still missing (the others were there already).")

    def _project(self) -> None:
        """Apply the events stored so far to the read models before serving, so the first page is complete."""
        try:
            positions = catch_up()
        except ProjectionError as e:
            self.stderr.write(f"{e}; the runner retries it while the demo runs.")
        except EventStoreError as e:
            raise CommandError(f"the event store is not usable: {e}") from e
        else:
            self.stdout.write(f"Accounts list up to date (position {max(positions.values(), default=0)}).")

    def _progress(self, done: int, total: int) -> None:
        self._seeding = True
        if done == total or done % 25 == 0:
            if self.stdout.isatty():  # a terminal: one line redrawn in place
                self.stdout.write(f"\rSeeding sample accounts: {done}/{total}", ending="")
                self.stdout.flush()
            else:  # a file or a pipe: a line per step
                self.stdout.write(f"Seeding sample accounts: {done}/{total}")

    def _announce(self, base: str, login: str) -> None:
        self.stdout.write(
            self.style.SUCCESS("The demo is ready. Open:")
            + f"\n  {base}/                      the bank (open an account, deposit, withdraw)"
            + f"\n  {base}/admin/                the admin: Event store > Actors, Projections (login: {login})"
            + f"\n  {base}/api/eventstore/actors/  the REST API (log in to the admin first)"
            + "\nStop with Ctrl-C."
        )
        self.stdout.flush()


def _host_port(addrport: str) -> tuple[str, int]:
    """``"8000"``, ``"0.0.0.0:8000"`` or ``"[::1]:8000"`` -> (host, port); host defaults to 127.0.0.1."""
    host, _, port = addrport.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--addrport {addrport!r} is not a port or host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def _check_free(host: str, port: int) -> None:
    """Refuse before starting anything when the port is taken (runserver would exit without cleaning up)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver does: TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except OSError as e:
            raise CommandError(f"cannot serve on {host}:{port} ({e.strerror}); choose another with --addrport") from None


def _wait_until_closed(url: str, timeout: float = 10.0) -> None:
    """Wait (bounded) until the stopped nats-server no longer listens, so the demo exits after it."""
    address = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address.hostname, address.port), timeout=0.5):
                pass
        except OSError:
            return
        time.sleep(0.05)
