from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("projects/<int:pk>/report/", api.ProjectReportApi.as_view(), name="api-project-report"),
]
