"""The admin's rough edges, smoothed: data previews, sorts across pages, the last event's time, links to the API, a phone's width."""

from __future__ import annotations

import html as html_lib
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import path, reverse
from playwright.sync_api import Browser, expect

from django_eventstore import ActorSnapshot, Event, get_store
from django_eventstore.admin_views import EventRow, every_actor, json_preview, natural_key

from . import test_admin_browser, test_bank
from .conftest import publish_raw
from .test_admin import CHANGELIST, actor_ids_in, actor_url, add_events

pytestmark = pytest.mark.django_db

browser = test_admin_browser.browser  # the headless Chromium fixture of the admin tests
bank_tables, bank_client = test_bank.bank_tables, test_bank.bank_client  # the demo project's pages

urlpatterns = [path("admin/", admin.site.urls)]  # a project that mounts the admin but not the REST API


def save_actors(ids: list[str]) -> None:
    """One event for each actor, written in one pipelined call."""
    get_store().save_events([Event(actor_id=i, event_type="Created", version=1, data={"id": i}) for i in ids])


def rows_of(html: str) -> dict[str, list[str]]:
    """The changelist's cells after the id, by actor id."""
    rows = re.findall(r'<th class="field-actor_id"><a href="[^"]*">([^<]*)</a></th>(.*?)</tr>', html, re.S)
    return {html_lib.unescape(actor): re.findall(r"<td[^>]*>([^<]*)</td>", cells) for actor, cells in rows}


# ----- the actor page: a preview of each event's data -----


def test_each_event_row_previews_its_data_on_one_line_escaped_and_cut(admin_client):
    hostile = {"<script>alert(1)</script>": "</code></summary><b>bold</b>", "long": "x" * 300}
    get_store().append("doc-1", [Event(event_type="Edited", data=hostile), Event(event_type="Empty", data={})], 0)
    html = admin_client.get(actor_url("doc-1")).content.decode()
    previews = re.findall(r'<code class="preview">([^<]*)</code></summary><pre>', html)
    assert len(previews) == 2 and previews[1] == "{}"
    shown = html_lib.unescape(previews[0])
    assert len(shown) == 120 and shown.endswith("…") and shown == json_preview(hostile)
    assert shown.startswith('{"<script>alert(1)</script>": "</code></summary><b>bold</b>", "long": "xxx')
    assert "<script>alert(1)" not in html and "<b>bold</b>" not in html
    assert html_lib.unescape(html).count('"long": "' + "x" * 300 + '"') == 1  # the full JSON, once: under the preview, on click


def test_a_forgotten_event_reads_as_such_without_data():
    row = EventRow(7, event=Event(event_type="Opened", actor_id="account-1", version=1, data=None, metadata={"user": "u"}))  # type: ignore[arg-type]
    assert (row.forgotten, row.data_preview, row.data_json) == (True, "", "")
    assert EventRow(8, event=Event(event_type="Opened", data={})).forgotten is False


def test_data_too_deep_for_json_is_previewed_on_one_line():
    deep: dict = {}
    inner = deep
    for _ in range(5000):
        inner["a"] = {}
        inner = inner["a"]
    preview = json_preview(deep)
    assert preview.startswith('{"a": {"a": ') and len(preview) == 120


# ----- the changelist: sorts, natural order across pages -----


def test_natural_key_orders_numbers_by_value_and_is_total():
    ids = ["account-10", "account-2", "account-1", "a-1", "a-01", "a-1b", "b", "10", "9", "x2y10", "x2y9", "x10y1"]
    assert sorted(ids, key=natural_key) == ["9", "10", "a-01", "a-1", "a-1b", "account-1", "account-2", "account-10", "b", "x2y9", "x2y10", "x10y1"]
    assert len({natural_key(i) for i in ids}) == len(ids)  # no two ids compare equal: pages cut from the order are exact


def test_natural_order_across_pages_shows_every_actor_once_in_order(admin_client):
    ids = [f"account-{n}" for n in range(1, 231)] + ["a-01", "a-1", "a-2", "a-10", "solo", "item-9b", "item-10a"]
    save_actors(ids)
    seen = []
    for page in (1, 2, 3):
        html = admin_client.get(reverse(CHANGELIST), {"o": "natural", "p": page}).content.decode()
        seen += actor_ids_in(html)
        assert "237 actors" in html
        if page == 1:
            assert '<li class="selected"><a href="?o=natural">Actor id (natural: 1, 2, 10)</a></li>' in html
            assert 'href="?o=natural&amp;p=2"' in html  # the page links keep the order
    assert seen == sorted(ids, key=natural_key) and len(set(seen)) == len(ids)
    assert seen.index("account-2") < seen.index("account-10") < seen.index("account-100")
    assert admin_client.get(reverse(CHANGELIST), {"o": "natural", "p": 4}).status_code == 404
    by_text = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert actor_ids_in(by_text)[:4] == ["a-01", "a-1", "a-10", "a-2"]  # the default stays the store's (text) order


def test_the_walk_over_the_stores_pages_reads_each_actor_once_even_while_actors_are_added():
    ids = [f"cart-{n}" for n in range(1, 121)]
    save_actors(ids)
    store = get_store()
    listing = store.list_actors(limit=50)
    save_actors(["cart-0", "cart-999"])  # one before the first page's cursor, one after it
    walked = every_actor(store, None, None, limit=1000, batch=50)
    assert walked is not None
    names = [a.actor_id for a in walked]
    assert len(names) == len(set(names)) and set(ids) <= set(names) and [a.actor_id for a in listing.actors] == sorted(ids)[:50]
    assert every_actor(store, "cart", None, limit=121, batch=50) is None  # 122 match: past the limit, nothing read beyond the first page


def test_sorts_by_latest_and_snapshot_version_from_the_headers(admin_client):
    for actor_id, versions in (("order-1", 3), ("order-2", 1), ("order-10", 5), ("order-3", 3)):
        add_events(actor_id, versions)
    get_store().save_snapshot(ActorSnapshot(actor_id="order-3", version=2, state={}))
    get_store().save_snapshot(ActorSnapshot(actor_id="order-10", version=4, state={}))
    page = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert 'class="column-latest_version numeric sortable">' in page and '<a href="?o=-version">Latest version</a>' in page

    highest = admin_client.get(reverse(CHANGELIST), {"o": "-version"}).content.decode()
    assert actor_ids_in(highest) == ["order-10", "order-1", "order-3", "order-2"]  # ties in natural id order
    assert "sortable sorted descending" in highest and '<a href="?o=version" class="toggle descending"' in highest
    lowest = admin_client.get(reverse(CHANGELIST), {"o": "version"}).content.decode()
    assert actor_ids_in(lowest) == ["order-2", "order-1", "order-3", "order-10"]
    snapshots = admin_client.get(reverse(CHANGELIST), {"o": "snapshot"}).content.decode()
    assert actor_ids_in(snapshots) == ["order-1", "order-2", "order-3", "order-10"]  # none counts as lowest
    assert actor_ids_in(admin_client.get(reverse(CHANGELIST), {"o": "-snapshot"}).content.decode()) == ["order-10", "order-3", "order-1", "order-2"]
    filtered = admin_client.get(reverse(CHANGELIST), {"o": "-version", "type": "order", "q": "order-1"}).content.decode()
    assert actor_ids_in(filtered) == ["order-10", "order-1"]
    assert '<input type="hidden" name="o" value="-version">' in filtered  # a search keeps the order


@pytest.mark.parametrize("order", ["id", "-natural", "Version", "<b>"])
def test_an_unknown_order_is_404_naming_the_choices(admin_client, order):
    response = admin_client.get(reverse(CHANGELIST), {"o": order})
    assert response.status_code == 404


def test_past_the_sort_limit_the_list_says_so_and_stays_in_id_order(admin_client, monkeypatch):
    from django_eventstore import admin_views

    monkeypatch.setattr(admin_views, "SORT_LIMIT", 150)
    save_actors([f"user-{n}" for n in range(1, 152)])
    html = admin_client.get(reverse(CHANGELIST), {"o": "natural"}).content.decode()
    assert "at most 150, and 151 match" in html and "Narrow the list with the type filter or a search" in html
    assert actor_ids_in(html)[:3] == ["user-1", "user-10", "user-100"]
    narrowed = admin_client.get(reverse(CHANGELIST), {"o": "natural", "q": "user-1"}).content.decode()
    assert "sort-notice" not in narrowed and actor_ids_in(narrowed)[:3] == ["user-1", "user-10", "user-11"]


# ----- the changelist: when each actor's last event was stored -----


def dated_events(actor_id: str, count: int, day: int) -> None:
    """``count`` events a second apart, starting on day ``day`` of January 2026: each its own time to the second."""
    start = datetime(2026, 1, day, tzinfo=UTC)
    for first in range(0, count, 1000):
        batch = [Event(event_type="Posted", data={}, timestamp=start + timedelta(seconds=v)) for v in range(first, min(count, first + 1000))]
        get_store().append(actor_id, batch, first)


def test_last_event_at_is_the_latest_events_time_also_past_a_malformed_message_and_on_long_actors(admin_client, nats_url, subject_prefix):
    dated_events("ledger-1", 1100, day=1)  # a long actor: its last message tells
    dated_events("ledger-2", 2, day=2)
    for actor_id in ("ledger-1", "ledger-2"):  # a malformed message after the last event: not a later event
        publish_raw(nats_url, f"{subject_prefix}.events.ledger.{actor_id}", b"not json")
    dated_events("ledger-4", 70, day=4)
    dated_events("ledger-9", 1, day=9)
    publish_raw(nats_url, f"{subject_prefix}.events.ledger.ledger-3", b"not json either")
    rows = rows_of(admin_client.get(reverse(CHANGELIST)).content.decode())
    store = get_store()
    times = {a.actor_id: a.last_event_at for a in store.list_actors(actor_type="ledger").actors if a.last_event_at}
    for actor_id in ("ledger-1", "ledger-2", "ledger-4", "ledger-9"):
        last = store.get_events(actor_id)[-1].timestamp
        assert times[actor_id] == last and rows[actor_id][-1] == last.strftime("%Y-%m-%d %H:%M:%S"), actor_id
    assert rows["ledger-1"][-1] == "2026-01-01 00:18:19"  # version 1,100: 1,099 seconds after the first
    assert "ledger-3" not in times and rows["ledger-3"][-1] == "—"  # no well-formed event


# ----- links to the REST API -----


def test_the_actor_page_links_to_the_actor_in_the_rest_api(admin_client):
    add_events("invoice-2026/001", 1)
    html = admin_client.get(actor_url("invoice-2026/001")).content.decode()
    api = reverse("django_eventstore:actor-detail", args=["invoice-2026~2F001"])
    assert f'<a href="{api}" id="api-link">{api}</a>' in html
    assert admin_client.get(api).json()["actor_id"] == "invoice-2026/001"


@override_settings(ROOT_URLCONF=__name__)
def test_without_the_rest_api_mounted_the_actor_page_has_no_api_link(admin_client):
    add_events("invoice-1", 1)
    response = admin_client.get(actor_url("invoice-1"))
    assert response.status_code == 200
    assert 'id="api-link"' not in response.content.decode() and "REST API" not in response.content.decode()


def test_the_demo_links_each_account_to_its_admin_page_and_api_url(bank_client, admin_user):
    from demo_project.bank.domain import open_account

    open_account("Ada")
    test_bank.project()
    admin_page = reverse("admin:django_eventstore_actor_actor", args=["account-1"])
    api = reverse("django_eventstore:actor-detail", args=["account-1"])
    home = bank_client.get("/").content.decode()
    assert f'<a href="{admin_page}">admin</a> · <a href="{api}">API</a>' in home
    account = bank_client.get("/accounts/account-1/").content.decode()
    assert f'href="{admin_page}"' in account and f'href="{api}"' in account
    bank_client.force_login(admin_user)
    assert bank_client.get(admin_page).status_code == 200 and bank_client.get(api).json()["latest_version"] == 1


# ----- a phone's width -----


@pytest.fixture
def browser_admin() -> User:
    """A superuser to log in with (made before the browser starts: its loop would refuse the ORM)."""
    return User.objects.create_superuser("admin", password="secret-pw")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_actor_page_fits_a_phone_and_opens_the_full_json_from_the_preview(browser_admin: User, browser: Browser, live_server, tmp_path):
    actor = "order-with-a-rather-long-identifier-" + "x" * 80
    long_data = {"customer": {"name": "Ada Lovelace", "address": "12 Long Street, " * 10}, "lines": list(range(40))}
    get_store().append(actor, [Event(event_type="OrderPlacedWithALongName", data=long_data) for _ in range(3)], 0)
    get_store().save_snapshot(ActorSnapshot(actor_id=actor, version=2, state=long_data))
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(f"{live_server.url}/admin/login/?next=" + actor_url(actor))
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    expect(page.locator("#latest-version")).to_have_text("3")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    first = page.locator("#event_list tr.event details").first
    expect(first.locator("code.preview")).to_contain_text('{"customer": {"address": "12 Long Street')
    expect(first.locator("pre").first).not_to_be_visible()
    first.locator("summary").click()
    expect(first.locator("pre").first).to_be_visible()
    expect(first.locator("pre").first).to_contain_text('"name": "Ada Lovelace"')
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # the full JSON wraps too
    page.screenshot(path=str(tmp_path / "actor-360.png"), full_page=True)
