"""A judge names a secret only from the operator's allow-list, calls only allowed hosts, never
follows a redirect, and an upstream's reply is summarised, never shown (issue 10, deliverable 2).

The upstreams are real HTTP servers on loopback (the standard library's), each answering as a
misbehaving or hostile server would: a 401 whose body carries a secret, a redirect to another
host, a 500. Runs go through the services the Celery task calls, as in test_judge_runs.py."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from test_judge_fixtures import make_project

from annotate.errors import ValidationError
from judges import services
from judges.models import Judge, Judgment, Run

pytestmark = pytest.mark.django_db

SECRET_BODY = "upstream-body-with-SECRET-4f1c"


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int, location: str = "") -> None:
        self.status, self.location = status, location
        self.reply = ""
        self.seen: list[dict[str, str]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: Upstream

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        self.server.seen.append(dict(self.headers))
        if self.headers.get("Content-Length"):
            self.rfile.read(int(self.headers["Content-Length"]))
        body = (self.server.reply or SECRET_BODY).encode()
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET = _answer  # noqa: N815


@pytest.fixture
def upstream() -> Iterator[type[Upstream]]:
    started: list[Upstream] = []

    def start(status: int, location: str = "") -> Upstream:
        server = Upstream(status, location)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(judge: Judge, **process: object) -> Run:
    project = make_project(name=f"Egress {judge.pk}", items=1)
    run = services.run_start(plan_now=True, judge=judge, project=project, protocols=["ranking"])
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    services.judgments_process(run_id=run.pk, judgment_ids=ids, **process)  # type: ignore[arg-type]
    run.refresh_from_db()
    return run


def _openai(name: str, base_url: str, **extra: object) -> Judge:
    return services.judge_create(name=name, backend="openai", model_ref="m", base_url=base_url, **extra)


# -- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["DATABASE_URL", "DJANGO_SECRET_KEY", "CONCORDANCE_JUDGE_KEY_", "HOME", "A B"])
def test_a_judge_may_name_no_secret_outside_the_operators_prefix(name):
    with pytest.raises(ValidationError) as caught:
        services.judge_create(name="leaky", model_ref="m", api_key_env=name)
    assert caught.value.field == "api_key_env"
    assert not Judge.objects.exists()


def test_a_secret_with_the_prefix_is_accepted_and_the_prefix_is_the_operators(settings):
    judge = services.judge_create(name="keyed", model_ref="m", api_key_env="CONCORDANCE_JUDGE_KEY_VLLM")
    assert judge.api_key_env == "CONCORDANCE_JUDGE_KEY_VLLM"
    settings.JUDGE_SECRET_PREFIX = "LAB_JUDGE_"
    with pytest.raises(ValidationError, match="LAB_JUDGE_"):
        services.judge_update(judge=judge, rationale=True)  # the stored name no longer passes
    services.judge_update(judge=judge, api_key_env="LAB_JUDGE_VLLM")


# -- hosts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://evil.example.com/v1", "http://10.0.0.5:8000/v1", "http://127.0.0.1.evil.example/v1",
    "ftp://127.0.0.1/v1", "file:///etc/passwd", "http://user:pw@127.0.0.1/v1", "127.0.0.1:8000",
    "http://127.0.0.1:99999/v1", "http:///v1",
])
def test_base_url_must_be_http_to_an_allowed_host(url):
    with pytest.raises(ValidationError) as caught:
        _openai("far", url)
    assert caught.value.field == "base_url"


def test_loopback_is_allowed_by_default_and_the_operator_sets_the_rest(settings):
    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://[::1]:8000/v1"):
        _openai(f"local-{len(Judge.objects.all())}", url)
    settings.JUDGE_ALLOWED_HOSTS = ["vllm.internal", ".gpu.example.org"]
    _openai("lab-1", "https://vllm.internal/v1")
    _openai("lab-2", "https://node3.gpu.example.org/v1")
    with pytest.raises(ValidationError, match="CONCORDANCE_JUDGE_ALLOWED_HOSTS"):
        _openai("lab-3", "http://127.0.0.1:8000/v1")  # the operator's list replaces the default
    with pytest.raises(ValidationError):
        _openai("lab-4", "https://gpu.example.org.evil.com/v1")


def test_the_api_and_the_page_refuse_them_naming_the_field(client, researcher):
    api = APIClient()
    api.force_authenticate(researcher)
    bad = api.post("/api/judges/", {"name": "x", "model_ref": "m", "backend": "openai",
                                    "base_url": "http://evil.example.com/v1"}, format="json")
    assert bad.status_code == 400 and "base_url" in bad.data
    judge = _openai("ok", "http://127.0.0.1:8000/v1", owner=researcher)  # its owner may edit it
    patched = api.patch(f"/api/judges/{judge.pk}/", {"api_key_env": "DATABASE_URL"}, format="json")
    assert patched.status_code == 400 and "api_key_env" in patched.data
    judge.refresh_from_db()
    assert judge.api_key_env == ""
    client.force_login(researcher)
    page = client.post(reverse("judges:judges"), {"name": "p", "backend": "openai", "model_ref": "m",
                                                  "base_url": "http://169.254.169.254/latest", "dtype": "auto",
                                                  "device": "auto", "decoding": "{}"})
    assert page.status_code == 422 and "is not one this server may call" in page.content.decode()


# -- the worker checks again -----------------------------------------------------------------------


def test_the_worker_refuses_a_stored_judge_that_no_longer_passes(upstream, monkeypatch):
    server = upstream(200)
    judge = _openai("stored", server.url)
    # Saved before the check existed, or edited behind the services' back.
    Judge.objects.filter(pk=judge.pk).update(api_key_env="DATABASE_URL")
    monkeypatch.setenv("DATABASE_URL", "postgres://secret@db/prod")
    run = _run(Judge.objects.get(pk=judge.pk))
    assert run.status == Run.Status.DONE
    errors = set(Judgment.objects.filter(run=run).values_list("status", "error"))
    assert len(errors) == 1 and next(iter(errors))[0] == "error" and "api_key_env" in next(iter(errors))[1]
    assert server.seen == []  # not one request left


def test_the_worker_refuses_a_host_the_operator_no_longer_allows(upstream, settings):
    server = upstream(200)
    judge = _openai("moved", server.url)
    settings.JUDGE_ALLOWED_HOSTS = ["vllm.internal"]
    run = _run(judge)
    assert set(Judgment.objects.filter(run=run).values_list("status", flat=True)) == {"error"}
    assert "base_url" in Judgment.objects.filter(run=run).first().error
    assert server.seen == []


# -- upstream replies -------------------------------------------------------------------------------


def test_a_4xx_fails_the_judgments_with_a_summary_never_the_body(upstream, client, researcher):
    server = upstream(401)
    os.environ["CONCORDANCE_JUDGE_KEY_TEST"] = "sk-test-123"
    try:
        judge = _openai("unauthorised", server.url, api_key_env="CONCORDANCE_JUDGE_KEY_TEST")
        run = _run(judge)
    finally:
        del os.environ["CONCORDANCE_JUDGE_KEY_TEST"]
    assert server.seen and server.seen[0]["Authorization"] == "Bearer sk-test-123"
    judgments = list(Judgment.objects.filter(run=run))
    assert run.status == Run.Status.DONE and {j.status for j in judgments} == {"error"}
    assert {j.error for j in judgments} == {"HTTP 401 (unauthorized: check the judge's API key)"}
    run.project.members.add(researcher)
    client.force_login(researcher)
    page = client.get(reverse("judges:run", kwargs={"run_id": run.pk})).content.decode()
    assert "HTTP 401 (unauthorized" in page and SECRET_BODY not in page
    api = APIClient()
    api.force_authenticate(researcher)
    assert SECRET_BODY not in api.get(f"/api/runs/{run.pk}/").content.decode()


def test_a_redirect_is_refused_and_the_key_never_reaches_the_other_host(upstream):
    elsewhere = upstream(200)
    redirecting = upstream(302, location=elsewhere.url + "/chat/completions")
    os.environ["CONCORDANCE_JUDGE_KEY_TEST"] = "sk-test-123"
    try:
        judge = _openai("redirected", redirecting.url, api_key_env="CONCORDANCE_JUDGE_KEY_TEST")
        run = _run(judge)
    finally:
        del os.environ["CONCORDANCE_JUDGE_KEY_TEST"]
    assert redirecting.seen and elsewhere.seen == []
    errors = set(Judgment.objects.filter(run=run).values_list("error", flat=True))
    assert errors == {"HTTP 302 (redirect refused: base_url must be the server's final address)"}


def test_a_5xx_is_retried_then_fails_with_its_summary(upstream):
    server = upstream(503)
    judge = _openai("flaky", server.url)
    project = make_project(name="Flaky", items=1)
    run = services.run_start(plan_now=True, judge=judge, project=project, protocols=["ranking"])
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    # An attempt before the last: the claims stay this batch's for its retry, leased over the countdown.
    with pytest.raises(services.BatchRetry) as retry:
        services.judgments_process(run_id=run.pk, judgment_ids=ids, retry_in=600)
    held = list(Judgment.objects.filter(run=run))
    assert {j.status for j in held} == {"claimed"} and {j.claim_token for j in held} == {retry.value.token}
    assert all((j.lease_expires_at - j.claimed_at).total_seconds() > 600 for j in held)
    assert services.run_watch(run_id=run.pk, token=run.watch_token) is not None
    assert Judgment.objects.filter(run=run, status="claimed").count() == 2  # not stale: not handed out
    # The last attempt takes its claims back and fails them with the summary.
    services.judgments_process(run_id=run.pk, judgment_ids=ids, token=retry.value.token)
    run.refresh_from_db()
    assert run.status == Run.Status.DONE
    assert set(Judgment.objects.filter(run=run).values_list("status", "error")) == {
        ("error", "HTTP 503 (server error) (gave up after the retries)")}
    assert all(SECRET_BODY not in j.error for j in Judgment.objects.filter(run=run))


def test_a_wrong_server_url_fails_after_the_retries_with_the_reason_on_the_run_page(client, researcher):
    judge = _openai("nowhere", f"http://127.0.0.1:{_closed_port()}/v1")
    run = _run(judge)
    assert run.status == Run.Status.DONE
    assert set(Judgment.objects.filter(run=run).values_list("status", "error")) == {
        ("error", "connection refused (gave up after the retries)")}
    run.project.members.add(researcher)
    client.force_login(researcher)
    assert "connection refused" in client.get(reverse("judges:run", kwargs={"run_id": run.pk})).content.decode()


def test_the_openai_backends_rationale_is_kept_as_the_justification(upstream):
    # A server that writes an explanation, then its verdict (no logprobs: parsed from the text).
    server = upstream(200)
    server.reply = json.dumps({"choices": [{"message": {"content": "B repeats a false sum. [[A]]"}}]})
    judge = _openai("explains", server.url, rationale=True)
    run = _run(judge)
    judgments = list(Judgment.objects.filter(run=run))
    assert {j.status for j in judgments} == {"ok"}
    assert {j.preference.justification for j in judgments} == {"B repeats a false sum."}
