"""Requests per second through the full Django stack next to the bare store calls, in one run.

    python bench/api_bench.py [--requests 1000] [--rounds 3] [--nats-url nats://...]

Starts a throw-away nats-server (unless --nats-url), configures a minimal Django
project in-process (session auth, IsAdminUser, SQLite in memory) and measures,
for each row, the median of --rounds rounds of --requests operations:

- POST one event (version N+1) through Django's test client (WSGI) vs ``store.save_event``;
- GET ``version/`` through the test client (WSGI: the async view runs under
  ``async_to_sync``) and through Django's ``AsyncClient`` (ASGI, 16 requests in
  flight) vs ``store.get_latest_version`` / ``await store.aget_latest_version``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings

CONCURRENCY = 16


def configure(nats_url: str) -> None:
    stream = f"BENCH{uuid.uuid4().hex[:8].upper()}"
    settings.configure(
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions", "rest_framework", "django_eventstore"],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF=__name__,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "file:bench?mode=memory&cache=shared", "CONN_MAX_AGE": None}},
        EVENTSTORE={"SERVERS": [nats_url], "STREAM": stream, "SUBJECT_PREFIX": stream.lower()},
    )
    django.setup()
    from django.urls import include, path

    global urlpatterns
    urlpatterns = [path("api/eventstore/", include("django_eventstore.api.urls"))]


def rate(n: int, run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def async_rate(n: int, make: Callable[[int], Awaitable[Any]]) -> float:
    async def go() -> None:
        queue = iter(range(n))

        async def worker() -> None:
            for i in queue:
                await make(i)

        await asyncio.gather(*[worker() for _ in range(CONCURRENCY)])

    return rate(n, lambda: asyncio.run(go()))


def measure(n: int, rounds: int) -> list[tuple[str, float, float]]:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import AsyncClient, Client

    from django_eventstore import Event, get_store

    call_command("migrate", verbosity=0)
    admin = User.objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client()
    client.force_login(admin)
    aclient = AsyncClient()
    aclient.cookies = client.cookies
    store = get_store()
    store.setup()

    def post_events(actor: str) -> None:
        for v in range(1, n + 1):
            body = json.dumps({"event_type": "Bench", "version": v, "data": {"i": v}})
            response = client.post(f"/api/eventstore/actors/{actor}/events/", body, content_type="application/json")
            assert response.status_code == 201, response.content

    def save_events(actor: str) -> None:
        for v in range(1, n + 1):
            store.save_event(Event(actor_id=actor, event_type="Bench", version=v, data={"i": v}))

    def get_versions() -> None:
        for _ in range(n):
            assert client.get("/api/eventstore/actors/bench-read/version/").status_code == 200

    def read_versions() -> None:
        for _ in range(n):
            store.get_latest_version("bench-read")

    async def aget_version(_: int) -> None:
        response = await aclient.get("/api/eventstore/actors/bench-read/version/")
        assert response.status_code == 200

    store.save_event(Event(actor_id="bench-read", event_type="Bench", version=1))
    # warm up both paths (connection, caches, imports)
    post_events(f"warm-{uuid.uuid4().hex[:6]}")
    get_versions()

    rows: dict[str, list[float]] = {}
    for _ in range(rounds):
        tag = uuid.uuid4().hex[:6]
        samples = {
            "POST event (WSGI test client)": rate(n, lambda tag=tag: post_events(f"api-{tag}")),
            "store.save_event": rate(n, lambda tag=tag: save_events(f"store-{tag}")),
            "GET version (WSGI test client)": rate(n, get_versions),
            "GET version (ASGI AsyncClient, 16 in flight)": async_rate(n, aget_version),
            "store.get_latest_version": rate(n, read_versions),
            "await store.aget_latest_version (16 in flight)": async_rate(n, lambda _: store.aget_latest_version("bench-read")),
        }
        for name, value in samples.items():
            rows.setdefault(name, []).append(value)
    medians = {name: statistics.median(values) for name, values in rows.items()}
    baseline = {
        "POST event (WSGI test client)": "store.save_event",
        "GET version (WSGI test client)": "store.get_latest_version",
        "GET version (ASGI AsyncClient, 16 in flight)": "await store.aget_latest_version (16 in flight)",
    }
    store.close()
    return [(name, value, value / medians[baseline[name]] if name in baseline else 1.0) for name, value in medians.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="operations per row and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the table shows medians")
    parser.add_argument("--nats-url", help="an existing nats-server with JetStream (default: start one)")
    args = parser.parse_args()

    from django_eventstore.testing import NatsServer

    def run(url: str) -> None:
        configure(url)
        rows = measure(args.requests, args.rounds)
        print(f"{args.requests} operations per row, median of {args.rounds} rounds, nats-server at {url}")
        print(f"{'operation':<48} {'per second':>11} {'vs store':>9}")
        for name, value, ratio in rows:
            print(f"{name:<48} {value:>11,.0f} {ratio:>8.2f}x")

    if args.nats_url:
        run(args.nats_url)
    else:
        with NatsServer() as server:
            run(server.url)


urlpatterns: list[Any] = []  # this script is the project's URLconf; filled in by configure()

if __name__ == "__main__":
    main()
