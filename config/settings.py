"""Concordance settings: every value comes from the environment, read here and nowhere else.

With no environment at all the app runs on embedded defaults (SQLite, kombu's filesystem
broker), so `make run` works on a bare machine; production differs only by its environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CONCORDANCE_VAR_DIR", BASE_DIR / "var"))


class SettingError(RuntimeError):
    pass


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingError(f"{name}={raw!r} is not an integer") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [part.strip() for part in raw.split(",") if part.strip()]


DEBUG = env_bool("DJANGO_DEBUG", default="DJANGO_SECRET_KEY" not in os.environ)
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "concordance-insecure-development-key-change-me-0123456789")
if not DEBUG and SECRET_KEY.startswith("concordance-insecure"):
    raise SettingError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "annotate",
    "judges",
    "reports",
    "exports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
    }
]

_default_db = f"sqlite:///{VAR_DIR / 'concordance.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", _default_db),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env_str("DATABASE_TEST_NAME", "test_concordance")
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker and the web process share the SQLite file; wait for the writer instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
# WhiteNoise warns at every start when its root is missing (before the first collectstatic).
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# Production hardening; `check --deploy` runs in CI with DJANGO_DEBUG=0.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Concordance API",
    "DESCRIPTION": "Human raters and LLM judges label the same response pairs.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc are served from our own static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Same field name, different choice sets across apps: name each enum explicitly.
    "ENUM_NAME_OVERRIDES": {
        "RaterKindEnum": "annotate.models.Rater.Kind",
        "RunKindEnum": "judges.models.Run.Kind",
        "ProjectProtocolsEnum": "annotate.models.Project.Protocols",
    },
}

# Celery. Without CELERY_BROKER_URL tasks travel through kombu's filesystem transport: a real
# worker process picks them up, with no broker server to install.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Broadcast exchanges (worker control) would otherwise land in ./control.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # acks_late: a batch whose worker died is re-delivered after this long (the judges'
    # watchdog re-issues stale claims sooner; this is the broker's own safety net).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900)}
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"judges.tasks.judge_batch": {"queue": env_str("CONCORDANCE_JUDGE_QUEUE", "gpu")}}

# Where model judges find weights: nothing is downloaded at run time.
HF_HUB_OFFLINE = True
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CONCORDANCE = {
    "CLAIM_SECONDS": env_int("CONCORDANCE_CLAIM_SECONDS", 15 * 60),
    "BOOTSTRAP_ROUNDS": env_int("CONCORDANCE_BOOTSTRAP_ROUNDS", 1000),
    # Finished export jobs (their files under VAR_DIR/exports/) are removed after this long.
    "EXPORT_KEEP_HOURS": env_int("CONCORDANCE_EXPORT_KEEP_HOURS", 24),
}

# -- judge workers: secrets, egress and faults (judges.services.judge_egress_check) -------------
# A judge's `api_key_env` may name only an environment variable with this prefix, so a judge
# can never send DATABASE_URL or DJANGO_SECRET_KEY to a server.
JUDGE_SECRET_PREFIX = env_str("CONCORDANCE_JUDGE_SECRET_PREFIX", "CONCORDANCE_JUDGE_KEY_")
# Hosts an `openai` judge's base_url may point at: exact names, or ".example.org" for a domain
# and its subdomains. Loopback (a server on the worker's own machine) by default.
JUDGE_ALLOWED_HOSTS = env_list("CONCORDANCE_JUDGE_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "::1"])
# A batch whose errors are transient (5xx, 429, connection refused, the database away) is retried
# this many times with exponential backoff (2 s, 4 s, ... at most 120 s); then its judgments fail
# with the reason on the run page.
JUDGE_RETRIES = env_int("CONCORDANCE_JUDGE_RETRIES", 5)
# Seconds to wait for the broker when a run or an export starts; past it the request answers 503.
BROKER_SEND_TIMEOUT = env_int("CONCORDANCE_BROKER_SEND_TIMEOUT", 3)
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_SEND_TIMEOUT
CELERY_TASK_ROUTES |= {
    "judges.tasks.run_plan": {"queue": "default"},
    "exports.tasks.export_job": {"queue": "default"},
}

# Computed reports are cached (reports/cache.py); a file cache is shared by every gunicorn
# worker on the machine, so a report is computed once, not once per process.
CACHES = {
    "default": {
        "BACKEND": env_str("DJANGO_CACHE_BACKEND", "django.core.cache.backends.filebased.FileBasedCache"),
        "LOCATION": env_str("DJANGO_CACHE_LOCATION", str(VAR_DIR / "cache")),
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
}
