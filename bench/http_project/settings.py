"""Settings of the HTTP benchmark's project; bench/http_bench.py passes the nats-server, stream and token in the environment.

Authentication is a shared bearer token that maps to an in-memory superuser
(see ``auth.py``): no database, so no request pays a query, and the bare view
and the store's views run the same authentication and permission classes.
"""

import os

from django.core.exceptions import ImproperlyConfigured


def _env(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise ImproperlyConfigured(f"{name} is not set: this project is started by bench/http_bench.py, which sets it") from None


SECRET_KEY = "http-bench"  # a throw-away benchmark project on loopback
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "bench.http_project.urls"
WSGI_APPLICATION = "bench.http_project.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}  # none: a request that touched the database would fail
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework", "django_eventstore"]
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", "django.middleware.common.CommonMiddleware"]

BENCH_TOKEN = _env("BENCH_TOKEN")
PERMISSIONS = ["django_eventstore.api.permissions.EventStorePermission"]  # the API's default, spelled out for the bare view

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["bench.http_project.auth.BenchTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": PERMISSIONS,
}
EVENTSTORE = {
    "SERVERS": [_env("BENCH_NATS_URL")],
    "STREAM": _env("BENCH_STREAM"),
    "SUBJECT_PREFIX": _env("BENCH_STREAM").lower(),
    "API_PERMISSION_CLASSES": PERMISSIONS,
}
