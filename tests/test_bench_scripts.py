"""Smoke tests of benchmark scripts: each runs with its smallest settings and prints its table.

The scripts start their own nats-server (and HTTP servers), so these tests need none from the suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.without_nats, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def run_script(name: str, *args: str, timeout: float = 60) -> str:
    """Run bench/<name> from the repository root; its stdout, after checking it exited with 0."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{name} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_http_bench_smoke() -> None:
    """http_bench.py serves the bench project under gunicorn and uvicorn and prints a row per server and endpoint, with the ratio to the bare view."""
    out = run_script("http_bench.py", "--rounds", "1", "--requests", "20", "--workers", "1")
    assert "median ms" in out and "/ bare" in out, out
    for server in ("gunicorn", "uvicorn"):
        for endpoint in ("GET bare DRF view", "POST actors/<id>/events/", "GET actors/<id>/version/", "GET version/ as a sync view"):
            assert any(line.startswith(server) and endpoint in line for line in out.splitlines()), f"no {server} row for {endpoint}:\n{out}"
    assert "ratios per round" in out


def test_http_bench_refuses_bad_arguments() -> None:
    """A bad argument is a usage error naming it, before any server starts."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "http_bench.py"), "--servers", "daphne"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "daphne" in result.stderr + result.stdout


def test_header_parse_bench_smoke() -> None:
    """header_parse_bench.py finds the candidate parser equal to nats-py's on every block and prints the cost table."""
    out = run_script("header_parse_bench.py", "--messages", "300", "--rounds", "1", "--fuzz", "300")
    assert re.search(r"^equality: (\d+) of \1 header blocks parse alike", out, re.MULTILINE), out
    assert "4 headers (an event)" in out and "10 headers (a direct get)" in out, out


def test_scale_bench_quick() -> None:
    """scale_bench.py --quick writes its actors, lists them with and without the actor index, and runs export and verify to the end."""
    out = run_script("scale_bench.py", "--quick", "--actors", "2000", timeout=240)
    for row in ("save_events", "nats-server RSS", "list_actors, last page", "admin changelist, page 1", "eventstore_status", "actor index: types"):
        assert any(line.startswith(row) for line in out.splitlines()), f"no {row!r} row:\n{out}"
    for command in ("eventstore_export", "eventstore_verify"):
        assert re.search(rf"^{command} .* exit 0", out, re.MULTILINE), out
    assert re.search(r"^eventstore_export, peak RSS +\d+ MB", out, re.MULTILINE), out


def test_store_bench_smoke() -> None:
    """store_bench.py alternates raw and store in slices and prints every ratio with its target."""
    out = run_script("store_bench.py", "--rounds", "1", "--n", "20", "--slices", "2", timeout=240)
    for ratio in ("save_event throughput / raw publish throughput", "append 100 events/s / raw publish events/s", "get_events events/s / raw batched direct get events/s"):
        assert re.search(rf"^{re.escape(ratio)} +\d+\.\d+ +", out, re.MULTILINE), f"no {ratio!r} ratio:\n{out}"


def test_store_bench_refuses_bad_arguments() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "store_bench.py"), "--n", "2", "--slices", "4"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--slices" in result.stderr
