"""The runner as operators run it: ``manage.py eventstore_project`` subprocesses on a SQLite file and on PostgreSQL.

Exactly once across kill -9 and two runners at once, failures with the
command's one-line message, and the live latency.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from typing import Callable

import pytest

from django_eventstore import Event, get_store

from .conftest import Database, Runner

LEDGER, NOTES, BATCHED = "tests.ledger", "tests.notes", "tests.ledger-batched"


def save(actor_id: str, event_type: str, **data: object) -> Event:
    store = get_store()
    return store.save_event(Event(actor_id=actor_id, event_type=event_type, data=data, version=store.get_latest_version(actor_id) + 1))


def write_mix(count: int, seed: int, pause: float = 0.0) -> None:
    """``count`` events: deposits of ``acct`` actors, with notes and other actor types mixed in."""
    rng = random.Random(seed)
    for i in range(count):
        kind = rng.random()
        if kind < 0.7:
            save(f"acct-{rng.randrange(12)}", "Deposited", amount=rng.randrange(1, 1000))
        elif kind < 0.85:
            save(f"acct-{rng.randrange(12)}", "Noted", text=f"note {i}")
        else:
            save(f"shop-{rng.randrange(3)}", "Deposited", amount=rng.randrange(1, 1000))
        if pause:
            time.sleep(pause)  # a steady write rate while the runners work


def expected_ledger() -> tuple[list[int], dict[str, int]]:
    """The ledger computed from the store itself: positions it must apply, and the balances."""
    positions, balances = [], Counter[str]()
    for event in get_store().read_all(0, 100_000, actor_type="acct"):
        if event.event_type == "Deposited":
            positions.append(event.position)
            balances[event.actor_id] += event.data["amount"]
    return positions, dict(balances)


def check_exactly_once(database: Database) -> dict[str, int]:
    """Each wanted event applied once by each projection, and the ledger's balances right; the balances."""
    positions, balances = expected_ledger()
    rows = database.query("SELECT projection, position FROM projections_testapp_applied")
    for ledger_name in (LEDGER, BATCHED):
        ledger = Counter(position for name, position in rows if name == ledger_name)
        assert [p for p, n in ledger.items() if n > 1] == [], f"events applied twice by {ledger_name}"
        assert sorted(ledger) == positions, ledger_name
    notes = Counter(position for name, position in rows if name == NOTES)
    assert max(notes.values(), default=1) == 1
    assert len(notes) == sum(1 for e in get_store().read_all(0, 100_000) if e.event_type in ("Deposited", "Noted"))
    found = dict(database.query("SELECT actor_id, total FROM projections_testapp_balance"))
    assert found == balances
    assert dict(database.query("SELECT actor_id, total FROM projections_testapp_batchbalance")) == balances  # written once per batch
    return found


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll another process's database (there is no event to await) until the condition holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def position_of(database: Database, name: str) -> int:
    rows = database.query("SELECT position FROM django_eventstore_projectioncheckpoint WHERE name = %s", [name])
    return rows[0][0] if rows else -1


def test_once_applies_each_event_once_skips_the_rest_and_a_second_run_changes_nothing(runner: Runner, database: Database):
    write_mix(60, seed=1)
    first = runner.run("--once")
    assert first.returncode == 0, first.stderr
    balances = check_exactly_once(database)
    last = get_store().last_position()
    states = runner.states()
    assert {name: (s["position"], s["lag"], s["error"], s["error_position"]) for name, s in states.items()} == {
        LEDGER: (last, 0, "", None),
        NOTES: (last, 0, "", None),
        BATCHED: (last, 0, "", None),
    }

    again = runner.run("--once")
    assert again.returncode == 0, again.stderr
    assert check_exactly_once(database) == balances
    assert runner.states()[LEDGER]["updated_at"] == states[LEDGER]["updated_at"]  # nothing to do: not even the checkpoint moved


def test_a_failing_handler_stops_just_before_its_event_and_fixed_code_resumes(runner: Runner, database: Database):
    save("acct-1", "Deposited", amount=1)
    save("acct-1", "Deposited", amount=2)
    bad = save("acct-2", "Poison", what="a brick")
    last = save("acct-1", "Deposited", amount=4)

    failed = runner.run("--once", LEDGER, NOTES)
    assert failed.returncode == 1
    message = f"CommandError: projection '{LEDGER}' failed at position {bad.position}: ValueError: cannot digest a brick"
    assert failed.stderr.strip().splitlines()[-1] == message and "Traceback" not in failed.stderr
    states = runner.states()
    assert (states[LEDGER]["position"], states[LEDGER]["error_position"]) == (bad.position - 1, bad.position)
    assert states[LEDGER]["error"] == "ValueError: cannot digest a brick"
    assert states[NOTES]["position"] == last.position  # the others go on
    assert dict(database.query("SELECT actor_id, total FROM projections_testapp_balance")) == {"acct-1": 3}

    fixed = runner.run("--once", LEDGER, NOTES, PROJECTION_TEST_FIXED="1")
    assert fixed.returncode == 0, fixed.stderr
    states = runner.states()
    assert (states[LEDGER]["position"], states[LEDGER]["error"], states[LEDGER]["error_position"]) == (last.position, "", None)
    assert dict(database.query("SELECT actor_id, total FROM projections_testapp_balance")) == {"acct-1": 7, "acct-2": 0}


@pytest.mark.slow
def test_kill_9_mid_batch_repeatedly_while_events_are_written_equals_a_rebuild(runner: Runner, database: Database):
    write_mix(150, seed=2)
    writer = threading.Thread(target=write_mix, args=(250, 3, 0.01))
    writer.start()
    rng = random.Random(4)
    killed = 0
    try:
        for _ in range(5):
            process, log = runner.start(PROJECTION_TEST_DELAY="0.003", PROJECTION_TEST_BATCH="40")
            # let it apply some batches (each takes about 0.12 s), then kill it wherever it is
            start = max(position_of(database, LEDGER), 0)
            wait_until(lambda start=start, process=process: position_of(database, LEDGER) > start or process.poll() is not None, 60, "the runner to commit a batch")
            time.sleep(rng.uniform(0.0, 0.3))
            assert process.poll() is None, log.read_text()
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed += 1
    finally:
        writer.join()
    assert killed == 5
    finish = runner.run("--once")
    assert finish.returncode == 0, finish.stderr
    balances = check_exactly_once(database)

    rebuilt = runner.run("--rebuild", LEDGER, "--once")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert check_exactly_once(database) == balances


@pytest.mark.slow
def test_two_runners_at_once_apply_each_event_once_and_both_exit_0_on_sigterm(runner: Runner, database: Database):
    write_mix(200, seed=5)
    runners = [runner.start(PROJECTION_TEST_DELAY="0.001", PROJECTION_TEST_BATCH="25") for _ in range(2)]
    write_mix(150, seed=6, pause=0.005)
    last = get_store().last_position()
    wait_until(lambda: min(position_of(database, name) for name in (LEDGER, NOTES, BATCHED)) >= last, 60, "the projections to catch up")
    for process, _ in runners:
        process.send_signal(signal.SIGTERM)
    for process, log in runners:
        assert process.wait(30) == 0, log.read_text()
        assert "Traceback" not in log.read_text()
    check_exactly_once(database)


def test_an_event_saved_while_the_runner_follows_reaches_the_read_model_within_a_second(runner: Runner, database: Database):
    save("acct-1", "Deposited", amount=1)
    process, log = runner.start(LEDGER)
    try:
        wait_until(lambda: position_of(database, LEDGER) >= 1 or process.poll() is not None, 60, "the runner to start")
        assert process.poll() is None, log.read_text()
        for amount in (2, 3):
            saved_at = time.monotonic()
            event = save("acct-1", "Deposited", amount=amount)
            wait_until(lambda event=event: position_of(database, LEDGER) >= event.position, 1.0, "the event in the read model")
            assert time.monotonic() - saved_at < 1.0
        assert dict(database.query("SELECT actor_id, total FROM projections_testapp_balance")) == {"acct-1": 6}
    finally:
        process.send_signal(signal.SIGINT)
        status = process.wait(30)
    assert status == 0, log.read_text()


def test_following_a_failing_projection_retries_it_with_backoff_while_the_others_go_on(runner: Runner, database: Database, tmp_path):
    save("acct-1", "Deposited", amount=1)
    bad = save("acct-1", "Poison")
    fix = tmp_path / "fixed"
    process, log = runner.start(PROJECTION_TEST_FIXED_FILE=str(fix))
    try:
        wait_until(lambda: position_of(database, NOTES) >= bad.position, 60, "the notes projection to pass the poison")
        note = save("acct-2", "Noted")
        wait_until(lambda: position_of(database, NOTES) >= note.position, 5, "the notes projection to go on")
        states = runner.states()
        assert (states[LEDGER]["position"], states[LEDGER]["error_position"]) == (bad.position - 1, bad.position)

        fix.touch()  # the fixed code: the next retry (backoff 1 s, 2 s, 4 s ...) gets through
        wait_until(lambda: position_of(database, LEDGER) >= note.position, 20, "the ledger to recover")
        states = runner.states()
        assert (states[LEDGER]["error"], states[LEDGER]["error_position"]) == ("", None)
    finally:
        process.send_signal(signal.SIGTERM)
        status = process.wait(30)
    output = log.read_text()
    assert status == 0, output
    assert f"projection '{LEDGER}' failed at position {bad.position}: ValueError: cannot digest this; retrying in 1 s" in output
    assert f"projection '{LEDGER}' recovered" in output
