from __future__ import annotations

from django.urls import path

from . import views

app_name = "exports"
urlpatterns = [
    path("projects/<int:project_id>/", views.project, name="project"),
    path("projects/<int:project_id>/jobs/<str:job_id>/", views.job, name="job"),
    path("projects/<int:project_id>/jobs/<str:job_id>/files/<str:name>", views.job_file, name="job_file"),
]
