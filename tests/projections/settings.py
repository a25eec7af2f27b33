"""Settings of the runner subprocesses in the projection tests: the database and NATS come from the environment.

``PROJECTION_TEST_DATABASE``: JSON of ``DATABASES["default"]``;
``PROJECTION_TEST_NATS``, ``PROJECTION_TEST_STREAM``, ``PROJECTION_TEST_PREFIX``: the store.
"""

import json
import os

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_eventstore",
    "tests.projections.testapp",
]
DATABASES = {"default": json.loads(os.environ.get("PROJECTION_TEST_DATABASE") or '{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}')}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
EVENTSTORE = {
    "SERVERS": [os.environ.get("PROJECTION_TEST_NATS", "nats://127.0.0.1:4222")],
    "STREAM": os.environ.get("PROJECTION_TEST_STREAM", "EVENTSTORE"),
    "SUBJECT_PREFIX": os.environ.get("PROJECTION_TEST_PREFIX", "es"),
    "TIMEOUT": 5.0,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_eventstore": {"handlers": ["console"], "level": "INFO"}},
}
