"""Settings of the demo project: SQLite for users and sessions, NATS JetStream for the events.

Environment variables: ``DEMO_DATA_DIR`` (where the SQLite file and the
embedded nats-server's data live, default ``demo_project/.data``),
``EVENTSTORE_SERVERS`` (``embedded``, the default, or comma-separated NATS
URLs), ``DEMO_LOG_LEVEL`` (the level of the event store's log on stderr,
default ``WARNING``; ``DEBUG`` shows its connection events),
``DJANGO_SECRET_KEY``, ``DJANGO_DEBUG`` (``1``/``0``, default ``1``),
``EVENTSTORE_MASTER_KEY`` (the Fernet key that wraps the customers' data keys;
without it the demo makes one in its data directory).
"""

import os
from pathlib import Path

from demo_project.demo_key import demo_master_key

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR") or BASE_DIR / ".data")
DATA_DIR.mkdir(parents=True, exist_ok=True)  # SQLite does not create the directory of its file

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_eventstore",
    "demo_project.bank",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_eventstore.middleware.EventStoreUnavailableMiddleware",  # NATS down: 503 with Retry-After, not a 500
]
ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
# WAL and IMMEDIATE transactions: the projection runner writes the read model while the server's threads read it.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 20},
    }
}
#: How long a page that just saved waits for the accounts list to show it (seconds), see bank.views.
BANK_READ_MODEL_WAIT = float(os.environ.get("BANK_READ_MODEL_WAIT", "2"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "/admin/login/"

_servers = os.environ.get("EVENTSTORE_SERVERS", "embedded").strip()
EVENTSTORE = {
    "SERVERS": _servers if _servers == "embedded" else [url.strip() for url in _servers.split(",") if url.strip()],
    "EMBEDDED_DIR": str(DATA_DIR / "eventstore"),
    # Customers' data is encrypted with a key per account, so "forget this customer" can erase it for good.
    "ENCRYPTION": {"MASTER_KEY": os.environ.get("EVENTSTORE_MASTER_KEY") or demo_master_key(DATA_DIR)},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_eventstore": {"handlers": ["console"], "level": os.environ.get("DEMO_LOG_LEVEL", "WARNING").upper(), "propagate": False}},
}
