"""Seed a fresh database for the schemathesis run: an admin, an annotator, a researcher, and a
small project the fuzzer can read and write (items, responses, pairs, ratings, a judge, a run).

Run as `python tests/fuzz/seed.py` with DATABASE_URL pointing at the fuzz database.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402

from annotate.models import Pair  # noqa: E402
from annotate.roles import user_set_role  # noqa: E402
from annotate.services import (  # noqa: E402
    preference_submit,
    project_create,
    rater_for_user,
    ratings_submit,
)
from judges.models import Run  # noqa: E402
from judges.services import judge_create  # noqa: E402


def main() -> None:
    users = get_user_model().objects
    admin = users.create_user("fuzz-admin", password="fuzz-admin-pw", is_staff=True, is_superuser=True)
    user_set_role(user=admin, role="admin")
    annotator = users.create_user("fuzz-annotator", password="fuzz-annotator-pw")
    user_set_role(user=annotator, role="annotator")
    project = project_create(name="fuzz project", guidelines="Be kind.")
    project.members.add(admin, annotator)
    judge_row = judge_create(name="fuzz-judge", model_ref="fuzz/model", response_model="model-a")
    judge = judge_row.rater
    # A finished run for the run endpoints to read (starting one needs a worker).
    Run.objects.create(judge=judge_row, project=project, protocols=["ranking"], status=Run.Status.DONE, created_by=admin)
    mine = rater_for_user(user=annotator)
    for i in range(3):
        item = project.items.create(external_id=f"q{i}", prompt=f"Question {i}?")
        a = item.responses.create(external_id="a", text=f"Answer A{i}", model="model-a")
        b = item.responses.create(external_id="b", text=f"Answer B{i}", model="model-b")
        pair = Pair.objects.create(item=item, response_a=a, response_b=b)
        ratings_submit(rater=mine, response=a, values={"helpfulness": 3})
        ratings_submit(rater=judge, response=b, values={"helpfulness": 2})
        preference_submit(rater=mine, pair=pair, strength=-1)
        preference_submit(rater=judge, pair=pair, strength=2, shown_order="ab")


if __name__ == "__main__":
    main()
