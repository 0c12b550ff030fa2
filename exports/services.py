"""Export services: one entry point per way out (a file or folder on disk, a byte stream).

The management command, the export page's background job and the API all call these.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from annotate.errors import ValidationError
from annotate.models import Project

from .filenames import export_stem
from .formats import (
    ANNOTATION_SCHEMA,
    DPO_SOURCES,
    PREFERENCE_SCHEMA,
    DpoSource,
    ParquetRowWriter,
    SplitParquetWriters,
    csv_chunks,
    dpo_rows,
    helpsteer2_preference_rows,
    helpsteer2_rows,
    helpsteer2_schema,
    jsonl_chunks,
    jsonl_line,
    write_jsonl,
)
from .selectors import (
    ANNOTATION_COLUMNS,
    ExportFilters,
    RaterGroup,
    annotation_rows,
    attribute_names,
    item_count,
    pair_records,
    response_records,
)

FORMATS: tuple[str, ...] = ("helpsteer2", "helpsteer2-preference", "dpo", "annotations", "parquet")
# Progress callback: (items done, items to do) over all passes of the export.
Progress = Callable[[int, int], None]


@dataclass
class ExportOptions:
    format: str
    filters: ExportFilters = field(default_factory=ExportFilters)
    dpo_source: DpoSource = "human"
    licence: str = "other"


@dataclass
class ExportResult:
    format: str
    files: list[Path]
    rows: dict[str, int]  # file name -> rows written


def export_options_validate(*, options: ExportOptions) -> ExportOptions:
    """Reject what cannot be exported before any file is opened."""
    if options.format not in FORMATS:
        raise ValidationError(f"Unknown format {options.format!r}; choose one of {', '.join(FORMATS)}.", field="format")
    f = options.filters
    if not 0.0 <= f.min_agreement <= 1.0:
        raise ValidationError("Minimum agreement must lie between 0 and 1.", field="min_agreement")
    if options.format == "dpo":
        if options.dpo_source not in DPO_SOURCES:
            raise ValidationError(f"DPO source must be one of {', '.join(DPO_SOURCES)}.", field="dpo_source")
        if options.dpo_source != "human" and not f.judge:
            raise ValidationError(f"DPO source {options.dpo_source!r} needs a judge name.", field="judge")
        # DPO picks its raters from its source, whatever the rater group says.
        group: RaterGroup = "humans" if options.dpo_source == "human" else "both"
        options = dataclasses.replace(options, filters=dataclasses.replace(f, rater_group=group))
    return options


def _passes(options: ExportOptions) -> int:
    return 2 if options.format == "parquet" else 1


def _progress_for_pass(progress: Progress | None, total: int, index: int, passes: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda done: progress(index * total + done, passes * total)


def output_paths(*, fmt: str, out: Path) -> list[Path]:
    """The files (or, for parquet, the folder) an export to `out` writes."""
    if fmt == "helpsteer2":
        return [out, out.with_name(out.stem + ".disagreements" + (out.suffix or ".jsonl"))]
    if fmt == "annotations":
        return [out.with_suffix(".csv"), out.with_suffix(".parquet")]
    return [out]


def export_write(
    *, project: Project, options: ExportOptions, out: Path, progress: Progress | None = None
) -> ExportResult:
    """Write one export to disk. `out` is a file for the JSONL formats (helpsteer2 adds a
    `.disagreements.jsonl` beside it), a base name for annotations (.csv and .parquet) and a
    folder for parquet."""
    options = export_options_validate(options=options)
    total = item_count(project, options.filters)
    passes = _passes(options)
    if progress is not None:
        progress(0, passes * total)
    tick = _progress_for_pass(progress, total, 0, passes)
    filters = options.filters
    fmt = options.format
    if fmt == "parquet":
        return _write_parquet_folder(project=project, options=options, folder=out, progress=progress, total=total)
    paths = output_paths(fmt=fmt, out=out)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    if fmt == "helpsteer2":
        attributes = attribute_names(project)
        main_path, lists_path = paths
        n = 0
        with main_path.open("w", encoding="utf-8") as main, lists_path.open("w", encoding="utf-8") as lists:
            records = response_records(project, filters, on_progress=tick)
            for main_row, lists_row in helpsteer2_rows(records, attributes, filters):
                main.write(jsonl_line(main_row))
                lists.write(jsonl_line(lists_row))
                n += 1
        rows = {main_path.name: n, lists_path.name: n}
    elif fmt in ("helpsteer2-preference", "dpo"):
        with paths[0].open("w", encoding="utf-8") as fh:
            n = write_jsonl(_row_iter(project=project, options=options, progress=tick), fh)
        rows = {paths[0].name: n}
    elif fmt == "annotations":
        csv_path, parquet_path = paths
        n = 0
        with csv_path.open("w", encoding="utf-8", newline="") as fh, ParquetRowWriter(parquet_path, ANNOTATION_SCHEMA) as pw:
            writer = csv.DictWriter(fh, fieldnames=ANNOTATION_COLUMNS)
            writer.writeheader()
            for row in annotation_rows(project, filters, on_progress=tick):
                writer.writerow(row)
                pw.write(row)
                n += 1
        rows = {csv_path.name: n, parquet_path.name: n}
    return ExportResult(format=fmt, files=paths, rows=rows)


def _row_iter(*, project: Project, options: ExportOptions, progress: Callable[[int], None] | None, part: str = "main") -> Iterator[dict]:
    filters = options.filters
    fmt = options.format
    if fmt == "helpsteer2":
        attributes = attribute_names(project)
        pick = 0 if part == "main" else 1
        for both in helpsteer2_rows(response_records(project, filters, on_progress=progress), attributes, filters):
            yield both[pick]
    elif fmt == "helpsteer2-preference":
        yield from helpsteer2_preference_rows(pair_records(project, filters, on_progress=progress), filters)
    elif fmt == "dpo":
        yield from dpo_rows(
            pair_records(project, filters, on_progress=progress), filters,
            source=options.dpo_source, judge=filters.judge,
        )
    elif fmt == "annotations":
        yield from annotation_rows(project, filters, on_progress=progress)
    else:
        raise ValidationError(f"Format {fmt!r} cannot be streamed as lines.", field="format")


@dataclass(frozen=True)
class ExportStream:
    filename: str
    content_type: str
    chunks: Iterator[bytes]


def export_stream(*, project: Project, options: ExportOptions, part: str = "main") -> ExportStream:
    """The export as a byte stream for a download: JSONL for the aggregated formats (part
    'disagreements' gives helpsteer2's lists), CSV for annotations. Nothing is buffered beyond
    one item batch and one 64 KiB chunk."""
    options = export_options_validate(options=options)
    fmt = options.format
    slug = export_stem(project.name, fmt)
    if fmt == "annotations":
        rows = _row_iter(project=project, options=options, progress=None)
        return ExportStream(f"{slug}.csv", "text/csv; charset=utf-8", csv_chunks(rows, ANNOTATION_COLUMNS))
    if fmt == "parquet":
        raise ValidationError("The parquet folder is not a single stream; use the export page or command.", field="format")
    suffix = ".disagreements.jsonl" if (fmt == "helpsteer2" and part == "disagreements") else ".jsonl"
    chunks = jsonl_chunks(_row_iter(project=project, options=options, progress=None, part=part))
    return ExportStream(f"{slug}{suffix}", "application/jsonl; charset=utf-8", chunks)


# ---- parquet folder with dataset card --------------------------------------------------------


def _write_parquet_folder(
    *, project: Project, options: ExportOptions, folder: Path, progress: Progress | None, total: int
) -> ExportResult:
    folder.mkdir(parents=True, exist_ok=True)
    filters = options.filters
    attributes = attribute_names(project)
    ratings = SplitParquetWriters(folder / "ratings", helpsteer2_schema(attributes))
    try:
        records = response_records(project, filters, on_progress=_progress_for_pass(progress, total, 0, 2))
        for main_row, _ in helpsteer2_rows(records, attributes, filters):
            ratings.write(main_row)
    finally:
        rating_counts = ratings.close()
    preferences = SplitParquetWriters(folder / "preferences", PREFERENCE_SCHEMA)
    try:
        pairs = pair_records(project, filters, on_progress=_progress_for_pass(progress, total, 1, 2))
        for row in helpsteer2_preference_rows(pairs, filters):
            preferences.write(row)
    finally:
        preference_counts = preferences.close()
    card = folder / "README.md"
    card.write_text(
        dataset_card(
            project=project, options=options, attributes=attributes,
            rating_counts=rating_counts, preference_counts=preference_counts,
        ),
        encoding="utf-8",
    )
    files = [card]
    rows: dict[str, int] = {}
    for config, counts in (("ratings", rating_counts), ("preferences", preference_counts)):
        for split, n in counts.items():
            path = folder / config / f"{split}.parquet"
            files.append(path)
            rows[f"{config}/{split}.parquet"] = n
    return ExportResult(format="parquet", files=files, rows=rows)


def dataset_card(
    *, project: Project, options: ExportOptions, attributes: list[str],
    rating_counts: dict[str, int], preference_counts: dict[str, int],
) -> str:
    """A Hugging Face dataset card: YAML front matter (licence, configs so that
    load_dataset(folder, config) finds the files) and the schema, counts and aggregation."""
    f = options.filters
    lines = ["---", f"license: {options.licence}", "configs:"]
    for config, counts in (("ratings", rating_counts), ("preferences", preference_counts)):
        if not counts:
            continue
        lines += [f"- config_name: {config}", "  data_files:"]
        for split in counts:
            lines += [f"  - split: {split}", f"    path: {config}/{split}.parquet"]
    lines += ["---", "", f"# {project.name}: Concordance export", ""]
    lines += [
        f"Exported {datetime.now(UTC).isoformat(timespec='seconds')} from Concordance project "
        f"`{project.name}`. Licence: `{options.licence}`.",
        "",
        "## Counts",
        "",
        "| config | split | rows |",
        "|---|---|---|",
    ]
    for config, counts in (("ratings", rating_counts), ("preferences", preference_counts)):
        for split, n in counts.items():
            lines.append(f"| {config} | {split} | {n} |")
    lines += [
        "",
        "## Schema",
        "",
        "`ratings/<split>.parquet` (HelpSteer2 layout, one row per rated response):",
        "",
        "- `prompt` (string), `response` (string)",
    ]
    lines += [f"- `{name}` (int64): aggregated score" for name in attributes]
    lines += [
        "- `<attribute>_n` (int64): ratings behind each score (fewer than 3: mean of those present)",
        "",
        "`preferences/<split>.parquet` (HelpSteer2-Preference layout, one row per pair):",
        "",
        "- `prompt`, `response_1`, `response_2` (string)",
        "- `preference_strength` (int64): -3 = response_1 much better ... 0 = about the same ... "
        "3 = response_2 much better",
        "- `preference_statement`, `preference_elaboration` (string): first sentence and rest of "
        "the justification of the annotator closest to the mean strength",
        "- `three_most_similar_preferences` (list of {statement, elaboration, strength})",
        "- `all_preferences_unprocessed` (list of {strength, justification}): every annotation",
        "",
        "## How it was aggregated",
        "",
        "- Ratings: for each response and attribute with n >= 3 ratings, the 3 with the smallest "
        "range (ties: the earliest three); their mean rounded half up (2.5 -> 3). With n < 3, "
        "the mean of those present, rounded half up.",
        "- Preferences: the mean of the 3 most similar strengths by the same rule, rounded half "
        "away from zero (so swapping the responses negates the strength). A judge that judged "
        "both shown orders counts once: its verdict if both orders agree, else a tie.",
        "",
        "## Filters",
        "",
        f"- rater group: {f.rater_group}" + (f" (judge {f.judge})" if f.judge else ""),
        f"- minimum agreement: {f.min_agreement:g} (preferences: share of votes with the exported "
        "verdict; ratings: lowest share, over attributes, of ratings within 1 of the export)",
        f"- gold items excluded: {'yes' if f.exclude_gold else 'no'}; attention items excluded: "
        f"{'yes' if f.exclude_attention else 'no'}",
        "- splits: " + ", ".join(f"{name} {share:g}" for name, share in f.splits)
        + f" (seed {f.seed}; by item, so a prompt never straddles splits)",
        "",
    ]
    return "\n".join(lines)
