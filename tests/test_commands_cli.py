"""The commands as a person runs them: a separate process, exit statuses, stderr, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from django_eventstore import Event
from django_eventstore.core.jetstream import JetStreamEventStore
from django_eventstore.testing import free_port

from .conftest import publish_raw
from .test_commands import store_events
from .test_commands_verify import subject

ROOT = Path(__file__).resolve().parent.parent


def command_line(tmp_path: Path, eventstore: dict, *args: str) -> tuple[list[str], dict[str, str]]:
    """``python -m django <args>`` with a settings module in tmp_path holding this EVENTSTORE."""
    (tmp_path / "cli_settings.py").write_text(f"from tests.settings import *\nEVENTSTORE = {eventstore!r}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "PYTHONUNBUFFERED": "1"}
    return [sys.executable, "-m", "django", *args, "--settings", "cli_settings"], env


def cli(tmp_path: Path, eventstore: dict, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    argv, env = command_line(tmp_path, eventstore, *args)
    return subprocess.run(argv, env=env, cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120)


def test_unreachable_server_exits_1_without_traceback(tmp_path):
    port = free_port()
    done = cli(tmp_path, {"SERVERS": [f"nats://127.0.0.1:{port}"], "TIMEOUT": 1}, "eventstore_status")
    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]  # after the store's logged connection warnings
    assert last.startswith("CommandError: could not connect to NATS within 1")
    assert f"servers tried: nats://127.0.0.1:{port}" in last
    assert last.endswith(". Check settings.EVENTSTORE['SERVERS'] (and TIMEOUT), or start a local server with `manage.py eventstore_server`.")
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_bad_argument_exits_2_with_usage(tmp_path, eventstore_settings):
    done = cli(tmp_path, eventstore_settings, "eventstore_actors", "--limit", "many")
    assert done.returncode == 2
    assert "error: argument --limit: expected an integer >= 0, got 'many'" in done.stderr


def test_unknown_actor_exits_1(tmp_path, eventstore_settings):
    done = cli(tmp_path, eventstore_settings, "eventstore_events", "order-404")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "CommandError: actor 'order-404' has no events (list the actors with manage.py eventstore_actors)\n"


def test_verify_exit_status(tmp_path, eventstore_settings, nats_url):
    store_events("order-1", 2)
    clean = cli(tmp_path, eventstore_settings, "eventstore_verify")
    assert (clean.returncode, clean.stdout) == (0, "no problems in 2 events of 1 actor and 0 snapshots\n")
    position = publish_raw(nats_url, subject("order-1"), b"\x00\x01")
    found = cli(tmp_path, eventstore_settings, "eventstore_verify")
    assert found.returncode == 1
    assert found.stdout.startswith(f"position {position}  subject {subject('order-1')}: malformed message: body is not JSON")
    assert found.stderr == "CommandError: found 1 problem in 2 events of 1 actor and 0 snapshots\n"


def test_export_pipes_into_import(tmp_path, eventstore_settings):
    store_events("order-1", 3)
    exported = cli(tmp_path, eventstore_settings, "eventstore_export", "-", "--verbosity", "0")
    assert (exported.returncode, exported.stderr) == (0, "")
    target = {**eventstore_settings, "STREAM": eventstore_settings["STREAM"] + "_COPY", "SUBJECT_PREFIX": eventstore_settings["SUBJECT_PREFIX"] + "copy"}
    imported = cli(tmp_path, target, "eventstore_import", "-", stdin=exported.stdout)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith("imported 3 events of 1 actor")
    again = cli(tmp_path, target, "eventstore_export", "-")
    assert again.stdout == exported.stdout  # the same lines, positions included: both streams started empty


def test_malformed_import_line_exits_1(tmp_path, eventstore_settings):
    good = json.dumps({"id": "a", "event_type": "Made", "actor_id": "order-1", "version": 1, "data": {}, "timestamp": "2025-01-01T00:00:00Z"})
    done = cli(tmp_path, eventstore_settings, "eventstore_import", "-", stdin=f"{good}\n{{oops\n")
    assert done.returncode == 1
    assert done.stderr == "CommandError: line 2: not JSON: Expecting property name enclosed in double quotes at column 2\n"


def test_follow_stops_cleanly_on_ctrl_c(tmp_path, eventstore_settings):
    store_events("order-1", 2)
    argv, env = command_line(tmp_path, eventstore_settings, "eventstore_events", "order-1", "--follow", "--format", "jsonl", "--poll-interval", "0.05")
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = [json.loads(process.stdout.readline())["version"] for _ in range(2)]
        store_events("order-1", 1, start=3)
        third = json.loads(process.stdout.readline())["version"]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert (first, third, out) == ([1, 2], 3, "")
    assert process.returncode == 0
    assert "Traceback" not in err and "stopped" in err


def test_server_runs_in_the_foreground_until_ctrl_c(tmp_path, eventstore_settings):
    port = free_port()
    argv, env = command_line(tmp_path, eventstore_settings, "eventstore_server", "--port", str(port), "--store-dir", str(tmp_path / "data"))
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == f"nats-server with JetStream at nats://127.0.0.1:{port}, data in {tmp_path / 'data'}\n"
        for line in process.stderr:
            if "Server is ready" in line:
                break
        store = JetStreamEventStore(f"nats://127.0.0.1:{port}", stream="DEV", subject_prefix="dev")
        store.save_event(Event(actor_id="order-1", version=1, event_type="Made"))
        assert store.get_latest_version("order-1") == 1
        store.close()
        busy = cli(tmp_path, eventstore_settings, "eventstore_server", "--port", str(port), "--store-dir", str(tmp_path / "other"))
        assert busy.returncode == 1 and f"port {port} on 127.0.0.1 is in use" in busy.stderr
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "stopping nats-server" in out and "Traceback" not in err
    assert (tmp_path / "data" / "jetstream").is_dir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the nats-server is gone
