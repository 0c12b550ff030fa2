"""Concordance settings: every value comes from the environment, read here and nowhere else.

With no environment at all the app runs on embedded defaults (SQLite, kombu's filesystem
broker), so `make run` works on a bare machine; production differs only by its environment.
"""

from __future__ import annotations

import os
from datetime import timedelta
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


DEVELOPMENT_SECRET_KEY = "concordance-insecure-development-key-change-me-0123456789"
# Keys that are, or were, printed in this repository (settings, docker-compose.yml, Dockerfile,
# the docs): anyone can read them, so a server using one signs sessions anybody can forge.
PUBLIC_SECRET_KEYS = frozenset({
    DEVELOPMENT_SECRET_KEY,
    "change-me-in-production-please-0123456789abcdef",
    "build-only",
})
GENERATE_KEY_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def production_secret_key_problem(key: str) -> str | None:
    """Why `key` may not sign a production server's sessions, or None when it may."""
    if not key:
        return "DJANGO_SECRET_KEY is not set"
    if key in PUBLIC_SECRET_KEYS or key.startswith(("concordance-insecure", "django-insecure")):
        return "DJANGO_SECRET_KEY is a public development value"
    # Django's own bar (check --deploy, security.W009): 50 characters, 5 distinct.
    if len(key) < 50 or len(set(key)) < 5:
        return "DJANGO_SECRET_KEY is too short (at least 50 characters, 5 distinct)"
    return None


DEBUG = env_bool("DJANGO_DEBUG", default="DJANGO_SECRET_KEY" not in os.environ)
if DEBUG:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", DEVELOPMENT_SECRET_KEY)
else:
    SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
    _problem = production_secret_key_problem(SECRET_KEY)
    if _problem:
        raise SettingError(
            f"{_problem}; with DJANGO_DEBUG off Concordance needs a secret key of its own. "
            f"Generate one with {GENERATE_KEY_HINT} and pass it as DJANGO_SECRET_KEY."
        )
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# A failed CSRF check answers a page in the app's layout saying what to do, not Django's bare 403.
CSRF_FAILURE_VIEW = "config.http_errors.csrf_failure"

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
    "axes",
    "annotate",
    "judges",
    "reports",
    "exports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.UploadLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who changes what: the audit trail reads the request's user (annotate/audit.py).
    "annotate.audit.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
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

# django-axes first: it refuses a locked-out login before a password is even checked.
AUTHENTICATION_BACKENDS = [
    "config.auth.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
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
# Database sessions as Django's own, their lookup compiled once per process (config/sessions.py).
SESSION_ENGINE = "config.sessions"
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

# Login throttling (django-axes): the login page and the admin's both go through authenticate().
# A (username, client address) pair is locked after AXES_FAILURE_LIMIT failures for the
# cool-off: guessing one account's password is throttled, but a stranger cannot lock a real
# user out from another address, nor a whole lab behind one NAT address by trying many names.
AXES_FAILURE_LIMIT = env_int("CONCORDANCE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CONCORDANCE_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The client address is REMOTE_ADDR: a forwarded-for header is the client's to forge.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_VERBOSE = False  # no banner on every start; lockouts are still logged

# Content-Security-Policy (django-csp). Every script, style, font and image is served from our
# own static files, and no page has an inline script, style block or style attribute, so the
# policy can refuse everything else: an injected <script> or inline handler does not run.
# The API docs pages (Swagger UI, Redoc) inject their own styles; config/urls.py widens
# style-src for them alone.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Per client: anonymous callers by address, signed-in ones (token or session) by user. The
    # user rate leaves room for scripts and the annotation pages' own calls; raise both for a
    # load test (schemathesis) with the environment.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("CONCORDANCE_API_ANON_RATE", "60/minute"),
        "user": env_str("CONCORDANCE_API_USER_RATE", "1200/minute"),
    },
    "DEFAULT_METADATA_CLASS": "config.api_metadata.OptionsMetadata",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Concordance API",
    "DESCRIPTION": "Human raters and LLM judges label the same response pairs.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs pages are for signed-in users when DEBUG is off (config/docs.py).
    "SERVE_PERMISSIONS": ["config.docs.DocsPermission"],
    # Swagger UI and Redoc are served from our own static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation's error answers (400/401/403/404/413/429), documented once: config/schema.py.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.schema.document_errors"],
    # Same field name, different choice sets across apps: name each enum explicitly.
    "ENUM_NAME_OVERRIDES": {
        "GoldSourceEnum": "annotate.models.GOLD_SOURCE_CHOICES",
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
    # The largest report state (table, per-item sums, resampled sums, memoised figures) a process
    # keeps so a report can absorb new annotations (reports/incremental.py). It lives in the cache
    # of the process that built the report, so the default bounds that memory: a state at 1M
    # annotations pickles to 292 MB, so up to about 1.75M annotations; larger reports rebuild.
    "REPORT_STATE_MAX_MB": env_int("CONCORDANCE_REPORT_STATE_MAX_MB", 512),
    # Finished export jobs (their files under VAR_DIR/exports/) are removed after this long.
    "EXPORT_KEEP_HOURS": env_int("CONCORDANCE_EXPORT_KEEP_HOURS", 24),
    # Largest request body (an import's files together); larger is answered 413 (config/middleware.py).
    "MAX_UPLOAD_MB": env_int("CONCORDANCE_MAX_UPLOAD_MB", 512),
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

# Email (project invitations): printed to the console unless a backend is set; Django's test
# runner swaps in its in-memory outbox. Production: DJANGO_EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend
# with EMAIL_HOST / EMAIL_PORT / EMAIL_HOST_USER / EMAIL_HOST_PASSWORD / EMAIL_USE_TLS.
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "concordance@localhost")

# Crowd studies (annotate/crowd.py): visits of study links per client address per minute before
# 429. A link is a bearer credential: this bounds guessing participant ids and account flooding.
STUDY_LINK_RATE_PER_MINUTE = env_int("CONCORDANCE_STUDY_LINK_RATE", 30)

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
