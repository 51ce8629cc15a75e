"""Settings of the jobqueue demo site.

Environment variables:

- ``DATABASE_URL``: ``postgres://user:password@host:port/name`` switches from SQLite to
  PostgreSQL (``sqlite:///path`` is also understood).
- ``JOBQUEUE_REDIS_URL`` or ``REDIS_URL``: the Redis server (default ``redis://127.0.0.1:6379/0``).
- ``DJANGO_DEBUG``: ``0`` turns debug off. ``DJANGO_SECRET_KEY``: set it outside the demo.
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-insecure-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "daphne",  # first: its runserver serves ASGI (HTTP and websockets)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "jobqueue",  # before channels: both ship a runworker command and the first app wins
    "channels",
    "project",
]
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")  # the backport of django.tasks

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"


# SQLite in WAL mode: the admin's reads do not wait for the mirror's writes, nor these for the
# disk at each commit (docs/operating.md, "The mirror's database").
SQLITE_OPTIONS = {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}


def database_from_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/path, sqlite:////absolute/path, sqlite:///:memory:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": parts.path[1:] or ":memory:",
            "OPTIONS": SQLITE_OPTIONS,
        }
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": 60,
        }
    raise ValueError(f"DATABASE_URL {url!r} is not understood: use postgres:// or sqlite:///.")


if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
            "OPTIONS": SQLITE_OPTIONS,
        }
    }

REDIS_URL = (
    os.environ.get("JOBQUEUE_REDIS_URL")
    or os.environ.get("REDIS_URL")
    or "redis://127.0.0.1:6379/0"
)

JOBQUEUE: dict[str, Any] = {
    "REDIS_URL": REDIS_URL,
    "PREFIX": os.environ.get("JOBQUEUE_PREFIX", "jq"),
    # The demo's periodic schedules: one at a fixed interval, one on a cron expression (UTC).
    "SCHEDULES": {
        "heartbeat": {"task": "project.tasks.heartbeat", "every": 60},
        "report-every-2-minutes": {
            "task": "project.tasks.build_report",
            "cron": "*/2 * * * *",
            "kwargs": {"rows": 40},
            "queue": "reports",
        },
    },
}

TASKS = {
    "default": {
        "BACKEND": "jobqueue.backends.RedisBackend",
        "QUEUES": ["default", "emails", "reports"],
        "OPTIONS": {},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "jobqueue": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Django 6 logs every task's start and end on the console (a failure with its
        # traceback): a line or two per job. The admin shows each job, its errors and its log;
        # the console stays as quiet as on Django 5.2, where the backport does not log there.
        "django.tasks": {"level": "CRITICAL"},
    },
}
