"""The one place reports touch the ORM: a long-format table of a project's annotations.

One row per annotation (a rating of a response on an attribute, or a preference on a pair in one
shown order), with what every figure needs beside it (rater, item, models, text lengths, verdict
probabilities). Everything downstream is pandas/numpy (reports/metrics/).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from django.db.models import F, FloatField, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Length

from annotate.models import Item, Preference, Project, Rating

RANKING, RATING = "ranking", "rating"

COLUMNS = [
    "protocol", "id", "created_at", "rater", "kind", "rater_model", "item", "item_role",
    "pair", "response_a", "response_b", "model_a", "model_b", "len_a", "len_b",
    "strength", "shown_order", "p_a", "p_tie", "p_b",
    "response", "model", "length", "attribute", "value",
]  # fmt: skip

CATEGORICAL = ["protocol", "rater", "kind", "rater_model", "item_role", "model_a", "model_b",
               "shown_order", "model", "attribute"]  # fmt: skip


@dataclass(frozen=True)
class ReportFilters:
    attribute: str | None = None  # which attribute implies preferences and ranks by ratings
    rater_group: str | None = None  # "humans", "judges", or one rater as "kind:name"
    since: datetime | None = None
    until: datetime | None = None
    exclude_gold: bool = False


def _filter(qs: QuerySet, filters: ReportFilters, *, rater_group: bool) -> QuerySet:
    if filters.since is not None:
        qs = qs.filter(created_at__gte=filters.since)
    if filters.until is not None:
        qs = qs.filter(created_at__lt=filters.until)
    if rater_group and filters.rater_group:
        group = filters.rater_group
        if group == "humans":
            qs = qs.filter(rater__kind="human")
        elif group == "judges":
            qs = qs.filter(rater__kind="judge")
        else:
            kind, _, name = group.partition(":")
            qs = qs.filter(rater__kind=kind, rater__name=name)
    return qs


def annotations_table(
    project: Project, filters: ReportFilters | None = None, *, apply_rater_group: bool = True
) -> pd.DataFrame:
    """Every rating and preference of the project as one long frame (columns: COLUMNS).

    Two streamed value queries (no model instances); text lengths are computed by the database.
    `apply_rater_group=False` keeps every rater so a report can still compute gold from all
    humans while showing only the filtered group.
    """
    filters = filters or ReportFilters()
    rater_label = F("rater__name")
    prefs = Preference.objects.filter(pair__item__project=project)
    ratings = Rating.objects.filter(response__item__project=project)
    if filters.exclude_gold:
        prefs = prefs.exclude(pair__item__role=Item.Role.GOLD)
        ratings = ratings.exclude(response__item__role=Item.Role.GOLD)
    prefs = _filter(prefs, filters, rater_group=apply_rater_group)
    ratings = _filter(ratings, filters, rater_group=apply_rater_group)
    if filters.attribute:
        ratings = ratings.filter(attribute__name=filters.attribute)

    pref_rows = (
        prefs.annotate(
            _len_a=Length("pair__response_a__text"),
            _len_b=Length("pair__response_b__text"),
            _p_a=Cast(KT("probabilities__A"), FloatField()),
            _p_tie=Cast(KT("probabilities__tie"), FloatField()),
            _p_b=Cast(KT("probabilities__B"), FloatField()),
        )
        .values_list(
            "id", "created_at", "rater__kind", rater_label, "rater__model", "pair__item_id",
            "pair__item__role", "pair_id", "pair__response_a_id", "pair__response_b_id",
            "pair__response_a__model", "pair__response_b__model", "_len_a", "_len_b",
            "strength", "shown_order", "_p_a", "_p_tie", "_p_b",
        )  # fmt: skip
        .order_by()
    )
    pref_cols = [
        "id", "created_at", "kind", "name", "rater_model", "item", "item_role", "pair",
        "response_a", "response_b", "model_a", "model_b", "len_a", "len_b",
        "strength", "shown_order", "p_a", "p_tie", "p_b",
    ]  # fmt: skip
    rating_rows = (
        ratings.annotate(_len=Length("response__text"))
        .values_list(
            "id", "created_at", "rater__kind", rater_label, "rater__model", "response__item_id",
            "response__item__role", "response_id", "response__model", "_len", "attribute__name", "value",
        )  # fmt: skip
        .order_by()
    )
    rating_cols = [
        "id", "created_at", "kind", "name", "rater_model", "item", "item_role",
        "response", "model", "length", "attribute", "value",
    ]  # fmt: skip
    p = pd.DataFrame.from_records(pref_rows.iterator(chunk_size=20_000), columns=pref_cols)
    r = pd.DataFrame.from_records(rating_rows.iterator(chunk_size=20_000), columns=rating_cols)
    p["protocol"] = RANKING
    r["protocol"] = RATING
    return finish_table(pd.concat([p, r], ignore_index=True))


def finish_table(df: pd.DataFrame) -> pd.DataFrame:
    """Common dtypes and the `rater` label ("human:NAME" / "judge:NAME") for any source."""
    if "rater" not in df.columns:
        df["rater"] = df["kind"].astype(str) + ":" + df["name"].astype(str)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    for col in ("pair", "response_a", "response_b", "response", "len_a", "len_b", "length", "strength",
                "value"):  # fmt: skip
        if df[col].dtype not in (np.int64, pd.Int64Dtype()):
            df[col] = pd.to_numeric(df[col]).astype("Int64" if df[col].isna().any() else np.int64)
    for col in ("p_a", "p_tie", "p_b"):
        if df[col].dtype != np.float64:
            df[col] = pd.to_numeric(df[col]).astype(float)
    for col in CATEGORICAL:
        # A source that already gives categories of strings (the column-wise readers, the bench)
        # is kept as it is: converting 10M labels through str costs seconds.
        if not (isinstance(df[col].dtype, pd.CategoricalDtype) and df[col].notna().all()
                and all(isinstance(c, str) for c in df[col].cat.categories)):  # fmt: skip
            df[col] = df[col].fillna("").astype(str).astype("category")
    return df[COLUMNS]
