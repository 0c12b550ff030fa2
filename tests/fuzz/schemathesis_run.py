"""Fuzz the live API with schemathesis, as an admin and as an annotator; fail on any 5xx or any
response the OpenAPI schema does not describe.

    python tests/fuzz/schemathesis_run.py [--max-examples N] [--max-time SECONDS] [--seed N]

Creates a fresh PostgreSQL database next to DATABASE_URL's (its name + "_fuzz"), migrates and
seeds it (tests/fuzz/seed.py), starts gunicorn on a free loopback port, creates both tokens with
`manage.py create_token`, runs schemathesis against /api/schema/ once per token, then stops the
server and drops the database. Exit status: schemathesis's (non-zero on any failure).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
BIN = Path(PY).parent
# Every check about what the server answers; the generators' own expectations
# (negative_data_rejection, positive_data_acceptance) judge the fuzzer more than the API.
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_headers_conformance", "response_schema_conformance",
])


# Path ids the seed created (tests/fuzz/seed.py): project, item, response, pair and rater 1,
# judge 1, run 1, so operations reach their logic instead of answering 404 to random ids.
CONFIG = """
[parameters]
"path.id" = 1
"path.judge_id" = 1
"path.run_id" = 1
"path.project_id" = 1
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fuzz_database_url(base: str) -> tuple[str, str, str]:
    """(fuzz database URL, its name, the maintenance database URL)."""
    parts = urlsplit(base)
    name = parts.path.lstrip("/") + "_fuzz"
    return (
        urlunsplit(parts._replace(path="/" + name)), name, urlunsplit(parts._replace(path="/postgres"))
    )


def admin_sql(maintenance_url: str, sql: str) -> None:
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(sql)


def drop_database(maintenance_url: str, name: str) -> None:
    admin_sql(maintenance_url, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    admin_sql(maintenance_url, f'DROP DATABASE IF EXISTS "{name}"')


def manage(env: dict, *args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, env=env, check=True, text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return (result.stdout or "").strip()


def wait_for(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 (loopback)
            return
        except urllib.error.HTTPError:
            return  # the server answers (401 without a token)
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server at {url} did not answer within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("FUZZ_MAX_EXAMPLES", "25")))
    parser.add_argument("--max-time", type=int, default=int(os.environ.get("FUZZ_MAX_TIME", "60")),
                        help="seconds per role")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "1")))
    parser.add_argument("--report-dir", default=os.environ.get("FUZZ_REPORT_DIR", str(ROOT / "var" / "fuzz")))
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind to investigate")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/concordance")
    db_url, db_name, maintenance = fuzz_database_url(base)
    env = {**os.environ, "DATABASE_URL": db_url, "DJANGO_DEBUG": "0",
           "DJANGO_SECRET_KEY": "fuzz-" + os.urandom(24).hex(), "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
           # Production settings over plain HTTP on loopback: no redirect to https.
           "DJANGO_SECURE_SSL_REDIRECT": "0", "DJANGO_HSTS_SECONDS": "0",
           "CONCORDANCE_VAR_DIR": str(Path(args.report_dir).resolve() / "var"), "DJANGO_LOG_LEVEL": "WARNING",
           # The fuzzer is one client sending hundreds of requests a minute: the throttles (tested
           # on their own) would answer it 429 instead of exercising the views.
           "CONCORDANCE_API_ANON_RATE": "100000/minute", "CONCORDANCE_API_USER_RATE": "100000/minute"}
    drop_database(maintenance, db_name)
    admin_sql(maintenance, f'CREATE DATABASE "{db_name}"')
    server = None
    try:
        manage(env, "migrate", "--verbosity", "0")
        subprocess.run([PY, str(ROOT / "tests" / "fuzz" / "seed.py")], cwd=ROOT, env=env, check=True)
        tokens = {role: manage(env, "create_token", f"fuzz-{role}", capture=True) for role in ("admin", "annotator")}
        port = free_port()
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--timeout", "60", "--log-level", "warning"],
            cwd=ROOT, env=env, start_new_session=True,
        )
        schema_url = f"http://127.0.0.1:{port}/api/schema/"
        wait_for(schema_url)
        failed = 0
        for role, token in tokens.items():
            print(f"== schemathesis as {role}", flush=True)
            report = Path(args.report_dir).resolve() / role
            report.mkdir(parents=True, exist_ok=True)
            config = report / "schemathesis.toml"
            config.write_text(CONFIG)
            code = subprocess.run(
                [str(BIN / "schemathesis"), "--config-file", str(config), "--no-color", "run", schema_url, "--header", f"Authorization: Token {token}",
                 "--checks", CHECKS, "--max-examples", str(args.max_examples), "--max-time", str(args.max_time),
                 "--seed", str(args.seed), "--workers", "2", "--phases", "examples,coverage,fuzzing",
                 "--request-timeout", "30", "--suppress-health-check", "all",
                 "--report", "junit", "--report-dir", str(report)],
                # Its own cache (.schemathesis/) goes beside the reports, not into the checkout.
                cwd=report, env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            ).returncode
            failed |= code
        return failed
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        if not args.keep_db:
            drop_database(maintenance, db_name)


if __name__ == "__main__":
    raise SystemExit(main())
