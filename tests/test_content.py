"""Content that renders like the real thing (issue 12, item 5) and the workspace as an annotator
found it (item 7): conversations from files and the API, HelpSteer2's multi-turn prompts, code
highlighted on the server and kept inert, text direction, the help overlay's keys, the done
page, the justification message, and the 404 page."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.conversation import conversation_problem, from_helpsteer2, to_helpsteer2
from annotate.errors import ImportFileError
from annotate.importers import import_files
from annotate.markdown import code_css, render_markdown
from annotate.models import Assignment, Item, Pair, Project
from judges.prompts import conversation_text

pytestmark = pytest.mark.django_db

TURNS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is C#?"},
    {"role": "assistant", "content": "A language by **Microsoft**."},
    {"role": "user", "content": "What is it used for?"},
]
# HelpSteer2's layout (NeMo-Aligner SteerLM markers), as its `prompt` field holds it.
HELPSTEER2_PROMPT = "c#\n<extra_id_1>Assistant\nC# is a language.\n\nIt runs on .NET.\n<extra_id_1>User\nwhat is c# used for"


def _jsonl(tmp_path: Path, *rows: dict, name: str = "items.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _row(item_id: str = "q1", **extra: object) -> dict:
    return {"id": item_id, "responses": [{"id": "a", "text": "One"}, {"id": "b", "text": "Two"}], **extra}


# --- The rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "where", "message"), [
    ("hi", "", "a conversation is a list of turns"),
    ([], "", "at least one turn"),
    ([{"role": "user"}], "[0].content", "content must be a string"),
    ([{"role": "bot", "content": "x"}], "[0].role", "role must be one of system, user, assistant"),
    ([{"role": "user", "content": "x", "name": "n"}], "[0]", "unknown key(s) 'name'"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "user", "content": "c"}],
     "[1].role", "a system turn may only be the first turn"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "[1].role", "the last turn must be the user's"),
    ([{"role": "user", "content": "a\x00"}], "[0].content", "NUL"),
    (["user: hi"], "[0]", "each turn is an object"),
])
def test_conversation_problem_says_which_turn_and_why(value, where, message):
    problem = conversation_problem(value)
    assert problem is not None and problem.where == where and message in problem.message


def test_helpsteer2_markers_split_into_turns():
    assert from_helpsteer2(HELPSTEER2_PROMPT) == [
        {"role": "user", "content": "c#"},
        {"role": "assistant", "content": "C# is a language.\n\nIt runs on .NET."},
        {"role": "user", "content": "what is c# used for"},
    ]
    assert from_helpsteer2("A single question, no markers.") is None
    opened = "<extra_id_0>System\nBe kind.\n<extra_id_1>User\nHi"
    assert from_helpsteer2(opened) == [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}]


def test_helpsteer2_layout_round_trips_exactly():
    for prompt in (HELPSTEER2_PROMPT, "<extra_id_0>System\nBe kind.\n<extra_id_1>User\nHi\n<extra_id_1>Assistant\nHello\n<extra_id_1>User\n  spaced  "):
        turns = from_helpsteer2(prompt)
        assert turns is not None and to_helpsteer2(turns) == prompt
    assert from_helpsteer2(to_helpsteer2(TURNS)) == TURNS


# --- Imports ----------------------------------------------------------------------------------


def test_jsonl_conversation_imports_and_prompt_is_the_last_user_turn(tmp_path):
    path = _jsonl(tmp_path, _row(conversation=TURNS), _row("q2", prompt="Plain?"))
    project = import_files(project_name="conv", fmt="jsonl", paths=[path]).project
    item = Item.objects.get(project=project, external_id="q1")
    assert item.conversation == TURNS and item.prompt == "What is it used for?"
    plain = Item.objects.get(project=project, external_id="q2")
    assert plain.conversation is None and plain.prompt == "Plain?"  # SQL NULL, not JSON null
    assert Item.objects.filter(project=project, conversation__isnull=True).count() == 1
    # Idempotent like every import: nothing new the second time.
    again = import_files(project_name="conv", fmt="jsonl", paths=[path])
    assert Item.objects.filter(project=again.project).count() == 2


@pytest.mark.parametrize(("row", "field", "message"), [
    (_row(conversation=[{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}, {"role": "user", "content": "z"}]),
     "conversation[1].role", "role must be one of"),
    (_row(conversation=[{"role": "user", "content": 3}]), "conversation[0].content", "content must be a string"),
    (_row(conversation=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]),
     "conversation[1].role", "the last turn must be the user's"),
    (_row(conversation={"role": "user"}), "conversation", "a conversation is a list of turns"),
    (_row(conversation=TURNS, prompt="Something else"), "prompt", "differs from the conversation's last user turn"),
    (_row(), "prompt", "missing required field"),
])
def test_jsonl_conversation_errors_name_file_line_and_field(tmp_path, row, field, message):
    path = _jsonl(tmp_path, _row("ok", prompt="fine"), row)
    with pytest.raises(ImportFileError) as exc:
        import_files(project_name="bad", fmt="jsonl", paths=[path])
    assert exc.value.path == str(path) and exc.value.line == 2 and exc.value.field == field
    assert message in exc.value.detail
    assert not Project.objects.filter(name="bad").exists()  # all or nothing


def _csv(tmp_path: Path, rows: list[dict]) -> Path:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["item_id", "prompt", "conversation", "response_id", "text"])
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "items.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def test_csv_conversation_column(tmp_path):
    turns = json.dumps(TURNS)
    path = _csv(tmp_path, [
        {"item_id": "q1", "prompt": "What is it used for?", "conversation": turns, "response_id": "a", "text": "x"},
        {"item_id": "q1", "prompt": "What is it used for?", "conversation": turns, "response_id": "b", "text": "y"},
        {"item_id": "q2", "prompt": "Plain", "conversation": "", "response_id": "a", "text": "z"},
    ])
    project = import_files(project_name="csvconv", fmt="csv", paths=[path]).project
    assert Item.objects.get(project=project, external_id="q1").conversation == TURNS
    assert Item.objects.get(project=project, external_id="q2").conversation is None


@pytest.mark.parametrize(("conversation", "prompt", "message"), [
    ("[{\"role\": \"user\", ", "Q", "invalid JSON"),
    (json.dumps([{"role": "user", "content": "Q"}, {"role": "user", "content": "Other"}]), "Q",
     "last user turn differs from the prompt column"),
    (json.dumps([{"role": "assistant", "content": "Q"}]), "Q", "the last turn must be the user's"),
])
def test_csv_conversation_errors(tmp_path, conversation, prompt, message):
    path = _csv(tmp_path, [
        {"item_id": "q0", "prompt": "fine", "conversation": "", "response_id": "a", "text": "x"},
        {"item_id": "q1", "prompt": prompt, "conversation": conversation, "response_id": "a", "text": "x"},
    ])
    with pytest.raises(ImportFileError) as exc:
        import_files(project_name="badcsv", fmt="csv", paths=[path])
    assert exc.value.line == 3 and exc.value.field is not None and exc.value.field.startswith("conversation")
    assert message in exc.value.detail


def test_csv_rows_of_one_item_must_agree_on_the_conversation(tmp_path):
    path = _csv(tmp_path, [
        {"item_id": "q1", "prompt": "What is it used for?", "conversation": json.dumps(TURNS), "response_id": "a", "text": "x"},
        {"item_id": "q1", "prompt": "What is it used for?", "conversation": "", "response_id": "b", "text": "y"},
    ])
    with pytest.raises(ImportFileError) as exc:
        import_files(project_name="badcsv", fmt="csv", paths=[path])
    assert exc.value.line == 3 and exc.value.field == "conversation"


def test_helpsteer2_multi_turn_prompts_import_as_turns(tmp_path):
    rating = {"helpfulness": 3, "correctness": 3, "coherence": 4, "complexity": 1, "verbosity": 2}
    path = _jsonl(tmp_path,
                  {"prompt": HELPSTEER2_PROMPT, "response": "Games, web apps.", **rating},
                  {"prompt": "Single turn?", "response": "Yes.", **rating})
    project = import_files(project_name="hs2", fmt="helpsteer2", paths=[path]).project
    multi = Item.objects.get(project=project, prompt="what is c# used for")
    assert [t["role"] for t in multi.conversation] == ["user", "assistant", "user"]
    assert multi.conversation[1]["content"] == "C# is a language.\n\nIt runs on .NET."
    assert Item.objects.get(project=project, prompt="Single turn?").conversation is None
    odd = "Explain this string: x\n<extra_id_1>Assistant\nsure"  # ends with the assistant: not a chat to answer
    kept = import_files(project_name="hs2odd", fmt="helpsteer2", paths=[_jsonl(tmp_path, {"prompt": odd, "response": "r", **rating}, name="odd.jsonl")])
    assert Item.objects.get(project=kept.project).prompt == odd
    pref = _jsonl(tmp_path, {"prompt": HELPSTEER2_PROMPT, "response_1": "A", "response_2": "B", "preference_strength": -2},
                  name="pref.jsonl")
    ranked = import_files(project_name="hs2p", fmt="helpsteer2-preference", paths=[pref]).project
    assert Item.objects.get(project=ranked).conversation == from_helpsteer2(HELPSTEER2_PROMPT)


def test_flat_exports_keep_the_earlier_turns_and_re_import_to_the_same_items(tmp_path):
    from exports.services import ExportOptions, export_write

    rating = {"helpfulness": 3, "correctness": 3, "coherence": 4, "complexity": 1, "verbosity": 2}
    path = _jsonl(tmp_path, {"prompt": HELPSTEER2_PROMPT, "response": "Games, web apps.", **rating})
    project = import_files(project_name="hs2x", fmt="helpsteer2", paths=[path]).project
    out = tmp_path / "out.jsonl"
    export_write(project=project, options=ExportOptions("helpsteer2"), out=out)
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["prompt"] for row in exported] == [HELPSTEER2_PROMPT]
    again = import_files(project_name="hs2x", fmt="helpsteer2", paths=[out])
    assert Item.objects.filter(project=again.project).count() == 1  # the same item, found by its id


# --- API ----------------------------------------------------------------------------------------


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_items_api_takes_and_returns_a_conversation(researcher, project):
    client = _api(researcher)
    body = {"project": project.pk, "external_id": "c1", "conversation": TURNS,
            "responses": [{"external_id": "a", "text": "x"}, {"external_id": "b", "text": "y"}]}
    created = client.post("/api/items/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["conversation"] == TURNS and created.json()["prompt"] == "What is it used for?"
    assert client.get(f"/api/items/{created.json()['id']}/").json()["conversation"] == TURNS
    bad = client.post("/api/items/", {**body, "external_id": "c2", "conversation": [{"role": "bot", "content": "x"}]}, format="json")
    assert bad.status_code == 400 and "[0].role" in json.dumps(bad.json()["conversation"])
    clash = client.post("/api/items/", {**body, "external_id": "c3", "prompt": "No"}, format="json")
    assert clash.status_code == 400 and "prompt" in clash.json()
    neither = client.post("/api/items/", {"project": project.pk, "external_id": "c4"}, format="json")
    assert neither.status_code == 400 and "prompt" in neither.json()


def test_queue_api_task_carries_the_conversation(annotator, project):
    project.protocols = Project.Protocols.RANKING
    project.save()
    item = project.items.create(external_id="c", prompt=TURNS[-1]["content"], conversation=TURNS)
    Pair.objects.create(item=item, response_a=item.responses.create(external_id="a", text="x"),
                        response_b=item.responses.create(external_id="b", text="y"))
    task = _api(annotator).post(f"/api/projects/{project.pk}/queue/next/").json()["task"]
    assert task["item"]["conversation"] == TURNS


# --- Rendering ----------------------------------------------------------------------------------


HOSTILE_CODE = [
    # A fence's language is the only free text that reaches an attribute: it must stay inert.
    '```python" onmouseover="alert(1)\nx = 1\n```',
    "```\n</code></pre><script>alert(1)</script>\n```",
    "    indented <img src=x onerror=alert(2)>",
    '```html\n<a href="javascript:alert(3)">x</a><style>body{}</style>\n```',
    "`<svg onload=alert(4)>` and [x](javascript:alert(5)) and [y](data:text/html,hi)",
    '<span class="notice error" style="color:red">fake</span>',
]


@pytest.mark.parametrize("text", HOSTILE_CODE)
def test_highlighted_code_stays_inert(text):
    html = str(render_markdown(text))
    assert "<script" not in html and "<style" not in html and "<img" not in html and "<svg" not in html
    assert not re.search(r"<[^>]+\son\w+\s*=", html), html
    assert not re.search(r"<[^>]+\sstyle\s*=", html), html  # raw HTML shows as text, never as a tag
    assert not re.search(r"href=\"(javascript|data):", html)
    # A class only as a Pygments token class or the code wrapper: never one of the app's own.
    for classes in re.findall(r'<[a-z]+[^>]*\sclass="([^"]*)"', html):
        assert "notice" not in classes and "error" not in classes.split(), html


def test_code_is_highlighted_with_token_classes_and_the_css_is_current():
    html = str(render_markdown("```python\ndef f():\n    return 1  # one\n```"))
    assert '<div class="codehilite"><pre>' in html
    assert '<span class="k">def</span>' in html and '<span class="c1"># one</span>' in html
    assert "style=" not in html
    # static/css/pygments.css is what Pygments writes for the chosen style (regenerate with
    # `python -m annotate.markdown > static/css/pygments.css`).
    css = (Path(__file__).resolve().parents[1] / "static" / "css" / "pygments.css").read_text()
    assert css == code_css()


def test_each_block_takes_its_own_direction_and_code_stays_whole():
    html = str(render_markdown("First in English.\n\nثم بالعربية.\n\n- item\n\n```python\nx = 1\n```\n\n> quoted"))
    assert '<p dir="auto">First in English.</p>' in html and '<p dir="auto">ثم بالعربية.</p>' in html
    assert '<li dir="auto">item</li>' in html and '<blockquote dir="auto">' in html
    assert "<p></p>" not in html and '<p dir="auto"></p>' not in html  # the code block is not split out of a <p>
    assert html.count('<div class="codehilite">') == 1


def test_render_is_a_pure_function_of_its_text():
    text = "**a** ```x``` \n\n```js\nlet y = 2\n```"
    assert render_markdown(text) == render_markdown(text)


def _ranking_item(project: Project, **fields: object) -> Pair:
    project.protocols = Project.Protocols.RANKING
    project.save()
    item = project.items.create(external_id=str(fields.pop("external_id", "c")), **fields)
    a = item.responses.create(external_id="a", text="مرحبا، هذا جواب طويل.\n\n```python\nprint('hi')\n```")
    b = item.responses.create(external_id="b", text="Answer B")
    return Pair.objects.create(item=item, response_a=a, response_b=b)


def test_workspace_shows_the_conversation_as_a_chat_with_earlier_turns_folded(client, annotator, project):
    hostile = [{"role": "user", "content": "<script>alert(1)</script> hi"}, {"role": "assistant", "content": "**Sure**"},
               {"role": "user", "content": "And then?"}]
    _ranking_item(project, prompt="And then?", conversation=hostile)
    client.force_login(annotator)
    body = client.get(reverse("annotate_task", args=[project.pk])).content.decode()
    folded = body.split('<details class="conversation">')[1].split("</details>")[0]
    assert "Earlier turns" in folded and "(2)" in folded
    assert '<li class="turn turn-user"><p class="turn-role">User</p>' in folded
    assert '<li class="turn turn-assistant"><p class="turn-role">Assistant</p>' in folded
    assert "<strong>Sure</strong>" in folded and "&lt;script&gt;alert(1)&lt;/script&gt;" in folded
    assert "<script>alert" not in body
    last = body.split('class="turn turn-user turn-last"')[1]
    assert "And then?" in last.split("</div>")[1] or "And then?" in last[:400]
    # Every user text takes its own direction; code blocks are highlighted.
    assert body.count('dir="auto"') >= 5
    assert '<div class="md scroll" dir="auto" tabindex="0" role="region" aria-labelledby="response-a-label">' in body
    assert '<span class="nb">print</span>' in body
    assert "css/pygments.css" in body


def test_single_prompt_shows_no_chat(client, annotator, project):
    _ranking_item(project, prompt="Just one question?")
    client.force_login(annotator)
    body = client.get(reverse("annotate_task", args=[project.pk])).content.decode()
    assert 'class="conversation"' not in body and "Just one question?" in body


def test_pair_page_shows_the_conversation_to_researchers(client, researcher, project):
    pair = _ranking_item(project, prompt=TURNS[-1]["content"], conversation=TURNS)
    client.force_login(researcher)
    body = client.get(reverse("annotate_pair", args=[pair.pk])).content.decode()
    assert '<li class="turn turn-system"><p class="turn-role">System</p>' in body
    assert "<strong>Microsoft</strong>" in body


# --- Judges see the conversation ------------------------------------------------------------


def test_conversation_text_for_judges():
    assert conversation_text("Plain?", None) == "Plain?"
    text = conversation_text(TURNS[-1]["content"], TURNS)
    assert text == (
        "[System]\nYou are terse.\n\n[User]\nWhat is C#?\n\n[Assistant]\nA language by **Microsoft**.\n\n"
        "[User]\nWhat is it used for?"
    )


def test_judge_request_renders_the_turns(project):
    from judges.models import Judgment, Run
    from judges.services import generation_messages, judge_get_or_create_default, judgment_request

    pair = _ranking_item(project, prompt=TURNS[-1]["content"], conversation=TURNS)
    judge = judge_get_or_create_default()
    run = Run.objects.create(judge=judge, project=project, protocols=["ranking"])
    judgment = Judgment.objects.create(run=run, item=pair.item, pair=pair, protocol="ranking", shown_order="ab")
    user = judgment_request(run=run, judgment=judgment).messages[-1]["content"]
    assert "[Assistant]\nA language by **Microsoft**." in user and user.index("What is C#?") < user.index("What is it used for?")
    generated = generation_messages(judgment=judgment)
    assert [m["role"] for m in generated] == ["system", "user", "assistant", "user"]
    assert generated[0]["content"].endswith("You are terse.")
    assert generated[-1]["content"] == "What is it used for?"


# --- The workspace (item 7) -------------------------------------------------------------------


def _help(body: str) -> str:
    return body.split('<dialog id="help"')[1].split("</dialog>")[0]


def test_help_overlay_lists_the_keys_the_scales_have(client, annotator, project):
    project.protocols = Project.Protocols.RATING
    project.save()
    item = project.items.create(external_id="r", prompt="Q")
    item.responses.create(external_id="a", text="x")
    client.force_login(annotator)
    keys = _help(client.get(reverse("annotate_task", args=[project.pk])).content.decode())
    assert "<kbd>0</kbd>–<kbd>4</kbd>" in keys and "<kbd>9</kbd>" not in keys
    assert "Ranking" not in keys  # a rating-only project has no ranking keys

    project.protocols = Project.Protocols.RANKING
    project.save()
    Pair.objects.create(item=item, response_a=item.responses.get(), response_b=item.responses.create(external_id="b", text="y"))
    keys = _help(client.get(reverse("annotate_task", args=[project.pk])).content.decode())
    assert "<kbd>1</kbd></td><td>A is much better" in keys and "<kbd>7</kbd></td><td>B is much better" in keys
    assert "<kbd>8</kbd>" not in keys and "<kbd>0</kbd>" not in keys
    assert "A is better · About the same · B is better" in keys

    project.ranking_scale = Project.RankingScale.TERNARY
    project.save()
    keys = _help(client.get(reverse("annotate_task", args=[project.pk])).content.decode())
    assert "<kbd>3</kbd></td><td>B is better" in keys and "<kbd>4</kbd>" not in keys


def test_help_overlay_for_a_seven_point_attribute(client, annotator, project):
    project.protocols = Project.Protocols.RATING
    project.save()
    project.attributes.exclude(name="helpfulness").delete()
    project.attributes.filter(name="helpfulness").update(min_value=1, max_value=7)
    project.items.create(external_id="r", prompt="Q").responses.create(external_id="a", text="x")
    client.force_login(annotator)
    keys = _help(client.get(reverse("annotate_task", args=[project.pk])).content.decode())
    assert "<kbd>1</kbd>–<kbd>7</kbd>" in keys


def test_missing_justification_message_is_beside_the_field_for_screen_readers(client, annotator, project):
    _ranking_item(project, prompt="Q")
    client.force_login(annotator)
    page = client.get(reverse("annotate_task", args=[project.pk])).content.decode()
    # Before any submit: the message slot exists, empty and hidden, tied to the box.
    assert 'aria-describedby="justification-hint justification-error"' in page
    assert '<p class="error field-error" id="justification-error" role="alert" hidden></p>' in page
    view_key = Assignment.objects.get(rater__user=annotator, status="claimed").view_key
    response = client.post(reverse("annotate_submit", args=[project.pk]),
                           {"view_key": view_key, "protocol": "ranking", "shown_strength": "3"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    body = response.content.decode()
    assert 'aria-invalid="true"' in body
    note = re.search(r'<p class="error field-error" id="justification-error" role="alert">([^<]+)</p>', body)
    assert note and "Please say briefly why" in note.group(1)


def test_done_page_says_what_can_still_come_and_polls_while_a_generate_run_is_in_progress(client, annotator, project):
    from judges.models import Run
    from judges.services import judge_get_or_create_default

    client.force_login(annotator)
    url = reverse("annotate_task", args=[project.pk])
    body = client.get(url).content.decode()
    assert "What can still come" in body and "may add new items at any time" in body
    assert "does not check by itself" in body
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 286
    run = Run.objects.create(judge=judge_get_or_create_default(), project=project, kind=Run.Kind.GENERATE)
    body = client.get(url).content.decode()
    assert "writing new responses in <strong>1</strong> run in progress" in body
    assert 'hx-trigger="every 20s' in body
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200  # keeps checking back
    run.status = Run.Status.DONE
    run.save()
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 286


def test_annotators_see_no_api_link_and_errors_render_in_the_layout(client, annotator, researcher, project):
    client.force_login(annotator)
    home = client.get(reverse("home")).content.decode()
    assert reverse("api-docs") not in home and ">API<" not in home
    forbidden = client.get(reverse("annotate_dashboard", args=[project.pk]))
    assert forbidden.status_code == 403
    page = forbidden.content.decode()
    assert 'class="topbar"' in page and "You can't open this page" in page and reverse("home") in page
    missing = client.get("/no/such/page/")
    assert missing.status_code == 404
    page = missing.content.decode()
    assert 'class="topbar"' in page and "Page not found" in page and "not a member of" in page
    assert reverse("home") in page
    elsewhere = Project.objects.create(name="Not yours")
    hidden = client.get(reverse("annotate_task", args=[elsewhere.pk]))
    assert hidden.status_code == 404 and "not a member of" in hidden.content.decode()
    assert _api(annotator).get("/api/no/such/").json() == {"detail": "Not found."}  # the API stays JSON
    client.force_login(researcher)
    assert reverse("api-docs") in client.get(reverse("home")).content.decode()


def test_a_stale_form_gets_a_page_in_the_layout_not_a_bare_403(annotator, project):
    client = Client(enforce_csrf_checks=True)
    client.force_login(annotator)
    response = client.post(reverse("annotate_submit", args=[project.pk]), {"protocol": "ranking"})
    assert response.status_code == 403
    page = response.content.decode()
    assert 'class="topbar"' in page and "out of date" in page and "Reload the page" in page
    assert Client(enforce_csrf_checks=True).post("/api/items/", {}).status_code in (401, 403)


def test_dashboard_says_a_low_gold_rate_in_words_not_only_in_red(client, annotator, researcher, project):
    from annotate.services import preference_submit, rater_for_user

    project.protocols = Project.Protocols.RANKING
    project.save()
    gold_item = project.items.create(external_id="g", prompt="Gold?", role=Item.Role.GOLD)
    gold = Pair.objects.create(item=gold_item, response_a=gold_item.responses.create(external_id="a", text="right"),
                               response_b=gold_item.responses.create(external_id="b", text="wrong"), gold_strength=-3)
    preference_submit(rater=rater_for_user(user=annotator), pair=gold, strength=2)  # the wrong side
    client.force_login(researcher)
    body = client.get(reverse("annotate_dashboard", args=[project.pk])).content.decode()
    assert '<span class="bad">0% <span class="flag">below 70%</span></span>' in body
