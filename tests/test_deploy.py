"""Deployment safe by default: a production server needs a secret key of its own, compose creates
no demo users, logins and the API are throttled, every page carries a Content-Security-Policy,
and the API schema and docs are for signed-in users when DEBUG is off."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from config.settings import PUBLIC_SECRET_KEYS, production_secret_key_problem

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN"


# -- the secret key ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "short-but-private", "a" * 60, *sorted(PUBLIC_SECRET_KEYS),
                                 "django-insecure-" + "x1y2z3" * 10])
def test_public_short_or_missing_keys_are_refused(key):
    assert production_secret_key_problem(key) is not None


def test_a_long_random_key_is_accepted():
    assert production_secret_key_problem(GOOD_KEY) is None


def _start(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env={**base, **env},
        capture_output=True, text=True, timeout=120,
    )


def test_production_settings_refuse_to_start_without_a_key_of_their_own():
    missing = _start(DJANGO_DEBUG="0")
    assert missing.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in missing.stderr and "secrets.token_urlsafe" in missing.stderr
    # The value docker-compose.yml used to default to: public, so refused.
    public = _start(DJANGO_DEBUG="0", DJANGO_SECRET_KEY="change-me-in-production-please-0123456789abcdef")
    assert public.returncode != 0 and "public development value" in public.stderr
    assert _start(DJANGO_DEBUG="0", DJANGO_SECRET_KEY=GOOD_KEY, DJANGO_ALLOWED_HOSTS="x.example").returncode == 0


# -- docker-compose ------------------------------------------------------------------------------


def test_compose_serves_without_demo_users_and_needs_a_secret_key():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    web = services["web"]
    assert "demo" not in web["command"] and "createsuperuser" not in web["command"]
    assert "migrate" in web["command"] and "gunicorn" in web["command"]
    # The demo is an explicit opt-in (a profile), so `docker compose up` never starts it.
    demo = services["demo"]
    assert demo["profiles"] == ["demo"] and "manage.py demo" in demo["command"]
    for name, service in services.items():
        if "demo" in str(service.get("command", "")):
            assert service.get("profiles") == ["demo"], name
    # ${VAR:?message}: compose stops with the message when the key is not supplied.
    key = web["environment"]["DJANGO_SECRET_KEY"]
    assert key.startswith("${DJANGO_SECRET_KEY:?") and ":-" not in key
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"DJANGO_SECRET_KEY=(?!\"\$\()", dockerfile)  # only a generated throwaway key


# -- login throttling (django-axes) ------------------------------------------------------------


@pytest.mark.parametrize("url_name", ["login", "admin:login"])
def test_repeated_failed_logins_lock_the_account_out_from_that_address(url_name, admin_user, client):
    url = reverse(url_name)
    limit = django_settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert client.post(url, {"username": "admin", "password": "wrong"}).status_code == 200
    locked = client.post(url, {"username": "admin", "password": "wrong"})
    assert locked.status_code == 429
    assert b"Too many failed logins" in locked.content
    # Now even the right password is refused, and no session is opened.
    right = client.post(url, {"username": "admin", "password": "pw-admin"})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    # From another address the same user still logs in: a stranger cannot lock an account out.
    other = client.post(url, {"username": "admin", "password": "pw-admin"}, REMOTE_ADDR="10.0.0.9")
    assert other.status_code == 302


def test_a_forwarded_for_header_does_not_escape_the_lockout(admin_user, client):
    url = reverse("login")
    for n in range(django_settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": "admin", "password": "wrong"}, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert client.post(url, {"username": "admin", "password": "pw-admin"}, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429


def test_a_success_before_the_limit_resets_the_count(annotator, client):
    url = reverse("login")
    for _ in range(django_settings.AXES_FAILURE_LIMIT - 1):
        client.post(url, {"username": "annotator", "password": "wrong"})
    assert client.post(url, {"username": "annotator", "password": "pw-annotator"}).status_code == 302
    client.logout()
    for _ in range(django_settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(url, {"username": "annotator", "password": "wrong"}).status_code == 200


# -- API throttling (DRF) ------------------------------------------------------------------------


def test_api_throttles_are_configured_for_anonymous_and_signed_in_clients():
    rf = django_settings.REST_FRAMEWORK
    assert {"rest_framework.throttling.AnonRateThrottle", "rest_framework.throttling.UserRateThrottle"} <= set(
        rf["DEFAULT_THROTTLE_CLASSES"]
    )
    assert set(rf["DEFAULT_THROTTLE_RATES"]) >= {"anon", "user"}


def test_a_token_client_over_its_rate_gets_429(researcher, annotator, monkeypatch):
    # The configured rate is generous; the same throttle at 3 a minute shows its answer fast.
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "3/minute"})
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=researcher).key}")
    answers = [api.get("/api/projects/").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    throttled = api.get("/api/projects/")
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0
    # Another user has a budget of their own.
    other = APIClient()
    other.force_authenticate(annotator)
    assert other.get("/api/projects/").status_code == 200


def test_anonymous_api_clients_are_throttled_by_address(settings, monkeypatch):
    settings.DEBUG = True  # the schema is public with DEBUG on: an anonymous endpoint to throttle
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {"user": "2/minute", "anon": "2/minute"})
    api = APIClient()
    assert [api.get("/api/schema/").status_code for _ in range(3)] == [200, 200, 429]


# -- Content-Security-Policy ---------------------------------------------------------------------


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_every_page_carries_a_strict_policy(annotator, client):
    login = client.get(reverse("login"))
    policy = _policy(login)
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    client.force_login(annotator)
    home = client.get(reverse("home"))
    assert home.status_code == 200 and _policy(home)["script-src"] == ["'self'"]
    api = client.get("/api/projects/")
    assert "Content-Security-Policy" in api


def test_docs_pages_allow_inline_styles_but_still_only_our_scripts(researcher, client):
    client.force_login(researcher)
    for url in ("/api/docs/", "/api/redoc/"):
        page = client.get(url)
        assert page.status_code == 200, url
        policy = _policy(page)
        assert policy["script-src"] == ["'self'"], url
        assert "'unsafe-inline'" in policy["style-src"], url
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.content.decode()), url  # no inline script
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


TEMPLATES = ROOT / "templates"


def test_no_template_has_an_inline_script_handler_or_style():
    """What the policy would block: inline <script> bodies, on*= handlers, style= attributes and
    <style> blocks. The drf_spectacular overrides are the docs pages, which have their own policy."""
    problems = []
    for path in TEMPLATES.rglob("*.html"):
        if path.relative_to(TEMPLATES).parts[0] == "drf_spectacular":
            continue
        text = path.read_text()
        for pattern in (r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", r"\son[a-z]+\s*=", r"\sstyle\s*=", r"<style"):
            for match in re.finditer(pattern, text):
                problems.append(f"{path.relative_to(ROOT)}:{text[: match.start()].count(chr(10)) + 1}: {match.group(0)}")
    assert problems == []


# -- schema and docs need a login in production --------------------------------------------------


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/", "/api/redoc/"])
def test_schema_and_docs_need_a_login_with_debug_off(url, client, settings):
    settings.DEBUG = False
    response = client.get(url)
    if url == "/api/schema/":
        assert response.status_code in (401, 403)
    else:
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    settings.DEBUG = True
    assert client.get(url).status_code == 200


def test_a_token_reads_the_schema_with_debug_off(researcher, settings):
    settings.DEBUG = False
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=researcher).key}")
    assert api.get("/api/schema/").status_code == 200
