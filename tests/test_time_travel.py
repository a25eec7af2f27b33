"""Time travel: an actor's state at any version (Python API and the admin's State section), against the real nats-server."""

from __future__ import annotations

import html as html_lib
import re
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from django_eventstore import ActorSnapshot, Event, SnapshotNotFound, get_store
from django_eventstore.actor_urls import actor_segment
from django_eventstore.aggregates import ActorTypeTaken, Aggregate, aggregate_for, aggregate_for_type, applies, registered_aggregates
from django_eventstore.time_travel import (
    Change,
    ComputedFrom,
    NoAggregate,
    NoSuchVersion,
    ReplayStopped,
    ReplayTooLong,
    diff_states,
    state_at,
    step_at,
)

from . import test_admin_browser

pytestmark = pytest.mark.django_db
browser = test_admin_browser.browser  # the headless Chromium fixture of the admin tests


class Ledger(Aggregate):
    """The test's aggregate: a total, the amounts added (a list) and tags (a dict) changed in place."""

    actor_type = "ttledger"
    snapshot_every = 4

    def __init__(self, actor_id: str, store=None) -> None:
        super().__init__(actor_id, store)
        self.total = 0
        self.amounts: list[int] = []
        self.tags: dict[str, Any] = {}

    def set_state(self, state: dict[str, Any]) -> None:
        if type(state.get("total")) is not int:
            raise ValueError(f"not a ledger's state: {state!r}")
        super().set_state(state)

    def add(self, n: int) -> None:
        self.record("Added", {"n": n})

    def tag(self, key: str, value: Any) -> None:
        self.record("Tagged", {"key": key, "value": value})

    @applies("Added")
    def _added(self, event: Event) -> None:
        self.total += event.data["n"]
        self.amounts.append(event.data["n"])

    @applies("Tagged")
    def _tagged(self, event: Event) -> None:
        self.tags[event.data["key"]] = event.data["value"]

    @applies("Untagged")
    def _untagged(self, event: Event) -> None:
        del self.tags[event.data["key"]]


def expected_state(history: list[tuple[str, Any]], version: int) -> dict[str, Any]:
    """The ledger's state after the first ``version`` commands, computed here without the aggregate."""
    state: dict[str, Any] = {"total": 0, "amounts": [], "tags": {}}
    for kind, value in history[:version]:
        if kind == "add":
            state["total"] += value
            state["amounts"].append(value)
        else:
            state["tags"][value[0]] = value[1]
    return state


def build(actor_id: str, history: list[tuple[str, Any]], per_save: int = 3) -> None:
    """Run the commands through the aggregate, saving every ``per_save`` (so snapshots are taken as in production)."""
    for i in range(0, len(history), per_save):
        ledger = Ledger.load(actor_id)
        for kind, value in history[i : i + per_save]:
            ledger.add(value) if kind == "add" else ledger.tag(*value)
        ledger.save()


HISTORY: list[tuple[str, Any]] = [("add", n) for n in range(1, 8)] + [("tag", ("colour", "red")), ("add", 10), ("tag", ("size", {"w": 2}))]
HISTORY += [("tag", ("colour", "blue")), ("add", 5), ("tag", ("size", {"w": 3, "h": 1}))] + [("add", n) for n in range(20, 30)]


def admin_page(client, actor_id: str, **params: Any) -> str:
    response = client.get(reverse("admin:django_eventstore_actor_actor", args=[actor_segment(actor_id)]), params)
    assert response.status_code == 200
    return response.content.decode()


# ----- registration -----


@pytest.mark.without_nats
def test_actor_type_registers_the_class_and_the_lookup_finds_it():
    assert aggregate_for_type("ttledger") is Ledger
    assert aggregate_for("ttledger-7") is Ledger
    assert registered_aggregates()["ttledger"] is Ledger
    assert aggregate_for_type("nosuchtype") is None
    assert aggregate_for("nosuchtype-1") is None


@pytest.mark.without_nats
def test_a_second_class_for_a_type_raises_naming_both():
    name = f"tt{uuid.uuid4().hex[:8]}"
    first = type("First", (Aggregate,), {"actor_type": name})
    with pytest.raises(ActorTypeTaken) as raised:
        type("Second", (Aggregate,), {"actor_type": name})
    assert "Second" in str(raised.value) and "First" in str(raised.value) and repr(name) in str(raised.value)
    assert aggregate_for_type(name) is first


@pytest.mark.without_nats
def test_abstract_intermediates_and_inheriting_subclasses_are_not_registered():
    before = registered_aggregates()

    class Base(Aggregate):  # no actor_type: an abstract intermediate
        pass

    class Special(Ledger):  # inherits "ttledger" without declaring it: the parent keeps the type
        pass

    assert registered_aggregates() == before
    assert aggregate_for_type("ttledger") is Ledger


@pytest.mark.without_nats
@pytest.mark.parametrize("bad", ["", "a-b", 7])
def test_an_actor_type_that_no_actor_id_has_is_refused(bad):
    with pytest.raises(ValueError, match="actor_type must be"):
        type("Bad", (Aggregate,), {"actor_type": bad})


@pytest.mark.without_nats
def test_the_same_class_made_again_replaces_itself():
    """A module reloaded (same module and name) is not two classes for one type."""
    name = f"tt{uuid.uuid4().hex[:8]}"
    first = type("Again", (Aggregate,), {"actor_type": name})
    second = type("Again", (Aggregate,), {"actor_type": name})
    assert first is not second and aggregate_for_type(name) is second


def test_the_demo_bank_registers_its_account():
    from demo_project.bank.domain import Account

    assert aggregate_for_type("account") is Account


# ----- states -----


def test_every_version_matches_a_full_replay_using_the_snapshot_at_or_below_it():
    build("ttledger-1", HISTORY)
    latest = len(HISTORY)
    snapshot = get_store().get_latest_snapshot("ttledger-1").version
    assert 0 < snapshot < latest
    for version in range(1, latest + 1):
        result = state_at("ttledger-1", version)
        assert result.state == expected_state(HISTORY, version), version
        if version >= snapshot:
            assert result.computed_from == ComputedFrom(snapshot, version - snapshot)
        else:  # never a snapshot from above the version
            assert result.computed_from == ComputedFrom(None, version)
        step = step_at("ttledger-1", version)
        assert (step.at.state, step.before.state) == (expected_state(HISTORY, version), expected_state(HISTORY, version - 1))
        assert step.at.computed_from == result.computed_from
        assert step.event.version == version
    assert state_at("ttledger-1").state == Ledger.load("ttledger-1", use_snapshot=False).get_state()


def test_the_snapshot_at_the_version_itself_gives_the_state_and_a_replay_the_state_before():
    build("ttledger-2", [("add", n) for n in range(1, 9)], per_save=4)  # snapshots at 4, then 8
    assert get_store().get_latest_snapshot("ttledger-2").version == 8
    step = step_at("ttledger-2", 8)
    assert step.at.computed_from == ComputedFrom(8, 0)
    assert step.before.computed_from == ComputedFrom(None, 7)
    assert step.changes == [Change(("amounts", 7), "added", None, 8), Change(("total",), "changed", 28, 36)]


def test_the_first_event_is_compared_with_the_initial_state():
    build("ttledger-3", [("tag", ("colour", "red"))])
    step = step_at("ttledger-3", 1)
    assert step.before.version == 0 and step.before.state == {"total": 0, "amounts": [], "tags": {}}
    assert step.changes == [Change(("tags", "colour"), "added", None, "red")]


def test_a_version_above_the_latest_or_an_actor_without_events_is_no_such_version():
    build("ttledger-4", [("add", 1), ("add", 2)])
    with pytest.raises(NoSuchVersion, match="has no version 3: its latest version is 2"):
        state_at("ttledger-4", 3)
    with pytest.raises(NoSuchVersion, match="has no events"):
        state_at("ttledger-none")
    with pytest.raises(ValueError, match="version must be an int >= 1"):
        state_at("ttledger-4", 0)


def test_an_actor_type_without_aggregate_is_no_aggregate():
    get_store().save_event(Event(actor_id="plain-1", event_type="Happened", version=1))
    with pytest.raises(NoAggregate, match="No aggregate is registered for actor type 'plain'"):
        state_at("plain-1")


def test_an_event_the_aggregate_cannot_apply_stops_the_replay_there():
    build("ttledger-5", [("add", 1), ("add", 2)])
    get_store().save_event(Event(actor_id="ttledger-5", event_type="Added", version=3, data={"amount": 3}))
    get_store().save_event(Event(actor_id="ttledger-5", event_type="Refunded", version=4, data={}))
    assert state_at("ttledger-5", 2).state["total"] == 3
    with pytest.raises(ReplayStopped, match="Replay stopped at version 3: KeyError: 'n'") as raised:
        state_at("ttledger-5")
    assert raised.value.version == 3
    with pytest.raises(ReplayStopped, match="Replay stopped at version 3"):
        step_at("ttledger-5", 4)


def test_an_unknown_event_type_stops_the_replay_naming_it():
    build("ttledger-6", [("add", 1)])
    get_store().save_event(Event(actor_id="ttledger-6", event_type="Refunded", version=2, data={}))
    with pytest.raises(ReplayStopped, match=r"Replay stopped at version 2: UnhandledEvent: .*'Refunded'"):
        state_at("ttledger-6", 2)


def test_a_snapshot_the_aggregate_refuses_is_skipped_for_a_replay_from_1():
    build("ttledger-7", [("add", 1), ("add", 2)])
    get_store().save_snapshot(ActorSnapshot(actor_id="ttledger-7", version=2, state={"total": "lots"}))
    result = state_at("ttledger-7", 2)
    assert result.state["total"] == 3 and result.computed_from == ComputedFrom(None, 2)
    assert "the snapshot at version 2 could not be restored (ValueError: not a ledger's state" in result.snapshot_skipped


def test_a_replay_longer_than_the_limit_says_so(settings):
    build("ttledger-8", [("add", n) for n in range(1, 7)], per_save=6)  # one save past 4: a snapshot at 6
    get_store().save_event(Event(actor_id="ttledger-8", event_type="Added", version=7, data={"n": 7}))
    assert get_store().get_latest_snapshot("ttledger-8").version == 6
    with pytest.raises(ReplayTooLong, match=r"version 5 needs 5 events replayed from version 1 .*TIME_TRAVEL_MAX_EVENTS\"\] \(4\)"):
        state_at("ttledger-8", 5, limit=4)
    assert state_at("ttledger-8", 7, limit=1).computed_from == ComputedFrom(6, 1)  # from the snapshot: within the limit
    settings.EVENTSTORE = {**settings.EVENTSTORE, "TIME_TRAVEL_MAX_EVENTS": 3}
    with pytest.raises(ReplayTooLong, match=r"\(3\) allows"):
        state_at("ttledger-8", 4)


def test_without_snapshots_the_state_is_replayed_from_version_1():
    get_store().append("ttledger-9", [Event(event_type="Added", data={"n": n}) for n in range(1, 6)], expected_version=0)
    with pytest.raises(SnapshotNotFound):
        get_store().get_latest_snapshot("ttledger-9")
    assert state_at("ttledger-9", 5).computed_from == ComputedFrom(None, 5)
    assert str(ComputedFrom(None, 5)) == "replayed from version 1: 5 events"
    assert str(ComputedFrom(10, 1)) == "snapshot at version 10 + 1 event"


# ----- differences -----


@pytest.mark.without_nats
def test_diff_lists_added_removed_and_changed_keys_nested():
    before = {"a": 1, "gone": True, "nested": {"x": [1, 2], "y": {"z": "old"}}, "flag": 1}
    after = {"a": 1, "new": None, "nested": {"x": [1, 3, 4], "y": {"z": "new"}}, "flag": True}
    assert diff_states(before, after) == [
        Change(("flag",), "changed", 1, True),
        Change(("gone",), "removed", True, None),
        Change(("nested", "x", 1), "changed", 2, 3),
        Change(("nested", "x", 2), "added", None, 4),
        Change(("nested", "y", "z"), "changed", "old", "new"),
        Change(("new",), "added", None, None),
    ]
    assert diff_states(after, after) == []
    assert diff_states({"a": {"b": 1}}, {"a": [1]}) == [Change(("a",), "changed", {"b": 1}, [1])]


@pytest.mark.without_nats
def test_diff_of_very_deep_states_does_not_recurse():
    def deep(leaf: Any, depth: int = 20_000) -> dict[str, Any]:
        value: Any = leaf
        for _ in range(depth):
            value = {"k": value}
        return value

    (change,) = diff_states(deep(1), deep(2))
    assert len(change.path) == 20_000 and (change.before, change.after) == (1, 2)


# ----- the admin's State section -----


def test_admin_shows_the_latest_state_and_how_it_was_computed(admin_client):
    build("ttledger-20", HISTORY)
    page = admin_page(admin_client, "ttledger-20")
    snapshot = get_store().get_latest_snapshot("ttledger-20").version
    assert f"State at version {len(HISTORY)} of {len(HISTORY)}" in page
    assert f"snapshot at version {snapshot} + {len(HISTORY) - snapshot} events" in page
    assert 'id="state-previous"' in page and 'id="state-next"' not in page
    assert "tests.test_time_travel.Ledger" in page


def test_admin_picks_a_version_with_previous_and_next_links_that_keep_the_page(admin_client):
    build("ttledger-21", HISTORY)
    page = admin_page(admin_client, "ttledger-21", at=13, order="desc")
    assert "State at version 13 of" in page and "replayed from version 1: 13 events" in page
    previous = html_lib.unescape(re.search(r'href="([^"]*)" id="state-previous"', page).group(1))
    following = html_lib.unescape(re.search(r'href="([^"]*)" id="state-next"', page).group(1))
    assert previous == "?order=desc&at=12#state" and following == "?order=desc&at=14#state"
    assert '<input type="hidden" name="order" value="desc">' in page
    # event 13 tags size {"w": 3, "h": 1} where it was {"w": 2}: one key changed, one added, colour-coded
    assert re.search(r'<tr class="change-added">\s*<td>added</td>\s*<td class="path"><code>tags</code> &rsaquo; <code>size</code> &rsaquo; <code>h</code>', page)
    assert re.search(r'<tr class="change-changed">\s*<td>changed</td>\s*<td class="path"><code>tags</code> &rsaquo; <code>size</code> &rsaquo; <code>w</code>', page)


def test_admin_version_above_the_latest_shows_the_latest_with_a_notice(admin_client):
    build("ttledger-22", [("add", 1), ("add", 2)])
    page = admin_page(admin_client, "ttledger-22", at=99)
    assert "There is no version 99: the latest version is 2" in page and "State at version 2 of 2" in page


@pytest.mark.parametrize("bad", ["0", "x", "-1", "1.5", "²"])
def test_admin_bad_version_is_a_404(admin_client, bad):
    build("ttledger-23", [("add", 1)])
    response = admin_client.get(reverse("admin:django_eventstore_actor_actor", args=["ttledger-23"]), {"at": bad})
    assert response.status_code == 404


def test_admin_unappliable_event_says_where_replay_stopped_not_a_500(admin_client):
    build("ttledger-24", [("add", 1)])
    get_store().save_event(Event(actor_id="ttledger-24", event_type="Added", version=2, data={"oops": "<b>"}))
    page = admin_page(admin_client, "ttledger-24")
    assert "Replay stopped at version 2: KeyError: &#x27;n&#x27;" in page
    assert "State at version 1" not in page and 'id="state-diff"' not in page
    assert "State at version 1 of 2" in admin_page(admin_client, "ttledger-24", at=1)


def test_admin_replay_over_the_limit_says_so(admin_client, settings):
    settings.EVENTSTORE = {**settings.EVENTSTORE, "TIME_TRAVEL_MAX_EVENTS": 2}
    get_store().append("ttledger-25", [Event(event_type="Added", data={"n": n}) for n in range(1, 5)], expected_version=0)
    page = admin_page(admin_client, "ttledger-25")
    assert "needs 4 events replayed from version 1" in page and "(2) allows" in page


def test_admin_escapes_hostile_keys_and_values_in_the_state_and_diff(admin_client):
    key, value = '<script>alert("k")</script>', "it's \"quoted\" & <b>bold</b>"
    build("ttledger-26", [("add", 1), ("tag", (key, value))])
    page = admin_page(admin_client, "ttledger-26")
    assert "<script>alert" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&quot;k&quot;)&lt;/script&gt;" in page
    assert "it&#x27;s \\&quot;quoted\\&quot; &amp; &lt;b&gt;bold&lt;/b&gt;" in page  # the JSON string, escaped
    assert '<tr class="change-added">' in page
    hostile = admin_page(admin_client, "ttledger-26", at=2, order='"><script>x</script>')
    assert "<script>x" not in hostile


def test_admin_has_no_state_section_for_types_without_aggregate(admin_client):
    get_store().save_event(Event(actor_id="plain-2", event_type="Happened", version=1))
    page = admin_page(admin_client, "plain-2")
    assert 'id="state"' not in page and 'id="events"' in page


def test_admin_event_that_changed_nothing_says_so(admin_client):
    build("ttledger-27", [("tag", ("a", 1)), ("tag", ("a", 1))])
    assert "The event changed nothing in the state." in admin_page(admin_client, "ttledger-27")


def test_a_forgotten_actor_says_its_data_was_forgotten(settings, admin_client):
    from cryptography.fernet import Fernet

    settings.EVENTSTORE = {**settings.EVENTSTORE, "ENCRYPTION": {"MASTER_KEY": Fernet.generate_key().decode()}}
    build("ttledger-28", [("add", 1), ("add", 2)])
    get_store().forget("ttledger-28")
    with pytest.raises(ReplayStopped, match=r"Replay stopped at version 1: its data was forgotten \(TypeError: "):
        state_at("ttledger-28", 1)
    assert "Replay stopped at version 1: its data was forgotten" in admin_page(admin_client, "ttledger-28")


# ----- in a browser -----


@pytest.fixture
def admin_and_ledger() -> None:
    """A superuser and the ledger, made before Playwright runs its loop in this thread (the ORM refuses a running loop)."""
    User.objects.create_superuser("admin", password="secret-pw")
    build("ttledger-60", HISTORY)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_state_section_in_chromium_picks_versions_and_shows_the_diff(admin_and_ledger, browser, live_server, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    test_admin_browser.log_in(page, live_server.url)
    page.goto(live_server.url + reverse("admin:django_eventstore_actor_actor", args=["ttledger-60"]))
    expect(page.locator("#state h2")).to_have_text(f"State at version {len(HISTORY)} of {len(HISTORY)}")
    page.fill("#state-version", "12")
    page.click("#state-jump input[type=submit]")
    expect(page.locator("#state h2")).to_have_text(f"State at version 12 of {len(HISTORY)}")
    page.click("#state-next")
    expect(page.locator("#state h2")).to_have_text(f"State at version 13 of {len(HISTORY)}")
    expect(page.locator("#state-computed")).to_have_text("replayed from version 1: 13 events")
    expect(page.locator("#state-diff tr.change-added .path")).to_have_text("tags › size › h")
    expect(page.locator("#state-diff tr.change-changed .path")).to_have_text("tags › size › w")
    added = page.locator("#state-diff tr.change-added td").first
    changed = page.locator("#state-diff tr.change-changed td").first
    assert added.evaluate("e => getComputedStyle(e).backgroundColor") != changed.evaluate("e => getComputedStyle(e).backgroundColor")
    page.locator("#state").screenshot(path=str(tmp_path / "actor-state.png"))
    assert (tmp_path / "actor-state.png").stat().st_size > 5_000
