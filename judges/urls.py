from __future__ import annotations

from django.urls import path

from . import views

app_name = "judges"
urlpatterns = [
    path("", views.judge_list, name="judges"),
    path("<int:judge_id>/", views.judge_detail, name="judge"),
    path("<int:judge_id>/template/", views.judge_template, name="judge-template"),
    path("<int:judge_id>/archive/", views.judge_archive, name="judge-archive"),
    path("<int:judge_id>/template/preview/", views.template_preview, name="template-preview"),
    path("projects/<int:project_id>/runs/", views.runs, name="runs"),
    path("projects/<int:project_id>/probes/", views.probe_start, name="probes"),
    path("items/<int:item_id>/checklist/generate/", views.checklist_generate, name="checklist-generate"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/progress/", views.run_progress, name="run-progress"),
    path("runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("runs/<int:run_id>/resume/", views.run_resume, name="run-resume"),
]
