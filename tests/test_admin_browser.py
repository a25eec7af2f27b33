"""The Actors admin driven in headless Chromium (the system's or Playwright's) against a live server and real NATS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect, sync_playwright

from django_eventstore import ActorSnapshot, Event, get_store

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(chromium_executable: str) -> Iterator[Browser]:
    """Headless Chromium (skipped where there is none, see conftest.chromium_executable)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def admin_user() -> User:
    return User.objects.create_superuser("admin", password="secret-pw")


def fill_store() -> None:
    """A few actors of three types, one of them with 120 events and a snapshot."""
    store = get_store()
    store.append("order-1", [Event(event_type="LineAdded", data={"line": n, "sku": f"SKU-{n}"}) for n in range(1, 121)], 0)
    store.save_snapshot(ActorSnapshot(actor_id="order-1", version=100, state={"lines": 100, "status": "open"}))
    for actor in ("order-2", "user-1", "user-2", "invoice-1"):
        store.save_event(Event(actor_id=actor, event_type="Created", version=1, data={"by": "test"}))


def test_browse_actors_filter_open_actor_and_page_events(admin_user: User, browser: Browser, live_server, tmp_path: Path):
    fill_store()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")

    page.get_by_role("link", name="Actors", exact=True).first.click()
    expect(page.locator("#result_list tbody th a")).to_have_text(["invoice-1", "order-1", "order-2", "user-1", "user-2"])

    page.locator("#changelist-filter").get_by_role("link", name="order", exact=True).click()
    expect(page.locator("#result_list tbody th a")).to_have_text(["order-1", "order-2"])
    expect(page.locator("#changelist-filter details[data-filter-title=type] li.selected")).to_have_text("order")
    page.screenshot(path=str(tmp_path / "changelist.png"), full_page=True)

    page.get_by_role("link", name="order-1", exact=True).click()
    expect(page.locator("#latest-version")).to_have_text("120")
    expect(page.locator("#snapshot")).to_contain_text("version 100")
    expect(page.locator("#events h2")).to_contain_text("Events 1–50 of 120")
    expect(page.locator("#event_list tr.event")).to_have_count(50)

    page.locator("a.newer").first.click()
    expect(page.locator("#events h2")).to_contain_text("Events 51–100 of 120")
    expect(page.locator("#event_list tr.event").first.locator("td").first).to_have_text("51")

    page.locator("a.newest").first.click()
    expect(page.locator("#event_list tr.event").last.locator("td").first).to_have_text("120")
    first_data = page.locator("#event_list tr.event details").first
    first_data.locator("summary").click()
    expect(first_data.locator("pre")).to_be_visible()
    expect(first_data.locator("pre")).to_contain_text('"sku": "SKU-71"')

    page.locator("#flip-order").click()
    expect(page.locator("#event_list tr.event").first.locator("td").first).to_have_text("120")
    page.fill("#from-version", "7")
    page.select_option("select[name=order]", "asc")
    page.click("#event-jump input[type=submit]")
    expect(page.locator("#event_list tr.event").first.locator("td").first).to_have_text("7")

    shot = tmp_path / "actor.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_contain_text("admin")


def test_live_page_shows_new_events_on_top_within_2_s_and_pause_stops_them(admin_user: User, browser: Browser, live_server, tmp_path: Path):
    store = get_store()
    store.save_event(Event(actor_id="order-1", event_type="Placed", version=1, data={"before": "the page"}))
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page, witness = context.new_page(), context.new_page()  # one session; the witness stays live while the page is paused
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/django_eventstore/actor/stream/overview/")
    page.locator("#live-link").click()
    expect(page.locator("#live-status")).to_have_text("Live")
    expect(page.locator("#live_events tr.waiting")).to_have_count(1)  # events stored before the page are not shown

    rows = page.locator("#live_events tbody tr.event")
    hostile = {"<img src=x onerror=alert(1)>": "<script>alert(2)</script>"}
    store.save_event(Event(actor_id="order-1", event_type="Paid", version=2, data=hostile))
    expect(rows).to_have_count(1, timeout=2000)
    expect(rows.first.locator("td").nth(1)).to_have_text("order-1")
    expect(rows.first.locator("td").nth(3)).to_have_text("Paid")
    expect(rows.first.locator("code.preview")).to_have_text('{"<img src=x onerror=alert(1)>":"<script>alert(2)</script>"}')
    assert page.locator("#live_events img, #live_events script").count() == 0  # shown as text, never as HTML
    store.save_event(Event(actor_id="user-ü/1", event_type="Joined", version=1, data={"n": 3}))
    expect(rows).to_have_count(2, timeout=2000)
    expect(rows.first.locator("td").nth(1)).to_have_text("user-ü/1")  # newest on top
    page.screenshot(path=str(tmp_path / "live.png"), full_page=True)

    witness.goto(page.url)
    expect(witness.locator("#live-status")).to_have_text("Live")
    page.locator("#live-toggle").click()
    expect(page.locator("#live-status")).to_have_text("Paused")
    store.save_event(Event(actor_id="order-1", event_type="Shipped", version=3, data={}))
    expect(witness.locator("#live_events tbody tr.event")).to_have_count(1, timeout=2000)  # the event was sent out...
    expect(rows).to_have_count(2)  # ...and the paused page did not take it
    expect(rows.first.locator("td").nth(3)).to_have_text("Joined")
    page.locator("#live-toggle").click()  # resume: what came meanwhile, from the last event shown
    expect(rows).to_have_count(3, timeout=2000)
    expect(rows.first.locator("td").nth(3)).to_have_text("Shipped")
    expect(page.locator("#live-count")).to_have_text("3")

    rows.nth(1).locator("td").nth(1).locator("a").click()  # user-ü/1's actor page
    expect(page.locator("#actor-id")).to_have_text("user-ü/1")
    context.close()


def test_live_page_of_one_actor_from_its_actor_page(admin_user: User, browser: Browser, live_server):
    store = get_store()
    store.save_event(Event(actor_id="order-1", event_type="Placed", version=1, data={}))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/admin/django_eventstore/actor/order-1/")
    page.locator("#live-link").click()
    expect(page.locator("#live h2")).to_contain_text("of actor order-1")
    expect(page.locator("#live-status")).to_have_text("Live")
    store.save_event(Event(actor_id="order-2", event_type="Placed", version=1, data={}))  # the same type, another actor
    store.save_event(Event(actor_id="order-1", event_type="Paid", version=2, data={"total": 3}))
    rows = page.locator("#live_events tbody tr.event")
    expect(rows).to_have_count(1, timeout=2000)  # order-2's event came first in the stream, and was left out
    expect(rows.first.locator("td").nth(1)).to_have_text("order-1")
    page.locator("#live_events details summary").click()
    expect(page.locator("#live_events details pre")).to_contain_text('"total": 3')
