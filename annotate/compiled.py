"""Hot-path queries compiled once per process, not on every request.

Django builds and compiles a queryset to SQL on every evaluation: for the annotator queue's
fixed-shape queries (the claim's candidate, the open-claim check, the standing) that costs more
web CPU than PostgreSQL takes to answer them (0.5-2.5 ms a query, bench/annotate_load.py). Here a
query is built once per shape, from sentinel values standing for the per-request ones; its SQL
text, the positions of the sentinels among its parameters, and what turns a row into model
instances (the same steps as Django's ModelIterable) are kept, and each request only puts its
own values in those positions. The values are still bound parameters, never SQL text.

A shape whose sentinels do not all come out as parameters unchanged (a backend that adapts
them, a value Django inlines into the SQL) is not kept: it runs through the ORM every time, so
the result is the same either way, only the cost differs.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

_UNCACHEABLE = object()


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str], ...]  # (parameter position, value name)
    model: type[Model]
    model_slice: slice
    init_list: tuple[str, ...]
    populators: tuple[Any, ...]
    annotations: tuple[tuple[str, int], ...]
    converters: tuple[tuple[int, tuple[Callable, ...], Any], ...]


_cache: dict[tuple, _Compiled | object] = {}
_lock = threading.Lock()


def _sentinel(index: int, value: object) -> object:
    """A value of the same type as `value` that no real request carries."""
    if isinstance(value, bool):
        raise TypeError("a bool has no room for a sentinel")
    if isinstance(value, int):
        return -(7_000_000_000_000 + index)
    if isinstance(value, datetime):
        return datetime(1901, 2, 3, tzinfo=UTC) + timedelta(microseconds=index + 1)
    if isinstance(value, str):
        return f"\x00compiled-sentinel-{index}"
    if isinstance(value, uuid.UUID):
        return uuid.UUID(int=0xC0C0_0000_0000_0000_0000_0000_0000_0000 + index)
    raise TypeError(f"no sentinel for {type(value).__name__}")


def _compile(build: Callable[..., QuerySet], values: dict[str, object]) -> _Compiled | object:
    try:
        sentinels = {name: _sentinel(i, value) for i, (name, value) in enumerate(sorted(values.items()))}
    except TypeError:
        return _UNCACHEABLE
    try:
        qs = build(**sentinels)
        compiler = qs.query.get_compiler(using=qs.db)
        sql, params = compiler.as_sql()
    except (TypeError, ValueError):
        # A sentinel the query refuses (a negative slice bound): the ORM answers this shape
        # every time, and raises there if the real values are wrong too.
        return _UNCACHEABLE
    slots = []
    for position, param in enumerate(params):
        for name, sentinel in sentinels.items():
            if type(param) is type(sentinel) and param == sentinel:
                slots.append((position, name))
    if {name for _, name in slots} != set(sentinels):
        return _UNCACHEABLE  # a sentinel was adapted or inlined: the SQL text is not per shape
    klass_info, select = compiler.klass_info, compiler.select
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    converters = compiler.get_converters([s[0] for s in select[0 : compiler.col_count]])
    return _Compiled(
        sql=sql,
        params=tuple(params),
        slots=tuple(slots),
        model=klass_info["model"],
        model_slice=slice(start, end),
        init_list=tuple(f[0].target.attname for f in select[start:end]),
        populators=tuple(get_related_populators(klass_info, select, qs.db)),  # type: ignore[call-arg,unused-ignore]
        annotations=tuple((compiler.annotation_col_map or {}).items()),
        converters=tuple((pos, tuple(convs), expression) for pos, (convs, expression) in converters.items()),
    )


def _compiled_for(key: tuple, build: Callable[..., QuerySet], values: dict[str, object]) -> _Compiled | None:
    using = DEFAULT_DB_ALIAS
    full_key = (key, connections[using].vendor)
    found = _cache.get(full_key)
    if found is None:
        found = _compile(build, values)
        with _lock:
            _cache[full_key] = found
    return found if isinstance(found, _Compiled) else None


def _objects(compiled: _Compiled, values: dict[str, object], *, one: bool) -> list[Model]:
    using = DEFAULT_DB_ALIAS
    connection = connections[using]
    params = list(compiled.params)
    for position, name in compiled.slots:
        params[position] = values[name]
    with connection.cursor() as cursor:
        cursor.execute(compiled.sql, params)
        fetched = cursor.fetchmany(1) if one else cursor.fetchall()
    objects = []
    for fetched_row in fetched:
        row = list(fetched_row)
        for position, convs, expression in compiled.converters:
            value = row[position]
            for convert in convs:
                value = convert(value, expression, connection)
            row[position] = value
        obj = compiled.model.from_db(using, compiled.init_list, row[compiled.model_slice])
        for populator in compiled.populators:
            populator.populate(row, obj)
        for name, position in compiled.annotations:
            setattr(obj, name, row[position])
        objects.append(obj)
    return objects


def first(key: tuple, build: Callable[..., QuerySet], **values: object) -> Model | None:
    """`build(**values)`'s first object or None, as the ORM would load it (select_related, annotations).

    `key` names the query's shape: everything `build` reads besides `values` (the protocol, the
    overlap, ...). `build` must return a queryset already ordered and sliced to one row."""
    compiled = _compiled_for(key, build, values)
    if compiled is None:
        return next(iter(build(**values)), None)
    found = _objects(compiled, values, one=True)
    return found[0] if found else None


def many(key: tuple, build: Callable[..., QuerySet], **values: object) -> list[Model]:
    """`list(build(**values))`, as the ORM would load it; `key` as for `first`."""
    compiled = _compiled_for(key, build, values)
    if compiled is None:
        return list(build(**values))
    return _objects(compiled, values, one=False)
