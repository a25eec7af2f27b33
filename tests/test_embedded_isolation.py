"""How long the embedded server lives, checked on real processes: they must be gone, not merely marked stopped.

A server a process started stops when the last process using it exits, kill -9
included; ``eventstore_server`` keeps one in the foreground or, with --detach,
until --stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from django_eventstore.embedded import running_server, server_state, stop_embedded_server

from .test_embedded import assert_stopped, gone

pytestmark = pytest.mark.without_nats  # the processes start the embedded servers they need

ROOT = Path(__file__).resolve().parent.parent

# A process using the store: for each line "save ACTOR" or "read ACTOR" on stdin, it answers
# "<latest version> <server pid> <watcher pid> <port>"; it exits at end of input.
CLIENT = """
import sys
import django
django.setup()
from django_eventstore import Event, get_store
from django_eventstore.embedded import server_state
store = get_store()
for line in sys.stdin:
    action, actor = line.split()
    if action == "save":
        store.save_event(Event(actor_id=actor, event_type="Placed", version=store.get_latest_version(actor) + 1))
    state = server_state()
    print(store.get_latest_version(actor), state.pid, state.watcher, state.port, flush=True)
"""


@dataclass
class Project:
    """A project's environment (for subprocesses) and its embedded server's data directory."""

    env: dict[str, str]
    data_dir: Path


@pytest.fixture
def project(tmp_path) -> Iterator[Project]:
    """A project whose settings say SERVERS = "embedded", its data in tmp_path/eventstore; its server is stopped after the test."""
    data_dir = tmp_path / "eventstore"
    (tmp_path / "embedded_settings.py").write_text(f"from tests.settings import *\nEVENTSTORE = {{'SERVERS': 'embedded', 'EMBEDDED_DIR': {str(data_dir)!r}}}\n")
    path = os.pathsep.join([str(tmp_path), str(ROOT)])
    yield Project({**os.environ, "PYTHONPATH": path, "DJANGO_SETTINGS_MODULE": "embedded_settings", "PYTHONUNBUFFERED": "1"}, data_dir)
    stop_embedded_server(data_dir)


class Client:
    """A process running CLIENT."""

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen([sys.executable, "-c", CLIENT], env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ask(self, action: str, actor: str) -> list[int]:
        """[latest version, server pid, watcher pid, port]."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{action} {actor}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, f"the client died: {self.process.communicate(timeout=30)[1]}"
        return [int(word) for word in answer.split()]

    def close(self) -> int:
        """End its input: it exits normally. Its exit status."""
        _, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=60)


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "django", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_shell_that_used_the_store_leaves_no_server_behind(project):
    env, data_dir = project.env, project.data_dir
    code = (
        "from django_eventstore import Event, get_store\n"
        "from django_eventstore.embedded import server_state\n"
        "get_store().save_event(Event(actor_id='order-1', event_type='Placed', version=1))\n"
        "s = server_state()\n"
        "print(s.pid, s.watcher, s.mode)\n"
    )
    done = manage(env, "shell", "-c", code)
    assert done.returncode == 0, done.stderr
    pid, watcher, mode = done.stdout.splitlines()[-1].split()  # after the shell's own lines
    assert mode == "process"
    assert_stopped(data_dir, int(pid), int(watcher))


def test_kill_9_of_the_process_that_started_it_stops_it(project):
    env, data_dir = project.env, project.data_dir
    client = Client(env)
    version, pid, watcher, port = client.ask("save", "order-1")
    assert version == 1 and running_server(data_dir) == f"nats://127.0.0.1:{port}"
    client.kill()
    assert_stopped(data_dir, pid, watcher)


def test_it_lives_while_any_process_uses_it(project):
    env, data_dir = project.env, project.data_dir
    first, second = Client(env), Client(env)
    try:
        _, pid, watcher, port = first.ask("save", "order-1")
        assert second.ask("read", "order-1") == [1, pid, watcher, port]  # the second process found it running
        first.kill()
        assert second.ask("save", "order-1") == [2, pid, watcher, port]  # still there for the second
        assert server_state(data_dir).running
        second.close()
    finally:
        first.kill()
        second.kill()
    assert_stopped(data_dir, pid, watcher)
    third = Client(env)
    try:
        assert third.ask("read", "order-1")[::3] == [2, port]  # a new server, on the recorded port, with the data
    finally:
        third.close()


def test_kill_9_of_its_watcher_stops_it_too(project):
    env, data_dir = project.env, project.data_dir
    client = Client(env)
    try:
        _, pid, watcher, _ = client.ask("save", "order-1")
        os.kill(watcher, signal.SIGKILL)
        assert gone(pid), "nats-server outlived its watcher"
        # the lock is free once the watcher's last thread has gone too: its server is told (PDEATHSIG)
        # when the thread that started it ends, which can be before the others have closed their files
        assert gone(watcher)
        assert not server_state(data_dir).running
    finally:
        client.kill()


def test_detached_until_stop_and_its_status(project):
    env, data_dir = project.env, project.data_dir
    started = manage(env, "eventstore_server", "--detach")
    assert started.returncode == 0, started.stderr
    state = server_state(data_dir)
    assert started.stdout.splitlines() == [
        f"nats-server with JetStream at {state.url}, data in {data_dir}",
        f"Running in the background (pid {state.pid}); stop it with `manage.py eventstore_server --stop`.",
    ]
    assert state.running and state.mode == "detached"  # the command has exited; the server runs on

    status = manage(env, "eventstore_server", "--status")
    assert status.stdout.splitlines() == [
        f"data dir  {data_dir}",
        f"running   yes, at {state.url}",
        f"pid       {state.pid} (watcher {state.watcher})",
        "lifetime  started by `manage.py eventstore_server --detach`; runs until `manage.py eventstore_server --stop`",
    ]
    client = Client(env)
    assert client.ask("save", "order-1") == [1, state.pid, state.watcher, state.port]
    client.close()
    listed = manage(env, "eventstore_actors")  # a command that only reads, on the running server
    assert listed.returncode == 0 and "order-1" in listed.stdout
    assert server_state(data_dir).running  # a client's exit does not stop a detached server

    again = manage(env, "eventstore_server", "--detach")
    assert again.returncode == 1 and f"already runs at {state.url} (pid {state.pid}" in again.stderr and "--stop" in again.stderr

    stopped = manage(env, "eventstore_server", "--stop")
    assert stopped.stdout == f"stopped the embedded nats-server of {data_dir} (pid {state.pid}, port {state.port})\n"
    assert_stopped(data_dir, state.pid, state.watcher)
    assert manage(env, "eventstore_server", "--status").stdout.splitlines() == [
        f"data dir  {data_dir}",
        "running   no",
        f"port      {state.port} (recorded: the next start uses it if it is free)",
    ]
    assert manage(env, "eventstore_server", "--stop").stdout == f"no embedded nats-server runs for {data_dir}\n"


def test_a_read_only_command_as_run_from_a_shell_exits_1_and_starts_nothing(project):
    env, data_dir = project.env, project.data_dir
    done = manage(env, "eventstore_status")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"CommandError: no embedded nats-server runs for {data_dir}") and "Traceback" not in done.stderr
    assert not data_dir.exists()
    assert_stopped(data_dir)


def test_the_foreground_server_stops_with_its_command_even_on_kill_9(project):
    env, data_dir = project.env, project.data_dir
    process = subprocess.Popen([sys.executable, "-m", "django", "eventstore_server"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        state = server_state(data_dir)
        assert first == f"nats-server with JetStream at {state.url}, data in {data_dir}\n"
        assert state.running and state.mode == "foreground" and state.owner == process.pid
        assert f"lifetime  run by `manage.py eventstore_server` (pid {process.pid}); stops with it" in manage(env, "eventstore_server", "--status").stdout
        busy = manage(env, "eventstore_server")
        assert busy.returncode == 1 and "already runs" in busy.stderr
        client = Client(env)  # a process using it does not keep it past its command
        assert client.ask("save", "order-1")[1:] == [state.pid, state.watcher, state.port]
        process.kill()
        process.wait(30)
        assert_stopped(data_dir, state.pid, state.watcher)
        client.kill()
    finally:
        process.kill()
        process.wait(30)


def test_stop_ends_a_foreground_server_and_its_command(project):
    env, data_dir = project.env, project.data_dir
    process = subprocess.Popen([sys.executable, "-m", "django", "eventstore_server"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()
        state = server_state(data_dir)
        assert manage(env, "eventstore_server", "--stop").returncode == 0
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.endswith("nats-server stopped\n") and "Traceback" not in err
    assert_stopped(data_dir, state.pid, state.watcher)
