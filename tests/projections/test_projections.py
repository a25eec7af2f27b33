"""Projections in this process: the class, the registry, catch-up, failures, rebuild, waits, the admin and --list."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import ClassVar

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

import django_eventstore.admin_projections  # noqa: F401 - registers the admin until admin.py imports it
from django_eventstore import Event, get_store
from django_eventstore.models import ProjectionCheckpoint
from django_eventstore.projections import (
    CheckpointMoved,
    Projection,
    ProjectionError,
    ProjectionTimeout,
    acatch_up,
    await_for,
    catch_up,
    get_projections,
    handles,
    rebuild,
    wait_for,
)
from django_eventstore.projections.runner import apply_batch

from .testapp.models import Applied, Balance, BatchBalance

pytestmark = pytest.mark.usefixtures("projections_db")
LEDGER, NOTES, BATCHED = "tests.ledger", "tests.notes", "tests.ledger-batched"


def save(actor_id: str, event_type: str, **data: object) -> Event:
    store = get_store()
    return store.save_event(Event(actor_id=actor_id, event_type=event_type, data=data, version=store.get_latest_version(actor_id) + 1))


def applied(name: str) -> list[int]:
    return list(Applied.objects.filter(projection=name).order_by("position").values_list("position", flat=True))


def row(name: str) -> ProjectionCheckpoint:
    return ProjectionCheckpoint.objects.get(name=name)


def test_catch_up_applies_each_event_once_and_skips_other_types_and_actors():
    a = save("acct-1", "Deposited", amount=10)
    note = save("acct-1", "Noted")
    shop = save("shop-1", "Deposited", amount=5)
    b = save("acct-2", "Deposited", amount=7)

    assert catch_up([LEDGER, NOTES]) == {LEDGER: b.position, NOTES: b.position}
    assert applied(LEDGER) == [a.position, b.position]
    assert applied(NOTES) == [a.position, note.position, shop.position, b.position]
    assert dict(Balance.objects.values_list("actor_id", "total")) == {"acct-1": 10, "acct-2": 7}

    assert catch_up([LEDGER, NOTES]) == {LEDGER: b.position, NOTES: b.position}
    assert applied(LEDGER) == [a.position, b.position] and len(applied(NOTES)) == 4
    assert (row(LEDGER).error, row(LEDGER).error_position) == ("", None)


def test_the_checkpoint_moves_past_events_no_handler_wants():
    save("shop-1", "Deposited", amount=5)
    last = save("acct-1", "Noted")
    assert catch_up([LEDGER]) == {LEDGER: last.position}
    assert applied(LEDGER) == [] and row(LEDGER).position == last.position


def test_a_failing_handler_keeps_the_events_before_it_and_records_the_error(monkeypatch):
    one = save("acct-1", "Deposited", amount=1)
    save("acct-1", "Deposited", amount=2)
    bad = save("acct-2", "Poison", what="a brick")
    save("acct-1", "Deposited", amount=4)

    with pytest.raises(ProjectionError) as failed:
        catch_up([LEDGER, NOTES])
    error = failed.value
    assert (error.name, error.position) == (LEDGER, bad.position)
    assert isinstance(error.cause, ValueError) and "a brick" in str(error)
    checkpoint = row(LEDGER)
    assert (checkpoint.position, checkpoint.error_position) == (bad.position - 1, bad.position)
    assert checkpoint.error == "ValueError: cannot digest a brick"
    assert Balance.objects.get(actor_id="acct-1").total == 3 and applied(LEDGER)[0] == one.position
    assert row(NOTES).position == bad.position + 1  # the other projection went on

    monkeypatch.setenv("PROJECTION_TEST_FIXED", "1")  # the fixed code
    assert catch_up([LEDGER]) == {LEDGER: bad.position + 1}
    checkpoint = row(LEDGER)
    assert (checkpoint.error, checkpoint.error_position) == ("", None)
    assert Balance.objects.get(actor_id="acct-1").total == 7


def test_a_batch_whose_checkpoint_moved_applies_nothing():
    first = save("acct-1", "Deposited", amount=1)
    second = save("acct-1", "Deposited", amount=2)
    ledger = get_projections([LEDGER])[LEDGER]
    catch_up([LEDGER])
    with pytest.raises(CheckpointMoved):
        apply_batch(ledger, first.position - 1, [first, second], second.position)  # another runner did this batch already
    assert applied(LEDGER) == [first.position, second.position]


class Flushing(Projection):
    """Collects deposits and writes them in flush(), which raises for a batch holding an amount of ``fail_on``."""

    name = "tests.flushing"
    actor_types = ["acct"]
    batch_size = 3
    fail_on: ClassVar[int | None] = 13
    max_batch: ClassVar[int | None] = None  # flush() also raises for more events than this (a projection that depends on batch ends)
    flushes: ClassVar[list[list[int]]] = []

    def begin_batch(self) -> None:
        self.pending: list[Event] = []

    @handles("Deposited")
    def deposited(self, event: Event) -> None:
        self.pending.append(event)

    def flush(self) -> None:
        self.flushes.append([event.position for event in self.pending if event.position])
        if any(event.data["amount"] == self.fail_on for event in self.pending):
            raise ValueError(f"unlucky {self.fail_on}")
        if self.max_batch is not None and len(self.pending) > self.max_batch:
            raise ValueError("batch too large")
        Applied.objects.bulk_create([Applied(projection=self.name, position=e.position, actor_id=e.actor_id, event_type=e.event_type) for e in self.pending])


@pytest.fixture
def flushing(monkeypatch):
    monkeypatch.setattr(Flushing, "flushes", [])
    return Flushing


def test_handlers_may_collect_and_flush_once_per_batch_in_its_transaction(flushing):
    positions = [save("acct-1", "Deposited", amount=n).position for n in range(1, 8)]
    save("shop-1", "Deposited", amount=1)  # another actor type: no handler sees it
    last = save("acct-1", "Noted")

    assert catch_up([Flushing.name]) == {Flushing.name: last.position}
    assert flushing.flushes == [positions[0:3], positions[3:6], positions[6:7]]  # batches without wanted events are not flushed
    assert applied(Flushing.name) == positions
    assert catch_up([Flushing.name]) == {Flushing.name: last.position} and len(flushing.flushes) == 3


def test_a_failing_flush_stops_just_before_the_event_that_makes_it_fail(flushing, monkeypatch):
    one, two = save("acct-1", "Deposited", amount=1), save("acct-1", "Deposited", amount=2)
    bad = save("acct-2", "Deposited", amount=13)
    last = save("acct-1", "Deposited", amount=4)

    with pytest.raises(ProjectionError) as failed:
        catch_up([Flushing.name])
    assert (failed.value.position, str(failed.value.cause)) == (bad.position, "unlucky 13")
    checkpoint = row(Flushing.name)
    assert (checkpoint.position, checkpoint.error_position, checkpoint.error) == (bad.position - 1, bad.position, "ValueError: unlucky 13")
    assert applied(Flushing.name) == [one.position, two.position]  # found one event at a time, each applied once

    monkeypatch.setattr(Flushing, "fail_on", None)  # the fixed code
    assert catch_up([Flushing.name]) == {Flushing.name: last.position}
    assert applied(Flushing.name) == [one.position, two.position, bad.position, last.position]
    assert (row(Flushing.name).error, row(Flushing.name).error_position) == ("", None)


def test_a_batch_that_fails_only_whole_goes_through_one_event_at_a_time_with_a_warning(flushing, monkeypatch, caplog):
    monkeypatch.setattr(Flushing, "max_batch", 1)
    positions = [save("acct-1", "Deposited", amount=n).position for n in (1, 2, 3, 4)]
    with caplog.at_level(logging.WARNING, logger="django_eventstore.projections"):
        assert catch_up([Flushing.name]) == {Flushing.name: positions[-1]}
    assert applied(Flushing.name) == positions and (row(Flushing.name).error, row(Flushing.name).error_position) == ("", None)
    assert "went through one event at a time" in caplog.text and "ValueError: batch too large" in caplog.text


def test_collected_state_of_a_failed_batch_is_not_applied_twice(monkeypatch):
    save("acct-1", "Deposited", amount=1)
    save("acct-1", "Deposited", amount=2)
    bad = save("acct-2", "Poison")
    last = save("acct-1", "Deposited", amount=4)

    with pytest.raises(ProjectionError, match=f"failed at position {bad.position}"):
        catch_up([BATCHED])
    assert dict(BatchBalance.objects.values_list("actor_id", "total")) == {"acct-1": 3}  # begin_batch() reset what the failed try collected
    assert (row(BATCHED).position, row(BATCHED).error_position) == (bad.position - 1, bad.position)

    monkeypatch.setenv("PROJECTION_TEST_FIXED", "1")
    assert catch_up([BATCHED]) == {BATCHED: last.position}
    assert dict(BatchBalance.objects.values_list("actor_id", "total")) == {"acct-1": 7, "acct-2": 0}
    assert dict(BatchBalance.objects.values_list("actor_id", "events")) == {"acct-1": 3, "acct-2": 1}


def test_rebuild_empties_and_replays():
    save("acct-1", "Deposited", amount=5)
    save("acct-1", "Deposited", amount=6)
    catch_up([LEDGER])
    Balance.objects.filter(actor_id="acct-1").update(total=-1)  # a read model gone wrong
    last = save("acct-2", "Deposited", amount=1)

    assert rebuild(LEDGER) == last.position
    assert dict(Balance.objects.values_list("actor_id", "total")) == {"acct-1": 11, "acct-2": 1}
    assert len(applied(LEDGER)) == 3


def test_rebuild_needs_a_reset_and_changes_nothing_without_one(settings):
    class NoReset(Projection):
        name = "tests.no-reset"

        @handles("Deposited")
        def deposited(self, event: Event) -> None:
            Applied.objects.create(projection=self.name, position=event.position, actor_id=event.actor_id, event_type="x")

    save("acct-1", "Deposited", amount=5)
    catch_up([NoReset.name])
    with pytest.raises(NotImplementedError, match="define its reset"):
        rebuild(NoReset.name)
    assert row(NoReset.name).position == 1 and len(applied(NoReset.name)) == 1


def test_wait_for_returns_once_reached_and_times_out_naming_who_is_behind():
    event = save("acct-1", "Deposited", amount=5)
    with pytest.raises(ProjectionTimeout) as timeout:
        wait_for(event.position, [LEDGER], timeout=0.05)
    assert isinstance(timeout.value, TimeoutError)
    assert timeout.value.behind == {LEDGER: 0} and f"'{LEDGER}' at 0" in str(timeout.value)
    catch_up([LEDGER])
    wait_for(event.position, [LEDGER], timeout=0.05)


@pytest.mark.django_db(transaction=True)
def test_async_twins():
    event = save("acct-1", "Deposited", amount=5)

    async def go() -> dict[str, int]:
        with pytest.raises(ProjectionTimeout):
            await await_for(event.position, [LEDGER], timeout=0.05)
        positions = await acatch_up([LEDGER])
        await await_for(event.position, [LEDGER], timeout=1)
        return positions

    try:
        assert asyncio.run(go()) == {LEDGER: event.position}
    finally:
        Applied.objects.all().delete()
        Balance.objects.all().delete()


def test_unknown_projection_names_are_refused():
    with pytest.raises(LookupError, match=r"no projection named 'nope' \(known: .*tests\.ledger"):
        catch_up(["nope"])


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"name": ""}, "name must be"),
        ({"name": "x" * 101}, "name must be"),
        ({"name": "tests.bad", "actor_types": "acct"}, "actor_types must be"),
        ({"name": "tests.bad", "batch_size": 0}, "batch_size must be"),
        ({"name": LEDGER}, "two projections are named"),
    ],
)
def test_bad_projection_classes_are_refused(attrs, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        type("Bad", (Projection,), dict(attrs))


def test_one_event_type_two_handlers_is_refused():
    with pytest.raises(ImproperlyConfigured, match="handled by both"):

        class Twice(Projection):
            @handles("A")
            def one(self, event: Event) -> None: ...

            @handles("A")
            def two(self, event: Event) -> None: ...


def test_list_shows_position_lag_and_error_as_table_and_json():
    save("acct-1", "Deposited", amount=5)
    bad = save("acct-1", "Poison")
    save("acct-1", "Noted")
    with pytest.raises(ProjectionError):
        catch_up([LEDGER])
    out = io.StringIO()
    call_command("eventstore_project", LEDGER, NOTES, "--list", "--format", "json", stdout=out)
    states = {s["name"]: s for s in json.loads(out.getvalue())}
    assert set(states[LEDGER]) == {"name", "position", "lag", "updated_at", "error", "error_position"}
    assert states[LEDGER]["position"] == 1 and states[LEDGER]["lag"] == 2 and states[LEDGER]["error_position"] == bad.position
    assert states[NOTES] == {"name": NOTES, "position": 0, "lag": 3, "updated_at": None, "error": "", "error_position": None}

    out = io.StringIO()
    call_command("eventstore_project", LEDGER, "--list", stdout=out)
    table = out.getvalue().splitlines()
    assert table[0].split() == ["NAME", "POSITION", "LAG", "UPDATED", "ERROR"]
    assert table[1].startswith(LEDGER) and f"at {bad.position}: ValueError: cannot digest this" in table[1]


def test_the_command_refuses_unknown_names():
    with pytest.raises(CommandError, match="no projection named 'nope'"):
        call_command("eventstore_project", "nope", "--once")
    with pytest.raises(CommandError, match="no projection named 'gone'"):
        call_command("eventstore_project", "--rebuild", "gone")


def test_the_command_once_fails_in_one_line_naming_projection_position_and_error():
    save("acct-1", "Deposited", amount=5)
    bad = save("acct-1", "Poison", what="glass\nsecond line")
    with pytest.raises(CommandError) as failed:
        call_command("eventstore_project", LEDGER, NOTES, "--once")
    assert str(failed.value) == f"projection '{LEDGER}' failed at position {bad.position}: ValueError: cannot digest glass"
    assert row(NOTES).position == bad.position


# ----- admin -----


@pytest.fixture
def staff(django_user_model):
    def make(*perms: str):
        user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="django_eventstore", codename__in=perms))
        return get_user_model().objects.get(pk=user.pk)

    return make


def test_admin_lists_projections_with_lag_and_escaped_errors(client, staff):
    client.force_login(staff("view_projectioncheckpoint"))
    save("acct-1", "Deposited", amount=5)
    save("acct-1", "Poison", what="<script>alert(1)</script>")
    with pytest.raises(ProjectionError):
        catch_up([LEDGER])

    index = client.get("/admin/").content.decode()
    assert ">Projections</a>" in index
    page = client.get("/admin/django_eventstore/projectioncheckpoint/")
    assert page.status_code == 200
    html = page.content.decode()
    assert LEDGER in html and NOTES in html and "never ran" in html
    assert "&lt;script&gt;" in html and "<script>alert" not in html
    assert "Rebuild…" not in html  # no change permission


def test_admin_rebuild_needs_change_permission_and_a_confirmation(client, staff):
    client.force_login(staff("view_projectioncheckpoint"))
    assert client.get("/admin/django_eventstore/projectioncheckpoint/rebuild/", {"name": LEDGER}).status_code == 403
    assert client.post("/admin/django_eventstore/projectioncheckpoint/rebuild/", {"name": LEDGER}).status_code == 403


def test_admin_rebuild_after_confirmation(admin_client):
    save("acct-1", "Deposited", amount=5)
    catch_up([LEDGER])
    Balance.objects.update(total=0)
    listing = admin_client.get("/admin/django_eventstore/projectioncheckpoint/").content.decode()
    assert f"rebuild/?name={LEDGER}" in listing
    confirm = admin_client.get("/admin/django_eventstore/projectioncheckpoint/rebuild/", {"name": LEDGER})
    assert confirm.status_code == 200 and "Yes, rebuild it" in confirm.content.decode()
    assert Balance.objects.get().total == 0  # a GET changes nothing
    done = admin_client.post("/admin/django_eventstore/projectioncheckpoint/rebuild/", {"name": LEDGER}, follow=True)
    assert f"Rebuilt {LEDGER} up to position 1." in done.content.decode()
    assert Balance.objects.get().total == 5
    assert admin_client.get("/admin/django_eventstore/projectioncheckpoint/rebuild/", {"name": "nope"}).status_code == 404


def test_checkpoints_no_projection_in_code_uses_are_listed_as_not_in_code(admin_client):
    save("acct-1", "Deposited", amount=5)
    ProjectionCheckpoint.objects.create(name="tests.renamed-away", position=1, error="KeyError: 'x'", error_position=2)

    out = io.StringIO()
    call_command("eventstore_project", "--list", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("tests.renamed-away"))
    assert line.split()[:6] == ["tests.renamed-away", "(not", "in", "code)", "1", "-"] and "at 2: KeyError" in line
    out = io.StringIO()
    call_command("eventstore_project", LEDGER, "--list", stdout=out)
    assert "renamed-away" not in out.getvalue()  # only the NAMEs asked for
    out = io.StringIO()
    call_command("eventstore_project", "--list", "--format", "json", stdout=out)
    assert "tests.renamed-away" not in {s["name"] for s in json.loads(out.getvalue())}  # JSON: projections in code, for monitoring

    html = admin_client.get("/admin/django_eventstore/projectioncheckpoint/").content.decode()
    assert "tests.renamed-away <span class=\"help\">(not in code)</span>" in html and "Nothing updates it" in html
    assert "rebuild/?name=tests.renamed-away" not in html and f"rebuild/?name={LEDGER}" in html
    assert admin_client.get("/admin/django_eventstore/projectioncheckpoint/rebuild/", {"name": "tests.renamed-away"}).status_code == 404


def test_an_admin_rebuild_is_bounded_in_time_and_leaves_the_rest_to_the_runner(admin_client, monkeypatch):
    from django_eventstore.admin_projections import ProjectionAdmin

    save("acct-1", "Deposited", amount=5)
    last = save("acct-1", "Deposited", amount=6)
    catch_up([LEDGER])
    confirm = admin_client.get("/admin/django_eventstore/projectioncheckpoint/rebuild/", {"name": LEDGER}).content.decode()
    assert "at most 10 seconds" in confirm and f"manage.py eventstore_project --rebuild {LEDGER}" in confirm

    monkeypatch.setattr(ProjectionAdmin, "rebuild_seconds", 0.0)  # time is up before the first batch
    done = admin_client.post("/admin/django_eventstore/projectioncheckpoint/rebuild/", {"name": LEDGER}, follow=True).content.decode()
    assert f"Rebuilt {LEDGER} up to position 0 of {last.position} in 0 s; the projection runner" in done
    assert row(LEDGER).position == 0 and not Balance.objects.exists()
    assert catch_up([LEDGER]) == {LEDGER: last.position} and Balance.objects.get().total == 11
