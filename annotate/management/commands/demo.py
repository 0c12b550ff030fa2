"""`python manage.py demo`: migrate, load the demo project, start a worker judging it, serve.

This is what `make run` calls; it is the one command a newcomer needs to see the app."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from annotate.demo import DEMO_PASSWORD, DEMO_USERS, demo_project_create


class Command(BaseCommand):
    help = "Set up and run the demo: migrate, demo project and logins, a Celery worker judging it, the web server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default="8000")
        parser.add_argument("--no-worker", action="store_true", help="don't start a worker or judge runs")
        parser.add_argument("--no-server", action="store_true", help="set up only, don't serve")

    def handle(self, *args, port: str, no_worker: bool, no_server: bool, **options) -> None:
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        result = demo_project_create()
        project = result.project
        self.stdout.write(self.style.SUCCESS(
            f"Demo project {project.name!r} {'created' if result.created else 'already present'}."
        ))
        worker = None
        if not no_worker:
            worker = self._start_worker()
            threading.Thread(target=self._judge_demo, args=(project.pk,), daemon=True).start()
        self.stdout.write(f"\nLogins (password for all: {DEMO_PASSWORD}):")
        for username, role in DEMO_USERS:
            self.stdout.write(f"  {username:<11} {role}")
        if no_server:
            if worker is not None:
                self.stdout.write("Worker running; press Ctrl-C to stop.")
                try:
                    worker.wait()
                except KeyboardInterrupt:
                    pass
            return
        self.stdout.write(f"\nOpen http://127.0.0.1:{port}/ and log in.\n")
        try:
            call_command("runserver", f"127.0.0.1:{port}", use_reloader=False)
        finally:
            if worker is not None:
                worker.terminate()

    def _start_worker(self) -> subprocess.Popen:
        celery = shutil.which("celery", path=os.path.dirname(sys.executable)) or "celery"
        log = open(settings.VAR_DIR / "worker.log", "ab")  # noqa: SIM115 - lives as long as the worker
        self.stdout.write(f"Starting a Celery worker (queues default, gpu); log: {settings.VAR_DIR / 'worker.log'}")
        return subprocess.Popen(
            [celery, "-A", "config", "worker", "-Q", "default,gpu", "-c", "1", "--loglevel", "info"],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(),
        )

    def _judge_demo(self, project_id: int) -> None:
        """A generate run first (SmolLM2 writes its own answers, so the demo has a
        self-preference case), then a judge run over every pair, both orders."""
        try:
            from annotate.models import Project
            from judges.services import judge_get_or_create_default, run_start
        except ImportError as exc:  # judges not installed: the demo still serves
            self.stderr.write(f"judges unavailable: {exc}")
            return
        project = Project.objects.get(pk=project_id)
        judge = judge_get_or_create_default()
        from judges.models import Run

        if not Run.objects.filter(project=project, judge=judge).exists():
            generate = run_start(judge=judge, project=project, kind="generate")
            while Run.objects.get(pk=generate.pk).status not in ("done", "failed", "cancelled"):
                time.sleep(2)
            run_start(judge=judge, project=project, protocols=["rating", "ranking"])
            self.stdout.write("Judge runs started; follow them on the project's Judge runs page.")
