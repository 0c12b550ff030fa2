from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = request.user.projects.all() if not request.user.is_staff else None
    return render(request, "annotate/home.html", {"projects": projects})
