"""EventStoreUnavailableMiddleware: a project's views answer 503 with Retry-After while NATS is down; the admin and the demo too, at once."""

from __future__ import annotations

import ast
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path, reverse
from rest_framework.response import Response
from rest_framework.views import APIView

from django_eventstore import EventStoreUnavailable, InvalidEvent, StreamSetupError, get_store
from django_eventstore.middleware import RETRY_AFTER_SECONDS
from django_eventstore.testing import NatsServer

MIDDLEWARE = "django_eventstore.middleware.EventStoreUnavailableMiddleware"
SECRET_MESSAGE = "NATS did not answer within 5s ($JS.API.DIRECT.GET.ES); servers tried: nats://app:s3cret@10.0.0.7:4222"
ROOT = Path(__file__).resolve().parents[1]


def unavailable(request: HttpRequest) -> HttpResponse:
    raise EventStoreUnavailable(SECRET_MESSAGE)


def not_set_up(request: HttpRequest) -> HttpResponse:
    raise StreamSetupError("ES", "stream ES does not exist ($JS.API.STREAM.INFO.ES answered 404)")


def invalid(request: HttpRequest) -> HttpResponse:
    raise InvalidEvent("a bug of the view, not an outage")


class ProjectAPIView(APIView):
    permission_classes: list[Any] = []

    def get(self, request: Any) -> Response:
        raise EventStoreUnavailable(SECRET_MESSAGE)


urlpatterns = [
    path("unavailable/", unavailable),
    path("not-set-up/", not_set_up),
    path("invalid/", invalid),
    path("project-api/", ProjectAPIView.as_view()),
]


@pytest.fixture
def project(settings: Any) -> Client:
    """A client of this module's views, behind the middleware; exceptions become responses as in production."""
    settings.ROOT_URLCONF = __name__
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, MIDDLEWARE]
    return Client(raise_request_exception=False)


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.without_nats
def test_a_view_that_cannot_reach_nats_answers_a_short_page_with_retry_after(project: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="django_eventstore"):
        response = project.get("/unavailable/", headers={"Accept": BROWSER})
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Content-Type"].startswith("text/html")
    assert "no-cache" in response["Cache-Control"]
    html = response.content.decode()
    assert "Temporarily unavailable" in html and "try again in a few seconds" in html
    for internal in ("$JS", "s3cret", "10.0.0.7", "NATS", "Traceback"):
        assert internal not in html
    assert "GET /unavailable/ answered 503: EventStoreUnavailable: NATS did not answer within 5s ($JS.API.DIRECT.GET.ES)" in caplog.text


@pytest.mark.without_nats
def test_json_for_clients_that_prefer_it_and_for_drf_views(project: Client) -> None:
    for response in (project.get("/unavailable/", headers={"Accept": "application/json"}), project.get("/project-api/", headers={"Accept": BROWSER})):
        assert response.status_code == 503
        assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert response.json() == {"detail": "The event store is unavailable: NATS could not be reached. Try again later."}


@pytest.mark.without_nats
def test_streams_not_set_up_answer_503_too(project: Client) -> None:
    response = project.get("/not-set-up/")
    assert response.status_code == 503
    assert "$JS" not in response.content.decode()


@pytest.mark.without_nats
def test_other_store_errors_are_the_views_bugs_and_stay_500(project: Client) -> None:
    assert project.get("/invalid/").status_code == 500


@pytest.mark.without_nats
def test_without_the_middleware_the_view_is_a_500(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    assert Client(raise_request_exception=False).get("/unavailable/").status_code == 500


@pytest.mark.without_nats
def test_the_projects_503_template_is_used_when_it_has_one(project: Client, settings: Any, tmp_path: Path) -> None:
    (tmp_path / "503.html").write_text("<p>Our bank is resting. Back in {{ retry_after }} s.</p>")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    response = project.get("/unavailable/")
    assert (response.status_code, response.content.decode()) == (503, f"<p>Our bank is resting. Back in {RETRY_AFTER_SECONDS} s.</p>")


def test_the_demo_uses_the_middleware() -> None:
    tree = ast.parse((ROOT / "demo_project" / "settings.py").read_text())
    assigned = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    assert MIDDLEWARE in ast.literal_eval(assigned["MIDDLEWARE"])


# ----- a nats-server of the test's own, stopped: the admin and the demo answer 503 at once -----


@pytest.fixture
def nats_stopped(settings: Any, eventstore_settings: dict[str, Any], tmp_path: Path) -> Any:
    """settings.EVENTSTORE on a nats-server of this test's own, which is then stopped; yields once the store knows it."""
    server = NatsServer(store_dir=tmp_path / "nats").start()
    try:
        settings.EVENTSTORE = {**eventstore_settings, "SERVERS": [server.url], "TIMEOUT": 5.0}
        assert get_store().get_latest_version("account-1") == 0  # connected, streams set up
        server.stop()
        deadline = time.monotonic() + 10
        while True:  # the first calls may wait until the dropped connection is noticed
            try:
                get_store().get_latest_version("account-1")
            except EventStoreUnavailable:
                break
            assert time.monotonic() < deadline, "the store did not notice the server had stopped"
        yield
    finally:
        server.stop()


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.mark.django_db
def test_admin_pages_answer_503_at_once_while_nats_is_down(nats_stopped: None, admin_client: Client) -> None:
    admin_client.get(reverse("admin:django_eventstore_actor_changelist"))  # untimed: compiles the templates
    for name in ("admin:django_eventstore_actor_changelist", "admin:django_eventstore_actor_overview"):
        response, seconds = timed(lambda: admin_client.get(reverse(name)))  # noqa: B023 - called at once
        print(f"\n{name} while NATS is down: {response.status_code} in {seconds * 1000:.0f} ms")
        assert response.status_code == 503
        assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
        assert "The event store cannot be reached right now." in response.content.decode()
        assert seconds < 0.5  # TIMEOUT is 5 s: the store fails fast, nothing waits for it


@pytest.mark.django_db
def test_the_demos_account_page_answers_503_at_once_while_nats_is_down(nats_stopped: None, settings: Any) -> None:
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "demo_project.bank"]
    settings.ROOT_URLCONF = "demo_project.urls"
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, MIDDLEWARE]
    client = Client(raise_request_exception=False)
    client.get("/accounts/account-1/")  # untimed: loads the demo's modules
    response, seconds = timed(lambda: client.get("/accounts/account-1/", headers={"Accept": BROWSER}))
    print(f"\ndemo account page while NATS is down: {response.status_code} in {seconds * 1000:.0f} ms")
    assert response.status_code == 503
    assert "Temporarily unavailable" in response.content.decode()
    assert seconds < 0.5  # TIMEOUT is 5 s
