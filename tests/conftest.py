from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from annotate.roles import user_set_role
from annotate.services import project_create


@pytest.fixture(scope="session", autouse=True)
def _end_stray_sessions_before_teardown(django_db_setup, django_db_blocker):
    """Worker processes the fault test SIGKILLs, and live-server threads, can leave a backend on
    the test database for a moment after the run; dropping it would then fail ("being accessed
    by other users"). End them first, so every run leaves no test database behind."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # The default PBKDF2 hasher costs ~0.3 s per fixture user; tests don't need its strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A per-test in-memory cache: nothing cached survives into another test or run.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
    from django.core.cache import cache

    from reports.cache import KEPT_STATES

    cache.clear()
    KEPT_STATES.clear()  # the report states this process keeps live (reports/cache.py)


SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def _user(username: str, role: str | None, **extra):
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)
    if role:
        user_set_role(user=user, role=role)
    return user


@pytest.fixture
def admin_user(db):
    return _user("admin", "admin", is_staff=True, is_superuser=True)


@pytest.fixture
def researcher(db):
    return _user("researcher", "researcher")


@pytest.fixture
def annotator(db):
    return _user("annotator", "annotator")


@pytest.fixture
def other_annotator(db):
    return _user("annotator2", "annotator")


@pytest.fixture
def outsider(db):
    return _user("outsider", None)


@pytest.fixture
def project(db, researcher, annotator, other_annotator):
    project = project_create(name="Test project", guidelines="Be *careful*.")
    project.members.add(researcher, annotator, other_annotator)
    return project


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture
def chromium():
    """Debian's Chromium through Playwright, for every browser test (never `playwright install`).

    Skips, saying why, where chromium is absent (`make test` on a machine without it); .ci/run
    installs it, so the skip never fires there."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test body are
    # still synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
