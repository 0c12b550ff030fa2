from __future__ import annotations

from django.urls import path

from . import api

urlpatterns = [
    path("judges/", api.JudgeListApi.as_view(), name="api-judges"),
    path("judges/<int:judge_id>/", api.JudgeDetailApi.as_view(), name="api-judge"),
    path("judges/<int:judge_id>/templates/", api.JudgeTemplatesApi.as_view(), name="api-judge-templates"),
    path("runs/", api.RunListApi.as_view(), name="api-runs"),
    path("runs/<int:run_id>/", api.RunDetailApi.as_view(), name="api-run"),
    path("runs/<int:run_id>/cancel/", api.RunCancelApi.as_view(), name="api-run-cancel"),
    path("runs/<int:run_id>/resume/", api.RunResumeApi.as_view(), name="api-run-resume"),
]
