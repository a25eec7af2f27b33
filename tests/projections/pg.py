"""A throw-away PostgreSQL from the system's binaries (Debian's ``postgresql`` package), for tests and benchmarks.

It runs in a temporary directory on a free loopback port. ``initdb`` and
``postgres`` refuse to run as root, so as root they run as the ``postgres``
(or ``nobody``) user through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from django_eventstore.testing import free_port, stop_process

INSTALL_HINT = "PostgreSQL binaries not found (looked in /usr/lib/postgresql/*/bin and PATH): apt-get install postgresql"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, else the directory of initdb on PATH; None when absent."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _unprivileged_user() -> str | None:
    """The user to run PostgreSQL as when this process is root (it refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and there is no 'postgres' or 'nobody' user to run PostgreSQL as")


class PostgresServer:
    """PostgreSQL on 127.0.0.1:<free port>, trusting local connections as user ``postgres``; a context manager."""

    def __init__(self, bin_dir: Path | None = None):
        bin_dir = bin_dir or find_bin_dir()
        if bin_dir is None:
            raise FileNotFoundError(INSTALL_HINT)
        self.bin_dir = bin_dir
        self.port = free_port()
        self.host = "127.0.0.1"
        self.user = "postgres"
        self.process: subprocess.Popen[bytes] | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="eventstore-pg-"))

    def _command(self, *args: str) -> list[str]:
        user = _unprivileged_user()
        return ["runuser", "-u", user, "--", *args] if user else list(args)

    def start(self) -> PostgresServer:
        user = _unprivileged_user()
        data = self.dir / "data"
        if user:
            entry = pwd.getpwnam(user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        init = subprocess.run(
            self._command(str(self.bin_dir / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync"),
            capture_output=True,
            text=True,
        )
        if init.returncode:
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
        log = open(self.dir / "postgres.log", "wb")
        self.process = subprocess.Popen(
            self._command(
                str(self.bin_dir / "postgres"),
                "-D",
                str(data),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=100",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run([str(self.bin_dir / "pg_isready"), "-h", self.host, "-p", str(self.port), "-U", self.user], capture_output=True)
            if ready.returncode == 0:
                return
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = (self.dir / "postgres.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start on port {self.port}:\n{output}")
            time.sleep(0.1)

    def settings(self, name: str) -> dict[str, object]:
        """``DATABASES`` entry of database ``name`` on this server."""
        return {"ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": self.user, "HOST": self.host, "PORT": str(self.port)}

    def connect(self, name: str = "postgres"):  # type: ignore[no-untyped-def]
        """A psycopg connection (autocommit) to database ``name``."""
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=name, autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> None:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)  # SIGTERM: PostgreSQL's "smart" shutdown; killed after 10 s
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
