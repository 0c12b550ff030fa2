"""Django's database sessions, unchanged but for the lookup's cost.

Every signed-in page request reads its session: the query is compiled once per process
(annotate.compiled) instead of by the ORM on each request. Same table, same rows, same expiry
check, same behaviour on a missing or expired key: a drop-in for
django.contrib.sessions.backends.db (sessions it wrote stay valid, and the other way round)."""

from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.db.models import QuerySet
from django.utils import timezone

from annotate import compiled


def _session_query(session_key: str, now: object) -> QuerySet[Session]:
    return Session.objects.filter(session_key=session_key, expire_date__gt=now).order_by("pk")[:1]


class SessionStore(DatabaseSessionStore):
    def _get_session_from_db(self) -> Session | None:
        if self.model is not Session or not isinstance(self.session_key, str):
            return super()._get_session_from_db()  # type: ignore[misc]  # (the stubs lack it; Django 5.2 has it)
        session = compiled.first(("session",), _session_query, session_key=self.session_key, now=timezone.now())
        if session is None:
            self._session_key = None  # as Django's: a missing or expired key starts a new session
        return session  # type: ignore[return-value]
