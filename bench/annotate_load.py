"""Load on the annotator queue: N concurrent annotators against gunicorn + PostgreSQL, on the
REST queue and on the htmx pages the browser uses, one path after the other.

    python bench/annotate_load.py [--annotators 50] [--seconds 25] [--think-ms 1000] [--paths rest,page]

Creates its own database (`concordance_bench_load`, or $BENCH_DB; dropped and re-made each run)
on the PostgreSQL at $BENCH_PG (default postgres://postgres@127.0.0.1:5432), migrates it, makes
two projects of the same shape (one per path) with users, API tokens and signed-in sessions, and
starts gunicorn on a free port with the shipped settings (config/gunicorn.py: gthread,
`--workers` x `--threads`, database connections kept `--conn-max-age` s, as docker-compose.yml).

- REST path: each annotator is a thread with its own keep-alive connection: POST
  /api/projects/P/queue/next/, think, POST /api/queue/submit/, think.
- Page path (PageAnnotator): GET /projects/P/annotate/ (the full task page: layout,
  guidelines, the #task partial), then for each task htmx's POST of the task form to
  .../annotate/submit/ with HX-Request, HX-Target, HX-Current-URL and X-CSRFToken headers and
  the session and CSRF cookies; its answer is the next task's partial (one request stores the
  submit and serves the next task). `--reload-rate` of the tasks end with a full reload (GET).
  Static files are hashed and cached by the browser (WhiteNoise), so not requested per task.

Both: a few submits are replayed on purpose (a double click), which must store nothing new.
Each annotator thinks `--think-ms` (uniform 0.5x-1.5x) between requests, 1 s by default: a
task every ~2 s per annotator, where a person takes 10-60 s, so the load is well above what 50
people make. Lower it (250, 0) for a stress or saturation run (throughput, not latency).
Server threads are warmed up untimed first, and annotators arrive within one think time.
Logins are made untimed before the clock (a session as the login page leaves it): a person
logs in once, not once per task.

Where the time goes: the load generator is this process, on the same machine as gunicorn and
PostgreSQL. Each phase prints the CPU seconds of the load generator, the web workers, the bench
database's PostgreSQL backends and everything else on the machine (other sessions), per
request; the load generator costs about 1 ms of CPU per request, some 3-5% of what the server
spends, so it does not decide the figures; what else runs on the machine does (load average at
start and end, `other_cpu_s`). The largest web worker's RSS is sampled every 0.25 s, and
whether a web worker has libtorch mapped is checked at the end.

Afterwards the database is checked per project: every acknowledged submit must have its rows
(lost), no task or submit may have more rows than it should (duplicated), and no task may have
more done annotations than the overlap (overlap_exceeded). On the run's own data the claim's
candidate query is timed as it was (plain OR, walk from the table's first task) and as it is,
and markdown afresh against the render cache. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DB_NAME = os.environ.get("BENCH_DB", "concordance_bench_load")
ATTRIBUTES = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=25.0, help="each path: stop claiming after this long")
    parser.add_argument("--paths", default="rest,page", help="which paths to load, one after the other: rest, page or both")
    parser.add_argument("--reload-rate", type=float, default=0.1, help="page path: share of tasks after which the page is reloaded (a full GET)")
    parser.add_argument("--think-ms", type=float, default=1000.0)
    parser.add_argument("--items", type=int, default=400, help="items of 3 responses and 3 pairs each")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", 2)), help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 8)), help="threads per gunicorn worker")
    parser.add_argument("--replay-rate", type=float, default=0.05)
    parser.add_argument("--conn-max-age", type=int, default=60,
                        help="seconds the server keeps a database connection (docker-compose.yml: 60; 0 = one per request)")
    return parser.parse_args()


def pg_url(db: str) -> str:
    return f"{os.environ.get('BENCH_PG', 'postgres://postgres@127.0.0.1:5432').rstrip('/')}/{db}"


def recreate_database(db: str = DB_NAME) -> None:
    import psycopg

    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')


def prepare_database(db: str = DB_NAME) -> None:
    """A fresh, migrated database and the static manifest (DEBUG is off, as in production)."""
    recreate_database(db)
    migrate = subprocess.run([str(VENV_BIN / "python"), "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=django_env(db))
    if migrate.returncode:
        raise SystemExit("migrate failed")
    # DEBUG is off, as in production: pages need the hashed static manifest.
    subprocess.run([str(VENV_BIN / "python"), "manage.py", "collectstatic", "--noinput", "-v", "0"],
                   cwd=ROOT, env=django_env(db), check=True)


def django_env(db: str = DB_NAME) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": pg_url(db),
            "DATABASE_CONN_MAX_AGE": "60",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_LOG_LEVEL": "WARNING",
            "CONCORDANCE_VAR_DIR": f"/tmp/{db}",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
    )
    return env


# A response as models write them: paragraphs, a list, a fenced code block and a table, 1-3 KB
# in all (k = 0, 1, 2 repeats), so the page path's markdown and sanitising cost what they do on
# real data. The REST path sends the same text unrendered.
RESPONSE_TEXT = (
    "Recursion is when a function calls itself, each call working on a **smaller** part of the "
    "problem until it reaches a *base case* that needs no further call.\n\n"
    "1. Name the base case.\n2. Make every other case smaller.\n3. Trust the smaller call.\n\n"
    "```python\ndef f(n):\n    return 1 if n < 2 else n * f(n - 1)\n```\n\n"
    "| n | f(n) |\n|---|---|\n| 1 | 1 |\n| 5 | 120 |\n\n"
    "See [the tutorial](https://docs.python.org/3/tutorial/controlflow.html) for more.\n\n"
)
GUIDELINES = (
    "# How to rate\n\nRead the prompt, then the response. **Helpfulness** is how well it answers; "
    "**correctness** whether what it says is true.\n\n- Ignore formatting unless it hides content.\n"
    "- A short right answer beats a long wrong one.\n"
) * 4


def _fill_project(project, args: argparse.Namespace) -> None:
    """Items of 3 responses and their 3 pairs, written in bulk; every 25th item is gold."""
    from annotate.models import Item, Pair, Response

    items = Item.objects.bulk_create(
        [
            Item(project=project, external_id=f"i{n}", prompt=f"Question {n}: explain **recursion** briefly.",
                 role=Item.Role.GOLD if n % 25 == 0 else Item.Role.TASK)
            for n in range(args.items)
        ]
    )
    responses = Response.objects.bulk_create(
        [
            Response(item=item, external_id=f"r{k}", text=f"Answer {item.external_id}/{k}. " + RESPONSE_TEXT * (k + 1),
                     model=f"model-{k}", gold_ratings={"helpfulness": 3} if item.role == Item.Role.GOLD else None)
            for item in items
            for k in range(3)
        ]
    )
    by_item: dict[int, list] = defaultdict(list)
    for response in responses:
        by_item[response.item_id].append(response)
    Pair.objects.bulk_create(
        [
            Pair(item_id=item_id, response_a=rs[i], response_b=rs[j],
                 gold_strength=-2 if rs[i].gold_ratings else None)
            for item_id, rs in by_item.items()
            for i in range(3)
            for j in range(i + 1, 3)
        ]
    )


def _django(db: str) -> None:
    os.environ.update(django_env(db))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _analyze() -> None:
    from django.db import connection, connections

    with connection.cursor() as cursor:
        # Fresh statistics after the bulk load, as autovacuum would have them on a live system.
        cursor.execute("ANALYZE")
    connections.close_all()


def setup_data(args: argparse.Namespace, db: str = DB_NAME) -> tuple[int, dict[str, str]]:
    """Project, items and annotators with API tokens, written in bulk (the REST path)."""
    _django(db)
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from annotate.roles import user_set_role
    from annotate.services import project_create

    project = project_create(name="Load bench", overlap=args.overlap, gold_rate=0.05, guidelines=GUIDELINES)
    _fill_project(project, args)
    User = get_user_model()
    tokens: dict[str, str] = {}
    for n in range(args.annotators):
        user = User.objects.create_user(username=f"load{n}", password=None)
        user_set_role(user=user, role="annotator")
        project.members.add(user)
        tokens[user.username] = Token.objects.create(user=user).key
    _analyze()
    return project.pk, tokens


def _session_for(user) -> str:
    """A signed-in session as the login page leaves it (what `Client.force_login` writes): the
    login itself (a PBKDF2 hash, ~0.3 s of CPU) happens once per person, not once per task, so
    it is done here, untimed, instead of 50 times at the start of the clock."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None
    return session.session_key


def setup_page_data(args: argparse.Namespace, db: str = DB_NAME) -> tuple[int, dict[str, str], str]:
    """A second project of the same shape for the page path, the same annotators as members,
    each with a signed-in session; and a session for the untimed warm-up user."""
    from django.contrib.auth import get_user_model

    from annotate.roles import user_set_role
    from annotate.services import project_create

    project = project_create(name="Load bench (pages)", overlap=args.overlap, gold_rate=0.05, guidelines=GUIDELINES)
    _fill_project(project, args)
    User = get_user_model()
    sessions: dict[str, str] = {}
    for user in User.objects.filter(username__startswith="load").order_by("pk"):
        project.members.add(user)
        sessions[user.username] = _session_for(user)
    warm = User.objects.create_user(username="warmup", password=None)
    user_set_role(user=warm, role="annotator")
    project.members.add(warm)
    warm_session = _session_for(warm)
    _analyze()
    return project.pk, sessions, warm_session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(args: argparse.Namespace, port: int, db: str = DB_NAME) -> subprocess.Popen:
    # The shipped server settings (config/gunicorn.py, as docker-compose.yml starts it), with the
    # bench's port and worker shape on the command line.
    cmd = [
        str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "config" / "gunicorn.py"), "config.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--threads", str(args.threads),
        "--log-level", "warning",
    ]
    env = django_env(db)
    env["DATABASE_CONN_MAX_AGE"] = str(getattr(args, "conn_max_age", 60))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start within 30 s")


class Annotator(threading.Thread):
    def __init__(self, *, name: str, token: str, port: int, project_id: int, args: argparse.Namespace,
                 stop_at: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.token, self.port, self.project_id, self.args, self.stop_at = token, port, project_id, args, stop_at
        self.rng = random.Random(seed)
        self.name = name
        self.latencies: dict[str, list[float]] = {"next": [], "submit": []}
        self.acknowledged: list[tuple[str, int | None, str]] = []  # (protocol, rating-response id, view key)
        self.errors: Counter = Counter()
        self.replays_stored = 0
        self.timeline: list[tuple[float, str, float]] = []
        self.conn: http.client.HTTPConnection | None = None

    def send(self, kind: str, method: str, path: str, body: str | None,
             headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
        """One request on the kept connection, retried once on a new one (a worker recycled by
        gunicorn's max_requests closes it); timed under `kind` unless kind is empty (a replay)."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            started = time.perf_counter()
            try:
                self.conn.request(method, path, body, headers)
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.connection_error(kind or "replay", exc)
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue
            if kind:
                ms = (time.perf_counter() - started) * 1000
                self.latencies[kind].append(ms)
                self.timeline.append((started, kind, ms))
            return response, data
        raise RuntimeError("unreachable")

    def call(self, kind: str, path: str, body: dict) -> tuple[int, dict]:
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        response, data = self.send(kind, "POST", path, json.dumps(body), headers)
        return response.status, (json.loads(data) if data else {})

    def connection_error(self, kind: str, exc: Exception) -> None:
        """Called on every failed attempt (the first is retried once on a new connection); a hook
        for subclasses, nothing here."""

    def think(self) -> None:
        if self.args.think_ms > 0:
            time.sleep(self.args.think_ms * self.rng.uniform(0.5, 1.5) / 1000)

    def run(self) -> None:
        try:
            # People do not all press "start" in the same millisecond: arrive within one think time.
            time.sleep(self.rng.uniform(0, self.args.think_ms) / 1000)
            while time.time() < self.stop_at:
                status, body = self.call("next", f"/api/projects/{self.project_id}/queue/next/", {})
                if status != 200:
                    self.errors[f"next {status}"] += 1
                    continue
                task = body["task"]
                if task is None:
                    break
                self.think()
                if task["protocol"] == "rating":
                    submit = {"view_key": task["view_key"], "values": {a: self.rng.randint(0, 4) for a in ATTRIBUTES}}
                    rid = task["response"]["id"]
                else:
                    submit = {"view_key": task["view_key"], "shown_strength": self.rng.randint(-2, 2)}
                    rid = None
                status, body = self.call("submit", "/api/queue/submit/", submit)
                if status == 201:
                    self.acknowledged.append((task["protocol"], rid, task["view_key"]))
                else:
                    self.errors[f"submit {status}"] += 1
                if self.rng.random() < self.args.replay_rate:
                    status, body = self.call("", "/api/queue/submit/", submit)
                    if status != 200 or not body.get("duplicate"):
                        self.replays_stored += 1
                self.think()
        except Exception as exc:  # counted, never hidden
            self.errors[type(exc).__name__] += 1
        finally:
            if self.conn is not None:
                self.conn.close()


VIEW_KEY = re.compile(r'<section id="task"[^>]*data-view-key="([^"]*)"[^>]*data-protocol="([^"]*)"')
CSRF_IN_PAGE = re.compile(r'"X-CSRFToken": "([^"]+)"')


class PageAnnotator(Annotator):
    """The htmx page path, as the browser requests it.

    Opening the project's task page is a full GET of /projects/P/annotate/ (base layout,
    guidelines, the #task partial); it sets the csrftoken cookie, and the page carries the
    token in `hx-headers` on <body>. Each submit is htmx's POST of the task form to
    .../annotate/submit/ with `HX-Request: true`, `HX-Target: task`, `HX-Current-URL` and the
    `X-CSRFToken` header, form-encoded, the session and CSRF cookies beside it; the answer is
    the next task's #task partial, swapped in place (one request stores the submit and serves
    the next task, so "submit" here includes the next claim and render). Now and then
    (`--reload-rate`) the annotator reloads the page or opens it in a new tab: a full GET again,
    timed as "next". Static files are hashed and cached by the browser for a year (WhiteNoise),
    so they are not requested per task."""

    def __init__(self, *, session: str, **kwargs) -> None:
        super().__init__(token="", **kwargs)
        self.cookies = {"sessionid": session}
        self.csrf = ""
        self.page_url = f"/projects/{self.project_id}/annotate/"

    def page(self, kind: str, method: str, path: str, form: dict | None = None, htmx: bool = False) -> tuple[int, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), "Host": f"127.0.0.1:{self.port}",
                   "Accept": "text/html"}
        body = None
        if htmx:
            headers.update({"HX-Request": "true", "HX-Target": "task", "HX-Current-URL": f"http://127.0.0.1:{self.port}{self.page_url}",
                            "X-CSRFToken": self.csrf})
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        response, data = self.send(kind, method, path, body, headers)
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, data.decode("utf-8", "replace")

    def open_page(self) -> tuple[str, str] | None:
        status, html = self.page("next", "GET", self.page_url)
        if status != 200:
            self.errors[f"page {status}"] += 1
            return None
        token = CSRF_IN_PAGE.search(html)
        if token:
            self.csrf = token.group(1)
        return self.task_of(html)

    def task_of(self, html: str) -> tuple[str, str] | None:
        found = VIEW_KEY.search(html)
        if found is None or not found.group(1):
            return None  # the done state
        return found.group(1), found.group(2)

    def form_for(self, view_key: str, protocol: str) -> dict:
        form = {"view_key": view_key, "protocol": protocol,
                "time_on_task_ms": str(int(self.args.think_ms))}
        if protocol == "rating":
            form.update({f"attr-{a}": str(self.rng.randint(0, 4)) for a in ATTRIBUTES})
        else:
            form.update({"shown_strength": str(self.rng.randint(-2, 2)), "justification": "A answers the question; B wanders."})
        return form

    def run(self) -> None:
        submit_path = f"/projects/{self.project_id}/annotate/submit/"
        try:
            time.sleep(self.rng.uniform(0, self.args.think_ms) / 1000)
            task = self.open_page()
            while task is not None and time.time() < self.stop_at:
                view_key, protocol = task
                self.think()
                form = self.form_for(view_key, protocol)
                status, html = self.page("submit", "POST", submit_path, form, htmx=True)
                if status == 200 and "Saved." in html:
                    self.acknowledged.append((protocol, None, view_key))
                else:
                    self.errors[f"submit {status}"] += 1
                if self.rng.random() < self.args.replay_rate:
                    status, replay = self.page("", "POST", submit_path, form, htmx=True)
                    if status != 200 or "already saved" not in replay:
                        self.replays_stored += 1
                    html = replay  # the page now shows what the replay answered
                self.think()
                if self.rng.random() < self.args.reload_rate:
                    task = self.open_page()
                else:
                    task = self.task_of(html)
        except Exception as exc:  # counted, never hidden
            self.errors[type(exc).__name__] += 1
        finally:
            if self.conn is not None:
                self.conn.close()


def warm_up(port: int, project_id: int, requests: int) -> None:
    """Untimed requests through every server thread first: imports, URL resolver and one
    persistent database connection per thread are set up before the clock starts."""

    def hit() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):
            conn.request("POST", f"/api/projects/{project_id}/queue/next/", "{}",
                         {"Authorization": "Token warmup-none", "Content-Type": "application/json"})
            conn.getresponse().read()
        conn.close()

    threads = [threading.Thread(target=hit) for _ in range(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def verify(project_id: int, annotators: list[Annotator], overlap: int) -> dict[str, int]:
    """Compare what the server acknowledged with what the database holds."""
    from django.db.models import Count

    from annotate.models import Assignment, Preference, Rating

    done = Assignment.objects.filter(project_id=project_id, status="done")
    done_keys = set(str(k) for k in done.values_list("view_key", flat=True))
    acknowledged = [ack for a in annotators for ack in a.acknowledged]
    lost = sum(1 for _, _, key in acknowledged if key not in done_keys)
    ratings = Rating.objects.filter(response__item__project_id=project_id).count()
    preferences = Preference.objects.filter(pair__item__project_id=project_id).count()
    ack_ratings = sum(1 for p, _, _ in acknowledged if p == "rating")
    ack_rankings = len(acknowledged) - ack_ratings
    # Rows beyond one annotation per acknowledged submit, plus replays that were stored again.
    duplicated = max(0, ratings - ack_ratings * len(ATTRIBUTES)) + max(0, preferences - ack_rankings)
    duplicated += sum(a.replays_stored for a in annotators)
    lost += max(0, ack_ratings * len(ATTRIBUTES) - ratings) // len(ATTRIBUTES) + max(0, ack_rankings - preferences)
    over = 0
    regular = done.filter(**{"response__item__role": "task"}) | done.filter(**{"pair__item__role": "task"})
    for field in ("response", "pair"):
        over += (
            regular.exclude(**{f"{field}__isnull": True}).values(field).annotate(n=Count("pk")).filter(n__gt=overlap).count()
        )
    return {"lost": lost, "duplicated": duplicated, "overlap_exceeded": over, "done_in_db": len(done_keys)}


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all processes, every core), from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def _pg_backends(db: str) -> list[int]:
    import psycopg

    with psycopg.connect(pg_url("postgres"), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (db,)).fetchall()
    return [int(r[0]) for r in rows]


class Monitor(threading.Thread):
    """Samples the gunicorn workers' RSS every 0.25 s while a phase runs, and takes CPU times of
    the load generator (this process), the web workers, the bench database's PostgreSQL
    backends and the whole machine at the start and the end: on 2 shared cores the client is
    not free, and what the others on the machine used shows in `other`."""

    def __init__(self, master_pid: int, db: str) -> None:
        super().__init__(daemon=True)
        self.master_pid, self.db = master_pid, db
        self.stop_event = threading.Event()
        self.rss_max: dict[int, float] = {}
        # Last CPU seen per process: a database connection is recycled after CONN_MAX_AGE and
        # a worker may be restarted, and what a gone process used must still be counted.
        self.seen: dict[str, dict[int, float]] = {"web": {}, "db": {}}
        self.lock = threading.Lock()

    def sample(self) -> None:
        web = {p: _cpu_s(p) for p in [self.master_pid, *_children(self.master_pid)]}
        db = {p: _cpu_s(p) for p in _pg_backends(self.db)}
        with self.lock:
            for kind, now in (("web", web), ("db", db)):
                for pid, cpu in now.items():
                    if cpu > 0:
                        self.seen[kind][pid] = cpu

    def cpu(self) -> dict[str, dict[int, float] | float]:
        self.sample()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with self.lock:
            return {"client": usage.ru_utime + usage.ru_stime, "machine": _machine_busy_s(),
                    "web": dict(self.seen["web"]), "db": dict(self.seen["db"])}

    @staticmethod
    def used(before: dict, after: dict) -> dict[str, float]:
        """CPU seconds between two `cpu()` readings; a process that started in between from 0."""
        out = {k: after[k] - before[k] for k in ("client", "machine")}
        for k in ("web", "db"):
            out[k] = sum(cpu - before[k].get(pid, 0.0) for pid, cpu in after[k].items())
        return out

    def run(self) -> None:
        ticks = 0
        while not self.stop_event.wait(0.25):
            for pid in _children(self.master_pid):
                self.rss_max[pid] = max(self.rss_max.get(pid, 0.0), _rss_mb(pid))
            ticks += 1
            if ticks % 4 == 0:
                try:
                    self.sample()
                except Exception:  # noqa: BLE001 -- a missed sample only loses precision
                    pass

    def check_torch(self) -> bool:
        """Whether any web worker has torch's shared library mapped (it is, once imported)."""
        for pid in _children(self.master_pid):
            try:
                with open(f"/proc/{pid}/maps") as f:
                    if "libtorch" in f.read():
                        return True
            except OSError:
                pass
        return False


def warm_up_pages(port: int, project_id: int, session: str, requests: int) -> None:
    """Untimed page requests through every server thread (templates compiled, one database
    connection per thread), as the warm-up user: it claims one task of the page project."""

    def hit() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for htmx in (False, True, True):
            headers = {"Cookie": f"sessionid={session}"}
            if htmx:
                headers["HX-Request"] = "true"
            conn.request("GET", f"/projects/{project_id}/annotate/", headers=headers)
            conn.getresponse().read()
        conn.close()

    threads = [threading.Thread(target=hit) for _ in range(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def naive_comparison(project_id: int) -> dict[str, float]:
    """Against the naive way, on the database the run just filled: the claim's candidate query
    with the live-claim test written as a plain OR (as it was) vs as one index probe
    (annotate/queue.py live_assignments_q), EXPLAIN ANALYZE'd as the last annotator would send
    it; and markdown rendered afresh vs through the render cache."""
    from django.db import connection, transaction
    from django.db.models import Q
    from django.utils import timezone

    from annotate import queue
    from annotate.markdown import render_markdown
    from annotate.models import Project, Rater, Response

    project = Project.objects.get(pk=project_id)
    rater = Rater.objects.filter(user__username="load0").first()
    assert rater is not None

    def execution_ms() -> float:
        now = timezone.now()
        times = []
        for protocol in ("rating", "ranking"):
            with transaction.atomic(), connection.cursor() as cursor:
                qs = queue._candidates(project=project, rater=rater, protocol=protocol, role="task", now=now, items=None)
                sql, params = qs.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[:1].query.sql_with_params()
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
                times.append(float(cursor.fetchone()[0][0]["Execution Time"]))
        return sum(times) / len(times)

    ours = execution_ms()
    shipped = queue.live_assignments_q
    # As it was: the plain OR, and the id walk from the table's first task.
    queue.live_assignments_q = lambda *, now: Q(status=queue.DONE) | Q(status=queue.CLAIMED, expires_at__gt=now)  # type: ignore[assignment]
    queue.START_AT_PROJECT = False
    try:
        naive = execution_ms()
    finally:
        queue.live_assignments_q = shipped
        queue.START_AT_PROJECT = True
    texts = list(Response.objects.filter(item__project=project).values_list("text", flat=True)[:30])
    started = time.perf_counter()
    for text in texts:
        render_markdown.uncached(text)  # type: ignore[attr-defined]
    fresh = (time.perf_counter() - started) * 1000 / len(texts)
    for text in texts:
        render_markdown(text)
    started = time.perf_counter()
    for text in texts:
        render_markdown(text)
    cached = (time.perf_counter() - started) * 1000 / len(texts)
    print(f"\nnaive vs ours on this run's data: claim candidate query {naive:.2f} ms (plain OR, walk from the table's "
          f"first task) vs {ours:.2f} ms (one index probe, walk from the project's first); markdown per response {fresh:.2f} ms afresh vs {cached:.3f} ms from the render cache")
    return {"claim_query_ms": round(ours, 2), "claim_query_naive_ms": round(naive, 2),
            "markdown_ms": round(fresh, 3), "markdown_cached_ms": round(cached, 4)}


def run_phase(label: str, annotators: list[Annotator], args: argparse.Namespace, monitor: Monitor) -> dict:
    before = monitor.cpu()
    started = time.perf_counter()
    for a in annotators:
        a.start()
    for a in annotators:
        a.join(timeout=args.seconds + 120)
    elapsed = time.perf_counter() - started
    after = monitor.cpu()
    used = Monitor.used(before, after)
    used["other"] = max(0.0, used["machine"] - used["client"] - used["web"] - used["db"])
    next_ms = [x for a in annotators for x in a.latencies["next"]]
    submit_ms = [x for a in annotators for x in a.latencies["submit"]]
    requests = len(next_ms) + len(submit_ms)
    errors = sum(sum(a.errors.values()) for a in annotators)
    rps = requests / elapsed if elapsed else 0.0
    print(f"\n{label}: {len(annotators)} annotators, think time {args.think_ms:.0f} ms, {elapsed:.1f} s, "
          f"{requests} timed requests, {rps:.1f} requests/s, errors {errors}, load average {_loadavg()}")
    for name, values in (("next-task", next_ms), ("submit", submit_ms)):
        print(f"  {name:<10} n={len(values):<6} p50={percentile(values, 50):6.1f} ms  p95={percentile(values, 95):6.1f} ms  "
              f"p99={percentile(values, 99):6.1f} ms  mean={statistics.fmean(values) if values else 0:6.1f} ms")
    cores = os.cpu_count() or 1
    per = {k: (1000 * v / requests if requests else 0.0) for k, v in used.items()}
    print(f"  CPU over the phase ({cores} cores = {cores * elapsed:.0f} core-s): load generator {used['client']:.1f} s "
          f"({per['client']:.1f} ms/request), web {used['web']:.1f} s ({per['web']:.1f} ms/request), "
          f"PostgreSQL {used['db']:.1f} s ({per['db']:.1f} ms/request), everything else on the machine {used['other']:.1f} s")
    if errors:
        print("  errors:", dict(sum((a.errors for a in annotators), Counter())))
    return {"next": next_ms, "submit": submit_ms, "elapsed": elapsed, "requests": requests, "errors": errors,
            "cpu": used, "cpu_ms_per_request": per}


def main() -> None:
    args = parse_args()
    print(f"uptime load average at start: {_loadavg()} ({os.cpu_count()} cores; the load generator, gunicorn and "
          "PostgreSQL all run on this machine and share them)")
    print(f"PostgreSQL: (re)creating database {DB_NAME} at {pg_url('')}")
    prepare_database()
    project_id, tokens = setup_data(args)
    page_project_id, sessions, warm_session = setup_page_data(args)
    port = free_port()
    print(f"gunicorn: {args.workers} workers x {args.threads} threads (gthread) on 127.0.0.1:{port} (started by this script)")
    server = start_gunicorn(args, port)
    monitor = Monitor(server.pid, DB_NAME)
    monitor.start()
    phases: dict[str, dict] = {}
    rest: list[Annotator] = []
    pages: list[Annotator] = []
    try:
        warm_up(port, project_id, args.workers * args.threads)
        warm_up_pages(port, page_project_id, warm_session, args.workers * args.threads)
        if "rest" in args.paths:
            stop_at = time.time() + args.seconds
            rest = [
                Annotator(name=name, token=token, port=port, project_id=project_id, args=args, stop_at=stop_at, seed=n)
                for n, (name, token) in enumerate(tokens.items())
            ]
            phases["rest"] = run_phase("REST queue (/api/.../queue/next/, /api/queue/submit/)", rest, args, monitor)
        if "page" in args.paths:
            stop_at = time.time() + args.seconds
            pages = [
                PageAnnotator(name=name, session=session, port=port, project_id=page_project_id, args=args,
                              stop_at=stop_at, seed=1000 + n)
                for n, (name, session) in enumerate(sessions.items())
            ]
            phases["page"] = run_phase("htmx pages (GET .../annotate/, hx-post .../annotate/submit/)", pages, args, monitor)
        torch_loaded = monitor.check_torch()
    finally:
        monitor.stop_event.set()
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    naive = naive_comparison(page_project_id if "page" in phases else project_id)
    checks = {"lost": 0, "duplicated": 0, "overlap_exceeded": 0}
    for key, annotators, pid in (("rest", rest, project_id), ("page", pages, page_project_id)):
        if key not in phases:
            continue
        found = verify(pid, annotators, args.overlap)
        print(f"  {key}: done in database {found['done_in_db']}; lost {found['lost']}, duplicated {found['duplicated']}, "
              f"overlap exceeded {found['overlap_exceeded']}")
        for k in checks:
            checks[k] += found[k]
    web_rss = max(monitor.rss_max.values(), default=0.0)
    print(f"  largest web worker RSS under load: {web_rss:.0f} MB (of {len(monitor.rss_max)} worker processes); "
          f"torch loaded in a web worker: {torch_loaded}")
    print(f"uptime load average at end: {_loadavg()}")
    if os.environ.get("BENCH_TIMELINE"):
        for key, annotators in (("rest", rest), ("page", pages)):
            slow = sorted((t, k, ms) for a in annotators for t, k, ms in a.timeline if ms > 300)
            print(f"slow {key} requests (kind, ms):", [(k, round(ms)) for _, k, ms in slow[:40]])

    def worst(phase: dict | None, q: float) -> float:
        if not phase:
            return 0.0
        return round(max(percentile(phase["next"], q), percentile(phase["submit"], q)), 1)

    r, pg = phases.get("rest"), phases.get("page")
    requests = sum(p["requests"] for p in phases.values())
    elapsed = sum(p["elapsed"] for p in phases.values())
    result = {
        "annotators": args.annotators,
        "think_ms": args.think_ms,
        "workers": args.workers,
        "threads": args.threads,
        "seconds": round(elapsed, 1),
        "requests": requests,
        "requests_per_s": round(r["requests"] / r["elapsed"], 1) if r else 0.0,
        "p50_ms": worst(r, 50),
        "p95_ms": worst(r, 95),
        "p99_ms": worst(r, 99),
        "next_p95_ms": round(percentile(r["next"], 95), 1) if r else 0.0,
        "submit_p95_ms": round(percentile(r["submit"], 95), 1) if r else 0.0,
        "page_requests_per_s": round(pg["requests"] / pg["elapsed"], 1) if pg else 0.0,
        "page_p50_ms": worst(pg, 50),
        "page_p95_ms": worst(pg, 95),
        "page_p99_ms": worst(pg, 99),
        "page_next_p95_ms": round(percentile(pg["next"], 95), 1) if pg else 0.0,
        "page_submit_p95_ms": round(percentile(pg["submit"], 95), 1) if pg else 0.0,
        "web_rss_mb": round(web_rss, 1),
        "web_torch_loaded": torch_loaded,
        "client_cpu_ms_per_request": round(
            sum(p["cpu"]["client"] for p in phases.values()) * 1000 / requests, 2) if requests else 0.0,
        "web_cpu_ms_per_request": round(sum(p["cpu"]["web"] for p in phases.values()) * 1000 / requests, 2) if requests else 0.0,
        "db_cpu_ms_per_request": round(sum(p["cpu"]["db"] for p in phases.values()) * 1000 / requests, 2) if requests else 0.0,
        "other_cpu_s": round(sum(p["cpu"]["other"] for p in phases.values()), 1),
        "load_average_end": float(_loadavg().split()[0]),
        **naive,
        "errors": sum(p["errors"] for p in phases.values()),
        "lost": checks["lost"],
        "duplicated": checks["duplicated"],
        "overlap_exceeded": checks["overlap_exceeded"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
