"""Fixtures of the projection tests: the test app's tables, runner subprocesses, and SQLite-file and PostgreSQL databases.

The exactly-once scenarios run ``manage.py eventstore_project`` as
subprocesses against a database given by the ``database`` fixture, which is
parametrized over a SQLite file and a real PostgreSQL (SQLite serialises
writers and would hide a race). PostgreSQL comes from the system's binaries;
without them those tests are skipped with a reason, or fail when
EVENTSTORE_REQUIRE_POSTGRES=1 (as in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
from django.db import connection

from .pg import INSTALL_HINT, PostgresServer, find_bin_dir

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.projections.settings"


@pytest.fixture(scope="session")
def testapp_tables(django_db_setup: None, django_db_blocker: Any) -> None:
    """Create the test app's read model tables in the suite's database (the app is not installed there)."""
    from .testapp.models import Applied, Balance, BatchBalance

    with django_db_blocker.unblock():
        with connection.schema_editor() as editor:
            for model in (Applied, Balance, BatchBalance):
                editor.create_model(model)


@pytest.fixture
def projections_db(testapp_tables: None, db: None) -> None:
    """The suite's database with the test app's tables; the test projections registered."""
    from .testapp import projections  # noqa: F401 - defining the classes registers them


# ----- databases for runner subprocesses -----


class Database:
    """A fresh database the runner subprocesses use, and plain SQL on it for the test's checks."""

    def __init__(self, kind: str, settings: dict[str, Any], server: PostgresServer | None = None):
        self.kind = kind
        self.settings = settings
        self.server = server

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query written with ``%s`` placeholders."""
        if self.server is not None:
            with self.server.connect(self.settings["NAME"]) as conn:
                return conn.execute(sql, params).fetchall()  # type: ignore[no-any-return]
        with sqlite3.connect(self.settings["NAME"], timeout=30) as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.query(sql, params)[0][0]


def _migrate(database: dict[str, Any]) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "PROJECTION_TEST_DATABASE": json.dumps(database)}
    done = subprocess.run([sys.executable, "manage.py", "migrate", "--run-syncdb", "--verbosity", "0"], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"migrate failed: {done.stderr}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("projections-db") / "template.sqlite3"
    _migrate({"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)})
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[tuple[PostgresServer, str]]:
    """A PostgreSQL server for the session, with a migrated template database; skipped without the binaries."""
    if find_bin_dir() is None:
        if os.environ.get("EVENTSTORE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"EVENTSTORE_REQUIRE_POSTGRES=1 but {INSTALL_HINT}")
        pytest.skip(INSTALL_HINT)
    with PostgresServer() as server:
        server.create_database("template_projections")
        _migrate(server.settings("template_projections"))
        yield server, "template_projections"


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A fresh, migrated database with the test app: a SQLite file, or a database on the session's PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "db.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        # WAL and IMMEDIATE transactions, as a project with concurrent writers on SQLite would configure it
        options = {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 30}
        return Database("sqlite", {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path), "OPTIONS": options})
    server, template = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:12]}"
    server.create_database(name, template=template)
    return Database("postgres", server.settings(name), server)


class Runner:
    """``manage.py eventstore_project`` in subprocesses, on the test's database and stream."""

    def __init__(self, database: Database, nats_url: str, stream: str, prefix: str, tmp_path: Path):
        self.database = database
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "PROJECTION_TEST_DATABASE": json.dumps(database.settings),
            "PROJECTION_TEST_NATS": nats_url,
            "PROJECTION_TEST_STREAM": stream,
            "PROJECTION_TEST_PREFIX": prefix,
            "PYTHONUNBUFFERED": "1",
        }
        self.started = 0

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the command to its end; its status and output."""
        return subprocess.run(
            [sys.executable, "manage.py", "eventstore_project", *args],
            cwd=ROOT,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *args: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
        """Start the command in the background; the process and the file its output goes to."""
        self.started += 1
        log_path = self.tmp_path / f"runner-{self.started}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "eventstore_project", *args],
                cwd=ROOT,
                env={**self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return process, log_path

    def states(self) -> dict[str, dict[str, Any]]:
        """``--list --format json``, by projection name."""
        done = self.run("--list", "--format", "json")
        assert done.returncode == 0, done.stderr
        return {state["name"]: state for state in json.loads(done.stdout)}


@pytest.fixture
def runner(database: Database, nats_url: str, stream_name: str, subject_prefix: str, tmp_path: Path) -> Runner:
    return Runner(database, nats_url, stream_name, subject_prefix, tmp_path)
