"""The one place reports touch the ORM: a long-format table of a project's annotations.

One row per annotation (a rating of a response on an attribute, or a preference on a pair in one
shown order), with what every figure needs beside it (rater, item, models, text lengths, verdict
probabilities). Everything downstream is pandas/numpy (reports/metrics/).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection
from django.db.models import F, FloatField, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Length

from annotate.models import Item, Preference, Project, Rating
from annotate.training import excluded_raters

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
    project: Project,
    filters: ReportFilters | None = None,
    *,
    apply_rater_group: bool = True,
    after_ids: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Every rating and preference of the project as one long frame (columns: COLUMNS).

    Two streamed value queries (no model instances); text lengths are computed by the database.
    `apply_rater_group=False` keeps every rater so a report can still compute gold from all
    humans while showing only the filtered group. `after_ids` (preference id, rating id): only
    the rows above them, the ones an incremental report has not seen (reports.cache).
    """
    filters = filters or ReportFilters()
    rater_label = F("rater__name")
    # An annotator a researcher excluded (annotate.training) is left out of every figure and of gold.
    left_out = excluded_raters(project)
    prefs = Preference.objects.filter(pair__item__project=project).exclude(rater__in=left_out)
    ratings = Rating.objects.filter(response__item__project=project).exclude(rater__in=left_out)
    if filters.exclude_gold:
        prefs = prefs.exclude(pair__item__role=Item.Role.GOLD)
        ratings = ratings.exclude(response__item__role=Item.Role.GOLD)
    prefs = _filter(prefs, filters, rater_group=apply_rater_group)
    ratings = _filter(ratings, filters, rater_group=apply_rater_group)
    if after_ids is not None:
        prefs = prefs.filter(id__gt=after_ids[0])
        ratings = ratings.filter(id__gt=after_ids[1])
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
    if connection.vendor == "postgresql":
        p = _copy_frame(pref_rows, pref_cols)
        r = _copy_frame(rating_rows, rating_cols)
    else:
        p = _records_frame(pref_rows, pref_cols)
        r = _records_frame(rating_rows, rating_cols)
    p["protocol"] = RANKING
    r["protocol"] = RATING
    # An empty side (no new ratings after a judge's preference run) has untyped columns; beside
    # it the other side's ids and times would become Python objects.
    frames = [f for f in (p, r) if len(f)] or [p, r]
    return finish_table(pd.concat(frames, ignore_index=True))


# Columns the COPY reader parses straight into categories (labels repeat on every row).
_LABELS = {"kind", "name", "rater_model", "item_role", "model_a", "model_b", "shown_order", "model", "attribute"}


def _records_frame(rows: QuerySet, columns: list[str]) -> pd.DataFrame:
    """The value query's rows as tuples, streamed (any database)."""
    return pd.DataFrame.from_records(rows.iterator(chunk_size=20_000), columns=columns)


def _copy_frame(rows: QuerySet, columns: list[str]) -> pd.DataFrame:
    """The value query's rows read column-wise: PostgreSQL writes them as CSV (COPY ... TO
    STDOUT) and pandas' C parser fills typed arrays, labels as categories. At 10M annotations
    Python tuples of every row (the values_list iterator) would take several GB; this holds
    the CSV bytes once and the arrays."""
    sql, params = rows.query.sql_with_params()
    buf = io.BytesIO()
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params) as copy:
            for block in copy:
                buf.write(block)
    buf.seek(0)
    if not buf.getbuffer().nbytes:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    dtypes = {c: "category" for c in columns if c in _LABELS}
    # NULL and an empty string both arrive as empty fields: numbers read them as missing,
    # labels as "" (what finish_table makes of a missing label anyway).
    df = pd.read_csv(buf, header=None, names=columns, dtype=dtypes, keep_default_na=False, na_values=[""],
                     quoting=0)  # fmt: skip
    for col in dtypes:
        if df[col].isna().any():
            labels = df[col] if "" in df[col].cat.categories else df[col].cat.add_categories([""])
            df[col] = labels.fillna("")
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True, format="ISO8601")
    return df


# Ids, text lengths, strengths and values: integers, missing on the other protocol's rows.
INTEGER_COLUMNS = ("pair", "response_a", "response_b", "response", "len_a", "len_b", "length", "strength", "value")
_INT32 = np.iinfo(np.int32)


def _narrow(column: pd.Series) -> pd.Series:
    """An integer column in 32 bits when its values fit (ids below 2**31, lengths and scores):
    the table's nine such columns are 90 MB each at 10M annotations in 64 bits (with the mask),
    50 MB in 32. The figures read them as int64 arrays (reports.build), so values are unchanged."""
    if column.dtype in (np.int32, pd.Int32Dtype()) or not len(column):
        return column
    lo, hi = column.min(), column.max()
    if pd.isna(lo) or not (_INT32.min <= lo and hi <= _INT32.max):
        return column
    return column.astype(pd.Int32Dtype() if column.dtype == pd.Int64Dtype() else np.int32)


def _finish_numbers(df: pd.DataFrame) -> None:
    for col in INTEGER_COLUMNS:
        if df[col].dtype not in (np.int64, pd.Int64Dtype(), np.int32, pd.Int32Dtype()):
            df[col] = pd.to_numeric(df[col]).astype("Int64" if df[col].isna().any() else np.int64)
        df[col] = _narrow(df[col])
    for col in ("p_a", "p_tie", "p_b"):
        if df[col].dtype != np.float64:
            df[col] = pd.to_numeric(df[col]).astype(float)


def finish_table(df: pd.DataFrame) -> pd.DataFrame:
    """Common dtypes and the `rater` label ("human:NAME" / "judge:NAME") for any source."""
    if "rater" not in df.columns:
        df["rater"] = df["kind"].astype(str) + ":" + df["name"].astype(str)
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    _finish_numbers(df)
    for col in CATEGORICAL:
        labels = df[col]
        if isinstance(labels.dtype, pd.CategoricalDtype) and all(isinstance(c, str) for c in labels.cat.categories):
            # Categories of strings already (the COPY reader, the bench): recoded, not rebuilt
            # through str, which costs seconds at 10M labels. The same result: "" for a missing
            # label, the categories used, sorted.
            if labels.isna().any():
                if "" not in labels.cat.categories:
                    labels = labels.cat.add_categories([""])
                labels = labels.fillna("")
            used = sorted(labels.cat.remove_unused_categories().cat.categories)
            df[col] = labels.cat.set_categories(used)
        else:
            df[col] = labels.fillna("").astype(str).astype("category")
    return df[COLUMNS]


def append_rows(table: pd.DataFrame, new_rows: pd.DataFrame) -> pd.DataFrame:
    """finish_table(table + new_rows) for two finished tables: what a report that absorbs rows
    (reports.incremental) reads. Each label column takes the sorted union of both sides'
    categories first, so the concatenation stays categorical and needs no recoding: pandas
    concatenates categoricals whose categories differ as strings, and rebuilding 1M of them
    into categories cost about 1 s of an absorb at 1M annotations (measured here). A finished
    table's categories are the labels it uses, so the union is the labels the union uses."""
    if not len(new_rows):
        return table
    old, new = table, new_rows
    for col in CATEGORICAL:
        a, b = old[col].cat.categories, new[col].cat.categories
        both = pd.Index(sorted(set(a) | set(b)), dtype=a.dtype)
        if not (a.equals(both) and b.equals(both)):
            old = old.assign(**{col: old[col].cat.set_categories(both)})
            new = new.assign(**{col: new[col].cat.set_categories(both)})
    # The new rows in the table's dtypes first (they are few): a column of another dtype on either
    # side (a nullable Int64 where no new row has a value, Python objects from an untyped empty
    # frame) makes pandas concatenate every old row as objects too, and turning 1M of them back
    # cost 1.9 s of an absorb behind the report page (measured here, bench/report_page.py).
    # (Not where the new rows have a missing value the old dtype cannot hold: then the old rows
    # must change dtype anyway.)
    casts = {c: old[c].dtype for c in COLUMNS if c not in CATEGORICAL and new[c].dtype != old[c].dtype
             and not (isinstance(old[c].dtype, np.dtype) and old[c].dtype.kind in "iub" and new[c].isna().any())}  # fmt: skip
    if casts:
        new = new.astype(casts)
    df = pd.concat([old, new], ignore_index=True)
    _finish_numbers(df)
    return df[COLUMNS]


# --- the judge card's extra tables (issue 14): judgments, runs, response style ---------------


def judgments_table(project: Project) -> pd.DataFrame:
    """One row per finished judgment (ok or unparseable) of a judge run on the project: rater
    label, item, unit (what was judged: a pair in one shown order or a response on one
    attribute), the verdict or score the judge gave, valid mass, latency and prompt size. The
    card's valid mass, repetition stability and throughput read it; trials of the same unit in
    different runs are what repetition stability compares."""
    from judges.models import Judgment

    rows = (
        Judgment.objects.filter(run__project=project, status__in=["ok", "unparseable"])
        .exclude(protocol="generate")
        .values_list("run__judge__rater__kind", "run__judge__rater__name", "item_id", "protocol", "pair_id",
                     "shown_order", "response_id", "attribute_id", "status", "verdict", "valid_mass",
                     "latency_ms", "size", "prompt_tokens", "generated_tokens")  # fmt: skip
        .order_by()
    )
    cols = ["kind", "name", "item", "protocol", "pair", "shown_order", "response", "attribute", "status", "verdict",
            "valid_mass", "latency_ms", "size", "prompt_tokens", "generated_tokens"]  # fmt: skip
    df = pd.DataFrame.from_records(rows.iterator(chunk_size=20_000), columns=cols)
    df["rater"] = df["kind"].astype(str) + ":" + df["name"].astype(str)
    df["unit"] = np.where(
        df["protocol"] == "ranking",
        "p" + df["pair"].astype(str) + df["shown_order"].astype(str),
        "r" + df["response"].astype(str) + "a" + df["attribute"].astype(str),
    ) if len(df) else pd.Series(dtype=str)  # fmt: skip
    # An unparseable answer is a trial with its own outcome: it counts against stability.
    df["verdict"] = np.where(df["status"] == "unparseable", "?", df["verdict"].astype(str)) if len(df) else df["verdict"]
    for col in ("valid_mass", "latency_ms", "size", "prompt_tokens", "generated_tokens"):
        df[col] = pd.to_numeric(df[col]).astype(float)
    return df[["rater", "item", "protocol", "unit", "verdict", "valid_mass", "latency_ms", "size",
               "prompt_tokens", "generated_tokens"]]


def judge_runs_table(project: Project) -> pd.DataFrame:
    """Per judge run of the project (kind judge): rater label, temperature, finished judgments,
    first claim and last completion (the run's working time)."""
    from django.db.models import Count, Max, Min, Q

    from judges.models import Run

    runs = (
        Run.objects.filter(project=project, kind="judge")
        .annotate(done=Count("judgments", filter=Q(judgments__status__in=["ok", "unparseable", "error"])),
                  begin=Min("judgments__claimed_at"), end=Max("judgments__completed_at"))  # fmt: skip
        .values_list("judge__rater__kind", "judge__rater__name", "judge__decoding", "done", "begin", "end")
        .order_by()
    )
    out = pd.DataFrame.from_records(list(runs), columns=["kind", "name", "decoding", "done", "begin", "end"])
    out["rater"] = out["kind"].astype(str) + ":" + out["name"].astype(str)
    out["temperature"] = [float((d or {}).get("temperature", 0.0)) for d in out["decoding"]]
    return out[["rater", "temperature", "done", "begin", "end"]]


def response_styles(project: Project, known: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per response of the project: its style features (reports.metrics.style.STYLE_FEATURES),
    the covariates of the style-controlled leaderboard. Texts are read once, counted here.

    `known`: an earlier result for the project (a kept report state's): only responses above its
    largest id are read and counted, the rest kept (counting all 51,282 texts again cost 0.4 s of
    every absorbed page view at 1M annotations). A text edited since shows when the state is
    rebuilt, as every item and response edit does (reports.cache: TIMEOUT_SECONDS)."""
    from annotate.models import Response

    from .metrics.style import STYLE_FEATURES, markdown_counts

    rows = Response.objects.filter(item__project=project).values_list("id", "text").order_by()
    if known is not None and len(known):
        rows = rows.filter(id__gt=int(known["response"].max()))
    records = [{"response": pk, **markdown_counts(text or "")} for pk, text in rows.iterator(chunk_size=5_000)]
    counted = pd.DataFrame.from_records(records, columns=["response", *STYLE_FEATURES])
    if known is None or not len(known):
        return counted
    return pd.concat([known, counted], ignore_index=True) if len(counted) else known
