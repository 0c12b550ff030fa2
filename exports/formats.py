"""Row builders (record -> dict of one output line) and streaming writers.

Every writer consumes an iterator and writes as it goes: JSONL and CSV line by line, Parquet in
row groups of a fixed size, so memory is bounded by one item batch plus one row group.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Literal, cast

import pyarrow as pa
import pyarrow.parquet as pq

from annotate.verdicts import GoldSource, gold_label_from

from .aggregate import (
    Vote,
    aggregate_preferences,
    aggregate_scores,
    mean,
    score_agreement,
    verdict,
)
from .selectors import ANNOTATION_COLUMNS, ExportFilters, PairRecord, ResponseRecord

DpoSource = Literal["human", "judge", "agreement"]
DPO_SOURCES: tuple[DpoSource, ...] = ("human", "judge", "agreement")
ROW_GROUP = 10_000
CHUNK_BYTES = 1 << 16


# ---- rows ---------------------------------------------------------------------------------


def helpsteer2_rows(
    records: Iterable[ResponseRecord], attributes: list[str], filters: ExportFilters
) -> Iterator[tuple[dict, dict]]:
    """(main row, disagreements row) per rated response. Unrated responses are left out:
    training code expects an integer in every attribute."""
    for rec in records:
        if not rec.ratings:
            continue
        main: dict = {"split": rec.item.split, "prompt": rec.item.prompt, "response": rec.text}
        lists: dict = {"split": rec.item.split, "prompt": rec.item.prompt, "response": rec.text}
        agreement = 1.0
        counts: dict[str, int] = {}
        for name in attributes:
            values = [v for v, _ in rec.ratings.get(name, ())]
            agg = aggregate_scores(values)
            main[name] = agg.value
            lists[name] = values
            counts[f"{name}_n"] = agg.count
            agreement = min(agreement, score_agreement(values, agg.value))
        if agreement < filters.min_agreement:
            continue
        # n < 3 rows are kept, with each count beside the means (`<attribute>_n`) so a reader
        # can drop them; the published columns come first, in the published order.
        main.update(counts)
        lists["raters"] = sorted({r for pairs in rec.ratings.values() for _, r in pairs})
        yield main, lists


def helpsteer2_preference_rows(records: Iterable[PairRecord], filters: ExportFilters) -> Iterator[dict]:
    for rec in records:
        if not rec.votes:
            continue
        agg = aggregate_preferences(rec.votes)
        if agg.agreement < filters.min_agreement:
            continue
        yield {
            "split": rec.item.split,
            "prompt": rec.item.prompt,
            "response_1": rec.response_1,
            "response_2": rec.response_2,
            "preference_strength": agg.strength,
            "preference_statement": agg.statement,
            "preference_elaboration": agg.elaboration,
            "three_most_similar_preferences": agg.three_most_similar,
            "all_preferences_unprocessed": agg.all_unprocessed,
        }


def _human_gold(votes: list[Vote], adjudicated: int | None = None, source: str = "majority") -> tuple[str | None, float, float]:
    """(gold verdict, margin, agreement): margin is the mean |strength| of the human votes that
    side with gold, so "slightly better" majorities train with a small margin. With adjudicated
    gold the reviewer's verdict is gold (annotate.verdicts.gold_label_from) and its strength the
    margin where no human sided with it."""
    gold = gold_label_from([v.strength for v in votes], adjudicated, cast(GoldSource, source))
    if gold is None:
        return None, 0.0, 0.0
    siding = [abs(v.strength) for v in votes if verdict(v.strength) == gold]
    if not siding:
        return gold, float(abs(adjudicated or 0)), 0.0
    return gold, float(mean(siding)), len(siding) / len(votes)


def dpo_rows(
    records: Iterable[PairRecord], filters: ExportFilters, *, source: DpoSource, judge: str | None
) -> Iterator[dict]:
    """prompt/chosen/rejected strings (TRL's standard preference format) with margin and
    provenance. Tied verdicts carry no preference and are dropped."""
    for rec in records:
        humans = [v for v, k in zip(rec.votes, rec.kinds, strict=True) if k == "human"]
        judges = [v for v, k in zip(rec.votes, rec.kinds, strict=True) if k == "judge"]
        judge_vote = judges[0] if judges else None
        chosen_side: str | None
        if source == "judge":
            if judge_vote is None:
                continue
            chosen_side, margin, agreement = verdict(judge_vote.strength), float(abs(judge_vote.strength)), 1.0
        else:
            chosen_side, margin, agreement = _human_gold(humans, rec.adjudicated, filters.gold)
            if chosen_side is None:
                continue
            if source == "agreement" and (judge_vote is None or verdict(judge_vote.strength) != chosen_side):
                continue
        if chosen_side == "tie" or agreement < filters.min_agreement:
            continue
        chosen, rejected = (rec.response_1, rec.response_2) if chosen_side == "A" else (rec.response_2, rec.response_1)
        yield {
            "split": rec.item.split,
            "prompt": rec.item.prompt,
            "chosen": chosen,
            "rejected": rejected,
            "margin": margin,
            "provenance": {
                "source": source,
                "judge": judge_vote.rater if (judge_vote is not None and source != "human") else "",
                "human_votes": len(humans),
                "gold": filters.gold,
                "item_id": rec.item.external_id,
                "pair_id": rec.id,
                "chosen_model": rec.model_1 if chosen_side == "A" else rec.model_2,
                "rejected_model": rec.model_2 if chosen_side == "A" else rec.model_1,
            },
        }


# ---- schemas ------------------------------------------------------------------------------


def helpsteer2_schema(attributes: list[str]) -> pa.Schema:
    fields = [pa.field("split", pa.string()), pa.field("prompt", pa.string()), pa.field("response", pa.string())]
    fields += [pa.field(name, pa.int64()) for name in attributes]
    fields += [pa.field(f"{name}_n", pa.int64()) for name in attributes]
    return pa.schema(fields)


PREFERENCE_SCHEMA = pa.schema([
    ("split", pa.string()),
    ("prompt", pa.string()),
    ("response_1", pa.string()),
    ("response_2", pa.string()),
    ("preference_strength", pa.int64()),
    ("preference_statement", pa.string()),
    ("preference_elaboration", pa.string()),
    ("three_most_similar_preferences", pa.list_(pa.struct([
        ("statement", pa.string()), ("elaboration", pa.string()), ("strength", pa.int64()),
    ]))),
    ("all_preferences_unprocessed", pa.list_(pa.struct([
        ("strength", pa.int64()), ("justification", pa.string()),
    ]))),
])

ANNOTATION_SCHEMA = pa.schema([
    (name, pa.int64() if name in ("value", "strength", "time_on_task_ms") else pa.string())
    for name in ANNOTATION_COLUMNS
])


# ---- writers ------------------------------------------------------------------------------


def jsonl_line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(rows: Iterable[dict], fh: IO[str]) -> int:
    n = 0
    for row in rows:
        fh.write(jsonl_line(row))
        n += 1
    return n


def jsonl_chunks(rows: Iterable[dict], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Encoded lines gathered into ~64 KiB chunks: one socket write per line would be slow."""
    buf: list[bytes] = []
    size = 0
    for row in rows:
        line = jsonl_line(row).encode()
        buf.append(line)
        size += len(line)
        if size >= chunk_bytes:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)


# OWASP's CSV injection rule: a cell a spreadsheet would read as a formula gets a leading single
# quote (https://owasp.org/www-community/attacks/CSV_Injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: object) -> object:
    """A cell safe to open in a spreadsheet. Numbers stay numbers: a strength of -2 (an int, or
    text that is only a number) is read as the number -2, never run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _safe_row(row: dict) -> dict:
    return {key: csv_cell(value) for key, value in row.items()}


def csv_chunks(rows: Iterable[dict], columns: list[str], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    sink = io.StringIO()
    writer = csv.DictWriter(sink, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(_safe_row(row))
        if sink.tell() >= chunk_bytes:
            yield sink.getvalue().encode()
            sink.seek(0)
            sink.truncate()
    if sink.tell():
        yield sink.getvalue().encode()


def write_csv(rows: Iterable[dict], fh: IO[str], columns: list[str]) -> int:
    writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    n = 0
    for row in rows:
        writer.writerow(_safe_row(row))
        n += 1
    return n


class ParquetRowWriter:
    """Buffers rows and writes them as row groups of `row_group` rows through one ParquetWriter;
    the file is created on the first flush (or on close for an empty export)."""

    def __init__(self, path: Path, schema: pa.Schema, row_group: int = ROW_GROUP) -> None:
        self.path = path
        self.schema = schema
        self.row_group = row_group
        self.rows = 0
        self._buffer: list[dict] = []
        self._writer: pq.ParquetWriter | None = None

    def write(self, row: dict) -> None:
        self._buffer.append(row)
        self.rows += 1
        if len(self._buffer) >= self.row_group:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self.schema)
        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
            self._buffer = []

    def close(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> ParquetRowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SplitParquetWriters:
    """One ParquetRowWriter per split, opened when the split's first row arrives."""

    def __init__(self, folder: Path, schema: pa.Schema, drop: tuple[str, ...] = ("split",)) -> None:
        self.folder = folder
        self.schema = pa.schema([f for f in schema if f.name not in drop])
        self.drop = drop
        self.writers: dict[str, ParquetRowWriter] = {}

    def write(self, row: dict) -> None:
        split = row["split"]
        writer = self.writers.get(split)
        if writer is None:
            writer = self.writers[split] = ParquetRowWriter(self.folder / f"{split}.parquet", self.schema)
        writer.write({k: v for k, v in row.items() if k not in self.drop})

    def close(self) -> dict[str, int]:
        for writer in self.writers.values():
            writer.close()
        return {split: w.rows for split, w in self.writers.items()}


def counted(rows: Iterable[dict], on_row: Callable[[dict], None]) -> Iterator[dict]:
    for row in rows:
        on_row(row)
        yield row
