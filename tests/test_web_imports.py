"""The web process never imports torch or transformers: only judge workers load models.

A gunicorn worker imports the WSGI application and, on its first request, every URL module and
the views they name; the same is done here in a fresh interpreter (an import made by another
test would hide one), then its modules are checked. bench/annotate_load.py checks the running
workers too (`web_torch_loaded`: libtorch mapped in a worker process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
from config.wsgi import application
from django.urls import get_resolver

def walk(patterns):
    for p in patterns:
        if hasattr(p, "url_patterns"):
            walk(p.url_patterns)
        else:
            p.callback  # resolves the view, importing its module

walk(get_resolver().url_patterns)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "transformers", "accelerate", "llama_cpp"})
print("HEAVY", heavy)
print("VIEWS", len([m for m in sys.modules if m.endswith((".views", ".api", ".api_queue"))]))
"""


def test_the_web_application_imports_no_model_library():
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings")
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("HEAVY", "VIEWS")))
    assert int(lines["VIEWS"]) >= 3, done.stdout  # the probe did reach the views
    assert lines["HEAVY"] == "[]", lines["HEAVY"]
