"""gunicorn settings for the web process: `gunicorn -c config/gunicorn.py config.wsgi`.

The one place the server's shape is set; docker-compose.yml and bench/annotate_load.py both
start gunicorn with it, so the bench measures what is shipped. Command-line flags override it.

- gthread workers: a request waiting on PostgreSQL frees its thread for another, where a sync
  worker would sit idle; keep-alive connections from browsers and htmx are held by a thread
  pool instead of a whole process each.
- Workers default to the machine's cores (the GIL lets one process use one core), at least 2
  so a worker restart never leaves nobody serving; threads 8 per worker, enough for 50
  annotators at 1 s think time on 2 cores (bench/annotate_load.py).
- max_requests recycles a worker after so many requests (with jitter, so not all at once):
  a slow leak in a dependency cannot grow a worker past its memory budget (250 MB RSS).
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    # Unset and empty (docker compose's `${WEB_WORKERS:-}`) both mean the default.
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


bind = os.environ.get("WEB_BIND") or "0.0.0.0:8000"
worker_class = "gthread"
workers = _int("WEB_WORKERS", max(2, os.cpu_count() or 1))
threads = _int("WEB_THREADS", 8)
keepalive = 30
max_requests = _int("WEB_MAX_REQUESTS", 5000)
max_requests_jitter = max_requests // 10
# The web workers read no model weights; judges load theirs in Celery workers.
preload_app = False
