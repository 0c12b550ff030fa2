"""`python manage.py demo`: migrate, load the demo project, start a worker judging it, serve.

This is what `make run` calls; it is the one command a newcomer needs to see the app. It says
what it is doing at each step (with seconds since it started), starts the demo's judge run
before the web server so the worker loads the model while the login page is already up, and
stops the worker it started on Ctrl-C, SIGTERM or SIGHUP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from annotate.demo import DEMO_PASSWORD, DEMO_USERS, demo_project_create

# Seconds a stopping worker gets to finish on its own (Celery's warm shutdown waits for the
# batch in hand) before its process group is killed; a killed batch is handed out again on the
# next start, so nothing is lost either way.
WORKER_STOP_GRACE_S = 5.0
# How often the console reports a run's progress while the demo judges.
REPORT_EVERY_S = 15.0


class Command(BaseCommand):
    help = "Set up and run the demo: migrate, demo project and logins, a Celery worker judging it, the web server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default="8000")
        parser.add_argument("--no-worker", action="store_true", help="don't start a worker or judge runs")
        parser.add_argument("--no-server", action="store_true", help="set up only, don't serve")

    def handle(self, *args, port: str, no_worker: bool, no_server: bool, **options) -> None:
        self.started = time.monotonic()
        self.lock = threading.Lock()
        # SIGTERM (from `make`, which forwards it, or `kill`) and SIGHUP (a closed terminal) end
        # the demo the way Ctrl-C does, so the `finally` below stops the worker. SIGINT too:
        # started in the background by a shell without job control (`cmd &` in a script), a
        # process inherits SIGINT ignored, and Python then installs no handler of its own, so
        # `kill -INT` (what Ctrl-C sends) would leave the demo and its worker running.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        self.say(f"migrating the database ({settings.DATABASES['default']['NAME']})")
        call_command("migrate", interactive=False, verbosity=0)
        self.say("loading the demo project")
        result = demo_project_create()
        project = result.project
        self.say(f"demo project {project.name!r} {'created' if result.created else 'already present'}")
        worker: subprocess.Popen | None = None
        try:
            if not no_worker:
                worker = self._start_worker()
                follow = self._plan_runs(project.pk, port)
                if follow is not None:
                    threading.Thread(target=follow, daemon=True).start()
            self.stdout.write(f"\nLogins (password for all: {DEMO_PASSWORD}):")
            for username, role in DEMO_USERS:
                self.stdout.write(f"  {username:<11} {role}")
            if no_server:
                if worker is not None:
                    self.say("worker running; press Ctrl-C to stop")
                    worker.wait()
                return
            self.stdout.write(f"\nOpen http://127.0.0.1:{port}/ and log in (Ctrl-C stops the server and the worker).\n")
            self.stdout.flush()
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
        except KeyboardInterrupt:
            pass
        finally:
            if worker is not None:
                self._stop_worker(worker)

    def say(self, message: str) -> None:
        """One console line with the seconds since the command started (the demo's timeline)."""
        with self.lock:
            self.stdout.write(f"[demo +{time.monotonic() - self.started:6.1f} s] {message}")
            self.stdout.flush()

    # -- the worker ------------------------------------------------------------------------------

    def _start_worker(self) -> subprocess.Popen:
        celery = shutil.which("celery", path=os.path.dirname(sys.executable)) or "celery"
        log_path = settings.VAR_DIR / "worker.log"
        log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the worker
        worker = subprocess.Popen(
            [celery, "-A", "config", "worker", "-Q", "default,gpu", "-c", "1", "--loglevel", "info",
             "-n", "demo@%h", "--without-gossip", "--without-mingle"],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
            # Its own process group: Ctrl-C reaches only this command, which then stops the
            # worker and its pool child together.
            start_new_session=True,
        )
        self.say(f"started a Celery worker, pid {worker.pid} (queues default, gpu; log {log_path})")
        return worker

    def _stop_worker(self, worker: subprocess.Popen) -> None:
        if worker.poll() is not None:
            return
        self.say(f"stopping the worker (pid {worker.pid})")
        _signal_group(worker, signal.SIGTERM)
        try:
            worker.wait(timeout=WORKER_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(worker, signal.SIGKILL)
            worker.wait()
        else:
            _signal_group(worker, signal.SIGKILL)  # a pool child that outlived its parent
        self.say("worker stopped")

    # -- the demo's runs -------------------------------------------------------------------------

    def _plan_runs(self, project_id: int, port: str):  # -> Callable[[], None] | None
        """Start the demo's first run now (before the server) and return what follows it: the
        judge run, then the judge writing its own short answers, then judging the pairs that
        hold them (a self-preference case). Steps already done are skipped; a run that an
        earlier `make run` left unfinished is resumed."""
        try:
            from annotate.demo import demo_judge, demo_steps
            from judges.models import Run
            from judges.services import run_resume
        except ImportError as exc:  # judges not installed: the demo still serves
            self.stderr.write(f"judges unavailable: {exc}")
            return None
        judge = demo_judge()
        steps = demo_steps(judge=judge)
        for run in Run.objects.filter(project_id=project_id, judge=judge, status=Run.Status.RUNNING):
            run_resume(run=run)  # this worker is the only one: the old claims died with the last one
            self.say(f"resuming run #{run.pk}, left unfinished by the last start")
        first = self._step_run(project_id, judge, steps[0], port)

        def follow() -> None:
            try:
                self._wait(first, steps[0]["title"])
                for step in steps[1:]:
                    self._wait(self._step_run(project_id, judge, step, port), step["title"])
                self.say("the demo's runs are done: open the project's report")
            except Exception as exc:  # the server keeps running; say why the demo stopped judging
                self.say(f"the demo stopped judging: {type(exc).__name__}: {exc}")

        return follow

    def _step_run(self, project_id: int, judge, step: dict, port: str):
        from annotate.models import Project
        from judges.models import Run
        from judges.services import run_start

        existing = [
            r for r in Run.objects.filter(project_id=project_id, judge=judge, kind=step["kind"]).order_by("id")
            if r.protocols == step["protocols"] and r.filters == step["filters"]
        ]
        if existing:
            return existing[-1]
        run = run_start(judge=judge, project=Project.objects.get(pk=project_id), kind=step["kind"],
                        protocols=step["protocols"] or ["rating", "ranking"], filters=step["filters"],
                        plan_now=True)  # a command, not a web request: plan here, say the total at once
        unit = "answers to write" if run.kind == Run.Kind.GENERATE else "judgments"
        self.say(f"{step['title']} run #{run.pk} started: {run.total} {unit}; "
                 f"watch it at http://127.0.0.1:{port}/judges/runs/{run.pk}/")
        return run

    def _wait(self, run, title: str) -> None:
        from judges.selectors import run_progress

        last_report = time.monotonic()
        while True:
            run.refresh_from_db()
            progress = run_progress(run=run)
            if run.is_finished:
                break
            if time.monotonic() - last_report >= REPORT_EVERY_S:
                last_report = time.monotonic()
                rate = ""
                if progress.tokens_per_second:
                    rate += f", {progress.tokens} tokens at {progress.tokens_per_second:.1f}/s"
                if progress.per_second:
                    rate += f", {progress.per_second:.2f} {progress.unit}/s"
                if progress.eta_seconds is not None:
                    rate += f", ETA {'at most ' if progress.eta_is_bound else ''}{progress.eta_seconds:.0f} s"
                self.say(f"run #{run.pk}: {progress.done}/{progress.total} {progress.unit}{rate}")
            time.sleep(1)
        self.say(
            f"{title} run #{run.pk} {run.status}: {progress.done} {progress.unit} "
            f"(ok {progress.ok}, unparseable {progress.unparseable}, errors {progress.error}) "
            f"in {_run_seconds(run):.0f} s"
        )


def _run_seconds(run) -> float:
    if run.started_at is None or run.finished_at is None:
        return 0.0
    return (run.finished_at - run.started_at).total_seconds()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _signal_group(worker: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(worker.pid, sig)
    except ProcessLookupError:
        pass
