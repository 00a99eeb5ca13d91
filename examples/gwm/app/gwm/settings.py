"""Settings of the GWM example. Every deployment value comes from the environment, which
python-dotenv fills from the env file infra writes (/etc/gwm/env, or GWM_ENV_FILE): variables
already set win, so infra's build and once commands (which source the file) and supervisor's
processes (which do not) see the same values."""
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

# The release directory (/var/www/gwm/releases/<commit>: `current` resolved).
BASE_DIR = Path(__file__).resolve().parent.parent

load_dotenv(os.environ.get("GWM_ENV_FILE", "/etc/gwm/env"), override=False)


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"{name} is not set: it belongs in the env file /etc/gwm/env")
    return value


SECRET_KEY = env("SECRET_KEY")
DEBUG = env("DEBUG", "false").lower() == "true"
ALLOWED_HOSTS = [h for h in env("ALLOWED_HOSTS", "").split(",") if h]
# The commit this release was built from: the release directory's name.
RELEASE = BASE_DIR.name

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "ganeti",
]
# A JSON API authenticated by Keystone tokens (X-Auth-Token): no sessions, no cookies, so no
# CSRF middleware either.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "gwm.urls"
WSGI_APPLICATION = "gwm.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env("DB_NAME"),
        "USER": env("DB_USER"),
        "PASSWORD": env("DB_PASSWORD"),
        "HOST": env("DB_HOST"),
        "PORT": env("DB_PORT", "5432"),
        "CONN_MAX_AGE": 60,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "public" / "static"

# Keystone's public endpoint: tokens given in X-Auth-Token are validated there
# (GET /v3/auth/tokens), see ganeti/keystone.py.
KEYSTONE_URL = env("KEYSTONE_URL").rstrip("/")
KEYSTONE_TIMEOUT = float(env("KEYSTONE_TIMEOUT", "15"))

CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_TASK_ACKS_LATE = True
CELERY_BEAT_SCHEDULE = {
    "poll-clusters": {
        "task": "ganeti.tasks.poll",
        "schedule": float(env("GWM_POLL_SECONDS", "60")),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
