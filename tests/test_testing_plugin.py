"""The django_eventstore.testing pytest plugin, and the suite's promise to start a nats-server only for tests that need one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from django_eventstore import Event
from django_eventstore.store import get_store

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """pytest in a child process at the repository root (its own session, its own fixtures)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.without_nats
@pytest.mark.slow
def test_tests_that_need_no_server_start_none():
    run = run_pytest("tests/test_checks.py", "-q", "--setup-show", env={"EVENTSTORE_TEST_NATS_URL": ""})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "passed" in run.stdout
    assert "eventstore_nats_url" not in run.stdout, run.stdout


def test_settings_point_at_the_tests_server_with_a_stream_of_the_tests_own(eventstore_settings: dict[str, Any], eventstore_nats_url: str):
    assert settings.EVENTSTORE is eventstore_settings
    assert eventstore_settings["SERVERS"] == [eventstore_nats_url]
    assert eventstore_settings["SUBJECT_PREFIX"] == eventstore_settings["STREAM"].lower()
    assert eventstore_settings["TIMEOUT"] == 5.0  # the project's other keys are kept


def test_the_store_fixture_is_the_configured_store(eventstore_store, stream_name: str):
    stored = eventstore_store.save_event(Event(actor_id="order-1", event_type="Placed", version=1))
    assert stored.position == 1
    assert get_store() is eventstore_store
    assert eventstore_store.get_latest_version("order-1") == 1


def test_a_project_enables_the_plugin_by_name(tmp_path: Path):
    (tmp_path / "test_uses_plugin.py").write_text(
        "from django_eventstore import Event\n"
        "def test_store(eventstore_store, eventstore_settings):\n"
        "    assert eventstore_store.save_event(Event(actor_id='a-1', event_type='E', version=1)).version == 1\n"
        "    assert eventstore_settings['STREAM'].startswith('T')\n"
    )
    run = run_pytest(
        "-p", "django_eventstore.testing", "-q", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path), "--ds", "tests.settings",
        env={"PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_importing_the_testing_module_needs_no_pytest():
    code = "import sys; sys.modules['pytest'] = None; import django_eventstore.testing as t; print(t.NatsServer.__name__)"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "NatsServer"


@pytest.mark.slow
@pytest.mark.parametrize("required", ["", "1"])
def test_without_a_chromium_browser_tests_are_skipped_saying_how_to_get_one_unless_required(tmp_path: Path, nats_url: str, required: str):
    nothing = tmp_path / "empty"
    nothing.mkdir()
    run = run_pytest(
        "tests/test_admin_browser.py",
        "-q",
        env={"PATH": str(nothing), "PLAYWRIGHT_BROWSERS_PATH": str(nothing), "EVENTSTORE_REQUIRE_BROWSER": required, "EVENTSTORE_TEST_NATS_URL": nats_url},
    )
    hint = "no Chromium found (chromium on PATH or Playwright's): apt-get install chromium, or playwright install chromium"
    assert hint in run.stdout, run.stdout + run.stderr
    if required:
        assert run.returncode == 1 and "EVENTSTORE_REQUIRE_BROWSER=1 requires the browser tests" in run.stdout, run.stdout
    else:
        assert run.returncode == 0 and " skipped" in run.stdout and " passed" not in run.stdout, run.stdout  # every browser test skipped
