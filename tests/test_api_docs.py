"""docs/: Swagger UI for the schema, its files served by the API from drf-spectacular-sidecar (no CDN)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Browser, expect

from django_eventstore import Event, get_store
from django_eventstore.api.docs import ASSETS

from . import test_admin_browser

API = "/api/eventstore/"
browser = test_admin_browser.browser  # the headless Chromium fixture of the admin tests


@pytest.mark.django_db
def test_the_page_loads_its_files_from_the_api_not_a_cdn(admin_client: Client) -> None:
    response = admin_client.get(API + "docs/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sorted(sources) == sorted(f"{API}docs/{name}" for name in ASSETS)
    assert "https://" not in html and "http://" not in html
    assert '"schema": "/api/eventstore/schema/"' in html
    for source in sources:
        asset = admin_client.get(source)
        assert asset.status_code == 200 and int(asset["Content-Length"]) > 100
        assert asset["Content-Type"] == {"css": "text/css", "js": "text/javascript", "png": "image/png"}[source.rsplit(".", 1)[1]]
        assert "max-age" in asset["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["index.html", "..%2F..%2F__init__.py", "swagger-ui-bundle.js.map", "LICENSE"])
def test_only_the_page_s_files_are_served(admin_client: Client, name: str) -> None:
    assert admin_client.get(API + "docs/" + name).status_code == 404


@pytest.mark.django_db
def test_the_page_needs_the_api_permissions(client: Client) -> None:
    response = client.get(API + "docs/")
    assert response.status_code in (401, 403) and b"swagger-ui-bundle" not in response.content


@pytest.fixture
def admin_user() -> User:
    """A superuser and one event, made before Playwright runs its loop in this thread."""
    get_store().save_event(Event(actor_id="order-1", event_type="Placed", version=1))
    return User.objects.create_superuser("admin", password="secret-pw")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_the_schema_and_tries_a_request(admin_user: User, browser: Browser, live_server) -> None:
    page = browser.new_page()
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.goto(f"{live_server.url}/admin/login/?next={API}docs/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    expect(page.locator(".swagger-ui .title")).to_contain_text("django-eventstore API")
    expect(page.locator("#operations-eventstore-events_list")).to_be_visible()
    page.locator("#operations-eventstore-events_list .opblock-summary").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    expect(page.locator("#operations-eventstore-events_list .live-responses-table tbody .response-col_status").first).to_contain_text("200")
    assert external == []


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_logged_in_user_writes_from_swagger_ui_with_the_csrf_token(admin_user: User, browser: Browser, live_server) -> None:
    page = browser.new_page()
    page.goto(f"{live_server.url}/admin/login/?next={API}docs/%23/eventstore/actor_events_create")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    operation = page.locator("#operations-eventstore-actor_events_create")
    expect(operation.locator(".opblock-body")).to_be_visible()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator("input[placeholder=actor_id]").fill("order-1")
    operation.locator("textarea.body-param__text").fill('{"event_type": "Paid", "version": 2, "data": {"by": "swagger"}}')
    operation.get_by_role("button", name="Execute").click()
    expect(operation.locator(".live-responses-table tbody .response-col_status").first).to_contain_text("201")
    assert [(e.event_type, e.data) for e in get_store().get_events("order-1", 1)] == [("Paid", {"by": "swagger"})]
