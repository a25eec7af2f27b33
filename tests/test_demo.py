"""``python manage.py demo`` end to end: a subprocess with its own data dir, checked over HTTP like a new user would."""

from __future__ import annotations

import http.cookiejar
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from demo_project.bank.management.commands.demo import Command
from demo_project.bank.seed import seed_missing
from django_eventstore import get_store
from django_eventstore.embedded import running_server, stop_embedded_server
from django_eventstore.nats_process import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = 30


def demo_env(data_dir: Path) -> dict[str, str]:
    """This environment without the suite's Django settings, with the demo's data in data_dir and embedded NATS."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "EVENTSTORE_SERVERS")}
    env["DEMO_DATA_DIR"] = str(data_dir)
    env["DEMO_LOG_LEVEL"] = "DEBUG"  # even the store's quiet connection errors are in the output
    return env


class Demo:
    """One ``manage.py demo`` process on a free port, its output in a file."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "manage.py", "demo", "--addrport", f"127.0.0.1:{self.port}", "--accounts", str(ACCOUNTS)]
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=demo_env(data_dir), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def output(self) -> str:
        return self.log_path.read_text()

    def wait_until_serving(self, timeout: float = 120) -> None:
        """Wait (bounded) for the port; fail with the demo's output if it exits or never listens."""
        try:
            wait_for_port("127.0.0.1", self.port, timeout, self.process)
        except (RuntimeError, TimeoutError) as e:
            pytest.fail(f"manage.py demo did not serve: {e}\n{self.output}")

    def stop(self) -> int:
        """Stop it as a process manager would (SIGTERM, which the demo treats like Ctrl-C); its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class Browser:
    """urllib with a cookie jar: enough to log in to the admin with its CSRF token."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(self.base + path, timeout=30) as response:
            return response.status, response.read().decode()

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        _, form = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        with self.opener.open(self.base + path, data=body, timeout=30) as response:
            return response.status, response.read().decode()


def listed_balance(home: str, account_id: str) -> float:
    """An account's balance in the home page's list (which comes from the read model)."""
    row = re.search(rf'<a href="/accounts/{account_id}/">{account_id}</a></td>\s*<td>[^<]*</td>\s*<td class="num">([-0-9.]+)</td>', home)
    assert row, f"{account_id} is not in the list:\n{home[:3000]}"
    return float(row.group(1))


def check_demo(demo: Demo) -> None:
    output = demo.output
    user, password = re.search(r"login: (\S+) / (\S+)\)", output).groups()
    browser = Browser(demo.base)

    status, home = browser.get("/")
    assert status == 200
    assert f"Accounts ({ACCOUNTS})" in home and 'href="/accounts/account-1/"' in home
    before = listed_balance(home, "account-1")
    status, _ = browser.post_form("/accounts/account-1/", {"action": "deposit", "amount": "12.34"})
    assert status == 200
    _, home = browser.get("/")  # the view waited for the projection: the list shows the new balance at once
    assert listed_balance(home, "account-1") == round(before + 12.34, 2)

    status, index = browser.post_form("/admin/login/?next=/admin/", {"username": user, "password": password, "next": "/admin/"})
    assert status == 200
    actors_link = re.search(r'<a href="([^"]+)"[^>]*>Actors</a>', index)
    assert actors_link, f"no Actors entry in the admin index:\n{index[:3000]}"
    status, changelist = browser.get(actors_link.group(1))
    assert status == 200 and "account-1" in changelist

    status, body = browser.get("/api/eventstore/actors/?type=account&limit=1000")
    actors = json.loads(body)["results"]
    assert status == 200 and len(actors) == ACCOUNTS
    assert all(a["actor_id"].startswith("account-") and a["latest_version"] >= 1 for a in actors)
    assert any(a["snapshot_version"] for a in actors)

    with pytest.raises(urllib.error.HTTPError) as anonymous:
        Browser(demo.base).get("/api/eventstore/actors/")
    assert anonymous.value.code in (401, 403)


@pytest.mark.slow
@pytest.mark.without_nats  # the demo runs its own embedded server
def test_demo_serves_the_bank_admin_and_api_then_reuses_its_data(tmp_path):
    data_dir = tmp_path / "demo-data"
    nats_dir = data_dir / "eventstore"
    statuses, outputs = [], []
    try:
        for run in (1, 2):
            demo = Demo(data_dir, tmp_path / f"demo-{run}.log")
            try:
                demo.wait_until_serving()
                check_demo(demo)
            finally:
                statuses.append(demo.stop())
                outputs.append(demo.output)
            assert running_server(nats_dir) is None, "the demo left its nats-server running"
    finally:
        stop_embedded_server(nats_dir)

    first, second = outputs
    assert statuses == [0, 0]
    assert "Created a local admin user for the demo (login: admin / admin)" in first
    assert f"Seeding sample accounts: {ACCOUNTS}/{ACCOUNTS}" in first
    assert "Stopped the embedded nats-server" in first
    for output in outputs:  # the store is closed before its nats-server stops: no connection error on the way out
        stopping = output.split("Stop with Ctrl-C.", 1)[1]
        assert "NATS error" not in stopping and "disconnected from NATS" not in stopping, output
    assert "Created a local admin user" not in second and "Seeding" not in second
    assert "Sample data already there" in second and "login: admin / admin" in second


@pytest.mark.without_nats
def test_demo_refuses_a_busy_port_before_starting_anything(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        demo = subprocess.run(
            [sys.executable, "manage.py", "demo", "--addrport", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=demo_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert demo.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in demo.stderr and "--addrport" in demo.stderr
    assert not (tmp_path / "eventstore").exists()


def prepare_store(accounts: int) -> str:
    """The demo's store preparation on the suite's NATS; what it prints."""
    out = io.StringIO()
    Command(stdout=out)._prepare_store(accounts)
    return out.getvalue()


def test_demo_asked_for_no_accounts_seeds_none_and_says_so():
    output = prepare_store(0)
    assert "--accounts 0" in output and "not seeding" in output
    assert "reusing" not in output and "Seeding" not in output
    assert get_store().list_actors(actor_type="account").total == 0


def test_demo_finishes_an_interrupted_seeding_then_reuses_it():
    def interrupt(done: int, total: int) -> None:
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        seed_missing(10, progress=interrupt)

    resumed = prepare_store(10)
    assert "Seeding sample accounts: 10/10\n" in resumed
    assert "wrote the 6 accounts still missing" in resumed and "reusing" not in resumed
    assert get_store().list_actors(actor_type="account").total == 10
    again = prepare_store(10)
    assert "Sample data already there: reusing it." in again and "Seeding" not in again


def test_demo_interrupted_while_seeding_says_the_next_run_finishes_it(monkeypatch):
    out = io.StringIO()
    command = Command(stdout=out)
    progress = command._progress

    def interrupted(done: int, total: int) -> None:
        progress(done, total)
        if done == 25:
            raise KeyboardInterrupt

    monkeypatch.setattr(command, "_progress", interrupted)
    with pytest.raises(KeyboardInterrupt):
        command._prepare_store(40)
    assert out.getvalue().endswith("Seeding sample accounts: 25/40\nSeeding interrupted: the next run writes the accounts still missing.\n")


@pytest.mark.without_nats
def test_demo_refuses_a_negative_number_of_accounts():
    with pytest.raises(CommandError, match="--accounts -1"):
        call_command(Command(), "--accounts", "-1", "--addrport", "127.0.0.1:1")
